"""`python -m resize_jax.tools.report`: the paper's layout, the table, reading workdirs, errors.

The full path (runs → results.md, figures, rebuilt from the workdirs) is tested on the reduced
demo in tests/test_demo.py; these tests need no training."""

import json

import ml_collections
import pytest

from resize_jax.tools import report
from resize_jax.train import workdir


def _group(label, frontend, size, mean, gflops, backbone="resnet50", seeds=(0,)):
    return {
        "label": label,
        "frontend": frontend,
        "backbone": backbone,
        "input_size": [448, 448],
        "network_input": list(size),
        "metric": "top1",
        "seeds": list(seeds),
        "runs": [f"{label}_{s}" for s in seeds],
        "values": [mean] * len(seeds),
        "mean": mean,
        "std": 0.0,
        "min": mean - 0.01 if len(seeds) > 1 else mean,
        "max": mean + 0.01 if len(seeds) > 1 else mean,
        "params": 100,
        "gflops": gflops,
        "images_per_second": 10.0,
        "wall_seconds": 5.0,
        "steps": 10,
        "batch_size": 8,
    }


def test_paper_layout_backbone_by_fixed_comparable_flops_and_learned():
    groups = [
        _group("fixed bilinear", "fixed", (224, 224), 0.75, 8.4),
        _group("fixed bilinear", "fixed", (269, 269), 0.77, 12.59),
        _group("learned resizer", "learned", (224, 224), 0.78, 12.57),
        _group("fixed bilinear", "fixed", (224, 224), 0.69, 0.6, backbone="mobilenet_v2"),
        _group("learned resizer", "learned", (224, 224), 0.7, 5.2, backbone="mobilenet_v2"),
    ]
    rows = report.paper_layout(groups)
    # MobileNetV2 has no comparable-FLOPs run, so the paper's comparison is not complete.
    assert [(r["backbone"], r["resizer"]) for r in rows] == [
        ("resnet50", "fixed bilinear, task size"),
        ("resnet50", "fixed bilinear, comparable FLOPs"),
        ("resnet50", "learned resizer"),
    ]
    assert [round(r["top1_error"], 2) for r in rows] == [0.25, 0.23, 0.22]
    text = report._paper_table(rows)
    assert "| resnet50 | fixed bilinear, comparable FLOPs | 269×269 | 23.0% | 12.59 |" in text
    assert report.paper_layout(groups[3:]) == []


def test_main_table_shows_mean_and_range_over_seeds_and_a_backbone_column_when_mixed():
    one = [_group("learned resizer", "learned", (32, 32), 0.9, 0.125, seeds=(0, 1))]
    table = report.main_table(one)
    assert "| learned resizer | 448×448 → 32×32 | 0.900 (0.890–0.910) | 0, 1 |" in table
    assert "backbone" not in table.splitlines()[0]
    mixed = [*one, _group("fixed bilinear", "fixed", (32, 32), 0.4, 0.02, backbone="small_cnn")]
    assert report.main_table(mixed).splitlines()[0].startswith("| backbone |")


def test_describe_names_each_front_end():
    def config(**frontend):
        return ml_collections.ConfigDict({"frontend": frontend})

    assert workdir.describe(config(name="none")) == "full resolution (no front-end)"
    assert workdir.describe(config(name="fixed", method="bicubic", antialias=False)) == (
        "fixed bicubic"
    )
    assert workdir.describe(config(name="fixed", method="bilinear", antialias=True)) == (
        "fixed bilinear (antialiased)"
    )
    assert workdir.describe(config(name="learned")) == "learned resizer"


def test_metrics_of_a_resumed_run_keep_the_last_record_per_step():
    records = [
        {"step": 10, "train/loss": 2.0, "train/images_per_second": 5.0},
        {"step": 20, "train/loss": 1.5, "train/images_per_second": 100.0},
        {"step": 10, "train/loss": 1.9, "train/images_per_second": 6.0},  # resumed
        {"step": 20, "train/loss": 1.4, "train/images_per_second": 110.0},
    ]
    assert report._last_by_step(records, "train/loss") == [(10, 1.9), (20, 1.4)]
    # The first interval of each segment includes compilation and is left out.
    assert report._images_per_second(records) == pytest.approx(105.0)


def test_find_workdirs_expands_a_directory_of_runs_and_rejects_others(tmp_path):
    for name in ("b_run", "a_run"):
        (tmp_path / "runs" / name).mkdir(parents=True)
        (tmp_path / "runs" / name / "config.json").write_text("{}")
    (tmp_path / "runs" / "results.md").write_text("")
    found = report.find_workdirs([str(tmp_path / "runs")])
    assert [p.rsplit("/", 1)[-1] for p in found] == ["a_run", "b_run"]
    assert report.find_workdirs([str(tmp_path / "runs" / "a_run")]) == [found[0]]
    with pytest.raises(ValueError, match="empty"):
        report.find_workdirs([str(tmp_path / "empty")])
    with pytest.raises(ValueError, match=r"results\.md"):
        report.find_workdirs([str(tmp_path / "runs" / "results.md")])


def test_load_config_errors_name_the_workdir(tmp_path):
    with pytest.raises(ValueError, match="not a directory"):
        workdir.load_config(str(tmp_path / "missing"))
    with pytest.raises(ValueError, match=r"no config\.json"):
        workdir.load_config(str(tmp_path))
    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(ValueError, match="cannot read"):
        workdir.load_config(str(tmp_path))
    (tmp_path / "config.json").write_text(json.dumps({"frontend": {"output_shape": [32, 32]}}))
    assert workdir.load_config(str(tmp_path)).frontend.output_shape == (32, 32)


def test_cli_reports_a_bad_workdir_with_exit_code_2(tmp_path, capsys):
    with pytest.raises(SystemExit) as error:
        report.main([str(tmp_path)])
    assert error.value.code == 2
    assert str(tmp_path) in capsys.readouterr().err
