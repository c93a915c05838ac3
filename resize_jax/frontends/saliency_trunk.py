"""The saliency network of Recasens et al.'s code: an ImageNet-pretrained ResNet-18 through
layer3 (`saliency_network_resnet18`, stride 16: a 224×224 copy gives 14×14 features).

`SaliencySampler` adds the 1×1 convolution to one channel ("saliency_head") and resizes the
map to its grid. Select it from a config with `config.frontend.saliency_net="resnet18_layer3"`
and load pretrained weights into it with `config.frontend.saliency_net_weights=FILE`
(see docs/pretrained.md).
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax.numpy as jnp

from resize_jax.models.registry import model_factory

# name → (backbone, trunk).
SALIENCY_NETS = {"resnet18_layer3": ("resnet18", "layer3")}
# The low-resolution copy arrives as pixels in [0, 1]; ImageNet-pretrained networks expect
# them normalised with these statistics.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class SaliencyTrunk(nn.Module):
    """images f[B, h, w, 3] in [0, 1] → features f[B, ⌈h/16⌉, ⌈w/16⌉, 256] (for layer3).

    Attributes:
      backbone, trunk: the registered backbone and where it stops ("resnet18", "layer3").
      mean, std: per-channel input normalisation (ImageNet's by default).
      bn_epsilon, bn_momentum: the backbone's BatchNorm (PyTorch's by default).
    Parameters live under "resnet" (the backbone's own layer names).
    """

    backbone: str = "resnet18"
    trunk: str = "layer3"
    mean: tuple[float, ...] = IMAGENET_MEAN
    std: tuple[float, ...] = IMAGENET_STD
    bn_epsilon: float = 1e-5
    bn_momentum: float = 0.9
    dtype: Any = jnp.float32
    param_dtype: Any = jnp.float32

    def network(self, **kwargs) -> nn.Module:
        """The backbone trunk; without `name`, unbound (for loading weights into it)."""
        if "name" not in kwargs:
            kwargs["parent"] = None  # Not a submodule of this (possibly unbound) module.
        return model_factory(self.backbone)(
            num_classes=1,  # Unused: a trunk has no head.
            trunk=self.trunk,
            bn_epsilon=self.bn_epsilon,
            bn_momentum=self.bn_momentum,
            dtype=self.dtype,
            param_dtype=self.param_dtype,
            **kwargs,
        )

    @nn.compact
    def __call__(self, images: jnp.ndarray, *, train: bool = False) -> jnp.ndarray:
        x = (images - jnp.asarray(self.mean, images.dtype)) / jnp.asarray(self.std, images.dtype)
        features, _ = self.network(name="resnet")(x, train=train)
        return features


def get_saliency_net(name: str, **kwargs) -> SaliencyTrunk | None:
    """The saliency network registered as `name` ("" or "cnn": None, the default CNN)."""
    if name in ("", "cnn"):
        return None
    if name not in SALIENCY_NETS:
        raise ValueError(f"`saliency_net` must be one of {['cnn', *SALIENCY_NETS]}, got {name!r}.")
    backbone, trunk = SALIENCY_NETS[name]
    return SaliencyTrunk(backbone=backbone, trunk=trunk, **kwargs)
