"""resize_jax.data iterators on the generated sets (tiny configs, built once per module)."""

import hashlib
import math

import chex
import numpy as np
import pytest
import tensorflow as tf

from resize_jax import data
from resize_jax.data import preprocess

TINY = {
    "classification": "small_details/tiny",
    "segmentation": "small_objects/tiny",
    "image_quality": "synthetic_ava/tiny",
}


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    return str(tmp_path_factory.mktemp("tfds"))


def _config(data_dir, task="classification", **overrides):
    config = data.default_config()
    config.name = TINY[task]
    config.data_dir = data_dir
    for key, value in overrides.items():
        config[key] = value
    return config


def _digest(image: np.ndarray) -> str:
    return hashlib.sha1(np.ascontiguousarray(image).tobytes()).hexdigest()


def _real_examples(batches):
    """Digests of the real (mask 1) images, and the number of batches."""
    digests, count = [], 0
    for batch in batches:
        count += 1
        digests += [
            _digest(img) for img, m in zip(batch["image"], batch["mask"], strict=True) if m == 1.0
        ]
    return digests, count


@pytest.mark.parametrize("task", sorted(TINY))
def test_batches_have_documented_shapes_dtypes_and_range(data_dir, task):
    config = _config(data_dir, task, value_range=(-1.0, 1.0), image_size=(64, 96))
    info = data.get_info(config)
    assert info.task == task and info.image_shape == (64, 96, 3)
    b = 4
    train = next(data.train_iterator(config, batch_size=b, seed=0))
    evaluation = next(data.eval_iterator(config, batch_size=b))
    for batch in (train, evaluation):
        chex.assert_shape(batch["image"], (b, 64, 96, 3))
        chex.assert_type(batch["image"], np.float32)
        assert -1.0 <= batch["image"].min() < batch["image"].max() <= 1.0
        label = batch["label"]
        if task == "classification":
            chex.assert_shape(label, (b,))
            chex.assert_type(label, np.int32)
            assert set(label) <= set(range(info.num_classes))
        elif task == "segmentation":
            chex.assert_shape(label, (b, 64, 96))
            chex.assert_type(label, np.int32)
            assert set(np.unique(label)) <= {*range(info.num_classes), info.ignore_label}
        else:
            chex.assert_shape(label, (b, 10))
            chex.assert_type(label, np.float32)
            np.testing.assert_allclose(label.sum(-1), 1.0, rtol=1e-5)
    chex.assert_shape(evaluation["mask"], (b,))
    chex.assert_type(evaluation["mask"], np.float32)


def test_info_of_generated_sets(data_dir):
    info = data.get_info(_config(data_dir))
    assert info == data.DatasetInfo(
        task="classification",
        num_classes=4,
        num_train=48,
        num_eval=24,
        image_shape=(128, 128, 3),
        ignore_label=None,
        class_names=("white", "black", "yellow", "cyan"),
    )
    seg = data.get_info(_config(data_dir, "segmentation"))
    assert (seg.num_classes, seg.ignore_label, seg.num_eval) == (4, 255, 12)
    assert data.get_info(_config(data_dir, "image_quality")).num_classes == 10


def test_one_hot_labels(data_dir):
    config = _config(data_dir, one_hot=True)
    batch = next(data.train_iterator(config, batch_size=4, seed=0))
    chex.assert_shape(batch["label"], (4, 4))
    np.testing.assert_array_equal(batch["label"].sum(-1), 1.0)
    pad = list(data.eval_iterator(config, batch_size=10))[-1]  # 24 = 10 + 10 + 4 + padding
    np.testing.assert_array_equal(pad["label"][pad["mask"] == 0], 0.0)


def test_same_seed_same_batches_other_seed_other_batches(data_dir):
    config = _config(data_dir, augment=True)
    runs = []
    for seed in (3, 3, 4):
        it = data.train_iterator(config, batch_size=8, seed=seed)
        runs.append([next(it) for _ in range(8)])  # 64 > 48 examples: crosses an epoch
    for a, b in zip(runs[0], runs[1], strict=True):
        chex.assert_trees_all_equal(a, b)
    assert not np.array_equal(runs[0][0]["image"], runs[2][0]["image"])


@pytest.mark.parametrize("count", [1, 2, 5])
def test_eval_counts_every_example_once_across_processes(data_dir, count):
    config = _config(data_dir)
    everything, _ = _real_examples(data.eval_iterator(config, batch_size=24))
    assert len(everything) == 24
    shards, batches, mask_total = [], set(), 0.0
    for index in range(count):
        it = data.eval_iterator(config, batch_size=3, process_index=index, process_count=count)
        shard = list(it)
        batches.add(len(shard))
        for batch in shard:
            chex.assert_shape(batch["image"], (3, 128, 128, 3))  # always full batches
        mask_total += sum(b["mask"].sum() for b in shard)
        shards.append(_real_examples(shard)[0])
    assert mask_total == 24
    assert len(batches) == 1  # every process yields the same number of batches
    assert batches.pop() == math.ceil(math.ceil(24 / count) / 3)
    flat = [d for shard in shards for d in shard]
    assert len(set(flat)) == len(flat) == 24  # disjoint
    assert sorted(flat) == sorted(everything)  # union is the split


