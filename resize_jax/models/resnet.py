"""ResNet v1.5 (He et al., 2016; torchvision's variant: the stride of a bottleneck sits on its
3×3 convolution, not its first 1×1).

ResNet-18: 11,689,512 and ResNet-50: 25,557,032 trainable parameters at 1000 classes, as
torchvision. Layer names below are the checkpoint format: do not rename them.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import ClassVar

import flax.linen as nn
import jax.numpy as jnp

from resize_jax.models.common import (
    CNNClassifier,
    ConvBN,
    ModuleDef,
    classifier_head,
    conv_bn_def,
    max_pool_3x3_s2,
)


class _Block(nn.Module):
    """A residual block's fields. `conv`: the model's `ConvBN` partial (BatchNorm settings and
    dtypes); `strides`: of the block's strided convolution and its shortcut."""

    features: int
    conv: ModuleDef = ConvBN
    strides: int = 1


class BasicBlock(_Block):
    """Two 3×3 convolutions plus a shortcut (ResNet-18/34). Output has `features` channels."""

    expansion: ClassVar[int] = 1

    @nn.compact
    def __call__(self, x: jnp.ndarray, *, train: bool = False) -> jnp.ndarray:
        """x: f[B, H, W, C] → f[B, ceil(H / s), ceil(W / s), features]."""
        conv = self.conv
        y = conv(self.features, 3, self.strides, name="conv1")(x, train=train)
        y = conv(self.features, 3, activation=None, name="conv2")(y, train=train)
        shortcut = _shortcut(self, x, self.features, conv, train)
        return nn.relu(y + shortcut)


class Bottleneck(_Block):
    """1×1 → 3×3 (strided, v1.5) → 1×1 (×4 channels) plus a shortcut (ResNet-50 and up)."""

    expansion: ClassVar[int] = 4

    @nn.compact
    def __call__(self, x: jnp.ndarray, *, train: bool = False) -> jnp.ndarray:
        """x: f[B, H, W, C] → f[B, ceil(H / s), ceil(W / s), 4 * features]."""
        conv = self.conv
        out_features = self.features * self.expansion
        y = conv(self.features, 1, name="conv1")(x, train=train)
        y = conv(self.features, 3, self.strides, name="conv2")(y, train=train)
        y = conv(out_features, 1, activation=None, name="conv3")(y, train=train)
        shortcut = _shortcut(self, x, out_features, conv, train)
        return nn.relu(y + shortcut)


def _shortcut(block: nn.Module, x: jnp.ndarray, features: int, conv, train: bool) -> jnp.ndarray:
    # A strided 1×1 projection only where the shape changes, as in torchvision.
    if block.strides == 1 and x.shape[-1] == features:
        return x
    return conv(features, 1, block.strides, activation=None, name="shortcut")(x, train=train)


class ResNet(CNNClassifier):
    """ResNet v1.5 classifier.

    Attributes:
      num_classes: output classes.
      stage_sizes: blocks per stage, e.g. (2, 2, 2, 2) for ResNet-18.
      block_cls: `BasicBlock` or `Bottleneck`.
      num_filters: width of the first stage (doubles every stage).
      bn_momentum, bn_epsilon: torchvision's defaults in Flax's convention.
      trunk: None for the classifier, or "layer1" ... "layer4" (torchvision's names for
        stage1 ... stage4) to stop after that stage and return its feature map; the layers
        after it and the head are not built (`num_classes` is then unused).
      dropout_rate: dropout before the classifier, training only (torchvision: none, 0).
      dtype, param_dtype: computation and parameter dtypes.

    `__call__(images, *, train=False)`: images f[B, H, W, C] with H, W >= `min_input_size`
    (32: five stride-2 layers leave at least one pixel) → (f32[B, num_classes],
    {"pre_logits": f[B, 512 * expansion]}); with `trunk="layerK"`: (f[B, ⌈H/2^(K+1)⌉,
    ⌈W/2^(K+1)⌉, 64·2^(K-1)·expansion], {}).
    """

    stage_sizes: Sequence[int] = (2, 2, 2, 2)
    block_cls: type[nn.Module] = BasicBlock
    num_filters: int = 64
    trunk: str | None = None

    def __post_init__(self):
        trunks = [f"layer{i + 1}" for i in range(len(self.stage_sizes))]
        if self.trunk is not None and self.trunk not in trunks:
            raise ValueError(f"`trunk` must be None or one of {trunks}, got {self.trunk!r}.")
        super().__post_init__()

    @nn.compact
    def __call__(self, images: jnp.ndarray, *, train: bool = False):
        x = self.checked_input(images)
        conv = conv_bn_def(self)  # The one place of the BatchNorm settings and dtypes.
        x = conv(self.num_filters, 7, 2, name="stem")(x, train=train)
        x = max_pool_3x3_s2(x)
        for i, num_blocks in enumerate(self.stage_sizes):
            for j in range(num_blocks):
                x = self.block_cls(
                    self.num_filters * 2**i,
                    conv=conv,
                    strides=2 if i > 0 and j == 0 else 1,
                    name=f"stage{i + 1}_block{j + 1}",
                )(x, train=train)
            if self.trunk == f"layer{i + 1}":
                return x, {}
        return classifier_head(self, x, train=train, dropout_rate=self.dropout_rate)


ResNet18 = functools.partial(ResNet, stage_sizes=(2, 2, 2, 2), block_cls=BasicBlock)
ResNet50 = functools.partial(ResNet, stage_sizes=(3, 4, 6, 3), block_cls=Bottleneck)
