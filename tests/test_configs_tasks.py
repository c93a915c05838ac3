"""configs/ava_iqa.py and configs/seg_enet.py: `runlocal` trains and evaluates end to end on
the generated sets; every front-end choice builds a model of the right shapes; the loop
refuses a task that does not fit the dataset before compiling anything."""

import importlib.util
import math
import os
import pathlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from resize_jax import data
from resize_jax.train import build, train_and_evaluate
from resize_jax.train.writer import read_metrics

CONFIGS = pathlib.Path(__file__).resolve().parents[1] / "configs"


def _get_config(name, arg):
    spec = importlib.util.spec_from_file_location(name, CONFIGS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.get_config(arg)


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    return str(tmp_path_factory.mktemp("tfds"))


def _local(name, arg, data_dir):
    """The runlocal config on the same generator's `tiny` variant (24 train / 12 test), on
    one of the 8 fake CPU devices: sharding is tested in tests/test_train_loop.py, and
    partitioning ENet's step 8 ways on 2 cores would only make this slower."""
    config = _get_config(name, arg)
    config.data.name = f"{config.data.name}/tiny"
    config.data.data_dir = data_dir
    config.num_devices = 1
    return config


def _train_records(workdir):
    return [r for r in read_metrics(workdir) if "train/loss" in r]


def _run(config, workdir):
    # The random stream is not what is tested: "rbg" keys compile a fraction of threefry's
    # per-parameter-shape kernels on a CPU (as tests/test_models_readme.py does).
    with jax.default_prng_impl("rbg"):
        return train_and_evaluate(config, workdir)


def test_ava_iqa_runlocal_trains_and_evaluates(tmp_path, data_dir):
    config = _local("ava_iqa", "runlocal", data_dir)
    # A quarter of runlocal's training (the learned resizer at 128×128 dominates each step).
    config.batch_size, config.num_train_steps = 16, 20
    result = _run(config, str(tmp_path))
    metrics = result.eval_metrics
    assert metrics["count"] == 12  # Every eval example exactly once.
    for key in ("srcc", "plcc"):
        assert -1.0 <= metrics[key] <= 1.0
    assert 0.0 <= metrics["binary_accuracy"] <= 1.0
    assert 0.0 < metrics["loss"] < 1.0  # EMD between distributions is at most 1.
    train = _train_records(str(tmp_path))
    assert [r["step"] for r in train] == [10, 20]
    assert all(math.isfinite(r["train/loss"]) for r in train)
    assert train[-1]["train/loss"] < train[0]["train/loss"]
    assert "train/binary_accuracy" in train[-1]
    evals = [r for r in read_metrics(str(tmp_path)) if "eval/srcc" in r]
    assert evals and evals[-1]["step"] == 20


def test_seg_enet_runlocal_trains_and_evaluates(tmp_path, data_dir):
    config = _local("seg_enet", "runlocal", data_dir)
    assert config.model.name == "enet"
    result = _run(config, str(tmp_path))
    metrics = result.eval_metrics
    assert metrics["count"] == 12
    assert 0.0 <= metrics["miou"] <= 1.0 and 0.0 <= metrics["pixel_accuracy"] <= 1.0
    assert {f"iou/{k}" for k in range(4)} <= set(metrics)  # small_objects: 4 classes.
    train = _train_records(str(tmp_path))
    assert [r["step"] for r in train] == [5, 10, 15, 20]
    assert all(math.isfinite(r["train/loss"]) for r in train)
    assert train[-1]["train/loss"] < train[0]["train/loss"]
    assert "train/pixel_accuracy" in train[-1]
    # Training mode ran: BatchNorm statistics moved from their initial zeros, in the decoder
    # too (reached through the unpooling path).
    stats = result.state.batch_stats["backbone"]
    for block in ("bottleneck1_0", "bottleneck3_8", "bottleneck5_0"):
        assert float(jnp.abs(stats[block]["bn_expand"]["mean"]).max()) > 0


def _abstract_forward(config, info):
    model = build.build_model(config, info)
    x = jax.ShapeDtypeStruct((1, *info.image_shape), jnp.float32)
    (outputs, aux), _ = jax.eval_shape(model.init_with_output, jax.random.key(0), x)
    return outputs, aux


@pytest.mark.parametrize("frontend", ["fixed", "learned", "saliency", "none"])
@pytest.mark.parametrize("runlocal", [False, True])
def test_ava_iqa_every_frontend_builds(frontend, runlocal):
    config = _get_config("ava_iqa", f"frontend={frontend},runlocal={runlocal}")
    info = data.DatasetInfo("image_quality", 10, 1, 1, (*config.data.image_size, 3), None)
    build.build_task(config).check_dataset(info)
    outputs, aux = _abstract_forward(config, info)
    assert outputs.shape == (1, 10)
    expected = config.data.image_size if frontend == "none" else config.frontend.output_shape
    assert aux["resized"].shape[1:3] == tuple(expected)
    assert config.model.name == ("small_cnn" if runlocal else "inception_v2")


@pytest.mark.parametrize("frontend", ["fixed", "learned", "saliency", "none"])
def test_seg_enet_every_frontend_builds(frontend):
    config = _get_config("seg_enet", f"frontend={frontend},runlocal")
    info = data.DatasetInfo("segmentation", 4, 1, 1, (*config.data.image_size, 3), 255)
    build.build_task(config).check_dataset(info)
    outputs, aux = _abstract_forward(config, info)
    side = 128 if frontend == "none" else 64
    assert outputs.shape == (1, side, side, 4)
    assert ("grid" in aux["frontend"]) == (frontend == "saliency")
    full = _get_config("seg_enet", f"frontend={frontend}")
    if frontend != "none":
        assert tuple(full.frontend.output_shape) == (512, 1024)
    assert all(s % 8 == 0 for s in full.data.image_size)


def test_seg_enet_ignore_label_follows_the_data_config():
    config = _get_config("seg_enet", "runlocal")
    config.data.ignore_label = 7
    assert config.task.ignore_label == 7
    assert build.build_task(config).ignore_label == 7


@pytest.mark.parametrize(
    ("name", "dataset", "match"),
    [
        ("ava_iqa", "small_objects/tiny", r"needs an image-quality dataset"),
        ("seg_enet", "synthetic_ava/tiny", r"needs a segmentation dataset"),
    ],
)
def test_task_and_dataset_mismatch_fails_before_compiling(tmp_path, data_dir, name, dataset, match):
    config = _local(name, "runlocal", data_dir)
    config.data.name = dataset
    with pytest.raises(ValueError, match=match):
        train_and_evaluate(config, str(tmp_path))
    assert not os.path.exists(tmp_path / "checkpoints")


def test_unknown_config_argument_is_refused():
    with pytest.raises(ValueError, match=r"Unknown config argument 'backbon'"):
        _get_config("ava_iqa", "backbon=resnet18")
    assert np.all(np.asarray(_get_config("ava_iqa", "").data.image_size) == 448)
