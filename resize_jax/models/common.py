"""Building blocks shared by the backbones: the `Classifier`/`CNNClassifier` bases (shared
fields, checked once), Conv+BN(+activation), pooling, heads.

Padding follows torchvision (symmetric `(k - 1) // 2` for odd kernels), so layer shapes and
FLOPs match the reference architectures; a stride-2 layer maps H to ceil(H / 2).
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from typing import Any, ClassVar

import flax.linen as nn
import jax.numpy as jnp

from resize_jax.ops.checks import check_images, check_positive_int, check_rate

# He-normal with fan-out, as torchvision initialises the convolutions of its CNNs: keeps
# activations at unit scale through deep ReLU stacks when training from scratch.
conv_init = nn.initializers.variance_scaling(2.0, "fan_out", "normal")

# A module factory passed down as a field (the flax imagenet example's `ModuleDef`).
ModuleDef = Any


def check_backbone_input(images, min_size: int, model: str) -> None:
    """Checks `images` is f[B, H, W, C] with H, W >= `min_size` (the backbone's minimum)."""
    check_images(images)
    height, width = images.shape[1:3]
    if height < min_size or width < min_size:
        raise ValueError(
            f"`images` must be at least {min_size}×{min_size} pixels for {model}, got shape "
            f"{tuple(images.shape)} ({height}×{width}); resize them up first."
        )


def make_divisible(value: float, divisor: int = 8) -> int:
    """Rounds a channel count to a multiple of `divisor`, never below 90% of `value`.

    The rule of the MobileNet/EfficientNet reference code, so widths match it exactly.
    """
    rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
    if rounded < 0.9 * value:
        rounded += divisor
    return rounded


def global_avg_pool(x: jnp.ndarray) -> jnp.ndarray:
    """x: f[B, H, W, C] → f[B, C]."""
    return jnp.mean(x, axis=(1, 2))


def max_pool_3x3_s2(x: jnp.ndarray) -> jnp.ndarray:
    """3×3 max pool, stride 2, padding 1 (padded cells never win): H → ceil(H / 2)."""
    return nn.max_pool(x, (3, 3), strides=(2, 2), padding=((1, 1), (1, 1)))


def norm_def(model: nn.Module, **kwargs) -> ModuleDef:
    """`nn.BatchNorm` with `model`'s momentum, epsilon and dtypes bound (plus `kwargs`): built
    once by a model and passed down to its blocks, so those settings live in one place. Call
    it with `use_running_average=not train` and a name."""
    return functools.partial(
        nn.BatchNorm,
        momentum=model.bn_momentum,
        epsilon=model.bn_epsilon,
        dtype=model.dtype,
        param_dtype=model.param_dtype,
        **kwargs,
    )


def batch_norm(module: nn.Module, train: bool, name: str, **kwargs) -> nn.BatchNorm:
    """BatchNorm with `module`'s momentum, epsilon and dtypes; batch statistics when training."""
    return norm_def(module, **kwargs)(use_running_average=not train, name=name)


def conv2d(features: int, kernel_size: int, strides: int = 1, **kwargs) -> nn.Conv:
    """Square convolution with torchvision's padding ((k - 1) // 2 on every side) and He-normal
    fan-out initialisation; no bias unless `use_bias=True`. `kwargs` go to `nn.Conv`."""
    pad = (kernel_size - 1) // 2
    return nn.Conv(
        features,
        (kernel_size, kernel_size),
        strides=(strides, strides),
        padding=((pad, pad), (pad, pad)),
        use_bias=kwargs.pop("use_bias", False),
        kernel_init=conv_init,
        **kwargs,
    )


def conv_def(model: nn.Module, **kwargs) -> ModuleDef:
    """`conv2d` with `model`'s dtypes bound (plus `kwargs`)."""
    return functools.partial(conv2d, dtype=model.dtype, param_dtype=model.param_dtype, **kwargs)


class ConvBN(nn.Module):
    """Conv → BatchNorm → optional activation; the unit every backbone here is made of.

    Attributes:
      features: output channels.
      kernel_size: square kernel size k (odd); padding is (k - 1) // 2 on every side.
      strides: spatial stride.
      groups: feature groups (= input channels for a depthwise convolution).
      activation: applied after BN; None for a linear projection.
      use_bias: conv bias (redundant before BN; only for parity with a reference).
    """

    features: int
    kernel_size: int = 3
    strides: int = 1
    groups: int = 1
    activation: Callable[[jnp.ndarray], jnp.ndarray] | None = nn.relu
    use_bias: bool = False
    bn_momentum: float = 0.9
    bn_epsilon: float = 1e-5
    dtype: Any = jnp.float32
    param_dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x: jnp.ndarray, *, train: bool = False) -> jnp.ndarray:
        """x: f[B, H, W, C_in] → f[B, ceil(H / s), ceil(W / s), features]."""
        x = conv_def(self)(
            self.features,
            self.kernel_size,
            self.strides,
            feature_group_count=self.groups,
            use_bias=self.use_bias,
            name="conv",
        )(x)
        x = batch_norm(self, train, "bn")(x)
        return x if self.activation is None else self.activation(x)


