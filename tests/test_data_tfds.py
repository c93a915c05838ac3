"""Named TFDS datasets through `tfds.testing.mock_data`, and the errors for unprepared ones."""

import os

import chex
import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds

from resize_jax import data

# name → (splits with 6 examples each, classes)
NAMED = {
    "imagenet2012": (("train", "validation"), 1000),
    "cats_vs_dogs": (("train",), 2),
    "caltech_birds2011": (("train", "test"), 200),
    "oxford_iiit_pet": (("train", "test"), 37),
}
PER_SPLIT = 6


@pytest.fixture(scope="module")
def metadata_dir(tmp_path_factory):
    """A data_dir holding only the datasets' metadata (split sizes), as mock_data expects."""
    root = str(tmp_path_factory.mktemp("tfds_metadata"))
    for name, (splits, _) in NAMED.items():
        builder = tfds.builder(name, data_dir=root)
        builder.info.set_splits(
            tfds.core.SplitDict(
                [
                    tfds.core.SplitInfo(name=s, shard_lengths=[PER_SPLIT], num_bytes=0)
                    for s in splits
                ]
            )
        )
        os.makedirs(builder.data_dir, exist_ok=True)
        builder.info.write_to_directory(builder.data_dir)
    return root


def _config(name, data_dir, **overrides):
    config = data.default_config()
    config.name, config.data_dir, config.image_size = name, data_dir, (48, 40)
    for key, value in overrides.items():
        config[key] = value
    return config


@pytest.mark.parametrize("name", sorted(NAMED))
def test_named_datasets_through_mock_data(metadata_dir, name):
    splits, num_classes = NAMED[name]
    # Mocked splits all yield PER_SPLIT examples, so evaluate on a whole split.
    config = _config(name, metadata_dir, eval_split=splits[-1], value_range=(-1.0, 1.0))
    with tfds.testing.mock_data(num_examples=PER_SPLIT, data_dir=metadata_dir):
        info = data.get_info(config)
        assert (info.task, info.num_classes, info.num_eval) == ("classification", num_classes, 6)
        assert info.image_shape == (48, 40, 3) and len(info.class_names) == num_classes
        batch = next(data.train_iterator(config, batch_size=4, seed=0))
        chex.assert_shape(batch["image"], (4, 48, 40, 3))
        chex.assert_type(batch["image"], np.float32)
        assert -1.0 <= batch["image"].min() < batch["image"].max() <= 1.0
        chex.assert_shape(batch["label"], (4,))
        chex.assert_type(batch["label"], np.int32)
        assert ((batch["label"] >= 0) & (batch["label"] < num_classes)).all()
        batches = list(data.eval_iterator(config, batch_size=4))
        assert len(batches) == 2 and sum(b["mask"].sum() for b in batches) == 6


def test_cats_vs_dogs_defaults_slice_its_only_split(metadata_dir):
    with tfds.testing.mock_data(num_examples=PER_SPLIT, data_dir=metadata_dir):
        info = data.get_info(_config("cats_vs_dogs", metadata_dir))
    assert (info.num_train, info.num_eval) == (5, 1)  # train[:90%] / train[90%:] of 6


def test_tfds_segmentation_masks_and_their_errors(metadata_dir):
    config = _config(
        "oxford_iiit_pet", metadata_dir, task="segmentation", label_key="segmentation_mask"
    )
    with tfds.testing.mock_data(num_examples=PER_SPLIT, data_dir=metadata_dir, max_value=3):
        with pytest.raises(ValueError, match="`num_classes` must be set for segmentation"):
            data.get_info(config)
        config.num_classes = 4
        assert data.get_info(config).ignore_label == 255
        # The mock draws image and mask sizes independently: the pipeline refuses the pair.
        # (small_objects tests the consistent case through TFDS.)
        with pytest.raises(tf.errors.InvalidArgumentError, match="image and mask sizes differ"):
            next(data.train_iterator(config, batch_size=2, seed=0))
        config.label_key = "species"
        with pytest.raises(ValueError, match="task 'segmentation' needs an Image"):
            data.get_info(config)


def test_unprepared_dataset_says_how_to_prepare_it(tmp_path):
    with pytest.raises(ValueError) as error:
        data.get_info(_config("cats_vs_dogs", str(tmp_path)))
    message = str(error.value)
    assert "'cats_vs_dogs' is not prepared" in message
    assert f"tfds build cats_vs_dogs --data_dir={tmp_path}" in message
    assert "never downloads" in message
    with pytest.raises(ValueError, match="needs a manual download: put its source files in"):
        data.get_info(_config("imagenet2012", str(tmp_path)))
    assert not os.listdir(tmp_path)  # nothing was downloaded or written


def test_unknown_name_lists_known_names():
    with pytest.raises(ValueError) as error:
        data.get_info(_config("cats_vs_dog", None))
    message = str(error.value)
    assert "Unknown dataset `name`='cats_vs_dog'" in message
    for name in ("small_details", "folder", "ava", "imagenet2012"):
        assert repr(name) in message
    assert "closest: ['cats_vs_dogs'" in message
    assert set(data.known_names()) >= {"small_details", "small_objects", "synthetic_ava"}
