"""Name → backbone registry, so configs pick a task network by string."""

from __future__ import annotations

from collections.abc import Callable

import flax.linen as nn

from resize_jax.models.densenet import DenseNet121
from resize_jax.models.efficientnet import EfficientNetB0
from resize_jax.models.enet import ENet
from resize_jax.models.inception_v2 import InceptionV2
from resize_jax.models.mobilenet_v2 import MobileNetV2
from resize_jax.models.resnet import ResNet18, ResNet50
from resize_jax.models.small_cnn import SmallCNN
from resize_jax.models.vit import ViTB16, ViTL16, ViTS16, ViTTi16

_MODELS: dict[str, Callable[..., nn.Module]] = {
    "densenet121": DenseNet121,
    "efficientnet_b0": EfficientNetB0,
    "enet": ENet,
    "inception_v2": InceptionV2,
    "mobilenet_v2": MobileNetV2,
    "resnet18": ResNet18,
    "resnet50": ResNet50,
    "small_cnn": SmallCNN,
    "vit_b16": ViTB16,
    "vit_l16": ViTL16,
    "vit_s16": ViTS16,
    "vit_ti16": ViTTi16,
}


def model_names() -> list[str]:
    """The registered backbone names, sorted."""
    return sorted(_MODELS)


def model_factory(name: str) -> Callable[..., nn.Module]:
    """The class (or `functools.partial` of one) registered as `name`."""
    if name not in _MODELS:
        raise ValueError(f"Unknown model `name`={name!r}; known names: {model_names()}.")
    return _MODELS[name]


def get_model(name: str, *, num_classes: int, **kwargs) -> nn.Module:
    """Builds the backbone registered as `name`, e.g. `get_model("resnet50", num_classes=10)`.

    `kwargs` set the architecture's other fields (`dtype`, `dropout_rate`, ...); ResNets
    take `trunk="layer3"` to return that stage's feature map instead of logits.

    Raises:
      ValueError: if `name` is unknown (the message lists the known names), or a field is bad.
    """
    factory = model_factory(name)
    if kwargs.get("trunk") is not None and "trunk" not in _fields(factory):
        raise ValueError(
            f"`trunk`={kwargs['trunk']!r}: model {name!r} has no trunk option (ResNets do)."
        )
    return factory(num_classes=num_classes, **kwargs)


def _fields(factory) -> set[str]:
    import dataclasses

    return {f.name for f in dataclasses.fields(getattr(factory, "func", factory))}
