"""Two conv + bias + leaky ReLU layers whose output is needed only resized and through its
statistics: the learned resizer's full-resolution head (`conv_in`, `conv_mix`).

`leaky_head_resized(x, first, second, slope, spec)` is

    conv2d_same_bias_leaky_resized(conv2d_same_bias_leaky(x, *first, slope), *second, slope, spec)

(`ops/conv_resized.py`). On CPU one native call runs both layers row by row in cache and hands
over only the resized rows and the statistics: in inference neither layer's full-resolution
output (448² × 16 floats, 102 MB for a batch of 8) is written; under differentiation only the
first layer's, which the backward pass reads. The parameters' gradients are one more native
pass: row by row it recomputes the second layer, takes the gradient back through the resize,
the statistics, both activations and the 1×1 layer, and accumulates both layers' weight and
bias gradients, so no gradient is written at full resolution either. When the input needs a
gradient too, the backward pass is the layers' own, run separately.

The second layer must be 1×1 and the resize one the one-pass kernel takes
(`conv_resized.block_band`); anything else is the composition.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
from jax.custom_derivatives import SymbolicZero

from resize_jax.ops import conv, conv_resized
from resize_jax.ops.conv_resized import Resize, ResizedFeatures
from resize_jax.ops.native.calls import batch_partitioned, map_when_vmapped, on_cpu


def _composition(x, w1, b1, w2, b2, slope: float, spec: Resize) -> ResizedFeatures:
    y = conv.conv2d_same_bias_leaky(x, w1, b1, slope)
    return conv_resized.conv2d_same_bias_leaky_resized(y, w2, b2, slope, spec)


def _xla_head(x, w1, b1, w2, b2, slope: float, spec: Resize):
    """(y1, resize(y2), f32[2, C2] sums of y2 and y2²) for y1, y2 the layers' outputs, with
    XLA."""
    y1 = conv._xla_bias_leaky(x, w1, b1, slope)
    _, resized, sums = conv_resized._xla_forward(y1, w2, b2, slope, spec)
    return y1, resized, sums


def _band_arrays(spec: Resize, x_shape) -> tuple[np.ndarray, np.ndarray, dict[str, np.int64]]:
    """The resize's band weights f32[taps, out] along y and x and their starts and strides."""
    band_y, band_x = conv_resized._bands(x_shape, spec)
    attributes = {
        "start_y": np.int64(band_y.start),
        "stride_y": np.int64(band_y.stride),
        "start_x": np.int64(band_x.start),
        "stride_x": np.int64(band_x.stride),
    }
    return (
        np.asarray(band_y.weights, np.float32),
        np.asarray(band_x.weights, np.float32),
        attributes,
    )


@functools.lru_cache(maxsize=16)
def _native_head(slope: float, spec: Resize, x_shape: tuple[int, ...], keep_first: bool):
    """The native call for one configuration: (x, w1, b1, w2, b2) → as `_xla_head`, without
    y1 unless `keep_first`."""
    weights_y, weights_x, bands = _band_arrays(spec, x_shape)

    def native(x, w1, b1, w2, b2, weights_y, weights_x):
        batch, height, width, _ = x.shape
        out_h, out_w, channels = weights_y.shape[1], weights_x.shape[1], w2.shape[3]
        results = (
            jax.ShapeDtypeStruct((batch, out_h, out_w, channels), jnp.float32),
            jax.ShapeDtypeStruct((batch, out_h, 2, channels), jnp.float32),
        )
        target = "resize_jax_conv_head_resized"
        if keep_first:
            first = jax.ShapeDtypeStruct((batch, height, width, w1.shape[3]), jnp.float32)
            results, target = (first, *results), target + "_keep_first"
        call = jax.ffi.ffi_call(target, results)
        return call(
            x,
            w1,
            b1,
            w2,
            b2,
            weights_y,
            weights_x,
            slope=np.float32(slope),
            height=np.int64(height),
            width=np.int64(width),
            **bands,
        )

    operands, results = "b h w i, k l i m, m, n p m o, o, s q, t r", "b q r o, b q u o"
    rule = f"{operands} -> {'b h w m, ' if keep_first else ''}{results}"
    partitioned = map_when_vmapped(batch_partitioned(native, rule, 1), fold=1)

    def head(x, w1, b1, w2, b2):
        *results, moments = partitioned(
            x, w1, b1, w2, b2, jnp.asarray(weights_y), jnp.asarray(weights_x)
        )
        return (*results, jnp.sum(moments, axis=(0, 1)))

    return head


