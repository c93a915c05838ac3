"""resize_jax: learnable image front-ends for JAX/Flax."""

from resize_jax import frontends, ops
from resize_jax.frontends import FixedResizer, LearnedResizer, get_frontend
from resize_jax.ops import resize

__version__ = "0.1.0"

__all__ = [
    "FixedResizer",
    "LearnedResizer",
    "__version__",
    "frontends",
    "get_frontend",
    "ops",
    "resize",
]
