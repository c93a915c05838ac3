"""MobileNetV2 (Sandler et al., 2018), as torchvision.

Width 1.0: 3,504,872 trainable parameters at 1000 classes. Layer names below are the
checkpoint format: do not rename them.
"""

from __future__ import annotations

import functools
from typing import Any, ClassVar

import flax.linen as nn
import jax.numpy as jnp

from resize_jax.models.common import (
    ConvBN,
    ModuleDef,
    check_backbone_input,
    check_positive_int,
    check_rate,
    classifier_head,
    conv_bn_def,
    make_divisible,
)

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
    """1×1 expand (ReLU6) → 3×3 depthwise (ReLU6) → 1×1 linear projection (+ input if shapes
    match)."""

    features: int
    strides: int
    expansion: int
    conv: ModuleDef = ConvBN  # The model's `conv_bn_def`: BatchNorm settings and dtypes.

    @nn.compact
    def __call__(self, x: jnp.ndarray, *, train: bool = False) -> jnp.ndarray:
        """x: f[B, H, W, C] → f[B, ceil(H / s), ceil(W / s), features]."""
        conv = functools.partial(self.conv, activation=nn.relu6)
        in_features = x.shape[-1]
        hidden = round(in_features * self.expansion)
        y = x
        if self.expansion != 1:
            y = conv(hidden, 1, name="expand")(y, train=train)
        y = conv(hidden, 3, self.strides, groups=hidden, name="depthwise")(y, train=train)
        y = conv(self.features, 1, activation=None, name="project")(y, train=train)
        if self.strides == 1 and in_features == self.features:
            y = x + y
        return y


class MobileNetV2(nn.Module):
    """MobileNetV2 classifier.

    Attributes:
      num_classes: output classes.
      width_multiplier: scales every width (rounded to multiples of 8, as the reference).
      dropout_rate: dropout before the classifier, training only (paper/torchvision: 0.2).

    `__call__(images, *, train=False)`: images f[B, H, W, C] with H, W >= `min_input_size`
    (32) → (f32[B, num_classes], {"pre_logits": f[B, 1280]}).
    """

    num_classes: int
    width_multiplier: float = 1.0
    dropout_rate: float = 0.2
    bn_momentum: float = 0.9
    bn_epsilon: float = 1e-5
    dtype: Any = jnp.float32
    param_dtype: Any = jnp.float32

    min_input_size: ClassVar[int] = 32

    def __post_init__(self):
        check_positive_int(self.num_classes, "num_classes")
        check_rate(self.dropout_rate, "dropout_rate")
        if not self.width_multiplier > 0:
            raise ValueError(f"`width_multiplier` must be > 0, got {self.width_multiplier!r}.")
        super().__post_init__()

    @nn.compact
    def __call__(self, images: jnp.ndarray, *, train: bool = False):
        check_backbone_input(images, self.min_input_size, type(self).__name__)
        conv = conv_bn_def(self)  # The one place of the BatchNorm settings and dtypes.
        width = lambda c: make_divisible(c * self.width_multiplier)
        x = images.astype(self.dtype)
        x = conv(width(32), 3, 2, activation=nn.relu6, name="stem")(x, train=train)
        for i, (t, c, n, s) in enumerate(INVERTED_RESIDUAL_SETTING):
            for j in range(n):
                x = InvertedResidual(
                    width(c),
                    strides=s if j == 0 else 1,
                    expansion=t,
                    conv=conv,
                    name=f"stage{i + 1}_block{j + 1}",
                )(x, train=train)
        # The last layer does not shrink below 1280 channels for narrow variants.
        last = make_divisible(1280 * max(1.0, self.width_multiplier))
        x = conv(last, 1, activation=nn.relu6, name="final_conv")(x, train=train)
        return classifier_head(self, x, train=train, dropout_rate=self.dropout_rate)
