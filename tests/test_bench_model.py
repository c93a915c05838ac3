"""benchmarks/bench_model.py: the whole-model train-step benchmark (img/s, MFU), on the fake
CPU devices with a small ResNet and small images."""

import importlib.util
import json
import math
import os
import pathlib
import subprocess
import sys

import jax
import numpy as np
import pytest

from resize_jax import data, models
from resize_jax.models import count_params
from resize_jax.train import build

ROOT = pathlib.Path(__file__).resolve().parents[1]


def _load(path: pathlib.Path, name: str):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


bench_model = _load(ROOT / "benchmarks" / "bench_model.py", "bench_model")


def _small_imagenet_config(dtype="bfloat16", batch_size=8):
    config = _load(ROOT / "configs" / "imagenet_resizer.py", "imagenet_resizer").get_config(
        "backbone=resnet18,frontend=learned"
    )
    config.data.image_size = (64, 64)
    config.frontend.output_shape = (32, 32)
    config.batch_size = batch_size
    config.dtype = dtype
    return config


def test_train_step_figures_are_consistent(tmp_path):
    config = _small_imagenet_config()
    result = bench_model.run(config, reps=2, warmup=1, num_classes=10, peak_tflops=None)

    assert result["devices"] == jax.device_count() == 8
    assert (result["frontend"], result["backbone"], result["dtype"]) == (
        "learned",
        "resnet18",
        "bfloat16",
    )
    assert result["input"] == [64, 64] and result["task_size"] == [32, 32]
    assert len(result["step_ms_all"]) == 2
    assert result["step_ms"] == pytest.approx(float(np.median(result["step_ms_all"])))
    assert result["img_per_s"] == pytest.approx(8 / (result["step_ms"] / 1e3))
    # Model FLOPs: 3 × the forward pass of the model the config builds, per image.
    info = data.DatasetInfo("classification", 10, 8, 8, (64, 64, 3), None)
    model = build.build_model(config, info)
    sample = np.zeros((1, 64, 64, 3), np.float32)
    abstract = jax.eval_shape(lambda x: model.init(jax.random.key(0), x, train=False), sample)
    forward = models.flops(model.apply, abstract, sample.shape, train=False)
    assert result["forward_gflop_per_img"] == pytest.approx(forward / 1e9)
    assert result["model_tflop_per_s"] == pytest.approx(3 * forward * result["img_per_s"] / 1e12)
    # No vendor peak for a CPU: no MFU, but the share of the measured matmul rate.
    assert result["peak_tflops_per_device"] is None and result["mfu_pct"] is None
    per_device = result["matmul_tflop_per_s_per_device"] * 1e12 * 8
    assert result["pct_matmul"] == pytest.approx(
        100 * result["model_tflop_per_s"] * 1e12 / per_device
    )
    assert result["peak_mib_per_device"] > 0
    # Replicated: every device holds the whole state (params, momentum, BatchNorm statistics).
    state = (2 * count_params(abstract)["trainable"] + count_params(abstract)["batch_stats"]) * 4
    assert result["sharding"] == "replicated"
    assert result["state_mib_per_device"] == pytest.approx(state / 2**20, rel=0.01)
    assert math.isfinite(result["final_loss"])

    table = bench_model.write_results(result, str(tmp_path))
    assert "| learned + resnet18 | 64→32 | 8 |" in table
    assert json.loads((tmp_path / "bench_model.json").read_text())["batch"] == 8
    assert (tmp_path / "bench_model.md").read_text() == table


def test_mfu_against_a_given_peak():
    result = bench_model.run(
        _small_imagenet_config(dtype="float32"), reps=1, warmup=1, num_classes=10, peak_tflops=2.0
    )
    assert result["peak_tflops_per_device"] == 2.0
    assert result["mfu_pct"] == pytest.approx(100 * result["model_tflop_per_s"] / (8 * 2.0))
    assert "%" in bench_model.markdown(result).splitlines()[-1].split("|")[8]


@pytest.mark.parametrize(
    ("kind", "dtype", "expected"),
    [
        ("NVIDIA H100 80GB HBM3", "bfloat16", 989.4),
        ("NVIDIA H100 PCIe", "bfloat16", 756.0),
        ("NVIDIA H200", "bfloat16", 989.4),
        ("NVIDIA A100-SXM4-80GB", "bfloat16", 312.0),
        ("NVIDIA L4", "bfloat16", 121.0),
        ("NVIDIA L40S", "bfloat16", 362.0),
        ("TPU v5 lite", "bfloat16", 197.0),
        ("TPU v5", "bfloat16", 459.0),
        ("TPU v4", "bfloat16", 275.0),
        ("NVIDIA H100 80GB HBM3", "float32", None),
        ("cpu", "bfloat16", None),
    ],
)
def test_vendor_peaks(kind, dtype, expected):
    assert bench_model.spec_peak_tflops(kind, dtype) == expected


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"reps": 0}, "`reps` must be a positive integer, got 0"),
        ({"warmup": 1.5}, "`warmup` must be a positive integer, got 1.5"),
        ({"num_classes": True}, "`num_classes` must be a positive integer, got True"),
        ({"peak_tflops": -1.0}, "`peak_tflops` must be positive, got -1.0"),
    ],
)
def test_bad_arguments(kwargs, match):
    arguments = {"reps": 1, "warmup": 1, "num_classes": 10, "peak_tflops": None, **kwargs}
    with pytest.raises(ValueError, match=match):
        bench_model.run(_small_imagenet_config(), **arguments)


def test_synthetic_images_need_a_size():
    config = _load(ROOT / "configs" / "default.py", "default").get_config()
    assert config.data.image_size is None  # The generated set's own 128×128.
    with pytest.raises(ValueError, match=r"`config\.data\.image_size` must be set"):
        bench_model.run(config, reps=1, warmup=1, num_classes=4)


def test_other_tasks_are_refused_by_name():
    config = _load(ROOT / "configs" / "ava_iqa.py", "ava_iqa").get_config()
    info = data.DatasetInfo("image_quality", 10, 8, 8, (32, 32, 3), None)
    with pytest.raises(ValueError, match=r"`config\.task\.name` must be a classification task"):
        bench_model.synthetic_batch(config, info, 8)


def test_command_line(tmp_path):
    # The script as users run it, with config overrides (a small CNN keeps it quick).
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=2"}
    command = [
        sys.executable,
        str(ROOT / "benchmarks" / "bench_model.py"),
        f"--config={ROOT / 'configs' / 'default.py'}:frontend=learned",
        "--config.batch_size=4",
        "--config.data.image_size=(128, 128)",
        "--reps=1",
        "--warmup=1",
        "--num_classes=4",
        f"--out={tmp_path}",
    ]
    result = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    saved = json.loads((tmp_path / "bench_model.json").read_text())
    assert (saved["devices"], saved["batch"], saved["backbone"]) == (2, 4, "small_cnn")
    assert "| learned + small_cnn |" in result.stdout
