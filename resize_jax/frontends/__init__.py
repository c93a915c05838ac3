"""Front-ends: flax.linen modules mapping high-resolution images to a network's input.

The protocol every front-end follows (`__call__(images, *, train=False, step=None) ->
(resized, aux)`, declared `rng_streams`, `to_input` back to the input image) is documented in
`resize_jax.frontends.base`; adding one is a module deriving from `FrontEnd` plus one
`@register_frontend(name)` line, and tests/test_frontend_protocol.py then checks it.
"""

from resize_jax.frontends.base import FrontEnd
from resize_jax.frontends.fixed import FixedResizer
from resize_jax.frontends.learned import LearnedResizer, ResidualBlock
from resize_jax.frontends.registry import (
    NO_FRONTEND,
    describe_frontend,
    frontend_class,
    frontend_names,
    frontend_rank,
    get_frontend,
    register_frontend,
)
from resize_jax.frontends.saliency import SaliencySampler
from resize_jax.frontends.saliency_net import SaliencyCNN

__all__ = [
    "NO_FRONTEND",
    "FixedResizer",
    "FrontEnd",
    "LearnedResizer",
    "ResidualBlock",
    "SaliencyCNN",
    "SaliencySampler",
    "describe_frontend",
    "frontend_class",
    "frontend_names",
    "frontend_rank",
    "get_frontend",
    "register_frontend",
]
