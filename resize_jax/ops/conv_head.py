"""Two conv + bias + leaky ReLU layers whose output is needed only resized and through its
statistics: the learned resizer's full-resolution head (`conv_in`, `conv_mix`).

`leaky_head_resized(x, first, second, slope, spec)` is

    conv2d_same_bias_leaky_resized(conv2d_same_bias_leaky(x, *first, slope), *second, slope, spec)

(`ops/conv_resized.py`). Evaluated without differentiation on CPU, one native call runs both
layers row by row in cache and hands over only the resized rows and the statistics: neither
layer's full-resolution output (448² × 16 floats, 102 MB for a batch of 8) is written. Under
differentiation the two layers run as they do separately, since the backward pass needs both
outputs. The second layer must be 1×1 and the resize one the one-pass kernel takes
(`conv_resized.block_band`); anything else is the composition.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from resize_jax.ops import conv, conv_resized
from resize_jax.ops.conv_resized import Resize, ResizedFeatures
from resize_jax.ops.native.calls import batch_partitioned, map_when_vmapped, on_cpu


def _composition(x, w1, b1, w2, b2, slope: float, spec: Resize) -> ResizedFeatures:
    y = conv.conv2d_same_bias_leaky(x, w1, b1, slope)
    return conv_resized.conv2d_same_bias_leaky_resized(y, w2, b2, slope, spec)


def _xla_head(x, w1, b1, w2, b2, slope: float, spec: Resize):
    """(resize(y), f32[2, C] sums of y and y²) for y the second layer's output, with XLA."""
    y1 = conv._xla_bias_leaky(x, w1, b1, slope)
    _, resized, sums = conv_resized._xla_forward(y1, w2, b2, slope, spec)
    return resized, sums


@functools.lru_cache(maxsize=16)
def _native_head(slope: float, spec: Resize, x_shape: tuple[int, ...]):
    """The native call for one configuration: (x, w1, b1, w2, b2) → as `_xla_head`."""
    band_y, band_x = conv_resized._bands(x_shape, spec)
    weights_y = np.asarray(band_y.weights, np.float32)
    weights_x = np.asarray(band_x.weights, np.float32)

    def native(x, w1, b1, w2, b2, weights_y, weights_x):
        batch, height, width, _ = x.shape
        out_h, out_w, channels = weights_y.shape[1], weights_x.shape[1], w2.shape[3]
        results = (
            jax.ShapeDtypeStruct((batch, out_h, out_w, channels), jnp.float32),
            jax.ShapeDtypeStruct((batch, out_h, 2, channels), jnp.float32),
        )
        call = jax.ffi.ffi_call("resize_jax_conv_head_resized", results)
        return call(
            conv._pad(x, w1.shape[0]),
            w1,
            b1,
            w2,
            b2,
            weights_y,
            weights_x,
            slope=np.float32(slope),
            height=np.int64(height),
            width=np.int64(width),
            start_y=np.int64(band_y.start),
            stride_y=np.int64(band_y.stride),
            start_x=np.int64(band_x.start),
            stride_x=np.int64(band_x.stride),
        )

    rule = "b h w i, k l i m, m, n p m o, o, s q, t r -> b q r o, b q u o"
    partitioned = map_when_vmapped(batch_partitioned(native, rule, 1), fold_first=True)

    def head(x, w1, b1, w2, b2):
        resized, moments = partitioned(
            x, w1, b1, w2, b2, jnp.asarray(weights_y), jnp.asarray(weights_x)
        )
        return resized, jnp.sum(moments, axis=(0, 1))

    return head


@functools.partial(jax.custom_vjp, nondiff_argnums=(5, 6))
def _head(x, w1, b1, w2, b2, slope: float, spec: Resize) -> ResizedFeatures:
    native = _native_head(slope, spec, tuple(x.shape))
    xla = functools.partial(_xla_head, slope=slope, spec=spec)
    resized, sums = on_cpu(native, xla, x, w1, b1, w2, b2)
    return ResizedFeatures(resized, *conv_resized._moments(sums, x.shape))


def _head_fwd(x, w1, b1, w2, b2, slope, spec):
    # The backward pass needs both layers' outputs: the layers as they run separately.
    y1 = conv._conv_bias_leaky(x, w1, b1, slope)
    y2, resized, sums = conv_resized._forward(y1, w2, b2, slope, spec)
    features = ResizedFeatures(resized, *conv_resized._moments(sums, y1.shape))
    return features, (x, w1, y1, w2, y2)


def _head_bwd(slope, spec, residuals, cotangents):
    x, w1, y1, w2, y2 = residuals
    dy1, dw2, db2 = conv_resized._fused_bwd(slope, spec, (y1, w2, y2), cotangents)
    dx, dw1, db1 = conv._conv_bias_leaky_bwd(slope, (x, w1, y1), dy1)
    return dx, dw1, db1, dw2, db2


_head.defvjp(_head_fwd, _head_bwd)


def head_eligible(x, first, second, slope, spec: Resize) -> bool:
    """Whether `leaky_head_resized` takes the native path (when run on CPU)."""
    (w1, b1), (w2, b2) = first, second
    if w2.ndim != 4 or w2.shape[:2] != (1, 1) or w1.ndim != 4:
        return False
    y = jax.ShapeDtypeStruct((*x.shape[:3], w1.shape[-1]), x.dtype)
    return conv.bias_leaky_eligible(x, w1, b1, slope) and conv_resized.fused_eligible(
        y, w2, b2, slope, spec
    )


def leaky_head_resized(
    x: jnp.ndarray,
    first: tuple[jnp.ndarray, jnp.ndarray],
    second: tuple[jnp.ndarray, jnp.ndarray],
    negative_slope: float,
    spec: Resize,
) -> ResizedFeatures:
    """Two conv + bias + leaky ReLU layers, the second's output as `ResizedFeatures`.

    Args:
      x: f[B, H, W, C]; first: (w1 f[K, K, C, C1], b1 f[C1]), K odd; second:
        (w2 f[K2, K2, C1, C2], b2 f[C2]).
      negative_slope: both layers' leaky ReLU slope.
      spec: the resize applied to the second layer's output.

    Returns:
      As `conv2d_same_bias_leaky_resized` of the second layer; differentiable (reverse mode).
    """
    spec = conv_resized.checked_resize(spec)
    (w1, b1), (w2, b2) = first, second
    if b1.shape != (w1.shape[-1],) or b2.shape != (w2.shape[-1],):
        raise ValueError(
            f"the biases must match the kernels' output channels: got {b1.shape} for "
            f"{w1.shape} and {b2.shape} for {w2.shape}."
        )
    if head_eligible(x, first, second, negative_slope, spec):
        return _head(x, w1, b1, w2, b2, float(negative_slope), spec)
    return _composition(x, w1, b1, w2, b2, float(negative_slope), spec)


__all__ = ["head_eligible", "leaky_head_resized"]
