"""BatchNorm followed by a resize, computed as the resize followed by the same BatchNorm.

A resize is linear in each channel and its interpolation weights sum to one (`ops.resize`
renormalises them at the borders), so it commutes with a per-channel affine map:

    resize(scale * (x - mean) / sqrt(var + eps) + bias)
        = scale * (resize(x) - mean) / sqrt(var + eps) + bias,

with `mean` and `var` still the statistics of the full-resolution `x`. The right-hand side
normalises the small resized tensor instead of the large input, and its gradient reaches `x`
through the resize's transpose and the two statistics only: on CPU the learned resizer's
448² × 16 features are written and read fewer times in the train step. The variables are
`flax.linen.BatchNorm`'s (params `scale`, `bias`; batch_stats `mean`, `var`), with its
semantics: float32 statistics with the fast variance E[x²] − E[x]², biased variance in the
running average, no update while initialising. A test holds it to `nn.BatchNorm` then resize.

The input may also come as `ops.conv_resized.ResizedFeatures`: the resized tensor and the two
statistics already computed by the layers that produced x (`ops.conv_resized`,
`ops.conv_head`), so the large x is not read here at all.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import flax.linen as nn
import jax.numpy as jnp
from jax import lax

from resize_jax.frontends.batch_norm import (
    batch_statistics,
    running_statistics,
    update_running,
)
from resize_jax.ops.conv_resized import ResizedFeatures


class ResizedBatchNorm(nn.Module):
    """`resize(nn.BatchNorm(...)(x))` with the normalisation applied after the resize.

    Attributes:
      momentum, epsilon, dtype, param_dtype: as `flax.linen.BatchNorm`'s.

    `__call__(x, resize, *, use_running_average)`: x f[B, H, W, C]; `resize` any per-channel
    linear map whose weights sum to one (e.g. a partial of `ops.resize`) taking x to
    f[B, h, w, C] → f[B, h, w, C]. Or x a `ResizedFeatures` (resize(x) and x's statistics) and
    `resize` None.
    """

    momentum: float = 0.99
    epsilon: float = 1e-5
    dtype: Any = None
    param_dtype: Any = jnp.float32

    @nn.compact
    def __call__(
        self,
        x: jnp.ndarray | ResizedFeatures,
        resize: Callable[[jnp.ndarray], jnp.ndarray] | None,
        *,
        use_running_average,
    ) -> jnp.ndarray:
        given = isinstance(x, ResizedFeatures)
        if given == (resize is not None):
            raise ValueError(
                "`ResizedBatchNorm` takes an array `x` with a `resize`, or `ResizedFeatures` "
                f"with `resize=None`; got {type(x).__name__} and resize={resize!r}."
            )
        features = x.resized.shape[-1] if given else x.shape[-1]
        running = running_statistics(self, features)
        scale = self.param("scale", nn.initializers.ones, (features,), self.param_dtype)
        bias = self.param("bias", nn.initializers.zeros, (features,), self.param_dtype)
        if use_running_average:
            mean, var = (v.value for v in running)
        else:
            if given:
                mean = x.mean
                var = jnp.maximum(0.0, x.mean_of_squares - jnp.square(mean))
            else:
                mean, var = batch_statistics(x)
            update_running(self, running, (mean, var), self.momentum)
        resized = x.resized if given else resize(x)
        y = (resized - mean) * (lax.rsqrt(var + self.epsilon) * scale) + bias
        return jnp.asarray(y, self.dtype or jnp.result_type(resized, scale, bias))
