"""Task networks (backbones), the FrontEndModel composition, and FLOP/parameter accounting.

Backbone contract: a flax.linen module with fields `num_classes`, `dtype`, `param_dtype`, an
attribute `min_input_size`, and `__call__(images, *, train=False) -> (logits, aux)` with
`logits: f32[B, num_classes]` and `aux = {"pre_logits": f[B, D]}`. BatchNorm statistics live in
`batch_stats`; dropout and stochastic depth use the "dropout" RNG, in training only.
"""

from resize_jax.models.accounting import count_params, flops
from resize_jax.models.densenet import DenseNet, DenseNet121
from resize_jax.models.efficientnet import EfficientNet, EfficientNetB0
from resize_jax.models.enet import ENet
from resize_jax.models.frontend_model import FrontEndModel
from resize_jax.models.inception_v2 import InceptionV2
from resize_jax.models.mobilenet_v2 import MobileNetV2
from resize_jax.models.registry import get_model, model_factory, model_names
from resize_jax.models.resnet import ResNet, ResNet18, ResNet50
from resize_jax.models.small_cnn import SmallCNN
from resize_jax.models.vit import ViT

__all__ = [
    "DenseNet",
    "DenseNet121",
    "ENet",
    "EfficientNet",
    "EfficientNetB0",
    "FrontEndModel",
    "InceptionV2",
    "MobileNetV2",
    "ResNet",
    "ResNet18",
    "ResNet50",
    "SmallCNN",
    "ViT",
    "count_params",
    "flops",
    "get_model",
    "model_factory",
    "model_names",
]