def conv_bn_def(model: nn.Module, **kwargs) -> ModuleDef:
    """`ConvBN` with `model`'s BatchNorm settings and dtypes bound (plus `kwargs`): built once
    by a backbone and passed down to its blocks, so those settings live in one place."""
    return functools.partial(
        ConvBN,
        bn_momentum=model.bn_momentum,
        bn_epsilon=model.bn_epsilon,
        dtype=model.dtype,
        param_dtype=model.param_dtype,
        **kwargs,
    )


def classifier_head(
    module: nn.Module, features: jnp.ndarray, *, train: bool, dropout_rate: float = 0.0
) -> tuple[jnp.ndarray, dict[str, jnp.ndarray]]:
    """Global average pool → dropout (train only) → Dense `head`; logits cast to float32.

    features: f[B, H, W, D] → (f32[B, num_classes], {"pre_logits": f[B, D]}).
    """
    pre_logits = global_avg_pool(features)
    x = nn.Dropout(dropout_rate, deterministic=not train, name="dropout")(pre_logits)
    logits = nn.Dense(
        module.num_classes, dtype=module.dtype, param_dtype=module.param_dtype, name="head"
    )(x)
    return logits.astype(jnp.float32), {"pre_logits": pre_logits}


class Classifier(nn.Module):
    """Base of the classifiers: `num_classes`, then (keyword-only) the fields every classifier
    shares, checked once at construction. A subclass declares its own fields after
    `num_classes` and may restate a shared field under `_: dataclasses.KW_ONLY` to change its
    default.

    `min_input_size`: the smallest input height and width (a class constant or a property).
    """

    num_classes: int
    _: dataclasses.KW_ONLY
    dropout_rate: float = 0.0
    dtype: Any = jnp.float32
    param_dtype: Any = jnp.float32

    min_input_size: ClassVar[int] = 32

    def __post_init__(self):
        check_positive_int(self.num_classes, "num_classes")
        check_rate(self.dropout_rate, "dropout_rate")
        super().__post_init__()

    def checked_input(self, images: jnp.ndarray) -> jnp.ndarray:
        """images: f[B, H, W, C] with H, W >= `min_input_size` → the same in `dtype`."""
        check_backbone_input(images, self.min_input_size, type(self).__name__)
        return images.astype(self.dtype)


class CNNClassifier(Classifier):
    """A `Classifier` with BatchNorm: `bn_momentum` (Flax's convention: 0.9 is PyTorch's 0.1)
    and `bn_epsilon`, bound once into the `conv_bn_def`/`norm_def` partials of its blocks."""

    _: dataclasses.KW_ONLY
    bn_momentum: float = 0.9
    bn_epsilon: float = 1e-5
