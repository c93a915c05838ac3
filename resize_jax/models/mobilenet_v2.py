"""MobileNetV2 (Sandler et al., 2018), as torchvision.

Width 1.0: 3,504,872 trainable parameters at 1000 classes. Layer names below are the
checkpoint format: do not rename them.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable

import flax.linen as nn
import jax
import jax.numpy as jnp

from resize_jax.models.common import (
    CNNClassifier,
    ConvBN,
    ModuleDef,
    classifier_head,
    conv_bn_def,
    make_divisible,
)
from resize_jax.ops.checks import check_number

# (expansion t, output channels c, repeats n, first stride s): Table 2 of the paper.
INVERTED_RESIDUAL_SETTING = (
    (1, 16, 1, 1),
    (6, 24, 2, 2),
    (6, 32, 3, 2),
    (6, 64, 4, 2),
    (6, 96, 3, 1),
    (6, 160, 3, 2),
    (6, 320, 1, 1),
)


class InvertedResidual(nn.Module):
    """1×1 expand → k×k depthwise → [squeeze-excitation] → 1×1 linear projection, plus the
    input when shapes match. MobileNetV2's block; EfficientNet's `MBConv` is this block with
    squeeze-excitation, SiLU and a stochastically dropped residual.

    Attributes:
      features: output channels.
      kernel_size, strides: of the depthwise convolution.
      expansion: hidden width = input width × expansion (rounded by `hidden_width`).
      drop_path_rate: probability of dropping the residual branch for an example (training).
      conv: the model's `conv_bn_def` (BatchNorm settings and dtypes).
      se: squeeze-excitation module factory (output width first), or None.
      activation: after the expansion and depthwise convolutions.
    """

    features: int
    kernel_size: int
    strides: int
    expansion: int
    drop_path_rate: float = 0.0
    conv: ModuleDef = ConvBN
    se: ModuleDef | None = None
    activation: Callable[[jnp.ndarray], jnp.ndarray] = nn.relu6

    def hidden_width(self, in_features: int) -> int:
        return round(in_features * self.expansion)

    @nn.compact
    def __call__(self, x: jnp.ndarray, *, train: bool = False) -> jnp.ndarray:
        """x: f[B, H, W, C] → f[B, ceil(H / s), ceil(W / s), features]."""
        conv = functools.partial(self.conv, activation=self.activation)
        in_features = x.shape[-1]
        hidden = self.hidden_width(in_features)
        y = x
        if hidden != in_features:
            y = conv(hidden, 1, name="expand")(y, train=train)
        y = conv(hidden, self.kernel_size, self.strides, groups=hidden, name="depthwise")(
            y, train=train
        )
        if self.se is not None:
            # The squeeze width follows the block's input width, not the expanded one.
            y = self.se(max(1, in_features // 4), name="se")(y)
        y = conv(self.features, 1, activation=None, name="project")(y, train=train)
        if self.strides == 1 and in_features == self.features:
            y = x + drop_path(self, y, self.drop_path_rate, train)
        return y


def drop_path(module: nn.Module, y: jnp.ndarray, rate: float, train: bool) -> jnp.ndarray:
    """Stochastic depth: zeroes the branch for a random subset of examples, rescales the rest."""
    if not train or rate == 0.0:
        return y
    keep = jax.random.bernoulli(module.make_rng("dropout"), 1.0 - rate, (y.shape[0], 1, 1, 1))
    return jnp.where(keep, y / (1.0 - rate), jnp.zeros_like(y)).astype(y.dtype)


class MobileNetV2(CNNClassifier):
    """MobileNetV2 classifier.

    Attributes:
      num_classes: output classes.
      width_multiplier: scales every width (rounded to multiples of 8, as the reference).
      dropout_rate: dropout before the classifier, training only (paper/torchvision: 0.2).

    `__call__(images, *, train=False)`: images f[B, H, W, C] with H, W >= `min_input_size`
    (32) → (f32[B, num_classes], {"pre_logits": f[B, 1280]}).
    """

    width_multiplier: float = 1.0
    _: dataclasses.KW_ONLY
    dropout_rate: float = 0.2

    def __post_init__(self):
        check_number(self.width_multiplier, "width_multiplier", low=0, low_open=True)
        super().__post_init__()

    @nn.compact
    def __call__(self, images: jnp.ndarray, *, train: bool = False):
        x = self.checked_input(images)
        conv = conv_bn_def(self)  # The one place of the BatchNorm settings and dtypes.
        width = lambda c: make_divisible(c * self.width_multiplier)
        x = conv(width(32), 3, 2, activation=nn.relu6, name="stem")(x, train=train)
        for i, (t, c, n, s) in enumerate(INVERTED_RESIDUAL_SETTING):
            for j in range(n):
                x = InvertedResidual(
                    width(c),
                    kernel_size=3,
                    strides=s if j == 0 else 1,
                    expansion=t,
                    conv=conv,
                    name=f"stage{i + 1}_block{j + 1}",
                )(x, train=train)
        # The last layer does not shrink below 1280 channels for narrow variants.
        last = make_divisible(1280 * max(1.0, self.width_multiplier))
        x = conv(last, 1, activation=nn.relu6, name="final_conv")(x, train=train)
        return classifier_head(self, x, train=train, dropout_rate=self.dropout_rate)
