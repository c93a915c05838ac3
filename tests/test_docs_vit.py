"""Executes the Python examples of docs/vit.md so the page cannot rot."""

import pathlib
import re

PAGE = pathlib.Path(__file__).resolve().parents[1] / "docs" / "vit.md"


def _python_blocks(section: str) -> list[str]:
    text = PAGE.read_text()
    start = text.index(f"## {section}\n")
    end = text.find("\n## ", start + 1)
    return re.findall(r"```python\n(.*?)```", text[start : end if end != -1 else None], re.S)


def test_input_and_patch_size_example_runs():
    # The loader example needs a downloaded weights file; its code path is tested with the
    # golden fixture in test_models_vit_pretrained.py.
    blocks = _python_blocks("Input sizes and patch sizes")
    assert blocks
    for block in blocks:
        exec(compile(block, str(PAGE), "exec"), {})
