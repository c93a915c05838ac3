"""Every shell command README.md and docs/*.md show runs, so a broken command fails CI.

Commands are read from the pages (```sh blocks and inline `python ...` spans). Each kind has
a check that runs it for real or as its smallest variant:
- `train.py`: its flags are parsed as train.py parses them (the config file and its arguments
  loaded, every `--config.*` override applied), a run's config.json included;
- the run tools (evaluate, apply, report) run on a tiny saliency run trained here, with the
  page's paths mapped to it; `data.generated.figure` draws its figure;
- long commands (the demo, the model summary, the benchmarks) run with `--help`, and the
  separability benchmark on a few examples for one epoch;
- `make X` is checked with `make -n X`; `pip` and `tensorboard` lines to name an installed
  tool; `python -c` lines compile.
A command that is not python, make, pip or tensorboard fails the test: it needs a check here.
"""

import contextlib
import glob
import io
import os
import pathlib
import re
import runpy
import shlex
import subprocess
import sys
import warnings

import numpy as np
import pytest
from absl import flags
from PIL import Image

from resize_jax.train import config_file, train_and_evaluate

ROOT = pathlib.Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def shown_commands() -> list[tuple[str, str]]:
    """(page, command) for every command the pages show, continuation lines joined."""
    found = []
    for page in PAGES:
        text = page.read_text()
        for block in re.findall(r"```(?:sh|bash|shell)\n(.*?)```", text, flags=re.S):
            for line in block.replace("\\\n", " ").splitlines():
                line = re.split(r"\s#", line)[0].strip()
                if line.startswith("-") and found and found[-1][0] == page.name:
                    # A continuation written without its backslash: part of the command above.
                    found[-1] = (page.name, f"{found[-1][1]} {' '.join(line.split())}")
                elif line and not line.startswith("#"):
                    found.append((page.name, " ".join(line.split())))
        prose = re.sub(r"```.*?```", "", text, flags=re.S).replace("\n", " ")
        for span in re.findall(r"`((?:\.venv/bin/)?python [^`]+)`", prose):
            found.append((page.name, " ".join(span.split())))
    return found


