"""DenseNet (Huang et al., 2017), BC variant as in torchvision.

DenseNet-121: 7,978,856 trainable parameters at 1000 classes, as torchvision. Layer names
below are the checkpoint format: do not rename them.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import flax.linen as nn
import jax.numpy as jnp

from resize_jax.models.common import (
    CNNClassifier,
    ModuleDef,
    batch_norm,
    classifier_head,
    conv2d,
    conv_bn_def,
    conv_def,
    max_pool_3x3_s2,
    norm_def,
)


class BNReLUConv(nn.Module):
    """Pre-activation unit: BN → ReLU → conv (no bias), DenseNet's building block.

    `norm`, `conv`: the model's `norm_def` and `conv_def` (BatchNorm settings and dtypes)."""

    features: int
    kernel_size: int
    norm: ModuleDef = nn.BatchNorm
    conv: ModuleDef = conv2d

    @nn.compact
    def __call__(self, x: jnp.ndarray, *, train: bool = False) -> jnp.ndarray:
        """x: f[B, H, W, C] → f[B, H, W, features]."""
        x = nn.relu(self.norm(use_running_average=not train, name="bn")(x))
        return self.conv(self.features, self.kernel_size, name="conv")(x)


class DenseNet(CNNClassifier):
    """DenseNet-BC classifier.

    Attributes:
      num_classes: output classes.
      block_sizes: dense layers per block, e.g. (6, 12, 24, 16) for DenseNet-121.
      growth_rate: channels each dense layer adds (k).
      num_init_features: channels of the stem convolution.
      bn_size: bottleneck width of a dense layer, in multiples of `growth_rate`.
      compression: transition layers keep this fraction of the channels.
      dropout_rate: dropout before the classifier (training only; torchvision: 0).

    `__call__(images, *, train=False)`: images f[B, H, W, C] with H, W >= `min_input_size`
    (32) → (f32[B, num_classes], {"pre_logits": f[B, D]}), D = 1024 for DenseNet-121.
    """

    block_sizes: Sequence[int] = (6, 12, 24, 16)
    growth_rate: int = 32
    num_init_features: int = 64
    bn_size: int = 4
    compression: float = 0.5

    @nn.compact
    def __call__(self, images: jnp.ndarray, *, train: bool = False):
        x = self.checked_input(images)
        unit = functools.partial(BNReLUConv, norm=norm_def(self), conv=conv_def(self))
        x = conv_bn_def(self)(self.num_init_features, 7, 2, name="stem")(x, train=train)
        x = max_pool_3x3_s2(x)
        for i, num_layers in enumerate(self.block_sizes):
            for j in range(num_layers):
                name = f"block{i + 1}_layer{j + 1}"
                y = unit(self.bn_size * self.growth_rate, 1, name=f"{name}_reduce")(x, train=train)
                y = unit(self.growth_rate, 3, name=f"{name}_conv")(y, train=train)
                x = jnp.concatenate([x, y], axis=-1)
            if i < len(self.block_sizes) - 1:
                features = int(x.shape[-1] * self.compression)
                x = unit(features, 1, name=f"transition{i + 1}")(x, train=train)
                x = nn.avg_pool(x, (2, 2), strides=(2, 2))
        x = nn.relu(batch_norm(self, train, "final_bn")(x))
        return classifier_head(self, x, train=train, dropout_rate=self.dropout_rate)


DenseNet121 = functools.partial(DenseNet, block_sizes=(6, 12, 24, 16), growth_rate=32)
