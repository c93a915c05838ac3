"""The user's own data: ImageFolder classification, segmentation pairs and AVA ratings."""

import logging
import os

import chex
import numpy as np
import pytest
from PIL import Image

from resize_jax import data
from resize_jax.data import ava
from resize_jax.data.generated import synthetic_ava

RED, BLUE = (200, 30, 30), (30, 30, 200)


def _save(path, array, **kwargs):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    Image.fromarray(np.asarray(array, np.uint8)).save(path, **kwargs)


def _solid(height, width, colour):
    return np.broadcast_to(np.array(colour, np.uint8), (height, width, 3))


def _config(name, **overrides):
    config = data.default_config()
    config.name = name
    for key, value in overrides.items():
        config[key] = value
    return config


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """root/<split>/<label>/<image>: cats red, dogs blue, PNG and JPEG of various sizes."""
    root = tmp_path_factory.mktemp("folder")
    sizes = [(40, 60), (50, 50), (33, 47), (64, 30)]
    for split, count in (("train", 4), ("test", 3)):
        for label, colour in (("cat", RED), ("dog", BLUE)):
            for i in range(count):
                ext = "png" if i % 2 else "jpg"
                _save(root / split / label / f"{i}.{ext}", _solid(*sizes[i], colour), quality=95)
    (root / "train" / "cat" / "broken.jpg").write_bytes(b"not an image")
    (root / "train" / "dog" / "notes.txt").write_text("ignored: not an image extension")
    return str(root)


def test_image_folder_batches(folder, caplog):
    with caplog.at_level(logging.WARNING):
        config = _config("folder", root=folder, image_size=(24, 32))
        info = data.get_info(config)
    assert info.class_names == ("cat", "dog") and info.num_classes == 2
    assert (info.num_train, info.num_eval) == (8, 6)  # broken.jpg skipped, notes.txt ignored
    assert "Skipped 1 unreadable image file(s)" in caplog.text and "broken.jpg" in caplog.text
    batches = list(data.eval_iterator(config, batch_size=4))
    assert len(batches) == 2 and sum(b["mask"].sum() for b in batches) == 6
    for batch in batches:
        chex.assert_shape(batch["image"], (4, 24, 32, 3))
        for image, label, mask in zip(batch["image"], batch["label"], batch["mask"], strict=True):
            if mask:  # red images are cats (0), blue ones dogs (1)
                assert label == int(image[..., 2].mean() > image[..., 0].mean())
    train = next(data.train_iterator(config, batch_size=8, seed=0))
    chex.assert_shape(train["image"], (8, 24, 32, 3))
    assert train["image"].min() >= 0.0 and train["image"].max() <= 1.0
    assert sorted(train["label"]) == [0, 0, 0, 0, 1, 1, 1, 1]  # one epoch, reshuffled


def test_image_folder_random_resized_crop_keeps_content(tmp_path):
    # A left-half-red, right-half-blue image: crops (and flips) change the red fraction,
    # the eval view (central crop of a square image) keeps it at one half.
    image = np.concatenate([_solid(64, 32, RED), _solid(64, 32, BLUE)], axis=1)
    _save(tmp_path / "train" / "a" / "0.png", image)
    config = _config("folder", root=str(tmp_path), image_size=(16, 16), eval_split="train")
    config.eval_crop_fraction = 1.0
    ev = next(data.eval_iterator(config, batch_size=1))["image"][0]
    assert abs((ev[..., 0] > ev[..., 2]).mean() - 0.5) < 0.1
    it = data.train_iterator(config, batch_size=16, seed=0)
    fractions = {round(float((img[..., 0] > img[..., 2]).mean()), 2) for img in next(it)["image"]}
    assert len(fractions) > 4  # random crops: many different views


def test_image_folder_errors(tmp_path, folder):
    with pytest.raises(ValueError, match="`root` must be set for dataset 'folder'"):
        data.get_info(_config("folder"))
    with pytest.raises(ValueError, match="is not a directory"):
        data.get_info(_config("folder", root=str(tmp_path / "missing")))
    with pytest.raises(ValueError, match="is empty: it has no split directories"):
        data.get_info(_config("folder", root=str(tmp_path)))
    _save(tmp_path / "train" / "0.png", _solid(8, 8, RED))  # no label directory
    with pytest.raises(ValueError, match="has no readable images in label directories"):
        data.get_info(_config("folder", root=str(tmp_path)))
    with pytest.raises(ValueError, match=r"`eval_split`='validation' is not a valid split.*'test'"):
        data.get_info(_config("folder", root=folder, eval_split="validation"))


