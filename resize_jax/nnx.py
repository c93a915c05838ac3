"""Front-ends as Flax NNX modules: `to_nnx(frontend, sample_images, rngs=...)`.

The front-ends are linen modules. `flax.nnx.bridge.ToNNX` already wraps any linen module,
but a wrapped front-end keeps its BatchNorm statistics frozen unless every training call
passes `mutable=["batch_stats"]`; `FrontEnd` passes it whenever `train=True`, so the module
behaves like an NNX layer (statistics updated in place in training, used in evaluation).
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
from flax import nnx


class FrontEnd(nnx.bridge.ToNNX):
    """A linen front-end as an NNX module. Call it as the front-end itself:
    `resized, aux = module(images, train=...)` (plus the front-end's own keywords,
    e.g. a saliency sampler's `step`), images: f[B, H, W, C].

    In training (`train=True`) the wrapped module's mutable collections (BatchNorm's
    `batch_stats`) are updated in place. A saliency sampler with `blur_steps` draws its blur
    from the "blur" stream of the `rngs` given here or at construction, if any.
    """

    def __call__(self, images, *, train: bool = False, rngs=None, **kwargs: Any):
        # `kwargs`: the front-end's own keywords, e.g. the saliency sampler's `step`.
        if self._pytree__state.initializing:
            return super().__call__(images, train=train, rngs=rngs, **kwargs)
        mutable = ["batch_stats"] if train else False
        return super().__call__(images, train=train, rngs=rngs, mutable=mutable, **kwargs)


def to_nnx(frontend: nn.Module, sample_images, *, rngs: nnx.Rngs) -> FrontEnd:
    """`frontend` (a linen front-end) as an initialised NNX module.

    Args:
      frontend: a front-end from `resize_jax.frontends` (or `get_frontend(...)`).
      sample_images: f[B, H, W, C] (or a `jax.ShapeDtypeStruct`) of the input size; only
        its shape matters.
      rngs: `nnx.Rngs` for the parameters (its default stream, or "params").

    Returns:
      A `FrontEnd` whose parameters are `nnx.Param`s and BatchNorm statistics
      `nnx.BatchStat`s, usable alone or as an attribute of your own `nnx.Module`.

    Raises:
      ValueError: if `frontend` is not a linen module or `rngs` is not an `nnx.Rngs`.
    """
    if not isinstance(frontend, nn.Module):
        raise ValueError(
            f"`frontend` must be a flax.linen front-end module, got {type(frontend).__name__}."
        )
    if not isinstance(rngs, nnx.Rngs):
        raise ValueError(f"`rngs` must be a flax.nnx.Rngs, got {type(rngs).__name__}.")
    return nnx.bridge.lazy_init(FrontEnd(frontend, rngs=rngs), sample_images)
