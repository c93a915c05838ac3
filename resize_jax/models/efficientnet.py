"""EfficientNet (Tan & Le, 2019): MBConv blocks with squeeze-and-excitation and stochastic depth.

EfficientNet-B0: 5,288,548 trainable parameters at 1000 classes, as torchvision. Other members
of the family are the same class with other width/depth coefficients. Layer names below are
the checkpoint format: do not rename them.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Callable
from typing import Any

import flax.linen as nn
import jax.numpy as jnp

from resize_jax.models.common import (
    CNNClassifier,
    ModuleDef,
    classifier_head,
    conv_bn_def,
    global_avg_pool,
    make_divisible,
)
from resize_jax.models.mobilenet_v2 import InvertedResidual
from resize_jax.ops.checks import check_number, check_rate

# (expansion, kernel, first stride, output channels, repeats) of B0's seven stages (Table 1).
B0_STAGES = (
    (1, 3, 1, 16, 1),
    (6, 3, 2, 24, 2),
    (6, 5, 2, 40, 2),
    (6, 3, 2, 80, 3),
    (6, 5, 1, 112, 3),
    (6, 5, 2, 192, 4),
    (6, 3, 1, 320, 1),
)


class SqueezeExcitation(nn.Module):
    """Channel gating: global pool → Dense(squeeze) → SiLU → Dense(C) → sigmoid → x * gate."""

    squeeze_features: int
    dtype: Any = jnp.float32
    param_dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x: jnp.ndarray) -> jnp.ndarray:
        """x: f[B, H, W, C] → f[B, H, W, C]."""
        dense = functools.partial(nn.Dense, dtype=self.dtype, param_dtype=self.param_dtype)
        gate = nn.silu(dense(self.squeeze_features, name="reduce")(global_avg_pool(x)))
        gate = nn.sigmoid(dense(x.shape[-1], name="expand")(gate))
        return x * gate[:, None, None, :]


class MBConv(InvertedResidual):
    """Mobile inverted bottleneck: `InvertedResidual` with squeeze-excitation, SiLU, a
    stochastically dropped residual (per example, training only) and hidden widths rounded to
    multiples of 8.

    `se`: `SqueezeExcitation` with the model's dtypes bound.
    """

    se: ModuleDef | None = SqueezeExcitation
    activation: Callable[[jnp.ndarray], jnp.ndarray] = nn.silu

    def hidden_width(self, in_features: int) -> int:
        return make_divisible(in_features * self.expansion)


class EfficientNet(CNNClassifier):
    """EfficientNet classifier.

    Attributes:
      num_classes: output classes.
      width_coefficient, depth_coefficient: compound-scaling factors (B0: 1.0, 1.0).
      stochastic_depth_rate: drop probability of the last block; block i of N uses
        rate × i / N, as torchvision (B0: 0.2).
      dropout_rate: dropout before the classifier, training only (B0: 0.2).
      bn_momentum, bn_epsilon: the original TensorFlow implementation's (0.99, 1e-3).

    `__call__(images, *, train=False)`: images f[B, H, W, C] with H, W >= `min_input_size`
    (32) → (f32[B, num_classes], {"pre_logits": f[B, 1280]}). With `train=True` and nonzero
    rates, pass `rngs={"dropout": key}` to `apply`.
    """

    width_coefficient: float = 1.0
    depth_coefficient: float = 1.0
    stochastic_depth_rate: float = 0.2
    _: dataclasses.KW_ONLY
    dropout_rate: float = 0.2
    bn_momentum: float = 0.99
    bn_epsilon: float = 1e-3

    def __post_init__(self):
        check_rate(self.stochastic_depth_rate, "stochastic_depth_rate")
        for name in ("width_coefficient", "depth_coefficient"):
            check_number(getattr(self, name), name, low=0, low_open=True)
        super().__post_init__()

    @nn.compact
    def __call__(self, images: jnp.ndarray, *, train: bool = False):
        x = self.checked_input(images)
        conv = conv_bn_def(self)  # The one place of the BatchNorm settings and dtypes.
        se = functools.partial(SqueezeExcitation, dtype=self.dtype, param_dtype=self.param_dtype)
        width = lambda c: make_divisible(c * self.width_coefficient)
        repeats = [math.ceil(n * self.depth_coefficient) for *_, n in B0_STAGES]
        total_blocks = sum(repeats)

        x = conv(width(32), 3, 2, activation=nn.silu, name="stem")(x, train=train)
        block_id = 0
        for i, ((expansion, kernel, stride, features, _), n) in enumerate(
            zip(B0_STAGES, repeats, strict=True)
        ):
            for j in range(n):
                x = MBConv(
                    width(features),
                    kernel,
                    stride if j == 0 else 1,
                    expansion,
                    drop_path_rate=self.stochastic_depth_rate * block_id / total_blocks,
                    conv=conv,
                    se=se,
                    name=f"stage{i + 1}_block{j + 1}",
                )(x, train=train)
                block_id += 1
        # 4 × the last stage's width (1280 for B0), as torchvision.
        head_width = 4 * width(B0_STAGES[-1][3])
        x = conv(head_width, 1, activation=nn.silu, name="final_conv")(x, train=train)
        return classifier_head(self, x, train=train, dropout_rate=self.dropout_rate)


EfficientNetB0 = functools.partial(
    EfficientNet,
    width_coefficient=1.0,
    depth_coefficient=1.0,
    dropout_rate=0.2,
    stochastic_depth_rate=0.2,
)