@pytest.fixture(scope="module")
def seg_folder(tmp_path_factory):
    """root/<split>/{images,masks}/<name>.png, 20×28, classes 0..2 and void 255."""
    root = tmp_path_factory.mktemp("seg")
    rng = np.random.default_rng(0)
    for split, count in (("train", 4), ("test", 3)):
        for i in range(count):
            mask = rng.integers(0, 3, size=(20, 28)).astype(np.uint8)
            mask[0] = 255
            image = np.stack([mask * 80, mask * 40, 255 - mask], -1).astype(np.uint8)
            _save(root / split / "images" / f"img{i}.png", image)
            _save(root / split / "masks" / f"img{i}.png", mask)
    return str(root)


def test_segmentation_folder_delivers_masks_pixel_aligned(seg_folder):
    config = _config("segmentation_folder", root=seg_folder, image_size=(20, 28))
    info = data.get_info(config)
    assert (info.task, info.num_classes, info.ignore_label) == ("segmentation", 3, 255)
    assert (info.num_train, info.num_eval) == (4, 3)
    batch = next(data.eval_iterator(config, batch_size=4))
    chex.assert_shape(batch["label"], (4, 20, 28))
    chex.assert_type(batch["label"], np.int32)
    for image, label, mask in zip(batch["image"], batch["label"], batch["mask"], strict=True):
        if mask:  # the image encodes its mask: red = 80·class/255 except on the void row
            np.testing.assert_array_equal(label[1:], np.round(image[1:, :, 0] * 255 / 80))
            assert (label[0] == 255).all()
        else:
            assert (label == 255).all()  # padding is void
    train = next(data.train_iterator(config, batch_size=4, seed=0))  # crops + flips
    assert set(np.unique(train["label"])) <= {0, 1, 2, 255}
    resized = _config("segmentation_folder", root=seg_folder, image_size=(45, 63))
    big = next(data.train_iterator(resized, batch_size=2, seed=0))
    chex.assert_shape(big["label"], (2, 45, 63))
    assert set(np.unique(big["label"])) <= {0, 1, 2, 255}  # nearest: no invented values


def test_segmentation_folder_errors_and_skips(tmp_path, caplog):
    root = tmp_path / "seg"
    _save(root / "train" / "images" / "a.png", _solid(10, 12, RED))
    _save(root / "train" / "masks" / "a.png", np.zeros((10, 12), np.uint8))
    (root / "train" / "images" / "b.png").write_bytes(b"broken")
    _save(root / "train" / "masks" / "b.png", np.zeros((10, 12), np.uint8))
    config = _config("segmentation_folder", root=str(root), eval_split="train")
    with caplog.at_level(logging.WARNING):
        assert data.get_info(config).num_eval == 1
    assert "Skipped 1 unreadable image file(s)" in caplog.text
    _save(root / "train" / "images" / "c.png", _solid(10, 12, RED))
    _save(root / "train" / "masks" / "c.png", np.zeros((10, 13), np.uint8))
    with pytest.raises(ValueError, match=r"sizes differ: .*c.png is 10×12 \(H×W\) but .*10×13"):
        data.get_info(config)
    _save(root / "train" / "masks" / "c.png", np.zeros((10, 12, 3), np.uint8))
    with pytest.raises(ValueError, match="mode 'RGB' PNG; masks must be 8-bit single-channel"):
        data.get_info(config)
    Image.fromarray(np.zeros((10, 12), np.uint8)).convert("P").save(root / "train/masks/c.png")
    with pytest.raises(ValueError, match=r"mode 'P' PNG.*Convert a palette mask"):
        data.get_info(config)
    os.remove(root / "train" / "masks" / "c.png")
    with pytest.raises(ValueError, match=r"every image needs a mask of the same name.*\['c'\]"):
        data.get_info(config)
    os.makedirs(tmp_path / "other" / "train" / "images")
    with pytest.raises(ValueError, match="has no masks/ directory"):
        data.get_info(_config("segmentation_folder", root=str(tmp_path / "other")))


def _write_ava(directory, counts, ids=None):
    """An AVA ratings file and its JPEG images; image k is a flat grey of level 20·k."""
    ids = ids or [f"{900 + k}" for k in range(len(counts))]
    os.makedirs(directory / "images", exist_ok=True)
    ratings = []
    for k, (image_id, c) in enumerate(zip(ids, counts, strict=True)):
        _save(directory / "images" / f"{image_id}.jpg", _solid(30 + k, 40, (20 * k,) * 3))
        ratings.append(ava.Rating(k + 1, image_id, tuple(c), (0, 15), 1396))
    path = str(directory / "AVA.txt")
    ava.write_ratings(path, ratings)
    return path, str(directory / "images")


