"""Stride-1 'SAME' convolutions with native CPU kernels for narrow layers.

`conv2d_same(x, w)` equals `lax.conv_general_dilated(x, w, (1, 1), "SAME", NHWC/HWIO/NHWC)`
for an odd square kernel. On CPU, when the native kernels are available
(`resize_jax.ops.native`) and one side of the layer has a multiple of 16 channels, the
forward pass, the input gradient and the weight gradient run as direct convolutions
vectorised over those 16 channels; XLA:CPU runs the learned resizer's 3 -> 16 and 16 -> 3
layers at a fraction of that speed (README, Performance). Every other case, and every other
backend, is XLA's convolution, so the function is a drop-in everywhere.

`conv_general_dilated` has `lax.conv_general_dilated`'s signature for `flax.linen.Conv`'s
`conv_general_dilated` field: it routes the stride-1 SAME NHWC case to `conv2d_same` and
passes everything else through unchanged.
"""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp
from jax import lax

from resize_jax.ops import native

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


def _native_weight_grad(x: jnp.ndarray, g: jnp.ndarray, size: int) -> jnp.ndarray:
    """dw[ky, kx, ci, co] = Σ_{b,y,x} x_pad[b, y+ky, x+kx, ci] · g[b, y, x, co]."""
    in_channels, out_channels = x.shape[-1], g.shape[-1]
    if out_channels % _LANES == 0:
        shape = (size, size, in_channels, out_channels)
        return _ffi("resize_jax_conv_weight_grad", shape, _pad(x, size), g)
    # Vectorise over CI instead: with q = position in x, the same sum reads
    # Σ_q g_pad[q + (K-1-k)] · x[q], the kernel's weight gradient with the roles swapped and
    # the taps reversed.
    shape = (size, size, out_channels, in_channels)
    swapped = _ffi("resize_jax_conv_weight_grad", shape, _pad(g, size), x)
    return jnp.swapaxes(swapped[::-1, ::-1], 2, 3)


def _on_cpu(native_fn, xla_fn, *args):
    # Chosen when the computation is lowered: the same jitted function runs XLA's
    # convolution when it is compiled for a GPU or TPU.
    return lax.platform_dependent(*args, cpu=native_fn, default=xla_fn)


def _forward(x: jnp.ndarray, w: jnp.ndarray) -> jnp.ndarray:
    if w.shape[0] == 1:
        # A 1x1 layer is a matrix product; XLA's is as fast as a direct loop (memory-bound).
        return _xla_conv(x, w)
    return _on_cpu(_native_forward, _xla_conv, x, w)


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
    dw = _on_cpu(lambda x, g, w: _native_weight_grad(x, g, w.shape[0]), _xla_weight_grad, x, g, w)
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


def _is_same_padding(padding, kernel_size: int) -> bool:
    if isinstance(padding, str):
        return padding.upper() == "SAME"
    half = kernel_size // 2
    return [tuple(p) for p in padding] == [(half, half)] * 2


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
    """`lax.conv_general_dilated`, with the stride-1 SAME NHWC case sent to `conv2d_same`."""
    if (
        lhs.ndim == 4
        and rhs.ndim == 4
        and lax.conv_dimension_numbers(lhs.shape, rhs.shape, dimension_numbers)
        == lax.conv_dimension_numbers(lhs.shape, rhs.shape, _NHWC)
        and rhs.shape[0] == rhs.shape[1]
        and rhs.shape[0] % 2 == 1
        and _all_ones(window_strides)
        and _all_ones(lhs_dilation)
        and _all_ones(rhs_dilation)
        and feature_group_count == 1
        and batch_group_count == 1
        and preferred_element_type is None
        and _is_same_padding(padding, rhs.shape[0])
    ):
        return conv2d_same(lhs, rhs)
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


__all__ = ["conv2d_same", "conv_general_dilated", "native_eligible"]
