"""Front-ends: flax.linen modules mapping high-resolution images to a network's input.

Contract: a field `output_shape: tuple[int, int]` and
`__call__(images, *, train=False) -> (resized, aux)`, images NHWC floats, `aux` a dict of
inspectable intermediates (empty for fixed resizers).
"""

from resize_jax.frontends.fixed import FixedResizer
from resize_jax.frontends.learned import LearnedResizer, ResidualBlock
from resize_jax.frontends.registry import (
    frontend_class,
    frontend_names,
    get_frontend,
    register_frontend,
)
from resize_jax.frontends.saliency import SaliencySampler
from resize_jax.frontends.saliency_net import SaliencyCNN

__all__ = [
    "FixedResizer",
    "LearnedResizer",
    "ResidualBlock",
    "SaliencyCNN",
    "SaliencySampler",
    "frontend_class",
    "frontend_names",
    "get_frontend",
    "register_frontend",
]