def test_ava_reader_targets_normalised_histograms(tmp_path, caplog):
    rng = np.random.default_rng(0)
    counts = rng.integers(0, 30, size=(10, 10))
    ratings, images = _write_ava(tmp_path, counts.tolist())
    os.remove(os.path.join(images, "909.jpg"))  # AVA downloads lack a few images
    config = _config("ava", ratings_file=ratings, image_dir=images, image_size=(16, 16))
    config.train_split = config.eval_split = "train"
    with caplog.at_level(logging.WARNING):
        info = data.get_info(config)
    assert "Skipped 1 unreadable image file(s)" in caplog.text
    assert (info.task, info.num_classes, info.num_eval) == ("image_quality", 10, 9)
    batch = next(data.eval_iterator(config, batch_size=9))
    chex.assert_shape(batch["label"], (9, 10))
    chex.assert_type(batch["label"], np.float32)
    order = np.round(batch["image"][:, 8, 8, 0] * 255 / 20).astype(int)  # image k is grey 20·k
    np.testing.assert_array_equal(order, np.arange(9))  # file order
    expected = counts[:9] / counts[:9].sum(-1, keepdims=True)
    np.testing.assert_allclose(batch["label"], expected, rtol=1e-6)
    default = _config("ava", ratings_file=ratings, image_dir=images)  # train[:90%], train[90%:]
    info = data.get_info(default)
    assert (info.num_train, info.num_eval) == (8, 1)


@pytest.mark.parametrize(
    ("line", "match"),
    [
        ("2 902 1 2 3 4 5 6 7 8 9 10 0 15", r"line 2: expected 15 fields.*got 14"),
        ("2 902 1 2 3 4 5 6 7 8 9 x 0 15 1396", "line 2: the index, counts, tags and challenge"),
        ("2 902 0 0 0 0 0 0 0 0 0 0 0 15 1396", r"line 2: rating counts must be non-negative"),
        ("2 902 1 2 3 4 5 6 7 8 9 -1 0 15 1396", r"line 2: rating counts must be non-negative"),
    ],
)
def test_ava_malformed_lines_name_their_line(tmp_path, line, match):
    path = tmp_path / "AVA.txt"
    path.write_text(f"1 901 1 2 3 4 5 6 7 8 9 10 0 15 1396\n{line}\n")
    os.makedirs(tmp_path / "images")
    with pytest.raises(ValueError, match=match):
        data.get_info(_config("ava", ratings_file=str(path), image_dir=str(tmp_path / "images")))


def test_ava_file_errors(tmp_path):
    with pytest.raises(ValueError, match="`ratings_file`=None is not a file"):
        data.get_info(_config("ava"))
    empty = tmp_path / "empty.txt"
    empty.write_text("\n")
    with pytest.raises(ValueError, match="holds no rating line"):
        data.get_info(_config("ava", ratings_file=str(empty), image_dir=str(tmp_path)))
    ratings, _ = _write_ava(tmp_path, [[1] * 10])
    with pytest.raises(ValueError, match="`image_dir`='/nonexistent' is not a directory"):
        data.get_info(_config("ava", ratings_file=ratings, image_dir="/nonexistent"))
    os.makedirs(tmp_path / "no_images")
    with pytest.raises(ValueError, match="None of the 1 images"):
        data.get_info(_config("ava", ratings_file=ratings, image_dir=str(tmp_path / "no_images")))


def test_synthetic_ava_export_reads_back_as_ava(tmp_path):
    ratings = synthetic_ava.export_ava(str(tmp_path), split="test", count=6, size=64)
    parsed = ava.parse_ratings(ratings)
    assert [r.index for r in parsed] == list(range(1, 7))
    config = _config("ava", ratings_file=ratings, image_dir=str(tmp_path / "images"))
    config.eval_split, config.image_size = "train", (64, 64)
    batch = next(data.eval_iterator(config, batch_size=6))
    counts = np.array([r.counts for r in parsed], np.float32)
    np.testing.assert_allclose(batch["label"], counts / counts.sum(-1, keepdims=True), rtol=1e-6)


def test_folder_defaults_keep_small_details():
    from resize_jax.data.config import resolve

    config = data.default_config()
    config.name, config.root = "folder", "/unused"
    resolved = resolve(config)
    assert resolved.eval_crop_fraction == 1.0  # nothing cut off at eval
    assert resolved.crop_area_range == (0.5, 1.0)  # a training crop keeps half the image
    config.crop_area_range = (0.08, 1.0)  # ImageNet's, when asked for
    assert resolve(config).crop_area_range == (0.08, 1.0)
    config.name = "imagenet2012"
    config.crop_area_range = None
    assert resolve(config).crop_area_range == (0.08, 1.0)
