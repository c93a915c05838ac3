"""The documentation stays true: every Python block of README.md and docs/*.md runs, the
quickstart notebook runs, and the documentation site (API reference included) builds with
warnings as errors. The shell commands are tests/test_docs_commands.py."""

import os
import pathlib
import re
import subprocess
import sys

import jax
import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def python_blocks(path: pathlib.Path) -> list[str]:
    """The ```python blocks of a Markdown file, in order."""
    return re.findall(r"```python\n(.*?)```", path.read_text(), flags=re.S)


def own_test(page: pathlib.Path) -> str | None:
    """A test file that executes `page` itself (with the files its examples need), if any."""
    names = (f"docs/{page.name}", f'"docs" / "{page.name}"')
    for test in sorted((ROOT / "tests").glob("test_*.py")):
        text = test.read_text()
        if test.name != pathlib.Path(__file__).name and any(n in text for n in names):
            return test.name
    return None


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_python_blocks_run(page, tmp_path, monkeypatch):
    blocks = python_blocks(page)
    if not blocks:
        pytest.skip(f"{page.name} has no Python block")
    if page.parent.name == "docs" and own_test(page):
        pytest.skip(f"docs/{page.name} is executed by tests/{own_test(page)}")
    # Examples that build a generated dataset use the default data_dir: keep it in tmp.
    monkeypatch.setenv("TFDS_DATA_DIR", str(tmp_path))
    namespace = {}
    # The blocks do not depend on the random generator; "rbg" compiles much faster on CPU.
    with jax.default_prng_impl("rbg"):
        for block in blocks:  # One namespace per page: a block may use an earlier one's names.
            exec(compile(block, str(page), "exec"), namespace)


def test_the_readme_is_short_and_has_what_a_new_user_needs():
    text = (ROOT / "README.md").read_text()
    assert len(text.splitlines()) <= 300
    for heading in ("## Install", "## Quickstart", "## Train on your own folder", "## Demo"):
        assert heading in text
    # Nothing outside the repository: every relative link that is not another branch's page
    # resolves in a clone.
    for target in re.findall(r"\]\(((?!https?:)[^)#]+)", text):
        assert ".." not in target.split("/"), target


def test_docs_pages_are_in_the_site_nav():
    nav = (ROOT / "mkdocs.yml").read_text()
    for page in (ROOT / "docs").glob("*.md"):
        assert page.name in nav, f"docs/{page.name} is not in mkdocs.yml's nav"


def test_site_builds_strict(tmp_path):
    pytest.importorskip("mkdocstrings")
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    api = (tmp_path / "api" / "index.html").read_text()
    for name in (
        "resize_jax.frontends.LearnedResizer",
        "resize_jax.nnx.to_nnx",
        "train_and_evaluate",
    ):
        assert name in api


def test_quickstart_notebook_runs():
    nbclient = pytest.importorskip("nbclient")
    nbformat = pytest.importorskip("nbformat")
    notebook = nbformat.read(ROOT / "examples" / "quickstart.ipynb", as_version=4)
    assert not any(cell.get("outputs") for cell in notebook.cells if cell.cell_type == "code")
    os.environ.setdefault("PYTHONPATH", str(ROOT))
    nbclient.NotebookClient(notebook, timeout=600, kernel_name="python3", cwd=str(ROOT)).execute()
    printed = "".join(
        out.get("text", "")
        for cell in notebook.cells
        if cell.cell_type == "code"
        for out in cell.outputs
    )
    assert "loss per step" in printed and "NNX loss per step" in printed
    images = [
        out
        for cell in notebook.cells
        for out in cell.get("outputs", [])
        if "image/png" in out.get("data", {})
    ]
    assert images, "the notebook drew no picture"
