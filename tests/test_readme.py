"""Executes the README's usage block so the README cannot rot."""

import pathlib
import re

README = pathlib.Path(__file__).resolve().parents[1] / "README.md"


def _python_blocks(section: str) -> list[str]:
    text = README.read_text()
    start = text.index(f"## {section}\n")
    end = text.find("\n## ", start + 1)
    body = text[start : end if end != -1 else None]
    return re.findall(r"```python\n(.*?)```", body, flags=re.S)


def test_usage_example_runs():
    blocks = _python_blocks("Usage")
    assert blocks, "README has no python block under ## Usage"
    for block in blocks:
        exec(compile(block, str(README), "exec"), {})


def test_saliency_sampler_example_runs():
    blocks = _python_blocks("Saliency sampler")
    assert blocks, "README has no python block under ## Saliency sampler"
    for block in blocks:
        exec(compile(block, str(README), "exec"), {})
