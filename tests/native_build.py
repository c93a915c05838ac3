"""What the system's C++ compiler targets: the native kernels' tests compare the kernels' vector
width with it."""

from __future__ import annotations

import os
import subprocess

from resize_jax.ops import native


def compiler() -> str | None:
    """The compiler the native kernels are built with (`$CXX`, else `c++`), or None."""
    return native._compiler()


def native_macros() -> str:
    """The compiler's predefined macros for `-march=native` (`#define __AVX2__ 1`, ...)."""
    return subprocess.run(
        [compiler(), "-march=native", "-dM", "-E", "-x", "c++", os.devnull],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
