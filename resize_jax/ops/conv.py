"""Stride-1 'SAME' convolutions with native CPU kernels for narrow layers.

`conv2d_same(x, w)` equals `lax.conv_general_dilated(x, w, (1, 1), "SAME", NHWC/HWIO/NHWC)`
for an odd square kernel. On CPU, when the native kernels are available
(`resize_jax.ops.native`) and one side of the layer has a multiple of 16 channels, the
forward pass, the input gradient and the weight gradient run as direct convolutions
vectorised over those 16 channels; XLA:CPU runs the learned resizer's 3 -> 16 and 16 -> 3
layers at a fraction of that speed (README, Performance). Every other case, and every other
backend, is XLA's convolution, so the function is a drop-in everywhere.

`conv2d_same_bias_leaky(x, w, b, slope)` is `leaky_relu(conv2d_same(x, w) + b)` with the
bias and activation applied inside the native forward kernel (the learned resizer's first
two layers): the output is written once, not written, read back and written again.

`conv_general_dilated` has `lax.conv_general_dilated`'s signature for `flax.linen.Conv`'s
`conv_general_dilated` field: it routes the stride-1 SAME NHWC case to `conv2d_same`, and,
where the native kernels take the layer, a dilated SAME layer (as the undilated convolution
of its phase images) and a strided "SAME" layer (every s-th pixel of the stride-1 output);
everything else passes through unchanged.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from resize_jax.ops import native
from resize_jax.ops.native.calls import (
    batch_partitioned,
    map_when_vmapped,
    on_cpu,
    placed_on_cpu,
)

_NHWC = ("NHWC", "HWIO", "NHWC")
_LANES = 16


def _xla_conv(x: jnp.ndarray, w: jnp.ndarray) -> jnp.ndarray:
    pad = w.shape[0] // 2
    return lax.conv_general_dilated(x, w, (1, 1), [(pad, pad)] * 2, dimension_numbers=_NHWC)


def _pad(x: jnp.ndarray, kernel_size: int) -> jnp.ndarray:
    pad = kernel_size // 2
    return jnp.pad(x, ((0, 0), (pad, pad), (pad, pad), (0, 0)))


def _ffi(target: str, shape: tuple[int, ...], *args: jnp.ndarray) -> jnp.ndarray:
    result = jax.ShapeDtypeStruct(shape, jnp.float32)
    return jax.ffi.ffi_call(target, result, vmap_method="sequential")(*args)


def _native_forward(x: jnp.ndarray, w: jnp.ndarray) -> jnp.ndarray:
    """x: f32[B, H, W, CI], w: f32[K, K, CI, CO] → f32[B, H, W, CO]; CO or CI % 16 == 0."""
    size, _, in_channels, out_channels = w.shape
    shape = (*x.shape[:3], out_channels)
    if out_channels % _LANES == 0:
        return _ffi("resize_jax_conv_vec_out", shape, _pad(x, size), w)
    del in_channels  # Vectorised over the input channels: weights as [K, K, CO, CI].
    return _ffi("resize_jax_conv_vec_in", shape, _pad(x, size), jnp.swapaxes(w, 2, 3))


# The native weight gradient returns one gradient per example (below); above this size it is
# XLA's weight gradient instead.
_PER_EXAMPLE_GRADIENT_BYTES = 64 << 20


def _native_example_grads(x: jnp.ndarray, g: jnp.ndarray, w: jnp.ndarray) -> jnp.ndarray:
    """f32[B, K, K, CI, CO]: example b's Σ_{y,x} x_pad[b, y+ky, x+kx, ci] · g[b, y, x, co].

    Per-example sums keep the batch axis in the output, so the batch split of a sharded step
    carries through this call and the sum over examples is XLA's (an all-reduce when sharded).
    `w` only gives the kernel size.
    """
    size, batch = w.shape[0], x.shape[0]
    in_channels, out_channels = x.shape[-1], g.shape[-1]
    if out_channels % _LANES == 0:
        shape = (batch, size, size, in_channels, out_channels)
        return _ffi("resize_jax_conv_weight_grad", shape, _pad(x, size), g)
    # Vectorise over CI instead: with q = position in x, the same sum reads
    # Σ_q g_pad[q + (K-1-k)] · x[q], the kernel's weight gradient with the roles swapped and
    # the taps reversed.
    shape = (batch, size, size, out_channels, in_channels)
    swapped = _ffi("resize_jax_conv_weight_grad", shape, _pad(g, size), x)
    return jnp.swapaxes(swapped[:, ::-1, ::-1], 3, 4)


_forward_cpu = map_when_vmapped(
    batch_partitioned(_native_forward, "b h w i, k l i o -> b h w o", 1), fold=1
)
_example_grads_cpu = map_when_vmapped(
    batch_partitioned(_native_example_grads, "b h w i, b h w o, k l i o -> b k l i o", 2), fold=2
)


def _forward(x: jnp.ndarray, w: jnp.ndarray) -> jnp.ndarray:
    if w.shape[0] == 1:
        # A 1x1 layer is a matrix product; XLA's is as fast as a direct loop (memory-bound).
        return _xla_conv(x, w)
    return on_cpu(_forward_cpu, _xla_conv, x, w)


def _xla_weight_grad(x: jnp.ndarray, g: jnp.ndarray, w: jnp.ndarray) -> jnp.ndarray:
    return jax.vjp(lambda kernel: _xla_conv(x, kernel), w)[1](g)[0]


@jax.custom_vjp
def _conv_native(x: jnp.ndarray, w: jnp.ndarray) -> jnp.ndarray:
    return _forward(x, w)


def _conv_native_fwd(x, w):
    return _forward(x, w), (x, w)


def _conv_native_bwd(residuals, g):
    x, w = residuals
    # The input gradient of a SAME convolution is the SAME convolution of g with the kernel
    # flipped in space and transposed in channels (odd K, stride 1).
    dx = conv2d_same(g, jnp.swapaxes(w[::-1, ::-1], 2, 3))
    if x.shape[0] * w.size * 4 <= _PER_EXAMPLE_GRADIENT_BYTES:
        native_fn = lambda x, g, w: jnp.sum(_example_grads_cpu(x, g, w), axis=0)
        dw = on_cpu(native_fn, _xla_weight_grad, x, g, w)
    else:
        dw = _xla_weight_grad(x, g, w)
    return dx, dw


_conv_native.defvjp(_conv_native_fwd, _conv_native_bwd)


def native_eligible(x: jnp.ndarray, w: jnp.ndarray) -> bool:
    """Whether `conv2d_same(x, w)` uses the native CPU kernels (when run on CPU)."""
    return (
        x.ndim == 4
        and w.ndim == 4
        and x.dtype == jnp.float32
        and w.dtype == jnp.float32
        and w.shape[0] == w.shape[1]
        and w.shape[0] % 2 == 1
        and x.shape[-1] == w.shape[2]
        and (w.shape[2] % _LANES == 0 or w.shape[3] % _LANES == 0)
        and placed_on_cpu()
        and native.available()
    )


def conv2d_same(x: jnp.ndarray, w: jnp.ndarray) -> jnp.ndarray:
    """Stride-1 convolution with zero 'SAME' padding.

    Args:
      x: f[B, H, W, CI] images or features.
      w: f[K, K, CI, CO] kernel (HWIO), K odd.

    Returns:
      f[B, H, W, CO]. Differentiable in both arguments (reverse mode).
    """
    if w.ndim != 4 or w.shape[0] != w.shape[1] or w.shape[0] % 2 != 1:
        raise ValueError(f"`w` must be f[K, K, CI, CO] with odd K, got shape {w.shape}.")
    if x.ndim != 4 or x.shape[-1] != w.shape[2]:
        raise ValueError(
            f"`x` must be f[B, H, W, {w.shape[2]}] to match `w` {w.shape}, got shape {x.shape}."
        )
    if native_eligible(x, w):
        return _conv_native(x, w)
    return _xla_conv(x, w)


def _is_same_padding(padding, kernel_size: int, dilation: int = 1) -> bool:
    if isinstance(padding, str):
        return padding.upper() == "SAME"
    half = dilation * (kernel_size // 2)
    return [tuple(p) for p in padding] == [(half, half)] * 2


def _square(values) -> int | None:
    """The common value of a square stride or dilation (1 when None), else None."""
    if values is None:
        return 1
    distinct = {int(v) for v in values}
    return distinct.pop() if len(distinct) == 1 else None


def _phases(x: jnp.ndarray, d: int) -> jnp.ndarray:
    """x: f[B, H, W, C] (H, W multiples of d) → its d² phase images f[B·d², H/d, W/d, C],
    example-major (so a batch split carries through)."""
    b, h, w, c = x.shape
    phases = x.reshape(b, h // d, d, w // d, d, c).transpose(0, 2, 4, 1, 3, 5)
    return phases.reshape(b * d * d, h // d, w // d, c)


def _unphase(y: jnp.ndarray, d: int) -> jnp.ndarray:
    """The inverse of `_phases`: f[B·d², h, w, C] → f[B, h·d, w·d, C]."""
    bd, h, w, c = y.shape
    y = y.reshape(bd // (d * d), d, d, h, w, c).transpose(0, 3, 1, 4, 2, 5)
    return y.reshape(bd // (d * d), h * d, w * d, c)


def _dilated_by_phases(x: jnp.ndarray, w: jnp.ndarray, dilation: int) -> jnp.ndarray:
    """The stride-1 SAME convolution of x: f[B, H, W, CI] with w dilated by `dilation` (H and
    W multiples of it), as the undilated convolution of each of the dilation² phase images:
    output pixel (d·i + p, d·j + q) reads only input pixels (d·i' + p, d·j' + q), so phase
    (p, q) of the output is `conv2d_same` of phase (p, q) of the input."""
    return _unphase(conv2d_same(_phases(x, dilation), w), dilation)


def _space_to_depth(x: jnp.ndarray, w: jnp.ndarray, stride: int):
    """A strided SAME layer's blocks, kernel and output rows (see
    `_strided_by_space_to_depth`): (blocks f[B, R, C, s²·CI], kernel f[K'', K'', s²·CI, CO],
    start, (out_h, out_w)) with the layer's output `conv2d_same(blocks, kernel)[:, start :
    start + out_h, start : start + out_w]`."""
    size, _, in_channels, out_channels = w.shape
    s = stride
    taps = -(-size // s)  # K'
    lead = 1 - taps % 2  # the zero tap that makes K' odd
    pads, outs = [], []
    for n in x.shape[1:3]:
        out = -(-n // s)
        before = max((out - 1) * s + size - n, 0) // 2
        rows = s * (out + taps - 1)  # the blocks every output reads
        pads.append((before, max(rows - n - before, 0), rows))
        outs.append(out)
    (top, bottom, rows), (left, right, cols) = pads
    x = jnp.pad(x, ((0, 0), (top, bottom), (left, right), (0, 0)))[:, :rows, :cols]
    b = x.shape[0]
    blocks = x.reshape(b, rows // s, s, cols // s, s, in_channels).transpose(0, 1, 3, 2, 4, 5)
    blocks = blocks.reshape(b, rows // s, cols // s, s * s * in_channels)
    # Kernel tap t = s·q + u goes to block tap q, channel group u (zeros past K).
    k = jnp.pad(w, ((0, s * taps - size), (0, s * taps - size), (0, 0), (0, 0)))
    k = k.reshape(taps, s, taps, s, in_channels, out_channels).transpose(0, 2, 1, 3, 4, 5)
    k = k.reshape(taps, taps, s * s * in_channels, out_channels)
    k = jnp.pad(k, ((lead, 0), (lead, 0), (0, 0), (0, 0)))
    return blocks, k, (taps + lead) // 2 - lead, tuple(outs)


def _strided_by_space_to_depth(x: jnp.ndarray, w: jnp.ndarray, stride: int) -> jnp.ndarray:
    """The SAME convolution of x: f[B, H, W, CI] with w: f[K, K, CI, CO] (K odd) at `stride`,
    as a stride-1 convolution of the s×s space-to-depth image (s²·CI channels).

    XLA pads a strided SAME layer by p = max((out − 1)·s + K − in, 0) in total, ⌊p/2⌋ before,
    so output i reads padded rows s·i + t, t < K: block row i + t // s, sub-row t % s. That is
    a K'×K' "valid" convolution of the blocks, K' = ⌈K/s⌉, with the taps regrouped into
    channels; an even K' gets a leading zero tap so that it runs as a SAME odd-sized one. The
    work is the layer's own (s² times less than computing the stride-1 output and keeping
    every s-th pixel) and the output is written once, at its own size.
    """
    if w.shape[0] == 1:
        # A 1×1 layer reads only the pixels it outputs.
        return conv2d_same(x[:, ::stride, ::stride], w)
    blocks, k, start, (out_h, out_w) = _space_to_depth(x, w, stride)
    return conv2d_same(blocks, k)[:, start : start + out_h, start : start + out_w]


def as_valid_layer(x: jnp.ndarray, w: jnp.ndarray, stride: int = 1, dilation: int = 1):
    """A square SAME layer as a stride-1 "valid" one, the form `ops.conv_padded` computes.

    Args:
      x: f[B, H, W, CI]; w: f[K, K, CI, CO], K odd.
      stride, dilation: the layer's (not both above 1); a dilated layer needs H and W
        multiples of the dilation.

    Returns:
      (x_valid, w_valid, restore): the layer's output is `restore(v)` for v the stride-1
      valid convolution of x_valid with w_valid (K'' − 1 rows and columns smaller). Plain:
      x zero-padded by K // 2. Dilated: its phase images, padded (`_dilated_by_phases`).
      Strided: its space-to-depth blocks (`_strided_by_space_to_depth`).
    """
    size = w.shape[0]
    if stride > 1 and dilation > 1:
        raise ValueError(f"A layer with both stride {stride} and dilation {dilation}.")
    if stride > 1 and size > 1:
        blocks, k, start, (out_h, out_w) = _space_to_depth(x, w, stride)
        half = k.shape[0] // 2
        padded = _pad(blocks, k.shape[0])
        rows, cols = out_h + 2 * half, out_w + 2 * half
        return padded[:, start : start + rows, start : start + cols], k, lambda y: y
    if stride > 1:
        x = x[:, ::stride, ::stride]
    if dilation > 1 and size > 1:
        return _pad(_phases(x, dilation), size), w, lambda y: _unphase(y, dilation)
    return _pad(x, size), w, lambda y: y


def _all_ones(values: Sequence[int] | None) -> bool:
    return values is None or all(v == 1 for v in values)


def conv_general_dilated(
    lhs,
    rhs,
    window_strides,
    padding,
    lhs_dilation=None,
    rhs_dilation=None,
    dimension_numbers=None,
    feature_group_count: int = 1,
    batch_group_count: int = 1,
    precision=None,
    preferred_element_type=None,
):
    """`lax.conv_general_dilated`, with the SAME NHWC case sent to `conv2d_same`: stride 1
    always, and where the native kernels take the layer, a square dilation (by phases) or a
    square stride with "SAME" padding (by space-to-depth). XLA:CPU runs such narrow strided
    and dilated layers at a few GFLOP/s (the saliency network's two took most of its
    inference time); the native kernels take a fraction of that."""
    stride, dilation = _square(window_strides), _square(rhs_dilation)
    if rhs.ndim == 4 and rhs.shape[0] == rhs.shape[1] == 1 and dilation is not None:
        dilation = 1  # A 1×1 kernel has no taps to spread.
    if (
        lhs.ndim == 4
        and rhs.ndim == 4
        and lax.conv_dimension_numbers(lhs.shape, rhs.shape, dimension_numbers)
        == lax.conv_dimension_numbers(lhs.shape, rhs.shape, _NHWC)
        and rhs.shape[0] == rhs.shape[1]
        and rhs.shape[0] % 2 == 1
        and stride is not None
        and dilation is not None
        and (stride == 1 or dilation == 1)
        and _all_ones(lhs_dilation)
        and feature_group_count == 1
        and batch_group_count == 1
        and preferred_element_type is None
        and _is_same_padding(padding, rhs.shape[0], dilation)
    ):
        if stride == dilation == 1:
            return conv2d_same(lhs, rhs)
        native = native_eligible(lhs, rhs)
        if (
            dilation > 1
            and native
            and lhs.shape[1] % dilation == 0
            and lhs.shape[2] % dilation == 0
        ):
            return _dilated_by_phases(lhs, rhs, dilation)
        if stride > 1 and native and isinstance(padding, str):
            return _strided_by_space_to_depth(lhs, rhs, stride)
    return lax.conv_general_dilated(
        lhs,
        rhs,
        window_strides,
        padding,
        lhs_dilation=lhs_dilation,
        rhs_dilation=rhs_dilation,
        dimension_numbers=dimension_numbers,
        feature_group_count=feature_group_count,
        batch_group_count=batch_group_count,
        precision=precision,
        preferred_element_type=preferred_element_type,
    )


def _xla_bias_leaky(x, w, b, slope):
    y = _xla_conv(x, w) + b
    return jnp.where(y >= 0, y, slope * y)


@functools.lru_cache(maxsize=16)
def _bias_leaky_cpu(slope: float):
    """The fused native call for one `slope` (an attribute of the call, so one per value)."""

    def native(x, w, b):
        size, out_channels = w.shape[0], w.shape[3]
        result = jax.ShapeDtypeStruct((*x.shape[:3], out_channels), jnp.float32)
        call = jax.ffi.ffi_call("resize_jax_conv_vec_out_bias_leaky", result)
        return call(_pad(x, size), w, b, slope=np.float32(slope))

    return map_when_vmapped(batch_partitioned(native, "b h w i, k l i o, o -> b h w o", 1), fold=1)


@functools.partial(jax.custom_vjp, nondiff_argnums=(3,))
def _conv_bias_leaky(x, w, b, slope):
    return on_cpu(_bias_leaky_cpu(slope), functools.partial(_xla_bias_leaky, slope=slope), x, w, b)


def _conv_bias_leaky_fwd(x, w, b, slope):
    out = _conv_bias_leaky(x, w, b, slope)
    return out, (x, w, out)


def _conv_bias_leaky_bwd(slope, residuals, g):
    x, w, out = residuals
    # With slope > 0 the activation keeps the sign, so the output says which branch was taken
    # and the pre-activation need not be stored.
    g = jnp.where(out >= 0, g, slope * g)
    dx, dw = _conv_native_bwd((x, w), g)
    return dx, dw, jnp.sum(g, axis=(0, 1, 2))


_conv_bias_leaky.defvjp(_conv_bias_leaky_fwd, _conv_bias_leaky_bwd)


def bias_leaky_eligible(x, w: jnp.ndarray, b: jnp.ndarray, negative_slope: float) -> bool:
    """Whether `conv2d_same_bias_leaky(x, w, b, negative_slope)` runs the fused native kernel
    (when run on CPU). `x` may be an array or a `jax.ShapeDtypeStruct`."""
    # The sign trick of the backward pass needs slope > 0; the kernel vectorises over CO.
    return (
        float(negative_slope) > 0
        and w.ndim == 4
        and w.shape[-1] % _LANES == 0
        and b.dtype == jnp.float32
        and native_eligible(x, w)
    )


def conv2d_same_bias_leaky(
    x: jnp.ndarray, w: jnp.ndarray, b: jnp.ndarray, negative_slope: float
) -> jnp.ndarray:
    """`leaky_relu(conv2d_same(x, w) + b, negative_slope)` as one pass where it can be.

    Args:
      x: f[B, H, W, CI]; w: f[K, K, CI, CO], K odd; b: f[CO].
      negative_slope: the leaky ReLU's slope for negative inputs.

    Returns:
      f[B, H, W, CO]. On CPU with the native kernels, CO % 16 == 0, float32 and a slope > 0,
      the bias and activation are applied inside the convolution kernel (the output is written
      once) and the backward pass needs only the output; otherwise it is the composition.
    """
    if b.shape != (w.shape[-1],):
        raise ValueError(f"`b` must be f[{w.shape[-1]}] to match `w` {w.shape}, got {b.shape}.")
    slope = float(negative_slope)
    if bias_leaky_eligible(x, w, b, slope):
        return _conv_bias_leaky(x, w, b, slope)
    y = conv2d_same(x, w) + b
    return jnp.where(y >= 0, y, slope * y)


__all__ = [
    "bias_leaky_eligible",
    "conv2d_same",
    "conv2d_same_bias_leaky",
    "conv_general_dilated",
    "native_eligible",
]
