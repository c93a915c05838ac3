"""A convolution layer whose output is only needed resized and through its statistics.

The learned resizer's full-resolution head ends in `conv_mix` (1x1, bias, leaky ReLU) and a
BatchNorm that is applied after the feature resize (`frontends/resized_batch_norm.py`): of
the 448² × 16 output y, the rest of the network needs only `resize(y)` and the per-channel
mean and mean square of y. Computed separately, that is one pass to write y and three more
to read it (two statistics, one resize), and XLA, finding the resize cheap, fuses a copy of
it into every consumer of the small result, each one re-reading the large y.

`conv2d_same_bias_leaky_resized(x, w, b, slope, resize)` returns all three from the
convolution's own pass on CPU: a native kernel computes a block of output rows, then, while
they are in cache, their sums, sums of squares and the resized row they map to. That takes a
resize by an integer factor whose band of taps stays inside each block of `factor` inputs
(e.g. bilinear without antialiasing at an even factor: 448 → 224); any other resize, backend
or dtype is the plain composition, with the same results.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from resize_jax.ops.checks import check_bool, check_choice, check_size_pair
from resize_jax.ops.conv import (
    _conv_native_bwd,
    _pad,
    _xla_bias_leaky,
    bias_leaky_eligible,
    conv2d_same_bias_leaky,
)
from resize_jax.ops.native.calls import batch_partitioned, map_when_vmapped, on_cpu
from resize_jax.ops.resize import METHODS, interpolation_matrix, resize
from resize_jax.ops.taps import Taps, regular_taps


class Resize(NamedTuple):
    """`ops.resize` with its settings bound: `Resize(output_shape, method, antialias)(images)`.

    A value (hashable, comparable) rather than a closure, so a layer can read its settings."""

    output_shape: tuple[int, int]
    method: str = "bilinear"
    antialias: bool = False

    def __call__(self, images: jnp.ndarray) -> jnp.ndarray:
        """images: f[B, H, W, C] → f[B, out_h, out_w, C]."""
        return resize(images, self.output_shape, method=self.method, antialias=self.antialias)


class ResizedFeatures(NamedTuple):
    """A layer's output y: f[B, H, W, C] as the next layers need it."""

    resized: jnp.ndarray  # f[B, out_h, out_w, C]: resize(y)
    mean: jnp.ndarray  # f32[C]: y's mean over B, H, W
    mean_of_squares: jnp.ndarray  # f32[C]: y²'s mean over B, H, W


@functools.lru_cache(maxsize=64)
def block_band(in_size: int, out_size: int, method: str, antialias: bool) -> Taps | None:
    """The taps of one axis of the resize when each output reads only inside its own block
    of `in_size / out_size` inputs (the native kernel's condition), else None."""
    if in_size == out_size:  # ops.resize leaves the axis as it is.
        return Taps(0, 1, np.ones((1, out_size)))
    if in_size % out_size:
        return None
    taps = regular_taps(interpolation_matrix(in_size, out_size, method, antialias))
    if taps is None or taps.stride != in_size // out_size:
        return None
    if taps.start < 0 or taps.start + taps.weights.shape[0] > taps.stride:
        return None
    return taps


def checked_resize(spec) -> Resize:
    """`spec` with its output shape as Python ints, or an error naming the bad field."""
    if not isinstance(spec, Resize):
        raise TypeError(f"`spec` must be an ops.Resize, got {type(spec).__name__}.")
    return Resize(
        check_size_pair(spec.output_shape, "spec.output_shape"),
        check_choice(spec.method, "spec.method", METHODS),
        check_bool(spec.antialias, "spec.antialias"),
    )


def _composition(x, w, b, slope: float, spec: Resize) -> ResizedFeatures:
    y = conv2d_same_bias_leaky(x, w, b, slope)
    stats = y.astype(jnp.promote_types(y.dtype, jnp.float32))
    return ResizedFeatures(
        spec(y), jnp.mean(stats, axis=(0, 1, 2)), jnp.mean(jnp.square(stats), axis=(0, 1, 2))
    )


def _bands(x_shape, spec: Resize) -> tuple[Taps, Taps]:
    (out_h, out_w), (in_h, in_w) = spec.output_shape, x_shape[1:3]
    return (
        block_band(in_h, out_h, spec.method, spec.antialias),
        block_band(in_w, out_w, spec.method, spec.antialias),
    )


def _xla_forward(x, w, b, slope: float, spec: Resize):
    """(y, resize(y), f32[2, C] sums of y and y²) with XLA's operations."""
    y = _xla_bias_leaky(x, w, b, slope)
    sums = jnp.stack([jnp.sum(y, axis=(0, 1, 2)), jnp.sum(jnp.square(y), axis=(0, 1, 2))])
    return y, spec(y), sums


