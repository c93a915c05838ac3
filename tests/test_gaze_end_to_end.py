"""configs/gaze.py:runlocal trains and evaluates on synthetic_gaze/tiny; the run records its
target statistics; `apply` reports predictions in centimetres."""

import importlib.util
import json
import os
import pathlib

import numpy as np
import pytest

from resize_jax import data
from resize_jax.data.generated import synthetic_gaze
from resize_jax.tools import apply
from resize_jax.train import train_and_evaluate
from resize_jax.train.workdir import load_run

ROOT = pathlib.Path(__file__).resolve().parents[1]


def _gaze_config(arg):
    spec = importlib.util.spec_from_file_location("gaze", ROOT / "configs" / "gaze.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.get_config(arg)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    root = tmp_path_factory.mktemp("gaze")
    config = _gaze_config("frontend=fixed,antialias=true,runlocal")
    config.data.name = "synthetic_gaze/tiny"
    config.data.data_dir = str(root / "tfds")
    config.num_train_steps, config.batch_size, config.eval_batch_size = 1, 8, 16
    config.log_every_steps = 1
    workdir = str(root / "run")
    result = train_and_evaluate(config, workdir)
    return config, workdir, result


def test_runlocal_trains_evaluates_and_records_the_statistics(run):
    config, workdir, result = run
    metrics = result.eval_metrics
    assert metrics["count"] == 24  # the tiny test split, each image once
    assert 0 < metrics["median_error"] <= metrics["p90_error"] and np.isfinite(metrics["loss"])
    info = data.get_info(config.data)
    with open(os.path.join(workdir, "config.json")) as f:
        recorded = json.load(f)["task"]
    assert recorded["name"] == "gaze"
    np.testing.assert_allclose(recorded["target_mean"], info.target_mean)
    np.testing.assert_allclose(recorded["target_std"], info.target_std)
    assert config.task.target_mean == ()  # the caller's config is left as it was


def test_apply_reports_the_gaze_point_in_centimetres(run, tmp_path, capsys):
    _, workdir, _ = run
    csv_path = synthetic_gaze.export_csv(str(tmp_path), "test", count=2)
    paths = [str(tmp_path / "test" / f"{i:06d}.png") for i in range(2)]
    results = apply.apply(workdir, paths, str(tmp_path / "out"))
    trained = load_run(workdir)
    images = np.stack([apply.load_image(p, trained) for p in paths])
    outputs, _ = trained.model.apply(trained.variables, images, train=False)
    with open(os.path.join(workdir, "config.json")) as f:
        recorded = json.load(f)["task"]
    expected = np.asarray(outputs) * recorded["target_std"] + recorded["target_mean"]
    np.testing.assert_allclose([r["prediction"] for r in results], expected, rtol=1e-5)
    assert all(os.path.exists(f) for r in results for f in r["files"])
    apply.main(["--workdir", workdir, "--out", str(tmp_path / "cli"), paths[0]])
    line = capsys.readouterr().out.splitlines()[0]
    said = ", ".join(f"{v:.4g}" for v in results[0]["prediction"])
    assert line.startswith(f"{paths[0]}: ") and line.endswith(f": prediction {said}")
    assert os.path.exists(csv_path)
