"""benchmarks/bench_gaze.py: two benchmark processes sharing one --out keep each other's runs."""

import argparse
import importlib.util
import json
import pathlib

ROOT = pathlib.Path(__file__).resolve().parents[1]


def _bench_gaze():
    path = ROOT / "benchmarks" / "bench_gaze.py"
    spec = importlib.util.spec_from_file_location("bench_gaze", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_record_keeps_runs_another_process_wrote(tmp_path):
    bench = _bench_gaze()
    args = argparse.Namespace(steps=1800, dataset="synthetic_gaze")
    path = str(tmp_path / "bench_gaze.json")
    # Process A starts with nothing, process B too; each finishes one run, A first.
    seed0 = {"run": "saliency", "seed": 0, "metrics": {"mean_error": 1.1}, "wall_s": 1.0}
    seed1 = {"run": "saliency", "seed": 1, "metrics": {"mean_error": 0.9}, "wall_s": 2.0}
    bench._record(path, "saliency_seed0", seed0, args)
    runs = bench._record(path, "saliency_seed1", seed1, args)
    assert runs == {"saliency_seed0": seed0, "saliency_seed1": seed1}
    with open(path) as f:
        saved = json.load(f)
    assert saved == {"steps": 1800, "dataset": "synthetic_gaze", "runs": runs}
    # A rerun of one run replaces its entry only.
    again = {**seed0, "metrics": {"mean_error": 1.0}}
    assert bench._record(path, "saliency_seed0", again, args)["saliency_seed1"] == seed1
