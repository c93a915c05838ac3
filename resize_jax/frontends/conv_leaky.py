"""A stride-1 'SAME' convolution with bias, followed by a leaky ReLU, as one operation.

`ConvLeaky(features, kernel_size, negative_slope)` computes
`nn.leaky_relu(nn.Conv(features, (k, k), padding="SAME")(x), negative_slope)` with the same
variables (`kernel` f[k, k, C, features] LeCun-normal, `bias` f[features] zeros) and the same
dtype promotion, through `ops.conv.conv2d_same_bias_leaky`: on CPU with the native kernels
the bias and the activation are applied inside the convolution, so the layer's output is
written once, and the backward pass reads that output instead of a stored pre-activation.

`__call__(x, resize=spec)` returns the output as `ResizedFeatures` instead (`spec(y)` and y's
per-channel mean and mean square, `ops.conv_resized`): for a layer followed only by a resize
and a BatchNorm, which on CPU then reads its own output while it is still in cache.
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax.numpy as jnp
from flax.linen.dtypes import promote_dtype

from resize_jax.ops.conv import conv2d_same_bias_leaky
from resize_jax.ops.conv_resized import Resize, ResizedFeatures, conv2d_same_bias_leaky_resized


class ConvLeaky(nn.Module):
    """Conv (odd square kernel, stride 1, SAME, bias) then leaky ReLU.

    `__call__(x)`: x f[B, H, W, C] → f[B, H, W, features]; `__call__(x, resize=spec)` →
    `ResizedFeatures` of that output.
    """

    features: int
    kernel_size: int
    negative_slope: float = 0.2
    dtype: Any = None
    param_dtype: Any = jnp.float32

    @nn.compact
    def __call__(
        self, x: jnp.ndarray, resize: Resize | None = None
    ) -> jnp.ndarray | ResizedFeatures:
        k = self.kernel_size
        kernel = self.param(
            "kernel",
            nn.initializers.lecun_normal(),
            (k, k, x.shape[-1], self.features),
            self.param_dtype,
        )
        bias = self.param("bias", nn.initializers.zeros, (self.features,), self.param_dtype)
        x, kernel, bias = promote_dtype(x, kernel, bias, dtype=self.dtype)
        if resize is not None:
            return conv2d_same_bias_leaky_resized(x, kernel, bias, self.negative_slope, resize)
        return conv2d_same_bias_leaky(x, kernel, bias, self.negative_slope)
