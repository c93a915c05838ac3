"""Batch NHWC image resizing as two interpolation-matrix products.

Conventions (the same as TensorFlow 2's `tf.image.resize` and `jax.image.resize`):
pixel centres sit at half-integers ("half-pixel centres"), so output pixel `o` of a resize
from `n` to `m` samples the input at `(o + 0.5) * n / m - 0.5`. Interpolation kernels that
reach outside the image get zero weight there and the remaining weights are renormalised
(for bilinear this equals clamping the coordinate to the border).

Antialiasing. Without antialiasing (the default) the kernel keeps its width when
downscaling, exactly as `tf.image.resize(..., antialias=False)`, `torch.nn.functional.
interpolate` and Keras do, i.e. what the learned-resizer and saliency papers' frameworks
did. With `antialias=True` the kernel is stretched by the downscaling factor, so every input
pixel contributes (a low-pass filter); that is what `jax.image.resize` does *by default*,
which is why a port that calls it naively silently differs from the papers. Upscaling is
unaffected by the flag.

Why matrices instead of `jax.image.resize`: the weights depend only on static shapes, so they
are built once in NumPy at trace time and the resize becomes two contractions: no gathers,
and gradients are plain matmuls too. When a matrix's band is regular (every integer
downscaling factor, e.g. the papers' 448→224) and at least 4× narrower than the input, the
contraction runs as its K = ceil(support) weighted strided slices instead (`taps.py`): K
multiply-adds per output instead of the dense row's `in_size`, most of them by zero (for the
learned resizer's two resizes at 448→224: 2.56 GFLOPs/image dense, 6 MFLOPs as slices, 20-40×
faster forward and backward on CPU). Upscaling and irregular factors keep the dense product,
except on CPU for float32 images with the native kernels: there, when a band is at least 4×
narrower than its input, the resize is one native pass over both axes' bands
(`banded_resize.py`; its gradient is the same pass with the transposed bands).

TensorFlow's bicubic kernel (`resize_bicubic`) reads its weights from a 1024-entry table, so
its results differ from the exact Keys cubic used here by up to ~2e-4 (on values in [0, 1])
when the sample positions are not multiples of 1/1024; for scale factors that are powers of
two (448→224, 64→128, ...) the positions are exact and both agree to float precision.
"""

from __future__ import annotations

import functools

import jax.numpy as jnp
import numpy as np
from jax import lax

from resize_jax.ops import banded_resize as banded
from resize_jax.ops.banded_resize import banded_resize
from resize_jax.ops.checks import (
    check_bool,
    check_choice,
    check_images,
    check_size_pair,
    warn_if_nchw,
)
from resize_jax.ops.taps import Taps, apply_taps, regular_taps

METHODS = ("nearest", "bilinear", "bicubic", "lanczos3", "lanczos5")


def _triangle(x: np.ndarray) -> np.ndarray:
    return np.maximum(0.0, 1.0 - np.abs(x))


def _keys_cubic(x: np.ndarray, a: float = -0.5) -> np.ndarray:
    # Keys (1981) cubic convolution with a = -0.5, the kernel of TF 2 and jax.image.
    x = np.abs(x)
    near = ((a + 2.0) * x - (a + 3.0)) * x * x + 1.0
    far = ((a * x - 5.0 * a) * x + 8.0 * a) * x - 4.0 * a
    return np.where(x <= 1.0, near, np.where(x < 2.0, far, 0.0))


def _lanczos(x: np.ndarray, radius: int) -> np.ndarray:
    x = np.abs(x)
    return np.where(x < radius, np.sinc(x) * np.sinc(x / radius), 0.0)


_KERNELS = {
    "bilinear": _triangle,
    "bicubic": _keys_cubic,
    "lanczos3": functools.partial(_lanczos, radius=3),
    "lanczos5": functools.partial(_lanczos, radius=5),
}


@functools.lru_cache(maxsize=256)
def interpolation_matrix(
    in_size: int, out_size: int, method: str = "bilinear", antialias: bool = False
) -> np.ndarray:
    """Returns the resize weights `f64[out_size, in_size]` along one axis (half-pixel centres).

    Row `o` holds the weights of the input samples that make output sample `o`; rows sum to 1.
    Cached: the same shapes reuse one NumPy constant across traces.
    """
    check_choice(method, "method", METHODS)
    scale = out_size / in_size
    centres = (np.arange(out_size) + 0.5) / scale - 0.5
    if method == "nearest":
        # TF 2 / jax.image rule: floor of the half-pixel position, clamped to the image.
        index = np.minimum(np.floor((np.arange(out_size) + 0.5) / scale), in_size - 1)
        weights = np.zeros((out_size, in_size))
        weights[np.arange(out_size), index.astype(np.int64)] = 1.0
    else:
        kernel = _KERNELS[method]
        # Antialiasing widens the kernel by the downscaling factor; upscaling never does.
        width = max(1.0 / scale, 1.0) if antialias else 1.0
        weights = kernel((np.arange(in_size)[None, :] - centres[:, None]) / width)
        total = weights.sum(axis=1, keepdims=True)
        # Out-of-image taps are absent; renormalising keeps flat images flat.
        weights = weights / np.where(np.abs(total) > 1e-12, total, 1.0)
    weights.setflags(write=False)  # Shared through the cache.
    return weights


