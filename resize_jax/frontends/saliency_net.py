"""The default saliency network of `SaliencySampler`: a small CNN on the low-resolution copy.

The paper uses an ImageNet-pretrained ResNet-18 truncated after layer3, its third stage
(`resize_jax.frontends.saliency_trunk`); any linen module can be passed to
`SaliencySampler(saliency_net=...)` instead. This default is cheap
enough for CPU runs: three stride-2 3×3 convolutions (224 → 28 cells) with ReLU, then a 1×1
convolution to one logit per cell.
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax.numpy as jnp


class SaliencyCNN(nn.Module):
    """images: f[B, h, w, C] → saliency logits f[B, ⌈h/8⌉, ⌈w/8⌉, 1].

    Attributes:
      features: widths of the three stride-2 convolutions.
      dtype: computation dtype; param_dtype: parameter dtype.
    """

    features: tuple[int, ...] = (16, 32, 64)
    dtype: Any = jnp.float32
    param_dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, images: jnp.ndarray, *, train: bool = False) -> jnp.ndarray:
        del train  # No batch statistics or dropout.
        x = images.astype(self.dtype)
        for k, width in enumerate(self.features):
            x = nn.Conv(
                width,
                (3, 3),
                strides=(2, 2),
                padding="SAME",
                dtype=self.dtype,
                param_dtype=self.param_dtype,
                name=f"conv{k}",
            )(x)
            x = nn.relu(x)
        return nn.Conv(1, (1, 1), dtype=self.dtype, param_dtype=self.param_dtype, name="logits")(x)