def test_train_shards_are_disjoint_and_cover_the_split(data_dir):
    config = _config(data_dir, augment=False)
    seen = []
    for index in range(3):  # 48 train examples → 16 per process = 4 batches of 4
        it = data.train_iterator(config, batch_size=4, seed=0, process_index=index, process_count=3)
        seen.append({_digest(img) for _ in range(4) for img in next(it)["image"]})
    assert all(len(s) == 16 for s in seen)
    assert not (seen[0] & seen[1] or seen[0] & seen[2] or seen[1] & seen[2])
    config.train_split = config.eval_split = "train"
    everything, _ = _real_examples(data.eval_iterator(config, batch_size=48))
    assert set().union(*seen) == set(everything)


def test_small_details_augmentation_only_flips(data_dir):
    # The detail must never be cropped away: augmented images are the eval view or its mirror.
    config = _config(data_dir, augment=True, train_split="test", eval_split="test")
    evals = {_digest(img) for b in data.eval_iterator(config, batch_size=24) for img in b["image"]}
    mirrored = {
        _digest(img[:, ::-1])
        for b in data.eval_iterator(config, batch_size=24)
        for img in b["image"]
    }
    it = data.train_iterator(config, batch_size=12, seed=1)
    digests = [_digest(img) for _ in range(4) for img in next(it)["image"]]
    assert set(digests) <= evals | mirrored
    assert set(digests) & (mirrored - evals)  # some are flipped


def test_segmentation_labels_follow_their_images(data_dir):
    # Flip and resize must move the label map with the image: compare the train view (flip
    # only) with the eval view, at native size.
    config = _config(data_dir, "segmentation", train_split="test", eval_split="test")
    pairs = {
        _digest(img): lab
        for b in data.eval_iterator(config, batch_size=12)
        for img, lab in zip(b["image"], b["label"], strict=True)
    }
    batch = next(data.train_iterator(config, batch_size=12, seed=0))
    for img, lab in zip(batch["image"], batch["label"], strict=True):
        if _digest(img) in pairs:
            np.testing.assert_array_equal(lab, pairs[_digest(img)])
        else:
            np.testing.assert_array_equal(lab[:, ::-1], pairs[_digest(img[:, ::-1])])
    padding = list(data.eval_iterator(config, batch_size=5))[-1]  # 12 = 5 + 5 + 2 + padding
    assert (padding["label"][padding["mask"] == 0] == 255).all()


@pytest.mark.parametrize(
    ("shape", "size", "fraction", "box"),
    [
        ((100, 200), (50, 50), 1.0, (0, 50, 100, 100)),  # the largest central square
        ((100, 200), (50, 50), 0.5, (25, 75, 50, 50)),
        ((200, 100), (20, 40), 1.0, (75, 0, 50, 100)),  # target aspect H:W = 1:2
        ((64, 64), (64, 64), 0.875, (4, 4, 56, 56)),  # ImageNet-style 0.875 crop
    ],
)
def test_central_box(shape, size, fraction, box):
    got = preprocess.central_box(tf.constant(shape[0]), tf.constant(shape[1]), size, fraction)
    assert tuple(int(v) for v in got) == box


def test_tensorflow_is_kept_off_accelerators():
    data.hide_accelerators_from_tf()
    assert tf.config.get_visible_devices("GPU") == []
    assert tf.config.get_visible_devices("TPU") == []


@pytest.mark.parametrize(
    ("overrides", "match"),
    [
        ({"name": "imagenet2021"}, r"Unknown dataset `name`='imagenet2021'.*imagenet2012"),
        ({"name": "folder/x"}, "only TFDS datasets take a '/config' suffix"),
        ({"image_size": (0, 32)}, "`image_size` must hold positive integers"),
        ({"value_range": (1.0, 0.0)}, "`value_range` must be a pair"),
        ({"train_split": "training"}, r"`train_split`='training' is not a valid split.*'test'"),
        ({"eval_split": "test[:"}, "`eval_split`='test\\[:' is not a valid split"),
        ({"task": "detection"}, "`task` must be one of"),
        ({"task": "segmentation", "num_classes": 4}, "task 'segmentation' needs an Image"),
        ({"label_key": "labels"}, r"`label_key`='labels' is not a feature.*'label'"),
        ({"eval_crop_fraction": 1.5}, r"`eval_crop_fraction` must be a finite number in \(0, 1\]"),
        ({"crop_area_range": (0.5, 1.5)}, "`crop_area_range` must be a pair"),
        ({"num_classes": 10}, "`num_classes`=10 does not match dataset 'small_details/tiny'"),
        (
            {"name": "small_objects/tiny", "ignore_label": -1},
            r"`ignore_label` must be in \[0, 255\]",
        ),
        ({"task": "image_quality"}, "task 'image_quality' needs a Tensor of 10 rating counts"),
    ],
)
def test_config_errors(data_dir, overrides, match):
    config = _config(data_dir)
    for key, value in overrides.items():
        config[key] = value
    with pytest.raises(ValueError, match=match):
        data.get_info(config)
        next(data.train_iterator(config, batch_size=2, seed=0))


def test_argument_errors(data_dir):
    config = _config(data_dir)
    with pytest.raises(ValueError, match="`batch_size` must be a positive integer, got 0"):
        data.train_iterator(config, batch_size=0, seed=0)
    with pytest.raises(ValueError, match="`process_index` must be in \\[0, process_count=2\\)"):
        data.eval_iterator(config, batch_size=2, process_index=2, process_count=2)
    with pytest.raises(ValueError, match="`seed` must be an int"):
        data.train_iterator(config, batch_size=2, seed=0.5)
    config.train_split = "train[:2]"
    with pytest.raises(ValueError, match="leaves process 2 of 3 no example"):
        data.train_iterator(config, batch_size=1, seed=0, process_index=2, process_count=3)
