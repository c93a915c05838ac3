"""resize_jax: learnable image front-ends for JAX/Flax."""

from resize_jax import frontends, models, ops
from resize_jax.frontends import FixedResizer, LearnedResizer, SaliencySampler, get_frontend
from resize_jax.models import FrontEndModel, get_model
from resize_jax.ops import resize

__version__ = "0.1.0"

__all__ = [
    "FixedResizer",
    "FrontEndModel",
    "LearnedResizer",
    "SaliencySampler",
    "__version__",
    "frontends",
    "get_frontend",
    "get_model",
    "models",
    "ops",
    "resize",
]
