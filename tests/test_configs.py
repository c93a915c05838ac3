"""Every config's `runlocal` variant trains a few steps and evaluates on generated data, and
`train.py` runs from the command line with overrides."""

import importlib.util
import json
import math
import os
import pathlib
import subprocess
import sys

import pytest

from resize_jax.train import train_and_evaluate
from resize_jax.train.writer import read_metrics

ROOT = pathlib.Path(__file__).resolve().parents[1]
TINY = "small_details/tiny"  # 48 train / 24 test images, generated in seconds.


def load_config(name: str, arg: str):
    spec = importlib.util.spec_from_file_location(name, ROOT / "configs" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.get_config(arg)


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    return str(tmp_path_factory.mktemp("tfds"))


def _shrink(config, data_dir, steps=2):
    config.data.name = TINY
    config.data.data_dir = data_dir
    config.num_train_steps = steps
    config.log_every_steps = 1
    config.batch_size = 8
    config.eval_batch_size = 8
    return config


def _tiny_runlocal(config, data_dir):
    # The runlocal config as it is (steps, batch, optimizer, warm-up), on the tiny split.
    config.data.name = TINY
    config.data.data_dir = data_dir
    config.eval_batch_size = 8
    return config


def _assert_learns(workdir: str, config) -> None:
    """A smoke run must not look like a divergence: every logged loss finite, the last one
    below the first, and the warm-up over before the end."""
    losses = [r["train/loss"] for r in read_metrics(workdir) if "train/loss" in r]
    assert len(losses) >= 2 and all(math.isfinite(v) for v in losses), losses
    assert losses[-1] < losses[0], losses
    assert config.optimizer.warmup_steps < config.num_train_steps


@pytest.mark.parametrize("frontend", ["fixed", "learned", "saliency", "none"])
def test_default_runlocal_each_frontend(frontend, data_dir, tmp_path):
    config = _tiny_runlocal(load_config("default", f"frontend={frontend},runlocal"), data_dir)
    result = train_and_evaluate(config, str(tmp_path))
    assert result.eval_metrics["count"] == 24  # The tiny test split, each image once.
    _assert_learns(str(tmp_path), config)
    # The saliency sampler's zoom scalars reach the log (sown, collected by the train step).
    last = [r for r in read_metrics(str(tmp_path)) if "train/loss" in r][-1]
    zoom = {"train/frontend/zoom_spread", "train/frontend/zoom_max"}
    assert zoom <= set(last) if frontend == "saliency" else not zoom & set(last)


@pytest.mark.parametrize(
    ("name", "arg"),
    [
        ("imagenet_resizer", "backbone=resnet50,frontend=learned,runlocal"),
        ("imagenet_resizer", "backbone=resnet50,frontend=fixed,comparable_flops,runlocal"),
        ("cats_vs_dogs", "runlocal"),
        ("cub_saliency", "runlocal"),
    ],
)
def test_paper_configs_runlocal(name, arg, data_dir, tmp_path):
    config = _tiny_runlocal(load_config(name, arg), data_dir)
    # The paper backbones take minutes to compile on 2 cores (their forward and backward
    # passes are tested in test_models_*): runlocal puts the small CNN behind the config's
    # data, front-end, task and optimizer.
    assert config.model.name == "small_cnn"
    result = train_and_evaluate(config, str(tmp_path))
    assert result.eval_metrics["count"] == 24
    _assert_learns(str(tmp_path), config)


def test_paper_configs_hold_the_paper_settings():
    imagenet = load_config("imagenet_resizer", "backbone=densenet121")
    assert imagenet.data.image_size == (448, 448)
    assert imagenet.frontend.output_shape == (224, 224)
    assert imagenet.task.label_smoothing == 0.1
    assert imagenet.model.name == "densenet121"
    flops = load_config("imagenet_resizer", "backbone=resnet50,frontend=fixed,comparable_flops")
    assert flops.frontend.name == "fixed" and flops.frontend.output_shape[0] > 224
    cats = load_config("cats_vs_dogs", None)
    assert (cats.data.image_size, cats.frontend.output_shape) == ((300, 300), (150, 150))
    cub = load_config("cub_saliency", None)
    assert cub.frontend.name == "saliency" and cub.frontend.blur_steps > 0
    assert cub.optimizer.lr_multipliers == "frontend/saliency_net:0.1"


def test_config_arguments_are_checked():
    with pytest.raises(ValueError, match="Unknown config argument 'fronted'"):
        load_config("default", "fronted=learned")
    with pytest.raises(ValueError, match="must be true or false"):
        load_config("default", "antialias=maybe")
    with pytest.raises(ValueError, match="`comparable_flops` is a baseline of the fixed"):
        load_config("imagenet_resizer", "frontend=learned,comparable_flops")


def test_train_py_with_command_line_overrides(data_dir, tmp_path):
    command = [
        sys.executable,
        str(ROOT / "train.py"),
        "--config",
        str(ROOT / "configs" / "default.py") + ":frontend=learned,runlocal",
        "--workdir",
        str(tmp_path),
        f"--config.data.name={TINY}",
        f"--config.data.data_dir={data_dir}",
        "--config.num_train_steps=2",
        "--config.log_every_steps=1",
        "--config.batch_size=8",
        "--config.eval_batch_size=8",
        "--config.frontend.num_res_blocks=2",
        "--config.frontend.output_shape=(24, 24)",
    ]
    done = subprocess.run(
        command,
        capture_output=True,
        text=True,
        timeout=600,
        cwd=ROOT,
        env={**os.environ, "JAX_PLATFORMS": "cpu"},
    )
    assert done.returncode == 0, done.stderr[-3000:]
    with open(tmp_path / "config.json") as f:
        saved = json.load(f)
    assert saved["frontend"]["num_res_blocks"] == 2  # The overrides reached the run.
    assert saved["frontend"]["output_shape"] == [24, 24]
    # A quiet terminal: what the run is, one line per log interval, the final metrics;
    # no library INFO lines (orbax, clu's metrics and parameter table) or TF banners.
    lines = done.stderr.strip().splitlines()
    assert "Finished at step 2" in lines[-1], lines
    assert sum("step 1/2" in line or "step 2/2" in line for line in lines) == 2, lines
    assert not any("orbax" in line or "oneDNN" in line or "res_block_1" in line for line in lines)
    # Nothing else, on the run that prepares the generated dataset too (TFDS's notes on it
    # and its deprecation warnings hidden).
    assert len(lines) <= 4, lines


def test_vit_config_runlocal_under_fsdp(data_dir, tmp_path):
    config = _shrink(
        load_config("vit_resizer", "frontend=fixed,sharding=fsdp,runlocal"), data_dir, steps=1
    )
    assert (config.model.name, config.frontend.output_shape) == ("vit_ti16", (64, 64))
    config.model.depth = 1  # Twelve blocks compile for minutes on 2 cores; the path is the same.
    config.fsdp_min_size_mb = 0.0
    config.num_devices = 2  # Split in two: the same path as 8, compiled faster.
    result = train_and_evaluate(config, str(tmp_path))
    assert result.eval_metrics["count"] == 24
    kernel = result.state.params["backbone"]["embedding"]["kernel"]
    assert not kernel.sharding.is_fully_replicated


def test_vit_config_holds_its_settings():
    config = load_config("vit_resizer", "backbone=vit_l16,frontend=saliency,sharding=fsdp")
    assert config.data.image_size == (448, 448) and config.frontend.output_shape == (224, 224)
    assert (config.model.name, config.sharding) == ("vit_l16", "fsdp")
    assert config.model.patch_size == 16 and config.task.label_smoothing == 0.1
    assert config.optimizer.grad_clip_norm == 1.0
    with pytest.raises(ValueError, match="`backbone` must be one of"):
        load_config("vit_resizer", "backbone=resnet50")
