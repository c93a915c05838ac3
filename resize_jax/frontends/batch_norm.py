"""BatchNorm over the channels-last axis with a hand-written backward pass.

`BatchNorm` has `flax.linen.BatchNorm`'s variables (params `scale`, `bias`; batch_stats
`mean`, `var`) and semantics as the learned resizer uses it: float32 statistics with the fast
variance E[x²] − E[x]², the biased variance in the running average, no update while
initialising. In training it normalises through `batch_norm_train`, whose gradient is the
closed form

    dx = scale · rsqrt(var + eps) · (g − mean(g) − x̂ · mean(g · x̂)),
    x̂ = (x − mean) · rsqrt(var + eps),

from two sums over (g, x) and one elementwise pass. Differentiating flax's BatchNorm instead
makes XLA materialise x − mean and several other full-size intermediates: on CPU, a batch of 8
224² × 16 features, forward and backward with a leaky ReLU took 28 ms that way and 17 ms
this way (2 cores).
"""

from __future__ import annotations

import functools
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from jax import lax


def batch_statistics(x: jnp.ndarray) -> tuple[jnp.ndarray, jnp.ndarray]:
    """f32[C] mean and (fast, biased) variance of x: f[..., C] over every other axis."""
    axes = tuple(range(x.ndim - 1))
    stats = x.astype(jnp.promote_types(x.dtype, jnp.float32))
    mean = jnp.mean(stats, axes)
    mean_of_squares = jnp.mean(jnp.square(stats), axes)
    return mean, jnp.maximum(0.0, mean_of_squares - jnp.square(mean))


def _normalised(x, scale, bias, epsilon: float):
    mean, var = batch_statistics(x)
    inverse_std = lax.rsqrt(var + epsilon)
    y = (x.astype(mean.dtype) - mean) * (inverse_std * scale) + bias
    return y, mean, var, inverse_std


@functools.partial(jax.custom_vjp, nondiff_argnums=(3,))
def batch_norm_train(x: jnp.ndarray, scale: jnp.ndarray, bias: jnp.ndarray, epsilon: float):
    """Batch normalisation with the batch's statistics.

    Args:
      x: f[..., C]; scale, bias: f[C]; epsilon: added to the variance.

    Returns:
      (y f32[..., C] (or wider if x is), mean f32[C], var f32[C]), y = (x − mean) ·
      rsqrt(var + epsilon) · scale + bias with x's mean and biased variance over all but the
      last axis; differentiable in x, scale and bias (reverse mode), mean and var included.
    """
    y, mean, var, _ = _normalised(x, scale, bias, epsilon)
    return y, mean, var


def _train_fwd(x, scale, bias, epsilon):
    y, mean, var, inverse_std = _normalised(x, scale, bias, epsilon)
    return (y, mean, var), (x, scale, mean, var, inverse_std)


def _train_bwd(epsilon, residuals, cotangents):
    del epsilon
    x, scale, mean, var, inverse_std = residuals
    g_y, g_mean, g_var = cotangents
    axes = tuple(range(x.ndim - 1))
    count = np.prod([x.shape[a] for a in axes])
    centred = x.astype(mean.dtype) - mean
    g = g_y.astype(mean.dtype)
    g_sum = jnp.sum(g, axes)
    # Σ g · x̂ from Σ g · x: both sums come from one read of g and x.
    g_dot_normalised = inverse_std * (jnp.sum(g * x.astype(mean.dtype), axes) - mean * g_sum)
    normalised = centred * inverse_std
    dx = (inverse_std * scale) * (g - g_sum / count - normalised * g_dot_normalised / count)
    # The statistics are outputs too (the running averages read them); var is clamped at 0.
    dx = dx + g_mean / count + jnp.where(var > 0, 2 * g_var / count, 0.0) * centred
    return dx.astype(x.dtype), g_dot_normalised.astype(scale.dtype), g_sum.astype(scale.dtype)


batch_norm_train.defvjp(_train_fwd, _train_bwd)


def running_statistics(module: nn.Module, features: int) -> tuple[Any, Any]:
    """The module's batch_stats variables `mean` (zeros) and `var` (ones), f32[features]."""
    mean = module.variable("batch_stats", "mean", jnp.zeros, (features,), jnp.float32)
    var = module.variable("batch_stats", "var", jnp.ones, (features,), jnp.float32)
    return mean, var


def update_running(module: nn.Module, running, batch, momentum: float) -> None:
    """running ← momentum · running + (1 − momentum) · batch for each (variable, value), except
    while initialising (as flax's BatchNorm)."""
    if module.is_initializing():
        return
    for variable, value in zip(running, batch, strict=True):
        variable.value = momentum * variable.value + (1 - momentum) * value


def fold_into_conv(
    conv: dict[str, jnp.ndarray],
    norm: dict[str, jnp.ndarray],
    stats: dict[str, jnp.ndarray],
    epsilon: float,
) -> tuple[jnp.ndarray, jnp.ndarray]:
    """The kernel and bias of one convolution computing BN(conv(x)) with running statistics.

    Args:
      conv: a convolution's params {"kernel": f[K, K, CI, CO], "bias": f[CO]} (bias optional).
      norm: the BatchNorm's params {"scale", "bias"}: f[CO]; stats: its {"mean", "var"}: f[CO].
      epsilon: the BatchNorm's epsilon.

    Returns:
      (kernel f[K, K, CI, CO], bias f[CO]): (conv(x) + b − mean) · s + β = conv(x; kernel · s) +
      (b − mean) · s + β with s = scale · rsqrt(var + ε), BatchNorm's inference formula up to
      rounding.
    """
    factor = lax.rsqrt(stats["var"] + epsilon) * norm["scale"]
    bias = conv.get("bias", jnp.zeros_like(factor))
    return conv["kernel"] * factor, (bias - stats["mean"]) * factor + norm["bias"]


class BatchNorm(nn.Module):
    """`flax.linen.BatchNorm` over the last axis, with `batch_norm_train`'s backward pass.

    Attributes:
      use_running_average, momentum, epsilon, dtype, param_dtype: as flax's.

    `__call__(x, use_running_average=None)`: x f[..., C] → f[..., C].
    """

    use_running_average: bool | None = None
    momentum: float = 0.99
    epsilon: float = 1e-5
    dtype: Any = None
    param_dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x: jnp.ndarray, use_running_average: bool | None = None) -> jnp.ndarray:
        use_running_average = nn.merge_param(
            "use_running_average", self.use_running_average, use_running_average
        )
        features = x.shape[-1]
        running = running_statistics(self, features)
        scale = self.param("scale", nn.initializers.ones, (features,), self.param_dtype)
        bias = self.param("bias", nn.initializers.zeros, (features,), self.param_dtype)
        if use_running_average:
            mean, var = (v.value for v in running)
            y = (x - mean) * (lax.rsqrt(var + self.epsilon) * scale) + bias
        else:
            y, mean, var = batch_norm_train(x, scale, bias, self.epsilon)
            update_running(self, running, (mean, var), self.momentum)
        return jnp.asarray(y, self.dtype or jnp.result_type(x, scale, bias))


__all__ = ["BatchNorm", "batch_norm_train", "batch_statistics", "fold_into_conv"]