@functools.lru_cache(maxsize=16)
def _native_head_grad(slope: float, spec: Resize, x_shape: tuple[int, ...]):
    """The native parameter gradients for one configuration: (x, y1, w1, w2, b2, g_resized,
    g_sums) → (dw1, db1, dw2, db2), g_sums f32[2, C2] being the gradients of y2's per-channel
    sum and sum of squares over the batch."""
    weights_y, weights_x, bands = _band_arrays(spec, x_shape)

    def native(x, y1, g_resized, w1, w2, b2, g_sums, weights_y, weights_x):
        batch, (size, _, in_channels, hidden), out_channels = x.shape[0], w1.shape, w2.shape[3]
        results = (
            jax.ShapeDtypeStruct((batch, size, size, in_channels, hidden), jnp.float32),
            jax.ShapeDtypeStruct((batch, hidden), jnp.float32),
            jax.ShapeDtypeStruct((batch, 1, 1, hidden, out_channels), jnp.float32),
            jax.ShapeDtypeStruct((batch, out_channels), jnp.float32),
        )
        call = jax.ffi.ffi_call("resize_jax_conv_head_resized_grad", results)
        return call(
            x,
            y1,
            g_resized,
            w1,
            w2,
            jnp.swapaxes(w2, 2, 3),
            b2,
            g_sums,
            weights_y,
            weights_x,
            slope=np.float32(slope),
            **bands,
        )

    rule = (
        "b h w i, b h w m, b q r o, k l i m, n p m o, o, s o, t q, u r"
        " -> b k l i m, b m, b n p m o, b o"
    )
    # Per-example gradients: the batch split of a sharded step carries through the call and
    # the sum over examples is XLA's (an all-reduce when sharded).
    partitioned = map_when_vmapped(batch_partitioned(native, rule, 3), fold=3)

    def grads(x, y1, w1, w2, b2, g_resized, g_sums):
        per_example = partitioned(
            x, y1, g_resized, w1, w2, b2, g_sums, jnp.asarray(weights_y), jnp.asarray(weights_x)
        )
        return tuple(jnp.sum(g, axis=0) for g in per_example)

    return grads


def _head_values(x, w1, b1, w2, b2, slope: float, spec: Resize, keep_first: bool):
    """As `_xla_head`, without y1 unless `keep_first`."""
    native = _native_head(slope, spec, tuple(x.shape), keep_first)

    def xla(*args):
        values = _xla_head(*args, slope=slope, spec=spec)
        return values if keep_first else values[1:]

    return on_cpu(native, xla, x, w1, b1, w2, b2)


@functools.partial(jax.custom_vjp, nondiff_argnums=(5, 6))
def _head(x, w1, b1, w2, b2, slope: float, spec: Resize) -> ResizedFeatures:
    resized, sums = _head_values(x, w1, b1, w2, b2, slope, spec, keep_first=False)
    return ResizedFeatures(resized, *conv_resized._moments(sums, x.shape))


def _head_fwd(x, w1, b1, w2, b2, slope, spec):
    # Called with symbolic zeros: `perturbed` says whether the input needs a gradient.
    x_grad = x.perturbed
    x, w1, b1, w2, b2 = (a.value for a in (x, w1, b1, w2, b2))
    y1, resized, sums = _head_values(x, w1, b1, w2, b2, slope, spec, keep_first=True)
    features = ResizedFeatures(resized, *conv_resized._moments(sums, x.shape))
    # The second layer's output is recomputed in the backward pass rather than stored.
    return features, (x, w1, y1, w2, b2, x_grad)


def _separate_bwd(slope, spec, x, w1, y1, w2, b2, cotangents):
    """The backward pass of the layers as they run separately (with the input's gradient)."""
    y2 = conv._conv_bias_leaky(y1, w2, b2, slope)
    dy1, dw2, db2 = conv_resized._fused_bwd(slope, spec, (y1, w2, y2), cotangents)
    dx, dw1, db1 = conv._conv_bias_leaky_bwd(slope, (x, w1, y1), dy1)
    return dx, dw1, db1, dw2, db2


def _head_bwd(slope, spec, residuals, cotangents):
    x, w1, y1, w2, b2, x_grad = residuals
    cotangents = ResizedFeatures(
        *(jnp.zeros(c.shape, c.dtype) if isinstance(c, SymbolicZero) else c for c in cotangents)
    )
    if x_grad:
        return _separate_bwd(slope, spec, x, w1, y1, w2, b2, cotangents)
    # The parameters' gradients only: on CPU one native pass, with nothing written at full
    # resolution (the gradient reaching the first layer's output lives a row at a time).
    native = _native_head_grad(slope, spec, tuple(x.shape))
    count = x.shape[0] * x.shape[1] * x.shape[2]

    def on_native(x, y1, w1, w2, b2, g_resized, g_mean, g_mean_of_squares):
        g_sums = jnp.stack([g_mean, 2 * g_mean_of_squares]).astype(jnp.float32) / count
        return native(x, y1, w1, w2, b2, g_resized, g_sums)

    def on_xla(x, y1, w1, w2, b2, *cotangents):
        return _separate_bwd(slope, spec, x, w1, y1, w2, b2, ResizedFeatures(*cotangents))[1:]

    dw1, db1, dw2, db2 = on_cpu(on_native, on_xla, x, y1, w1, w2, b2, *cotangents)
    return None, dw1, db1, dw2, db2


_head.defvjp(_head_fwd, _head_bwd, symbolic_zeros=True)


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
