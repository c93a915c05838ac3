"""The commands' old module paths (`python -m resize_jax.demo`, ...), kept for one release."""

from __future__ import annotations

import runpy
import warnings


def run_moved_command(old: str, new: str) -> None:
    """Warns that `python -m old` moved to `python -m new`, then runs `new` as __main__."""
    warnings.warn(
        f"`python -m {old}` is deprecated and will be removed in the next release; "
        f"use `python -m {new}`.",
        DeprecationWarning,
        stacklevel=2,
    )
    runpy.run_module(new, run_name="__main__", alter_sys=True)
