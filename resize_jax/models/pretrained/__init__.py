"""Pretrained weights from torchvision, timm and Keras files, with the source's exact logits.

  model, variables = pretrained.load("resnet50", "resnet50.pth", source="torchvision")
  x = (images - mean) / std   # pretrained.preprocessing("torchvision", "resnet50")
  logits, _ = model.apply(variables, x, train=False)

See docs/pretrained.md for the supported sources and models.
"""

from resize_jax.models.pretrained.files import read_tensors
from resize_jax.models.pretrained.loader import (
    SOURCES,
    import_variables,
    load,
    model_fields,
    preprocessing,
    read_source,
    recipe,
    supported,
)

__all__ = [
    "SOURCES",
    "import_variables",
    "load",
    "model_fields",
    "preprocessing",
    "read_source",
    "read_tensors",
    "recipe",
    "supported",
]
