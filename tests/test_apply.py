"""`python -m resize_jax.tools.apply`: a trained front-end on JPEG and PNG images; errors."""

import os
import shutil

import chex
import numpy as np
import pytest
from PIL import Image

from resize_jax.tools import apply, demo
from resize_jax.train import checkpoint, train_and_evaluate


@pytest.fixture(scope="module")
def workdirs(tmp_path_factory):
    """Saliency and learned runs on small_details/tiny, trained for 0 steps, then saved: a
    checkpoint of the initial weights is all `apply` needs, and no train step is compiled."""
    root = tmp_path_factory.mktemp("runs")
    args = demo.parse_args(
        [f"--out={root}", "--dataset=small_details/tiny", "--eval_batch_size=8", "--steps=1"]
    )
    made = {}
    for run in ("saliency", "learned"):
        config = demo.make_config(run, args, 0)
        config.num_train_steps, config.eval_every_steps, config.num_devices = 0, 0, 1
        state = train_and_evaluate(config, str(root / run)).state
        with checkpoint.CheckpointStore(str(root / run)) as store:
            store.save(state, force=True)
        made[run] = str(root / run)
    return made


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    root = tmp_path_factory.mktemp("images")
    rng = np.random.default_rng(0)
    jpeg, png = root / "photo.jpg", root / "scan.png"
    Image.fromarray((rng.random((90, 150, 3)) * 255).astype(np.uint8)).save(jpeg, quality=90)
    Image.fromarray((rng.random((300, 200)) * 255).astype(np.uint8)).save(png)  # grey
    return str(jpeg), str(png)


def _size(path):
    with Image.open(path) as image:
        return image.size


def test_saliency_sampler_on_a_jpeg_and_a_png_of_different_sizes(workdirs, images, tmp_path):
    results = apply.apply(workdirs["saliency"], images, str(tmp_path))
    chex.assert_equal([r["name"] for r in results], ["photo", "scan"])
    for result in results:
        inputs, seen, panel = result["files"]
        assert _size(inputs) == (128, 128)  # the run's data.image_size
        assert _size(seen) == (32, 32)  # the front-end's output_shape
        assert os.path.getsize(panel) > 1000
        assert 0 <= result["class"] < 4 and 0.0 < result["probability"] <= 1.0
    # The grey PNG went through the pipeline's decoding: it arrives as RGB.
    with Image.open(results[1]["files"][0]) as image:
        assert image.mode == "RGB"


def test_learned_resizer_panel_and_repeated_names(workdirs, images, tmp_path):
    results = apply.apply(workdirs["learned"], [images[0], images[0]], str(tmp_path))
    assert [r["name"] for r in results] == ["photo_0", "photo_1"]
    assert all(os.path.exists(f) for r in results for f in r["files"])


def test_unreadable_or_missing_files_are_named_before_anything_is_written(
    workdirs, images, tmp_path
):
    bad = tmp_path / "notes.jpg"
    bad.write_text("not an image")
    out = tmp_path / "out"
    with pytest.raises(ValueError, match=r"notes\.jpg.*not an image"):
        apply.apply(workdirs["learned"], [images[0], str(bad)], str(out))
    with pytest.raises(ValueError, match=r"cannot read .*missing\.png"):
        apply.apply(workdirs["learned"], [str(tmp_path / "missing.png")], str(out))
    assert not out.exists()


def test_a_workdir_without_checkpoint_or_config_is_an_error(workdirs, images, tmp_path):
    empty_run = tmp_path / "untrained"
    empty_run.mkdir()
    shutil.copy(os.path.join(workdirs["learned"], "config.json"), empty_run)
    with pytest.raises(ValueError, match="holds no checkpoint"):
        apply.apply(str(empty_run), images, str(tmp_path / "out"))
    with pytest.raises(ValueError, match=r"no config\.json"):
        apply.apply(str(tmp_path), images, str(tmp_path / "out"))


def test_cli_prints_results_and_exits_2_on_errors(workdirs, images, tmp_path, capsys):
    apply.main(["--workdir", workdirs["saliency"], "--out", str(tmp_path), images[1]])
    printed = capsys.readouterr().out
    # What was done, and the class by its name (the workdir's dataset.json).
    assert "scan.png: 300×200 → whole image resized to 128×128 (aspect 0.67 → 1.00)" in printed
    assert any(f"'{name}' (p=" in printed for name in ("white", "black", "yellow", "cyan"))
    with pytest.raises(SystemExit) as error:
        apply.main(["--workdir", str(tmp_path / "nowhere"), "--out", str(tmp_path), images[1]])
    assert error.value.code == 2
    assert "nowhere" in capsys.readouterr().err


def test_whole_image_by_default_or_the_eval_crop(workdirs, images, tmp_path):
    (whole,) = apply.apply(workdirs["learned"], [images[0]], str(tmp_path / "whole"))
    (crop,) = apply.apply(workdirs["learned"], [images[0]], str(tmp_path / "crop"), view="eval")
    assert "90×150 → whole image resized to 128×128 (aspect 1.67 → 1.00)" in whole["done"]
    assert "central crop" in crop["done"]
    with Image.open(whole["files"][0]) as a, Image.open(crop["files"][0]) as b:
        assert a.size == b.size == (128, 128)
        assert not np.array_equal(np.asarray(a), np.asarray(b))  # the crop lost the sides
    assert whole["class_name"] in ("white", "black", "yellow", "cyan")
    with pytest.raises(ValueError, match="`view` must be one of"):
        apply.apply(workdirs["learned"], [images[0]], str(tmp_path / "x"), view="centre")
