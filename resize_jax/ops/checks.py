"""Trace-time argument checks shared by the pure ops and the front-ends.

Every check raises `ValueError` naming the argument, what it got and what was expected, so
bad input fails loudly at trace time instead of producing silent garbage.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence

import jax.numpy as jnp


def check_images(images, name: str = "images", *, rank: int = 4) -> None:
    """Checks `images` is a floating-point array of the given rank (NHWC by default)."""
    shape = getattr(images, "shape", None)
    dtype = getattr(images, "dtype", None)
    if shape is None or dtype is None:
        raise ValueError(f"`{name}` must be an array, got {type(images).__name__}.")
    if len(shape) != rank:
        layout = {4: "[B, H, W, C]", 3: "[B, H, W]"}.get(rank, f"rank {rank}")
        raise ValueError(
            f"`{name}` must have rank {rank} {layout}, "
            f"got shape {tuple(shape)} (rank {len(shape)})."
        )
    if not jnp.issubdtype(dtype, jnp.floating):
        raise ValueError(
            f"`{name}` must be a floating-point array, got dtype {dtype}. Convert it first, "
            f"e.g. `{name}.astype(jnp.float32) / 255.0` for 8-bit images."
        )
    if any(int(d) == 0 for d in shape):
        raise ValueError(f"`{name}` must not have an empty dimension, got shape {tuple(shape)}.")


def check_size_pair(value, name: str) -> tuple[int, int]:
    """Returns `value` as `(height, width)` of positive Python ints, or raises ValueError."""
    if isinstance(value, str | bytes) or not isinstance(value, Sequence) or len(value) != 2:
        raise ValueError(
            f"`{name}` must be a pair (height, width) of positive integers, got {value!r}."
        )
    out = []
    for v in value:
        if isinstance(v, bool) or not isinstance(v, numbers.Real):
            raise ValueError(
                f"`{name}` must be a pair (height, width) of positive integers, got {value!r}."
            )
        if not math.isfinite(float(v)):
            raise ValueError(f"`{name}` must be finite, got {value!r}.")
        if float(v) != int(v):
            raise ValueError(f"`{name}` must hold integers, got {value!r}.")
        if int(v) <= 0:
            raise ValueError(f"`{name}` must hold positive integers, got {value!r}.")
        out.append(int(v))
    return out[0], out[1]


def check_choice(value, name: str, choices: Sequence[str]) -> str:
    """Checks `value` is one of `choices`."""
    if value not in choices:
        raise ValueError(f"`{name}` must be one of {sorted(choices)}, got {value!r}.")
    return value
