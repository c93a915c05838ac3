"""SmallCNN: a CIFAR-style convolutional classifier cheap enough to train on a CPU.

Each stage is conv3x3 → BN → ReLU, followed by a 2×2 max pool except after the last stage,
then global average pooling and a linear classifier. The default widths (32, 64, 64, 128) give
131,754 trainable parameters for RGB and 10 classes. Pooling after every stage keeps the cost
proportional to the pixel count with a small constant: about 9 M multiply-adds per image at
32×32 and 16 times that at 128×128, so it also serves as the full-resolution upper bound
(the backbone fed the original images, no front-end) in CPU experiments.
"""

from __future__ import annotations

from collections.abc import Sequence

import flax.linen as nn
import jax.numpy as jnp

from resize_jax.models.common import (
    CNNClassifier,
    classifier_head,
    conv_bn_def,
)
from resize_jax.ops.checks import check_positive_int


class SmallCNN(CNNClassifier):
    """Small CNN classifier for CPU runs.

    Attributes:
      num_classes: output classes.
      widths: channels of each conv stage; a 2×2 max pool follows every stage but the last.
      dropout_rate: dropout before the classifier, training only.

    `__call__(images, *, train=False)`: images f[B, H, W, C] with H, W >= `min_input_size`
    (2 ** (len(widths) - 1) = 8 by default) → (f32[B, num_classes],
    {"pre_logits": f[B, widths[-1]]}).
    """

    widths: Sequence[int] = (32, 64, 64, 128)

    def __post_init__(self):
        if not self.widths:
            raise ValueError(f"`widths` must hold at least one width, got {self.widths!r}.")
        for w in self.widths:
            check_positive_int(w, "widths")
        super().__post_init__()

    @property
    def min_input_size(self) -> int:
        """Smallest input height/width: every pool halves the size (rounding down)."""
        return 2 ** (len(self.widths) - 1)

    @nn.compact
    def __call__(self, images: jnp.ndarray, *, train: bool = False):
        x = self.checked_input(images)
        conv = conv_bn_def(self)
        for i, width in enumerate(self.widths):
            x = conv(width, 3, name=f"stage{i + 1}")(x, train=train)
            if i < len(self.widths) - 1:
                x = nn.max_pool(x, (2, 2), strides=(2, 2))
        return classifier_head(self, x, train=train, dropout_rate=self.dropout_rate)
