"""A separable resize by two banded interpolation matrices in one native pass (CPU).

`ops.resize` contracts each axis with its interpolation matrix. A matrix whose band is
regular runs as a few strided slices (`taps.py`); one whose band is not (an irregular factor,
e.g. the saliency sampler's 266 → 224 copy of an 800-pixel image) is a dense product, which
XLA:CPU runs behind a transposing copy of the images, at `in` multiply-adds per output instead
of the band's K. `banded_resize` applies both axes' bands directly to the NHWC images
(`native/resize_kernels.cc`): each output row mixes the K input rows it reads as contiguous
vectors, then each pixel the K pixels of that row it reads.

The gradient is the same pass with the transposed matrices (also banded: an input pixel
reaches a contiguous run of outputs) where their bands are narrow, else the dense products'
(XLA).
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from resize_jax.ops import native
from resize_jax.ops.native.calls import (
    batch_partitioned,
    map_when_vmapped,
    on_cpu,
    placed_on_cpu,
)


class Band(NamedTuple):
    """The non-zeros of an interpolation matrix `f[out, in]`: row o's weights[o, j] apply to
    input starts[o] + j (0 <= starts[o] and starts[o] + K <= in)."""

    starts: np.ndarray  # int32[out]
    weights: np.ndarray  # f32[out, K]


def band(matrix: np.ndarray) -> Band:
    """The `Band` of `matrix: f[out, in]` (K its widest row's span of non-zeros)."""
    in_size = matrix.shape[1]
    nonzero = matrix != 0
    first = np.where(nonzero.any(axis=1), nonzero.argmax(axis=1), 0)
    last = np.where(nonzero.any(axis=1), in_size - 1 - nonzero[:, ::-1].argmax(axis=1), 0)
    taps = int(max(1, (last - first).max() + 1))
    # Bands that would run past the image's end start earlier; the taps shifted in are the
    # matrix's own entries there, zeros.
    starts = np.minimum(first, in_size - taps)
    columns = starts[:, None] + np.arange(taps)
    weights = np.take_along_axis(matrix, columns, axis=1)
    return Band(starts.astype(np.int32), weights.astype(np.float32))


def _native(images, starts_y, weights_y, starts_x, weights_x):
    shape = (images.shape[0], starts_y.shape[0], starts_x.shape[0], images.shape[3])
    call = jax.ffi.ffi_call("resize_jax_banded_resize", jax.ShapeDtypeStruct(shape, jnp.float32))
    return call(images, starts_y, weights_y, starts_x, weights_x)


_native_cpu = map_when_vmapped(
    batch_partitioned(_native, "b h w c, o, o i, p, p j -> b o p c", 1), fold=1
)


def _dense(images, matrix_y, matrix_x):
    # HIGHEST: exact f32 products wherever this runs (on TPU the default would round to bf16).
    out = jnp.einsum("oh,bhwc->bowc", matrix_y, images, precision="highest")
    return jnp.einsum("pw,bowc->bopc", matrix_x, out, precision="highest")


@functools.partial(jax.custom_vjp, nondiff_argnums=(1, 2))
def _banded(images, matrix_y: np.ndarray, matrix_x: np.ndarray):
    bands = [jnp.asarray(b) for b in (*band(matrix_y), *band(matrix_x))]
    return on_cpu(
        lambda images, *bands: _native_cpu(images, *bands),
        lambda images, *_: _dense(images, matrix_y.astype(np.float32), matrix_x.astype(np.float32)),
        images,
        *bands,
    )


def _banded_fwd(images, matrix_y, matrix_x):
    return _banded(images, matrix_y, matrix_x), None


def _banded_bwd(matrix_y, matrix_x, _, g):
    # The transposes of interpolation matrices are banded too (an input pixel reaches a
    # contiguous run of outputs): the same native pass with them, where both are narrow.
    transposes = (matrix_y.T, matrix_x.T)
    if eligible(g) and all(cheaper_than_dense(m, _BACKWARD_ADVANTAGE) for m in transposes):
        return (_banded(g, *transposes),)
    # Else the transposed dense products (XLA), as `ops.resize`'s gradient without this kernel.
    shape = (g.shape[0], matrix_y.shape[1], matrix_x.shape[1], g.shape[3])
    dense = functools.partial(
        _dense, matrix_y=matrix_y.astype(np.float32), matrix_x=matrix_x.astype(np.float32)
    )
    return jax.linear_transpose(dense, jax.ShapeDtypeStruct(shape, g.dtype))(g)


# A transposed band at most this fraction of the dense width runs natively in the gradient.
_BACKWARD_ADVANTAGE = 2

_banded.defvjp(_banded_fwd, _banded_bwd)


def eligible(images) -> bool:
    """Whether `banded_resize` runs the native kernel for `images` (when run on CPU)."""
    return images.dtype == jnp.float32 and placed_on_cpu() and native.available()


def banded_resize(images: jnp.ndarray, matrix_y: np.ndarray, matrix_x: np.ndarray) -> jnp.ndarray:
    """images: f32[B, H, W, C]; matrix_y: f[h, H], matrix_x: f[w, W] (NumPy constants) →
    f32[B, h, w, C], the two products `matrix_y · images · matrix_xᵀ` (on CPU by their bands,
    elsewhere dense). Differentiable in `images` (reverse mode, to any order)."""
    return _banded(images, np.asarray(matrix_y), np.asarray(matrix_x))


def cheaper_than_dense(matrix: np.ndarray, advantage: int) -> bool:
    """Whether the band of `matrix: f[out, in]` has at most in / `advantage` taps."""
    return band(matrix).weights.shape[1] * advantage <= matrix.shape[1]


__all__ = ["Band", "band", "banded_resize", "cheaper_than_dense", "eligible"]
