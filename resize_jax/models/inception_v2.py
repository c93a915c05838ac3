"""Inception-v2 = BN-Inception (Ioffe & Szegedy, "Batch Normalization", ICML 2015, Figure 5).

Reference matched: the Caffe BN-Inception ported to PyTorch as Cadene's pretrainedmodels
`bninception` (also osmr/imgclsmob's "BN-Inception"), 11,295,240 trainable parameters at 1000
classes. That model gives every convolution a bias before its BatchNorm (redundant, kept for
parity and weight porting); `conv_bias=False` drops them (11,285,224). TF-slim's
`inception_v2` is a different network (a depthwise-separable 7×7 stem, BN without scale).

One deviation: Caffe's stride-2 max pools use `ceil_mode` without padding, which at odd sizes
gives one pixel fewer than the strided 3×3 convolutions beside them (their concatenation then
fails). Here those pools pad by 1 instead: the same output sizes at even sizes (224 → 7×7),
and every size >= `min_input_size` works.
"""

from __future__ import annotations

from typing import NamedTuple

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


class InceptionSpec(NamedTuple):
    """Widths of one Inception module (0 = branch absent); Figure 5 of the paper."""

    conv_1x1: int
    reduce_3x3: int
    conv_3x3: int
    reduce_double_3x3: int
    double_3x3: int
    pool: str  # "avg" or "max"
    pool_proj: int  # 0: the pool output passes through unprojected (stride-2 modules)
    strides: int


# Note 4c: its double 3×3 branch is 128 → 160 → 160, as in the Caffe model.
MODULES = {
    "3a": InceptionSpec(64, 64, 64, 64, 96, "avg", 32, 1),
    "3b": InceptionSpec(64, 64, 96, 64, 96, "avg", 64, 1),
    "3c": InceptionSpec(0, 128, 160, 64, 96, "max", 0, 2),
    "4a": InceptionSpec(224, 64, 96, 96, 128, "avg", 128, 1),
    "4b": InceptionSpec(192, 96, 128, 96, 128, "avg", 128, 1),
    "4c": InceptionSpec(160, 128, 160, 128, 160, "avg", 128, 1),
    "4d": InceptionSpec(96, 128, 192, 160, 192, "avg", 128, 1),
    "4e": InceptionSpec(0, 128, 192, 192, 256, "max", 0, 2),
    "5a": InceptionSpec(352, 192, 320, 160, 224, "avg", 128, 1),
    "5b": InceptionSpec(352, 192, 320, 192, 224, "max", 128, 1),
}


class InceptionModule(nn.Module):
    """Four parallel branches concatenated on channels: 1×1; 1×1 → 3×3; 1×1 → 3×3 → 3×3;
    3×3 pool (→ 1×1). Stride-2 modules drop the 1×1 branch and pass the pool through."""

    spec: InceptionSpec
    conv: ModuleDef = ConvBN  # The model's `conv_bn_def`: BatchNorm, bias, dtypes.

    @nn.compact
    def __call__(self, x: jnp.ndarray, *, train: bool = False) -> jnp.ndarray:
        """x: f[B, H, W, C] → f[B, ceil(H / s), ceil(W / s), sum of branch widths]."""
        s = self.spec
        conv = self.conv
        branches = []
        if s.conv_1x1:
            branches.append(conv(s.conv_1x1, 1, name="conv_1x1")(x, train=train))
        y = conv(s.reduce_3x3, 1, name="conv_3x3_reduce")(x, train=train)
        branches.append(conv(s.conv_3x3, 3, s.strides, name="conv_3x3")(y, train=train))
        y = conv(s.reduce_double_3x3, 1, name="double_3x3_reduce")(x, train=train)
        y = conv(s.double_3x3, 3, name="double_3x3_1")(y, train=train)
        branches.append(conv(s.double_3x3, 3, s.strides, name="double_3x3_2")(y, train=train))
        if s.strides == 2:
            pooled = max_pool_3x3_s2(x)
        else:
            pool = nn.max_pool if s.pool == "max" else nn.avg_pool
            # Average pools count the zero padding, as Caffe and the paper's model do.
            pooled = pool(x, (3, 3), strides=(1, 1), padding=((1, 1), (1, 1)))
        if s.pool_proj:
            pooled = conv(s.pool_proj, 1, name="pool_proj")(pooled, train=train)
        branches.append(pooled)
        return jnp.concatenate(branches, axis=-1)


class InceptionV2(CNNClassifier):
    """BN-Inception classifier.

    Attributes:
      num_classes: output classes.
      conv_bias: biases on the convolutions, as the reference model (see the module docstring).
      dropout_rate: dropout before the classifier, training only. Default 0: the paper
        removed GoogLeNet's dropout (Section 4.2.1).

    `__call__(images, *, train=False)`: images f[B, H, W, C] with H, W >= `min_input_size`
    (32) → (f32[B, num_classes], {"pre_logits": f[B, 1024]}).
    """

    conv_bias: bool = True

    @nn.compact
    def __call__(self, images: jnp.ndarray, *, train: bool = False):
        x = self.checked_input(images)
        # The one place of the BatchNorm settings, the conv bias and the dtypes.
        conv = conv_bn_def(self, use_bias=self.conv_bias)
        x = conv(64, 7, 2, name="conv1_7x7")(x, train=train)
        x = max_pool_3x3_s2(x)
        x = conv(64, 1, name="conv2_3x3_reduce")(x, train=train)
        x = conv(192, 3, name="conv2_3x3")(x, train=train)
        x = max_pool_3x3_s2(x)
        for name, spec in MODULES.items():
            x = InceptionModule(spec, conv, name=f"inception_{name}")(x, train=train)
        return classifier_head(self, x, train=train, dropout_rate=self.dropout_rate)