COMMANDS = shown_commands()


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """A saliency run of `configs/folder.py:runlocal` on a tiny folder of JPEGs, 2 steps."""
    root = tmp_path_factory.mktemp("docs_run")
    rng = np.random.default_rng(0)
    for split, count in (("train", 8), ("test", 4)):
        for label in ("cat", "dog"):
            os.makedirs(root / "photos" / split / label)
            for i in range(count // 2):
                pixels = (rng.random((40, 56, 3)) * 255).astype(np.uint8)
                Image.fromarray(pixels).save(root / "photos" / split / label / f"{i}.jpg")
    Image.fromarray((rng.random((70, 120, 3)) * 255).astype(np.uint8)).save(root / "photo.jpg")
    config = _load_config("folder", "frontend=saliency,runlocal,image_size=32,task_size=16")
    config.data.root = str(root / "photos")
    config.frontend.saliency_input_shape = (16, 16)
    config.num_train_steps, config.batch_size, config.eval_batch_size = 2, 8, 8
    config.log_every_steps, config.num_devices, config.eval_images = 1, 1, 2
    config.optimizer.warmup_steps, config.frontend.blur_steps = 1, 1
    train_and_evaluate(config, str(root / "mine"))
    return root


def _load_config(name, arg):
    import importlib.util

    spec = importlib.util.spec_from_file_location(name, ROOT / "configs" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.get_config(arg)


def _map_paths(args: list[str], run: pathlib.Path, tmp: pathlib.Path) -> list[str]:
    """The page's example paths → the tiny run's files; outputs → tmp."""
    workdir = str(run / "mine")
    mapping = {
        "runs/mine": workdir,
        "runs/mine_aa": workdir,  # a second run of the same config: report counts it once
        "runs/demo/saliency_seed0": workdir,
        "runs/demo": str(run),  # a directory of workdirs
        "photos": str(run / "photos"),
        "photo.jpg": str(run / "photo.jpg"),
        "runs/mine/config.json": os.path.join(workdir, "config.json"),
    }
    out = []
    for arg in args:
        key, sep, value = arg.partition("=")
        if sep and value in mapping:
            out.append(f"{key}={mapping[value]}")
        elif arg in mapping:
            out.append(mapping[arg])
        elif arg.startswith(("runs/", "/tmp/")):
            out.append(str(tmp / arg.strip("/").replace("/", "_")))
        else:
            out.append(arg)
    return out


def _check_train(args, run, tmp):
    args = _map_paths(args, run, tmp)
    argv = ["train.py", *args]
    values = flags.FlagValues()
    config_flag = config_file.define_config_flag("config", "c", flag_values=values, sys_argv=argv)
    flags.DEFINE_string("workdir", None, "workdir", flag_values=values)
    values(argv)  # Loads the config, applies the overrides; raises if any fails.
    config = config_flag.value
    for arg in args:
        if arg.startswith("--config.") and "=" in arg:
            path, raw = arg[len("--config.") :].split("=", 1)
            value = config
            for part in path.split("."):
                value = value[part]
            assert str(value).replace(" ", "") == raw.strip("'\"").replace(" ", ""), arg


def _run_main(module_name, args):
    """`python -m module_name *args`, in this process: its printed output."""
    stdout, saved_argv = io.StringIO(), sys.argv
    sys.argv = [module_name, *args]
    try:
        with contextlib.redirect_stdout(stdout), warnings.catch_warnings():
            # runpy's note on re-running an imported module, and the old paths' deprecation.
            warnings.simplefilter("ignore", RuntimeWarning)
            warnings.simplefilter("ignore", DeprecationWarning)
            try:
                runpy.run_module(module_name, run_name="__main__")
            except SystemExit as exit_:
                # absl's --help exits with 1, argparse's with 0.
                ok = (0, None, 1) if args == ["--help"] else (0, None)
                assert exit_.code in ok, f"{module_name} {args} exited with {exit_.code}"
    finally:
        sys.argv = saved_argv
    return stdout.getvalue()


_HELP_ONLY = ("resize_jax.tools.demo", "resize_jax.demo", "resize_jax.tools.summary")


def _check(command: str, run, tmp) -> str:
    words = shlex.split(command)
    while words and re.fullmatch(r"[A-Z_]+=\S*", words[0]):  # VAR=value prefixes
        words = words[1:]
    if words[0] == "make":
        subprocess.run(["make", "-n", *words[1:]], cwd=ROOT, check=True, capture_output=True)
        return "make -n"
    if words[0] == "pip":
        assert words[1] == "install" and words[2] == "-e", command
        return "install line"
    if words[0] == "tensorboard":
        import tensorboard  # noqa: F401

        return "tensorboard installed"
    python, *args = words
    assert python in ("python", ".venv/bin/python"), command
    if args[0] == "-c":
        # The documented one builds the full generated set (a minute): compiled, not run.
        compile(args[1], command, "exec")
        return "compiled"
    if args[0] == "train.py":
        _check_train(args[1:], run, tmp)
        return "flags parsed"
    if args[0].startswith("benchmarks/"):
        return "benchmarks"  # Checked together in one process: test_benchmark_commands.
    if args[0].endswith(".py"):
        # Another page's script (e.g. one that needs torch): it exists and compiles.
        compile((ROOT / args[0]).read_text(), args[0], "exec")
        return "compiled"
    assert args[0] == "-m", command
    module, rest = args[1], _map_paths(args[2:], run, tmp)
    if module in _HELP_ONLY:
        assert "usage" in _run_main(module, ["--help"])
        return "--help"
    if module == "resize_jax.data.generated.figure":
        _run_main(module, [str(tmp / "small_details.png"), *rest[1:]])
        assert (tmp / "small_details.png").stat().st_size > 1000
        return "drawn"
    tools = ("resize_jax.tools.evaluate", "resize_jax.tools.apply", "resize_jax.tools.report")
    inputs = [a.split("=")[-1] for a in rest if not a.startswith("-")]
    found = all(os.path.exists(a) for a in inputs if "/" in a or "." in a)
    if module in tools and rest and found:
        if module == "resize_jax.tools.report":
            rest = [*rest, "--no_figures"]
            if "--out" not in rest:
                rest += ["--out", str(tmp / "report")]
        printed = _run_main(module, rest)
        assert printed.strip(), f"{command} printed nothing"
        return "ran on the tiny run"
    # Another page's run or files (a gaze workdir, a weights file): the command's own
    # test has them; here the module must exist and parse its arguments' help.
    printed = _run_main(module, ["--help"]).lower()
    assert "usage" in printed or "flags:" in printed, command  # argparse or absl help
    return "--help (its files are another test's)"


def test_every_documented_command_runs(tiny_run, tmp_path):
    assert len(COMMANDS) > 20
    checked = {}
    for page, command in COMMANDS:
        checked[f"{page}: {command}"] = _check(command, tiny_run, tmp_path)
    assert "ran on the tiny run" in checked.values()
    assert any(r.startswith("--help") for r in checked.values())
    evaluated = glob.glob(str(tiny_run / "mine" / "eval_*_step2.json"))
    assert evaluated, "the documented evaluate command wrote no result"


def test_the_tiny_run_keeps_class_names_and_pictures(tiny_run):
    from tensorboard.backend.event_processing import event_accumulator

    workdir = tiny_run / "mine"
    from resize_jax.train.workdir import read_class_names

    assert read_class_names(str(workdir)) == ("cat", "dog")
    events = event_accumulator.EventAccumulator(str(workdir), size_guidance={"tensors": 0})
    events.Reload()
    tags = set(events.Tags()["tensors"])
    for tag in ("input", "frontend_output", "saliency", "grid"):
        assert f"eval_images/{tag}" in tags, sorted(tags)
    (record,) = events.Tensors("eval_images/grid")
    assert record.step == 2
    # clu stores [width, height, encoded image, ...]: two pictures, of the input's size.
    values = record.tensor_proto.string_val
    assert values[0] == b"32" and values[1] == b"32" and len(values) == 4


def test_benchmark_commands(tmp_path):
    scripts = sorted(
        {
            w[1]
            for w in (c.split() for _, c in COMMANDS)
            if len(w) > 1 and w[1].startswith("benchmarks/")
        }
    )
    assert scripts
    # One process for all of them: each with --help, the separability script on a tiny set.
    program = "\n".join(
        [
            "import runpy, sys",
            *(
                f"sys.argv = [{s!r}, '--help']\n"
                f"try:\n    runpy.run_path({s!r}, run_name='__main__')\n"
                # absl's --help exits with 1, argparse's with 0.
                "except SystemExit as e:\n    assert e.code in (0, 1, None), e.code"
                for s in scripts
            ),
            "sys.argv = ['x', '--modes', 'bilinear', '--num_train', '32', '--num_test', '4',"
            " '--epochs', '1']",
            "runpy.run_path('benchmarks/small_details_separability.py', run_name='__main__')",
        ]
    )
    result = subprocess.run(
        [sys.executable, "-c", program],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "final test accuracy" in result.stdout
    for flag in ("--cases", "--peak_tflops", "--reps", "--modes"):  # every script's help
        assert flag in result.stdout, flag
