"""`make demo` in reduced form (two steps per front-end on small_details/tiny), so the whole
pipeline (six runs, table, figures, report from the workdirs) cannot rot."""

import json
import logging
import os

import chex
import pytest

from resize_jax.tools import demo, report
from resize_jax.train import default_config, workdir

_TINY = [
    "--dataset=small_details/tiny",
    "--steps=2",
    "--batch_size=8",
    "--eval_batch_size=8",
    "--num_evals=1",
    "--log_every=1",
    "--seeds=0",
    "--num_devices=1",
    "--real_dataset=cluttered_digits/tiny",
    "--real_steps=2",
]


@pytest.fixture(scope="module")
def demo_out(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo")
    markdown = demo.main([f"--out={out}", *_TINY])
    return out, markdown


def test_reduced_demo_trains_all_six_and_writes_table_and_figures(demo_out):
    out, markdown = demo_out
    results = json.loads((out / "results.json").read_text())
    groups = results["groups"]
    chex.assert_equal([g["runs"] for g in groups], [[f"{r}_seed0"] for r in demo.RUNS])
    # Labelled by the front-end table (its names: tests/test_result_tables.py).
    labels = [g["label"] for g in groups]
    assert labels == [workdir.describe(default_config.get_config(a)) for a in demo.RUNS.values()]
    by = dict(zip(demo.RUNS, groups, strict=True))
    for g in groups:
        assert 0.0 <= g["mean"] <= 1.0 and g["steps"] == 2
        assert g["images_per_second"] > 0 and g["wall_seconds"] > 0
    # The same backbone everywhere; the front-ends add parameters and FLOPs.
    assert by["bilinear"]["params"] == by["bicubic"]["params"] == by["full_res"]["params"]
    assert by["learned"]["params"] > by["bilinear"]["params"]
    assert by["saliency"]["params"] > by["bilinear"]["params"]
    assert by["full_res"]["gflops"] > by["learned"]["gflops"] > by["bilinear"]["gflops"] > 0
    assert by["full_res"]["network_input"] == [128, 128]
    assert by["learned"]["network_input"] == [32, 32]
    for name in ("learning_curves", "frontends", "learned_residual", "saliency"):
        path = out / f"{name}.png"
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name
        assert f"({name}.png)" in markdown
    assert (out / "results.md").read_text() == markdown
    assert "| learned resizer | 128×128 → 32×32 |" in markdown


def test_the_real_image_part_has_its_own_table(demo_out):
    out, _ = demo_out
    real = out / "cluttered_digits"
    results = json.loads((real / "results.json").read_text())
    assert [g["runs"] for g in results["groups"]] == [["bilinear_aa_seed0"], ["saliency_seed0"]]
    assert all(g["steps"] == 2 for g in results["groups"])
    config = json.loads((real / "saliency_seed0" / "config.json").read_text())
    assert config["data"]["name"] == "cluttered_digits/tiny"
    # Both parts read one TFDS directory.
    assert config["data"]["data_dir"] == str(out / "tensorflow_datasets")
    assert (real / "saliency.png").read_bytes()[:4] == b"\x89PNG"


def test_report_rebuilds_results_md_from_the_workdirs_alone(demo_out, tmp_path):
    out, markdown = demo_out
    rebuilt, _ = report.build_report([str(out)], str(tmp_path), figures=False)
    # Everything but the figure list is the same, read back from the workdirs.
    assert rebuilt == markdown.split("\n## Figures")[0]


def test_a_finished_run_is_reused_and_a_changed_config_is_not(demo_out):
    out, _ = demo_out
    args = demo.parse_args([f"--out={out}", *_TINY])
    config = demo.make_config("learned", args, 0)
    assert demo._finished(str(out / "learned_seed0"), config)
    config.optimizer.learning_rate = 1.0
    assert not demo._finished(str(out / "learned_seed0"), config)
    assert not demo._finished(str(out / "learned_seed7"), config)


def test_demo_runs_use_the_default_config_with_the_demo_settings(tmp_path):
    args = demo.parse_args([f"--out={tmp_path}", "--steps=40", "--seeds=3"])
    config = demo.make_config("saliency", args, 3)
    assert config.frontend.name == "saliency" and config.frontend.blur_steps == 10
    assert config.frontend.antialias and config.frontend.fwhm == 13.0
    assert config.seed == 3 and config.num_train_steps == 40
    assert config.data.data_dir == os.path.join(str(tmp_path), "tensorflow_datasets")
    aa = demo.make_config("bilinear_aa", args, 3)
    assert aa.frontend.antialias and aa.frontend.method == "bilinear"
    assert demo.make_config("full_res", args, 3).frontend.name == "none"
    # Another task network and task size reach every run's config.
    args = demo.parse_args([f"--out={tmp_path}", "--model=vit_ti16", "--task_size=64"])
    config = demo.make_config("learned", args, 0)
    assert config.model.name == "vit_ti16" and tuple(config.frontend.output_shape) == (64, 64)


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--runs=bilinear,zoom"], "zoom"),
        (["--seeds=a"], "--seeds"),
        (["--steps=0"], "--steps"),
        (["--real_runs=zoom"], "--real_runs"),
        (["--real_steps=0"], "--real_steps"),
        (["--task_size=0"], "--task_size"),
        (["--model=resnet9000"], "resnet9000"),
    ],
)
def test_bad_arguments_exit_with_a_message(argv, message, capsys):
    with pytest.raises(SystemExit) as error:
        demo.parse_args(argv)
    assert error.value.code == 2
    assert message in capsys.readouterr().err


def test_progress_lines_get_the_demo_position_and_eta():
    progress = demo._DemoProgress([10.0, 30.0])
    record = logging.LogRecord(
        "absl", logging.INFO, "/x/resize_jax/train/writer.py", 1, "step %d/%d  loss", (5, 10), None
    )
    assert progress.filter(record)
    assert "demo run 1/2" in record.getMessage() and "demo ETA" in record.getMessage()
    assert progress.done_cost() == pytest.approx(5.0)
    chatter = logging.LogRecord("absl", logging.INFO, "/x/orbax/a.py", 1, "saving", (), None)
    assert not progress.filter(chatter)
    warning = logging.LogRecord("absl", logging.WARNING, "/x/orbax/a.py", 1, "careful", (), None)
    assert progress.filter(warning)
