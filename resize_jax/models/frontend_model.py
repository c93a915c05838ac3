"""FrontEndModel: a front-end followed by a backbone, trained end to end."""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax.numpy as jnp

from resize_jax.ops.checks import check_bool


class FrontEndModel(nn.Module):
    """images → front-end → backbone.

    Attributes:
      frontend: a front-end module (`__call__(images, *, train) -> (resized, aux)`), or None
        to feed the images to the backbone unchanged (the full-resolution upper bound).
      backbone: a backbone module (`__call__(images, *, train) -> (outputs, aux)`).

    Parameters and batch statistics live under the top-level names "frontend" and
    "backbone" (a parameter-free front-end such as "fixed" has no "frontend" entry), so
    either part can be frozen, re-initialised or loaded from another run on its own.
    """

    frontend: nn.Module | None
    backbone: nn.Module

    @nn.compact
    def __call__(
        self, images: jnp.ndarray, *, train: bool = False, **frontend_kwargs
    ) -> tuple[Any, dict]:
        """images: f[B, H, W, C] → (backbone outputs, e.g. f32[B, num_classes], aux).

        aux = {**front-end aux, "resized": the backbone's input f[B, h, w, C],
               "backbone": the backbone's aux}.
        `frontend_kwargs` go to the front-end only (e.g. `step=` for the saliency sampler's
        blur schedule); without a front-end they are ignored.
        """
        check_bool(train, "train")
        if self.frontend is None:
            resized, frontend_aux = images, {}
        else:
            resized, frontend_aux = self.frontend(images, train=train, **frontend_kwargs)
        outputs, backbone_aux = self.backbone(resized, train=train)
        return outputs, {**frontend_aux, "resized": resized, "backbone": backbone_aux}
