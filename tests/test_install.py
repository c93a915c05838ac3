"""The core install: the wheel, installed with its core dependencies only (jax, flax, optax,
chex, numpy) in a fresh virtual environment, runs the README's Usage block; the parts that
need an extra say which one. (The pip cache keeps the install to seconds after its first run.)
"""

import importlib.util
import os
import pathlib
import shutil
import subprocess
import sys
import venv

import pytest

from resize_jax import extras
from tests.test_docs import python_blocks

ROOT = pathlib.Path(__file__).resolve().parents[1]
CORE = {"jax", "jaxlib", "flax", "optax", "chex", "numpy"}

_CHECK = """
import importlib.metadata, importlib.util
import resize_jax
assert "site-packages" in resize_jax.__file__, resize_jax.__file__  # The wheel, not the tree.
# (orbax-checkpoint is not listed: flax itself depends on it.)
for heavy in ("tensorflow", "tensorflow_datasets", "ml_collections", "clu", "matplotlib"):
    assert importlib.util.find_spec(heavy) is None, f"{heavy} came with the core install"
requires = importlib.metadata.requires("resize_jax")
core = sorted(r.split(">")[0].split("=")[0] for r in requires if "extra ==" not in r)
print("core requirements:", core)
for part in ("resize_jax.train", "resize_jax.data", "resize_jax.tools"):
    try:
        importlib.import_module(part)
    except ImportError as error:
        assert "pip install 'resize_jax[train]'" in str(error), error
    else:
        raise AssertionError(f"{part} imported without the train extra")
print("ok")
"""


# Without the checkout on the path: neither pip nor the venv's Python may see the sources.
_ENV = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}


def _pip(*args):
    subprocess.run([sys.executable, "-m", "pip", *args], check=True, capture_output=True, env=_ENV)


@pytest.mark.timeout(900)
def test_wheel_with_core_dependencies_runs_the_usage_block(tmp_path):
    # Build from a copy of the sources, so the checkout gets no build/ or egg-info.
    source = tmp_path / "source"
    source.mkdir()
    shutil.copytree(ROOT / "resize_jax", source / "resize_jax")
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    _pip("wheel", "--no-deps", "--no-build-isolation", "-w", str(tmp_path / "dist"), str(source))
    (wheel,) = (tmp_path / "dist").glob("resize_jax-*.whl")
    venv.create(tmp_path / "venv", with_pip=False)
    python = tmp_path / "venv" / "bin" / "python"
    _pip("--python", str(python), "install", "--quiet", str(wheel))

    (usage,) = python_blocks(ROOT / "README.md")  # The Quickstart.
    run = subprocess.run(
        [str(python), "-c", usage + _CHECK],
        # Not the checkout: `import resize_jax` must find the installed wheel.
        cwd=tmp_path,
        env=_ENV,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    assert run.stdout.splitlines()[-1] == "ok"
    core = run.stdout.split("core requirements:")[1].splitlines()[0]
    assert set(eval(core)) == CORE - {"jaxlib"}


def test_a_missing_extra_names_it(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name == "matplotlib" else real(name, *a),
    )
    with pytest.raises(ImportError, match=r"needs matplotlib.*pip install 'resize_jax\[viz\]'"):
        extras.require("viz", "resize_jax.tools.figures")
    extras.require("train", "resize_jax.train")  # Installed here: no error.
    with pytest.raises(ValueError, match="`extra` must be one of"):
        extras.require("gpu", "x")
