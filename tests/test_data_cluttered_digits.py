"""`cluttered_digits`: the decisive digit is a real scan with the label, train and test
scans are disjoint, fragments never touch it, and the set is read by the pipeline."""

import functools

import numpy as np
import pytest

from resize_jax import data
from resize_jax.data.generated import cluttered_digits as cd


@functools.cache
def _enlarged_scans() -> np.ndarray:
    return np.stack([np.clip(cd._enlarge(s), 0, 1) for s in cd._scans()[0]])


def _nearest_scan(crop: np.ndarray) -> int:
    return int(np.argmin(((_enlarged_scans() - crop[None]) ** 2).sum(axis=(1, 2))))


@pytest.mark.parametrize("split", [0, 1])
def test_the_digit_box_holds_a_scan_of_the_label_from_the_split_pool(split):
    _, labels = cd._scans()
    for index in range(12):
        ex = cd.make_example((cd._SEED, split, index))
        image = ex["image"].astype(np.float32) / 255.0
        assert ex["image"].shape == (128, 128, 3)
        np.testing.assert_array_equal(ex["image"][..., 0], ex["image"][..., 2])  # grey
        ymin, xmin, ymax, xmax = (ex["digit"] * 128).round().astype(int)
        assert (ymax - ymin, xmax - xmin) == (cd.DIGIT_SIDE, cd.DIGIT_SIDE)
        nearest = _nearest_scan(image[ymin:ymax, xmin:xmax, 0])
        assert labels[nearest] == ex["label"]
        assert (nearest >= cd.NUM_TRAIN_SCANS) == (split == 1)
        # Clutter: ink (well above the background's 0.25) outside the digit's box too.
        ink = image[..., 0] > 0.6
        ink[ymin - 1 : ymax + 1, xmin - 1 : xmax + 1] = False
        assert ink.sum() > 100


def test_too_small_an_image_is_refused():
    with pytest.raises(ValueError, match="`size` must be at least 64"):
        cd.make_example((0, 0, 0), size=48)


def test_pipeline_reads_it_without_flips(tmp_path):
    config = data.default_config()
    config.name = "cluttered_digits/tiny"
    config.data_dir = str(tmp_path)
    info = data.get_info(config)
    assert (info.num_classes, info.num_train, info.num_eval) == (10, 48, 24)
    batch = next(data.eval_iterator(config, batch_size=8))
    # TFDS orders examples by a hash of their key: find each one among the test split's.
    made = [cd.make_example((cd._SEED, 1, i)) for i in range(24)]
    for image, label in zip(batch["image"], batch["label"], strict=True):
        errors = [np.abs(e["image"] / 255.0 - image).max() for e in made]
        assert min(errors) < 1e-6 and made[int(np.argmin(errors))]["label"] == label
    assert data.registry.get_spec("cluttered_digits").augment == "none"
