"""A stride-1 'SAME' convolution with bias, followed by a leaky ReLU, as one operation.

`ConvLeaky(features, kernel_size, negative_slope)` computes
`nn.leaky_relu(nn.Conv(features, (k, k), padding="SAME")(x), negative_slope)` with the same
variables (`kernel` f[k, k, C, features] LeCun-normal, `bias` f[features] zeros) and the same
dtype promotion, through `ops.conv.conv2d_same_bias_leaky`: on CPU with the native kernels
the bias and the activation are applied inside the convolution, so the layer's output is
written once, and the backward pass reads that output instead of a stored pre-activation.

`ConvLeakyWeights` creates the same variables without applying the layer, for a caller that
runs it fused with the next one (the learned resizer's head, `ops.conv_head`).
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax.numpy as jnp
from flax.linen.dtypes import promote_dtype

from resize_jax.ops.conv import conv2d_same_bias_leaky


def _weights(module: nn.Module, features: int, kernel_size: int, in_channels: int, dtype):
    kernel = module.param(
        "kernel",
        nn.initializers.lecun_normal(),
        (kernel_size, kernel_size, in_channels, features),
        dtype,
    )
    bias = module.param("bias", nn.initializers.zeros, (features,), dtype)
    return kernel, bias


class ConvLeaky(nn.Module):
    """Conv (odd square kernel, stride 1, SAME, bias) then leaky ReLU.

    `__call__(x)`: x f[B, H, W, C] → f[B, H, W, features].
    """

    features: int
    kernel_size: int
    negative_slope: float = 0.2
    dtype: Any = None
    param_dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x: jnp.ndarray) -> jnp.ndarray:
        kernel, bias = _weights(
            self, self.features, self.kernel_size, x.shape[-1], self.param_dtype
        )
        x, kernel, bias = promote_dtype(x, kernel, bias, dtype=self.dtype)
        return conv2d_same_bias_leaky(x, kernel, bias, self.negative_slope)


class ConvLeakyWeights(nn.Module):
    """`ConvLeaky`'s variables (same names, shapes, initialisers), not applied.

    `__call__(in_channels)` → (kernel f[k, k, in_channels, features], bias f[features]).
    """

    features: int
    kernel_size: int
    param_dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, in_channels: int) -> tuple[jnp.ndarray, jnp.ndarray]:
        return _weights(self, self.features, self.kernel_size, in_channels, self.param_dtype)
