"""Gaze data: the CSV regression source (targets, statistics, every kind of bad input) and
the generated synthetic_gaze set (its target is the pupils' offset, its eyes are small)."""

import logging
import os

import chex
import numpy as np
import pytest
from PIL import Image

from resize_jax import data
from resize_jax.data.generated import synthetic_gaze


def _config(root, **overrides):
    config = data.default_config()
    config.name = "csv"
    config.root = None if root is None else str(root)
    config.train_split, config.eval_split = "train", "test"
    config.image_size = (32, 32)
    for key, value in overrides.items():
        config[key] = value
    return config


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    root = tmp_path_factory.mktemp("gaze_csv")
    synthetic_gaze.export_csv(str(root), "train", count=6, size=32 * 4)
    synthetic_gaze.export_csv(str(root), "test", count=5, size=32 * 4)
    return root


def test_csv_source_delivers_the_targets_and_their_statistics(exported):
    config = _config(exported)
    info = data.get_info(config)
    assert (info.task, info.num_classes, info.num_train, info.num_eval) == ("regression", 2, 6, 5)
    assert info.class_names == ("x", "y")
    train = np.stack(
        [synthetic_gaze.make_example((synthetic_gaze._SEED, 0, i))["gaze"] for i in range(6)]
    )
    np.testing.assert_allclose(info.target_mean, train.mean(0), rtol=1e-6)
    np.testing.assert_allclose(info.target_std, train.std(0), rtol=1e-6)
    batch = next(data.eval_iterator(config, batch_size=8))
    chex.assert_shape(batch["label"], (8, 2))
    chex.assert_type(batch["label"], np.float32)
    test = np.stack(
        [synthetic_gaze.make_example((synthetic_gaze._SEED, 1, i))["gaze"] for i in range(5)]
    )
    np.testing.assert_array_equal(batch["label"][:5], test)  # CSV order, exact float32
    np.testing.assert_array_equal(batch["mask"], [1] * 5 + [0] * 3)
    np.testing.assert_array_equal(batch["label"][5:], 0.0)
    train_batch = next(data.train_iterator(config, batch_size=4, seed=0))
    chex.assert_shape(train_batch["image"], (4, 32, 32, 3))


def _write(root, rows, header="image,x,y", name="train.csv"):
    os.makedirs(root / "img", exist_ok=True)
    for i in range(3):
        Image.fromarray(np.full((8, 8, 3), 40 * i, np.uint8)).save(root / "img" / f"{i}.png")
    (root / name).write_text("\n".join([header, *rows]) + "\n")


@pytest.mark.parametrize(
    ("header", "rows", "match"),
    [
        (
            "image,x,y",
            ["img/0.png,1,2", "img/9.png,1,2"],
            r"line 3: image file .*9.png.* not exist",
        ),
        ("image,x,y", ["img/0.png,1,2", "img/1.png,1"], r"line 3: expected 3 fields"),
        ("image,x,y", ["img/0.png,1,abc"], r"line 2: column 'y' must be a finite number.*'abc'"),
        ("image,x,y", ["img/0.png,1,nan"], r"line 2: column 'y' must be a finite number"),
        (
            "image,x,y",
            ["img/0.png,1,2", "img/2.png,0,0", "img/0.png,3,4"],
            r"line 4.*twice.*line 2",
        ),
        ("path,x,y", ["img/0.png,1,2"], r"line 1: the header must be `image,<target>"),
        ("image", ["img/0.png"], r"line 1: the header must be"),
        ("image,x,y", [",1,2"], r"line 2: the 'image' field is empty"),
        ("image,x,y", [], "has a header but no image row"),
    ],
)
def test_csv_errors_name_the_line(tmp_path, header, rows, match):
    _write(tmp_path, rows, header)
    with pytest.raises(ValueError, match=match):
        data.get_info(_config(tmp_path))


def test_csv_folder_errors_and_unreadable_images(tmp_path, caplog):
    with pytest.raises(ValueError, match="`root` must be set"):
        data.get_info(_config(None))
    with pytest.raises(ValueError, match="is not a directory"):
        data.get_info(_config(tmp_path / "missing"))
    with pytest.raises(ValueError, match=r"holds no <split>.csv"):
        data.get_info(_config(tmp_path))
    (tmp_path / "empty.csv").write_text("\n")
    with pytest.raises(ValueError, match=r"empty\.csv is empty"):
        data.get_info(_config(tmp_path))
    os.remove(tmp_path / "empty.csv")
    _write(tmp_path, ["img/0.png,1,2"], name="test.csv")
    _write(tmp_path, ["img/1.png,1,2"], header="image,u,v")
    with pytest.raises(ValueError, match=r"target columns \['u', 'v'\] differ from test.csv"):
        data.get_info(_config(tmp_path))
    _write(tmp_path, ["img/1.png,1,2", "img/bad.png,3,4", "img/2.png,5,6"])
    (tmp_path / "img" / "bad.png").write_bytes(b"not a png")
    with caplog.at_level(logging.WARNING):
        info = data.get_info(_config(tmp_path))
    assert "Skipped 1 unreadable image file(s)" in caplog.text
    assert (info.num_train, info.target_mean) == (2, (3.0, 4.0))


def test_synthetic_gaze_target_is_the_pupils_offset_and_the_eyes_are_small():
    examples = [synthetic_gaze.make_example((3, 0, i)) for i in range(40)]
    shifts, directions = [], []
    for ex in examples:
        np.testing.assert_allclose(ex["gaze"], synthetic_gaze.gaze_to_screen(ex["gaze_direction"]))
        image = ex["image"].astype(np.float32).mean(-1)
        eyes = (ex["eyes"] + 1) / 2 * 127  # pixel indices (x, y)
        half_width = abs(eyes[1, 0] - eyes[0, 0]) * 0.26 / 0.84  # eye half-width, px
        assert 3.3 / 2 <= half_width <= 5.3 / 2 * 2  # a 128→32 resize leaves about a pixel
        offsets = []
        for x, y in eyes:  # the dark pupil's centroid relative to the eye's centre
            x0, y0 = round(float(x)), round(float(y))
            patch = image[y0 - 6 : y0 + 7, x0 - 6 : x0 + 7]
            dark = np.clip(70.0 - patch, 0, None)  # the pupil only: darker than any skin
            yy, xx = np.mgrid[-6:7, -6:7]
            offsets.append([(dark * xx).sum() / dark.sum(), (dark * yy).sum() / dark.sum()])
        shifts.append(np.mean(offsets, 0))
        directions.append(ex["gaze_direction"])
    shifts, directions = np.asarray(shifts), np.asarray(directions)
    for axis in (0, 1):
        assert np.corrcoef(shifts[:, axis], directions[:, axis])[0, 1] > 0.9
