"""Means of k_h×k_w pixel blocks: the area downsampling by an integer factor.

    block_mean(images: f[B, H, W, C], k_h, k_w) → f[B, H / k_h, W / k_w, C]

XLA's version is k_h + k_w strided slices added elementwise, which it fuses into one pass
over the input (`reshape(...).mean(axis=(2, 4))` compiles on CPU to a reduction about 8×
slower than one read of the input). But XLA also fuses those slices into whatever reads the
small result, and a consumer that reorders it (the space-to-depth copy in front of a strided
convolution) makes the fused pass about twice as slow as the block means alone (1792² → 224²,
batch 4: 12.8 ms of the saliency sampler's 20 against a 6 ms mean-pool pass). On CPU, for
float32, the block means are one native pass instead (`native/resize_kernels.cc`), which XLA
cannot fuse into anything. The gradient is XLA's (the slices' transpose).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from resize_jax.ops import native
from resize_jax.ops.checks import check_images, check_positive_int
from resize_jax.ops.native.calls import (
    batch_partitioned,
    map_when_vmapped,
    on_cpu,
    placed_on_cpu,
)


def _xla_block_mean(images: jnp.ndarray, k_h: int, k_w: int) -> jnp.ndarray:
    batch, height, width, channels = images.shape
    rows = images.reshape(batch, height // k_h, k_h, width * channels)
    summed = sum(rows[:, :, i] for i in range(1, k_h)) + rows[:, :, 0]
    cols = summed.reshape(batch, height // k_h, width // k_w, k_w, channels)
    summed = sum(cols[:, :, :, j] for j in range(1, k_w)) + cols[:, :, :, 0]
    return summed / (k_h * k_w)


def _crop(images, k_h: int, k_w: int):
    """(top, left, rows, cols): the centred part of `images` that whole blocks cover."""
    _, height, width, _ = images.shape
    rows, cols = height // k_h * k_h, width // k_w * k_w
    return (height - rows) // 2, (width - cols) // 2, rows, cols


def _xla_cropped(images, k_h: int, k_w: int):
    top, left, rows, cols = _crop(images, k_h, k_w)
    return _xla_block_mean(images[:, top : top + rows, left : left + cols], k_h, k_w)


@functools.cache
def _native_cpu(k_h: int, k_w: int):
    def ffi(images):
        b, _, _, c = images.shape
        top, left, rows, cols = _crop(images, k_h, k_w)
        result = jax.ShapeDtypeStruct((b, rows // k_h, cols // k_w, c), jnp.float32)
        call = jax.ffi.ffi_call("resize_jax_block_mean", result)
        return call(
            images, kh=np.int32(k_h), kw=np.int32(k_w), top=np.int32(top), left=np.int32(left)
        )

    return map_when_vmapped(batch_partitioned(ffi, "b h w c -> b i j c", 1), fold=1)


@functools.partial(jax.custom_vjp, nondiff_argnums=(1, 2))
def _native_block_mean(images, k_h: int, k_w: int):
    return on_cpu(_native_cpu(k_h, k_w), functools.partial(_xla_cropped, k_h=k_h, k_w=k_w), images)


def _fwd(images, k_h, k_w):
    return _native_block_mean(images, k_h, k_w), images.shape


def _bwd(k_h, k_w, shape, g):
    xla = functools.partial(_xla_cropped, k_h=k_h, k_w=k_w)
    return (jax.linear_transpose(xla, jax.ShapeDtypeStruct(shape, g.dtype))(g)[0],)


_native_block_mean.defvjp(_fwd, _bwd)


def block_mean(images: jnp.ndarray, k_h: int, k_w: int) -> jnp.ndarray:
    """The means of k_h×k_w blocks of `images: f[B, H, W, C]` → f[B, H // k_h, W // k_w, C].

    Where a side is no multiple of its factor, the centred part that whole blocks cover is
    averaged (the remainder, fewer than k rows or columns, split between both edges).

    Raises:
      ValueError: naming the argument, for images that are not a floating f[B, H, W, C],
        non-positive factors, or a factor larger than its side.
    """
    check_images(images)
    k_h = check_positive_int(k_h, "k_h")
    k_w = check_positive_int(k_w, "k_w")
    _, height, width, _ = images.shape
    if k_h > height or k_w > width:
        raise ValueError(
            f"The block (k_h, k_w) = ({k_h}, {k_w}) must fit in `images` of {height}×{width} "
            "pixels."
        )
    if k_h == k_w == 1:
        return images
    if images.dtype == jnp.float32 and placed_on_cpu() and native.available():
        return _native_block_mean(images, k_h, k_w)
    return _xla_cropped(images, k_h, k_w)


__all__ = ["block_mean"]
