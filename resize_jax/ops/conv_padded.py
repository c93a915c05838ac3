"""A convolution layer that reads and writes zero-padded features.

    conv_padded(x_padded, w, b, negative_slope, residual, residual_pad, out_pad)
      = pad(leaky_relu(conv_valid(x_padded, w) + b) + residual[interior], out_pad)

A chain of 'SAME' convolutions with activations and residual connections between them (the
learned resizer's residual blocks in inference, BatchNorm folded into the weights) otherwise
spends a full pass over the features between every two layers: XLA reads the previous output
and the residual, applies the activation and writes a padded copy for the next convolution.
Here each layer's output is written once, already padded for the next layer: on CPU with the
native kernels and a multiple of 16 output channels, the bias, activation, residual and zero
border are applied by the convolution kernel itself (`conv_vec_out_padded`). Everywhere else
it is the composition below, which XLA fuses on its own.

Gradients (reverse mode) are those of the composition with XLA's convolution: this layer
serves inference, where nothing is differentiated, and stays correct when something is.
"""

from __future__ import annotations

import functools

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


def _pad(x: jnp.ndarray, pad: int) -> jnp.ndarray:
    return jnp.pad(x, ((0, 0), (pad, pad), (pad, pad), (0, 0))) if pad else x


def _epilogue(y, b, residual, slope, residual_pad, out_pad):
    y = y + b
    if slope is not None:
        y = jnp.where(y >= 0, y, slope * y)
    if residual is not None:
        height, width = y.shape[1:3]
        rp = residual_pad
        y = y + residual[:, rp : rp + height, rp : rp + width]
    return _pad(y, out_pad)


def _xla(x_padded, w, b, residual, slope, residual_pad, out_pad):
    y = lax.conv_general_dilated(x_padded, w, (1, 1), "VALID", dimension_numbers=_NHWC)
    return _epilogue(y, b, residual, slope, residual_pad, out_pad)


def _out_shape(x_padded, w, out_pad: int) -> tuple[int, ...]:
    size = w.shape[0]
    batch, height, width = x_padded.shape[:3]
    return (batch, height - size + 1 + 2 * out_pad, width - size + 1 + 2 * out_pad, w.shape[3])


@functools.lru_cache(maxsize=32)
def _cpu(slope, residual_pad: int, out_pad: int, with_residual: bool):
    """The native call for one setting (attributes of the call, so one per setting)."""

    def native_call(x_padded, *args):
        residual, w, b = args if with_residual else (None, *args)
        shape = _out_shape(x_padded, w, out_pad)
        if w.shape[3] % _LANES == 0:
            call = jax.ffi.ffi_call(
                "resize_jax_conv_vec_out_padded", jax.ShapeDtypeStruct(shape, jnp.float32)
            )
            return call(
                x_padded,
                w,
                b,
                residual if with_residual else jnp.zeros((1,), jnp.float32),
                slope=np.float32(1.0 if slope is None else slope),
                residual_pad=np.int64(residual_pad if with_residual else -1),
                out_pad=np.int64(out_pad),
            )
        # Vectorised over the input channels instead (weights as [K, K, CO, CI]); that kernel
        # has no epilogue, so XLA applies it (a narrow output: the learned resizer's last
        # layer writes 3 channels).
        unpadded = (shape[0], shape[1] - 2 * out_pad, shape[2] - 2 * out_pad, shape[3])
        call = jax.ffi.ffi_call(
            "resize_jax_conv_vec_in", jax.ShapeDtypeStruct(unpadded, jnp.float32)
        )
        y = call(x_padded, jnp.swapaxes(w, 2, 3))
        return _epilogue(y, b, residual, slope, residual_pad, out_pad)

    # Distinct letters for the padded and unpadded spatial sizes: only the batch is shared.
    rule = (
        "b h w i, b r s o, k l i o, o -> b p q o"
        if with_residual
        else ("b h w i, k l i o, o -> b p q o")
    )
    batched = 2 if with_residual else 1
    return map_when_vmapped(batch_partitioned(native_call, rule, batched), fold=batched)