@functools.lru_cache(maxsize=16)
def _native_forward(slope: float, spec: Resize, x_shape: tuple[int, ...]):
    """The native call for one layer configuration: (x, w, b) → as `_xla_forward`."""
    band_y, band_x = _bands(x_shape, spec)
    weights_y = np.asarray(band_y.weights, np.float32)
    weights_x = np.asarray(band_x.weights, np.float32)

    def native(x, w, b, weights_y, weights_x):
        batch, height, width, _ = x.shape
        out_h, out_w, channels = weights_y.shape[1], weights_x.shape[1], w.shape[3]
        results = (
            jax.ShapeDtypeStruct((batch, height, width, channels), jnp.float32),
            jax.ShapeDtypeStruct((batch, out_h, out_w, channels), jnp.float32),
            jax.ShapeDtypeStruct((batch, out_h, 2, channels), jnp.float32),
        )
        call = jax.ffi.ffi_call("resize_jax_conv_vec_out_bias_leaky_resized", results)
        y, resized, moments = call(
            _pad(x, w.shape[0]),
            w,
            b,
            weights_y,
            weights_x,
            slope=np.float32(slope),
            start_y=np.int64(band_y.start),
            stride_y=np.int64(band_y.stride),
            start_x=np.int64(band_x.start),
            stride_x=np.int64(band_x.stride),
        )
        return y, resized, moments

    rule = "b h w i, k l i o, o, s p, t q -> b h w o, b p q o, b p r o"
    partitioned = map_when_vmapped(batch_partitioned(native, rule, 1), fold=1)

    def forward(x, w, b):
        # The band weights are arguments: a partitioned function may not close over arrays.
        y, resized, moments = partitioned(x, w, b, jnp.asarray(weights_y), jnp.asarray(weights_x))
        # Per-(example, row block) partial sums: summed here, so across devices when sharded.
        return y, resized, jnp.sum(moments, axis=(0, 1))

    return forward


def _forward(x, w, b, slope: float, spec: Resize):
    native = _native_forward(slope, spec, tuple(x.shape))
    return on_cpu(native, functools.partial(_xla_forward, slope=slope, spec=spec), x, w, b)


def _moments(sums, x_shape) -> tuple[jnp.ndarray, jnp.ndarray]:
    count = x_shape[0] * x_shape[1] * x_shape[2]
    return sums[0] / count, sums[1] / count


@functools.partial(jax.custom_vjp, nondiff_argnums=(3, 4))
def _fused(x, w, b, slope: float, spec: Resize) -> ResizedFeatures:
    _, resized, sums = _forward(x, w, b, slope, spec)
    return ResizedFeatures(resized, *_moments(sums, x.shape))


def _fused_fwd(x, w, b, slope, spec):
    y, resized, sums = _forward(x, w, b, slope, spec)
    return ResizedFeatures(resized, *_moments(sums, x.shape)), (x, w, y)


def _fused_bwd(slope, spec, residuals, cotangents):
    x, w, y = residuals
    g_resized, g_mean, g_mean_of_squares = cotangents
    count = x.shape[0] * x.shape[1] * x.shape[2]
    g = jax.vjp(spec, y)[1](g_resized)[0] + (g_mean + 2 * g_mean_of_squares * y) / count
    # slope > 0: y's sign is the pre-activation's (as in conv2d_same_bias_leaky).
    g = jnp.where(y >= 0, g, slope * g)
    dx, dw = _conv_native_bwd((x, w), g)
    return dx, dw, jnp.sum(g, axis=(0, 1, 2))


_fused.defvjp(_fused_fwd, _fused_bwd)


def fused_eligible(x: jnp.ndarray, w: jnp.ndarray, b: jnp.ndarray, slope, spec: Resize) -> bool:
    """Whether `conv2d_same_bias_leaky_resized` takes the one-pass path (when run on CPU)."""
    return bias_leaky_eligible(x, w, b, slope) and None not in _bands(x.shape, spec)


def conv2d_same_bias_leaky_resized(
    x: jnp.ndarray, w: jnp.ndarray, b: jnp.ndarray, negative_slope: float, spec: Resize
) -> ResizedFeatures:
    """y = `conv2d_same_bias_leaky(x, w, b, negative_slope)`, returned as `spec(y)` and y's
    per-channel mean and mean square.

    Args:
      x: f[B, H, W, CI]; w: f[K, K, CI, CO], K odd; b: f[CO].
      negative_slope: the leaky ReLU's slope for negative inputs.
      spec: the resize applied to y.

    Returns:
      `ResizedFeatures(resized f[B, out_h, out_w, CO], mean f32[CO], mean_of_squares f32[CO])`,
      differentiable in x, w and b (reverse mode).
    """
    spec = checked_resize(spec)
    if b.shape != (w.shape[-1],):
        raise ValueError(f"`b` must be f[{w.shape[-1]}] to match `w` {w.shape}, got {b.shape}.")
    if fused_eligible(x, w, b, negative_slope, spec):
        return _fused(x, w, b, float(negative_slope), spec)
    return _composition(x, w, b, float(negative_slope), spec)


__all__ = ["Resize", "ResizedFeatures", "block_band", "conv2d_same_bias_leaky_resized"]