@functools.lru_cache(maxsize=256)
def resize_taps(in_size: int, out_size: int, method: str, antialias: bool) -> Taps | None:
    """The regular band of `interpolation_matrix(...)` when applying it as strided slices
    beats the dense product, else None (see `_use_taps`)."""
    taps = regular_taps(interpolation_matrix(in_size, out_size, method, antialias))
    return taps if taps is not None and _use_taps(in_size, taps) else None


def _use_taps(in_size: int, taps: Taps) -> bool:
    # Dense: in_size multiply-adds per output in one matmul; taps: K elementwise passes.
    # Measured on CPU (2 cores, XLA): slices win from about 4 times fewer operations.
    return taps.weights.shape[0] * _TAPS_ADVANTAGE <= in_size


# How many times cheaper in operations the slices must be to be used (see `_use_taps`).
_TAPS_ADVANTAGE = 4


def _resize_axis(x, axis, out_size, method, antialias, precision, use_taps=True):
    """Resizes `x` along `axis` (1: rows, 2: columns) to `out_size`."""
    in_size = x.shape[axis]
    if method == "nearest":
        # A gather, not a 0/1 matrix product: 0 · NaN is NaN, so a product would spread one
        # NaN pixel over its whole row or column instead of the outputs that copy it.
        index = np.argmax(interpolation_matrix(in_size, out_size, method, antialias), axis=1)
        return jnp.take(x, jnp.asarray(index, jnp.int32), axis=axis)
    taps = resize_taps(in_size, out_size, method, antialias) if use_taps else None
    if taps is not None:
        return apply_taps(x, taps, axis, out_size)
    matrix = jnp.asarray(interpolation_matrix(in_size, out_size, method, antialias), x.dtype)
    spec = "oh,bhwc->bowc" if axis == 1 else "ow,bhwc->bhoc"
    return jnp.einsum(spec, matrix, x, precision=precision)


def _banded_applies(images, in_shape, out_shape, method: str, antialias: bool) -> bool:
    """Whether the resize runs as one native banded pass (`banded_resize.py`): on CPU, float32,
    when an axis would otherwise be a dense product and every resized axis' band is at least
    `_TAPS_ADVANTAGE` times narrower than its input."""
    if method == "nearest" or not banded.eligible(images):
        return False
    resized = [(n, m) for n, m in zip(in_shape, out_shape, strict=True) if n != m]
    matrices = [interpolation_matrix(n, m, method, antialias) for n, m in resized]
    return any(resize_taps(n, m, method, antialias) is None for n, m in resized) and all(
        banded.cheaper_than_dense(matrix, _TAPS_ADVANTAGE) for matrix in matrices
    )


def resize(
    images: jnp.ndarray,
    output_shape: tuple[int, int],
    *,
    method: str = "bilinear",
    antialias: bool = False,
    precision=lax.Precision.HIGHEST,
) -> jnp.ndarray:
    """Resizes a batch of images.

    Args:
      images: f[B, H, W, C], any floating dtype (the result has the same dtype).
      output_shape: (out_h, out_w), positive integers; down- or up-scaling, any aspect.
      method: one of "nearest", "bilinear", "bicubic", "lanczos3", "lanczos5".
      antialias: stretch the kernel when downscaling (see the module docstring). Default
        False, as in TensorFlow/PyTorch/Keras and the papers.
      precision: matmul precision of the two contractions (HIGHEST keeps f32 exact on TPU).

    Returns:
      f[B, out_h, out_w, C].

    Raises:
      ValueError: naming the argument, for a wrong rank, integer images, a bad output shape,
        an unknown method or a non-bool `antialias`.
    """
    check_images(images)
    warn_if_nchw(images)
    out_h, out_w = check_size_pair(output_shape, "output_shape")
    check_choice(method, "method", METHODS)
    antialias = check_bool(antialias, "antialias")
    _, in_h, in_w, _ = images.shape
    if _banded_applies(images, (in_h, in_w), (out_h, out_w), method, antialias):
        matrices = [
            interpolation_matrix(n, m, method, antialias) if n != m else np.eye(n)
            for n, m in ((in_h, out_h), (in_w, out_w))
        ]
        return banded_resize(images, *matrices)
    out = images
    # Same size is the identity for every kernel (they vanish at non-zero integers).
    if in_h != out_h:
        out = _resize_axis(out, 1, out_h, method, antialias, precision)
    if in_w != out_w:
        out = _resize_axis(out, 2, out_w, method, antialias, precision)
    return out