@functools.partial(jax.custom_vjp, nondiff_argnums=(4, 5, 6))
def _conv_padded(x_padded, w, b, residual, slope, residual_pad, out_pad):
    native_fn = _cpu(slope, residual_pad, out_pad, residual is not None)
    xla_fn = functools.partial(_xla, slope=slope, residual_pad=residual_pad, out_pad=out_pad)
    if residual is None:
        return on_cpu(native_fn, lambda x, w, b: xla_fn(x, w, b, None), x_padded, w, b)
    return on_cpu(native_fn, lambda x, r, w, b: xla_fn(x, w, b, r), x_padded, residual, w, b)


def _conv_padded_fwd(x_padded, w, b, residual, slope, residual_pad, out_pad):
    out = _conv_padded(x_padded, w, b, residual, slope, residual_pad, out_pad)
    return out, (x_padded, w, b, residual)


def _conv_padded_bwd(slope, residual_pad, out_pad, saved, g):
    x_padded, w, b, residual = saved
    composition = functools.partial(_xla, slope=slope, residual_pad=residual_pad, out_pad=out_pad)
    return jax.vjp(composition, x_padded, w, b, residual)[1](g)


_conv_padded.defvjp(_conv_padded_fwd, _conv_padded_bwd)


def native_eligible(x_padded, w: jnp.ndarray) -> bool:
    """Whether `conv_padded(x_padded, w, ...)` runs native kernels (when run on CPU)."""
    return (
        x_padded.dtype == jnp.float32
        and w.dtype == jnp.float32
        and (w.shape[3] % _LANES == 0 or w.shape[2] % _LANES == 0)
        and placed_on_cpu()
        and native.available()
    )


def _check(x_padded, w, b, residual, residual_pad, out_pad) -> None:
    if w.ndim != 4 or w.shape[0] != w.shape[1] or w.shape[0] % 2 != 1:
        raise ValueError(f"`w` must be f[K, K, CI, CO] with odd K, got shape {w.shape}.")
    size, _, in_channels, out_channels = w.shape
    if x_padded.ndim != 4 or x_padded.shape[-1] != in_channels or min(x_padded.shape[1:3]) < size:
        raise ValueError(
            f"`x_padded` must be f[B, H + {size - 1}, W + {size - 1}, {in_channels}] (H, W ≥ 1) "
            f"to match `w` {w.shape}, got shape {x_padded.shape}."
        )
    if b.shape != (out_channels,):
        raise ValueError(f"`b` must be f[{out_channels}] to match `w` {w.shape}, got {b.shape}.")
    for value, name in ((residual_pad, "residual_pad"), (out_pad, "out_pad")):
        if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 0:
            raise ValueError(f"`{name}` must be an integer ≥ 0, got {value!r}.")
    if residual is not None:
        batch, height, width, _ = _out_shape(x_padded, w, 0)
        expected = (batch, height + 2 * residual_pad, width + 2 * residual_pad, out_channels)
        if residual.shape != expected:
            raise ValueError(
                f"`residual` must have shape {expected} (the output's, plus `residual_pad` = "
                f"{residual_pad} on each side), got {residual.shape}."
            )


def conv_padded(
    x_padded: jnp.ndarray,
    w: jnp.ndarray,
    b: jnp.ndarray,
    *,
    negative_slope: float | None = None,
    residual: jnp.ndarray | None = None,
    residual_pad: int = 0,
    out_pad: int = 0,
) -> jnp.ndarray:
    """One convolution layer between zero-padded feature maps.

    Args:
      x_padded: f[B, H + K − 1, W + K − 1, CI], the layer's input with its padding (for a
        'SAME' layer: the features with a zero border of K // 2, e.g. the previous layer's
        output with `out_pad` = K // 2).
      w: f[K, K, CI, CO], K odd; b: f[CO].
      negative_slope: the slope of a leaky ReLU after the bias; None: no activation.
      residual: f[B, H + 2 residual_pad, W + 2 residual_pad, CO] or None; its interior is added
        after the activation.
      out_pad: the zero border written around the output.

    Returns:
      f[B, H + 2 out_pad, W + 2 out_pad, CO].
    """
    _check(x_padded, w, b, residual, residual_pad, out_pad)
    slope = None if negative_slope is None else float(negative_slope)
    if (
        native_eligible(x_padded, w)
        and b.dtype == jnp.float32
        and (residual is None or residual.dtype == jnp.float32)
    ):
        return _conv_padded(x_padded, w, b, residual, slope, int(residual_pad), int(out_pad))
    return _xla(x_padded, w, b, residual, slope, int(residual_pad), int(out_pad))


__all__ = ["conv_padded", "native_eligible"]
