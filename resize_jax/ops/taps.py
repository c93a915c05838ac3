"""Interpolation matrices with a regular band, applied as a few strided slices (no matmul).

A resize matrix `f[out, in]` of a kernel with finite support has at most K non-zeros per row,
K = ceil(support) (2 for bilinear, 4 for bicubic, ...). When the first non-zero column of row
`o` is `start + stride * o` for an integer `stride` (every integer downscaling factor: 448→224
is stride 2), the product along one axis is exactly

    out[o] = sum_k weights[k, o] * x[start + k + stride * o]

i.e. K strided slices of the input, each scaled by a per-output weight, then summed: K·out
multiply-adds per line instead of the dense product's in·out, and the gradient is K padded
(interior-padded) copies, again no gather or scatter. Rows whose band would run past the
image are shifted inside it; the weights there are the matrix's own (zero where it is zero),
so the result is the dense product's up to summation order.
"""

from __future__ import annotations

from typing import NamedTuple

import jax.numpy as jnp
import numpy as np
from jax import lax


class Taps(NamedTuple):
    """Regular band of an interpolation matrix: `x[start + k + stride * o] * weights[k, o]`."""

    start: int
    stride: int
    weights: np.ndarray  # f64[K, out]


def regular_taps(matrix: np.ndarray) -> Taps | None:
    """The `Taps` of `matrix: f64[out, in]`, or None when its band is not regular.

    `start` may be negative and the last band may end past the input: those taps have zero
    weight (the kernel reached outside the image) and read zero padding.
    """
    out_size, in_size = matrix.shape
    nonzero = matrix != 0
    if not nonzero.any(axis=1).all():
        return None
    first = nonzero.argmax(axis=1)
    last = in_size - 1 - nonzero[:, ::-1].argmax(axis=1)
    k = int((last - first).max()) + 1
    # Rows cut by the image border are shorter; the full rows fix the stride.
    full = np.flatnonzero(last - first + 1 == k)
    if out_size == 1:
        start, stride = int(first[0]), 1
    elif full.size < 2:
        return None
    else:
        step, rows = first[full[-1]] - first[full[0]], full[-1] - full[0]
        if step % rows:
            return None
        stride = int(step // rows)
        start = int(first[full[0]] - stride * full[0])
    if stride < 1:
        return None
    starts = start + stride * np.arange(out_size)
    if np.any(first < starts) or np.any(last > starts + k - 1):
        return None
    columns = starts[None, :] + np.arange(k)[:, None]  # [K, out]
    inside = (columns >= 0) & (columns < in_size)
    weights = np.where(
        inside, matrix[np.arange(out_size)[None, :], np.clip(columns, 0, in_size - 1)], 0.0
    )
    return Taps(start, stride, weights)


def apply_taps(x: jnp.ndarray, taps: Taps, axis: int, out_size: int) -> jnp.ndarray:
    """`einsum("oi,...i...->...o...", matrix, x)` along `axis` from the matrix's `taps`."""
    k = taps.weights.shape[0]
    before = max(0, -taps.start)
    after = max(0, taps.start + taps.stride * (out_size - 1) + k - x.shape[axis])
    if before or after:
        widths = [(0, 0)] * x.ndim
        widths[axis] = (before, after)
        x = jnp.pad(x, widths)
    # Read the taps through a [.., n / stride, stride, ..] view rather than strided slices:
    # the transpose (the gradient) is then plain padding, not interior padding, which XLA
    # fuses far better (measured: ~3x faster backward on CPU).
    length = x.shape[axis]
    extra = -length % taps.stride
    if extra:
        widths = [(0, 0)] * x.ndim
        widths[axis] = (0, extra)
        x = jnp.pad(x, widths)
    blocks = x.reshape(*x.shape[:axis], -1, taps.stride, *x.shape[axis + 1 :])
    total = None
    for tap in range(k):
        column = taps.weights[tap]
        if not column.any():
            continue
        block, phase = divmod(taps.start + before + tap, taps.stride)
        sliced = lax.index_in_dim(blocks, phase, axis=axis + 1, keepdims=False)
        sliced = lax.slice_in_dim(sliced, block, block + out_size, axis=axis)
        if np.all(column == column[0]):
            # One weight for every output (interior of a downscale): a scalar multiply.
            term = sliced if column[0] == 1 else sliced * jnp.asarray(column[0], x.dtype)
        else:
            shape = [1] * x.ndim
            shape[axis] = out_size
            term = sliced * jnp.asarray(column.reshape(shape), x.dtype)
        total = term if total is None else total + term
    return total
