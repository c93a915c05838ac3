"""Trace-time argument checks shared by the pure ops and the front-ends.

Every check raises `ValueError` naming the argument, what it got and what was expected, so
bad input fails loudly at trace time instead of producing silent garbage.
"""

from __future__ import annotations

import math
import numbers
import warnings
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np

# Channel counts of NCHW image batches, for `check_images`' layout warning.
_CHANNEL_COUNTS = (1, 2, 3, 4)


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


def _is_int(value) -> bool:
    # NumPy integers count (array elements, config values read back); bools do not.
    return isinstance(value, numbers.Integral) and not isinstance(value, bool | np.bool_)


def _is_number(value) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool | np.bool_)


def check_int(value, name: str, *, minimum: int | None = None) -> int:
    """Returns `value` as a Python int if it is an integer (Python or NumPy, never a bool)
    >= `minimum`, else raises ValueError."""
    if not _is_int(value) or (minimum is not None and value < minimum):
        kind = {None: "an integer", 0: "a non-negative integer", 1: "a positive integer"}.get(
            minimum, f"an integer >= {minimum}"
        )
        raise ValueError(f"`{name}` must be {kind}, got {value!r}.")
    return int(value)


def check_positive_int(value, name: str) -> int:
    """Returns `value` as a Python int if it is an integer >= 1, else raises ValueError."""
    return check_int(value, name, minimum=1)


def check_number(
    value,
    name: str,
    *,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
    high_open: bool = False,
    finite: bool = True,
) -> float:
    """Returns `value` as a float if it is a real number (never a bool), finite unless
    `finite=False`, within [low, high] (bounds excluded where `low_open`/`high_open`), else
    raises ValueError describing that range."""
    ok = _is_number(value)
    if ok:
        v = float(value)
        ok = not (
            (finite and not math.isfinite(v))
            or math.isnan(v)
            or (low is not None and (v < low or (low_open and v == low)))
            or (high is not None and (v > high or (high_open and v == high)))
        )
    if not ok:
        kind = _number_kind(low, high, low_open, high_open, finite)
        raise ValueError(f"`{name}` must be {kind}, got {value!r}.")
    return float(value)


def _number_kind(low, high, low_open, high_open, finite) -> str:
    number = "finite number" if finite else "number"
    if low == 0 and high is None:
        return f"a {'positive' if low_open else 'non-negative'} {number}"
    if low is not None and high is not None:
        return f"a {number} in {'(' if low_open else '['}{low}, {high}{')' if high_open else ']'}"
    if low is not None:
        return f"a {number} {'>' if low_open else '>='} {low}"
    if high is not None:
        return f"a {number} {'<' if high_open else '<='} {high}"
    return f"a {number}"


def check_rate(value, name: str) -> float:
    """Returns a dropout-like probability in [0, 1) as a float, else raises ValueError."""
    if not _is_number(value) or not 0 <= value < 1:
        raise ValueError(f"`{name}` must be a probability in [0, 1), got {value!r}.")
    return float(value)


def check_choice(value, name: str, choices: Sequence[str]) -> str:
    """Checks `value` is one of `choices`."""
    if value not in choices:
        raise ValueError(f"`{name}` must be one of {sorted(choices)}, got {value!r}.")
    return value


def check_bool(value, name: str) -> bool:
    """Returns `value` if it is a bool (Python or NumPy), else raises ValueError: a string
    such as "no" or "false" is truthy, so it must not be read as a flag."""
    if isinstance(value, bool | np.bool_):
        return bool(value)
    raise ValueError(f"`{name}` must be True or False, got {value!r}.")


def check_finite(values, name: str) -> None:
    """Raises ValueError if a concrete array holds a NaN or an infinity; under tracing the
    values are unknown and nothing is checked."""
    if isinstance(values, jax.core.Tracer):
        return
    if not bool(np.all(np.isfinite(np.asarray(values)))):
        raise ValueError(f"`{name}` must be finite, got NaN or infinite values.")


def warn_if_nchw(images, name: str = "images") -> None:
    """Warns when a 4-D batch looks like NCHW (few "rows", many "channels"): (B, 3, H, W) is
    a valid NHWC shape (images 3 pixels high with W channels), so this cannot be an error,
    but it is far more often a PyTorch-layout batch that would build a W-channel model."""
    shape = tuple(int(d) for d in images.shape)
    if len(shape) == 4 and shape[1] in _CHANNEL_COUNTS and shape[2] > 4 and shape[3] > 4:
        warnings.warn(
            f"`{name}` has shape {shape}, which looks like NCHW (channels second); resize_jax "
            f"expects NHWC [B, H, W, C] and reads it as {shape[3]} channels. Transpose it "
            f"with `{name}.transpose(0, 2, 3, 1)`.",
            stacklevel=3,
        )


def renamed(new_value, new_name: str, default, old_value, old_name: str, *, stacklevel: int = 3):
    """Resolves an argument renamed from `old_name` to `new_name` (the old name keeps working
    for one release): `old_value` (None when not given) wins over an unset `new_value` (equal
    to `default`), with a DeprecationWarning; giving both with different values is an error.
    """
    if old_value is None:
        return new_value
    warnings.warn(
        f"`{old_name}` is deprecated and will be removed in the next release; use "
        f"`{new_name}` (got {old_name}={old_value!r}).",
        DeprecationWarning,
        stacklevel=stacklevel,
    )
    if new_value != default and new_value != old_value:
        raise ValueError(
            f"`{old_name}` is the deprecated name of `{new_name}`; give only `{new_name}`, got "
            f"{new_name}={new_value!r} and {old_name}={old_value!r}."
        )
    return old_value
