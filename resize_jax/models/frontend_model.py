"""FrontEndModel: a front-end followed by a backbone, trained end to end."""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from resize_jax.frontends.base import resize_to_input
from resize_jax.ops.checks import check_bool


class FrontEndModel(nn.Module):
    """images → front-end → backbone.

    Attributes:
      frontend: a front-end (the protocol of `resize_jax.frontends.base`), or None to feed
        the images to the backbone unchanged (the full-resolution upper bound).
      backbone: a backbone module (`__call__(images, *, train) -> (outputs, aux)`).
      input_mean, input_std: per-channel normalisation of the backbone's input,
        `(resized - mean) / std` (pretrained backbones expect their framework's, see
        `resize_jax.models.pretrained.preprocessing`); None: the resized images as they are.

    Parameters and batch statistics live under the top-level names "frontend" and
    "backbone" (a parameter-free front-end such as "fixed" has no "frontend" entry), so
    either part can be frozen, re-initialised or loaded from another run on its own.
    """

    frontend: nn.Module | None
    backbone: nn.Module
    input_mean: tuple[float, ...] | None = None
    input_std: tuple[float, ...] | None = None

    @property
    def rng_streams(self) -> tuple[str, ...]:
        """The RNG streams a training call draws from: "dropout" (backbones) and the
        front-end's own (`rngs=` of `apply` must hold them all)."""
        own = () if self.frontend is None else tuple(self.frontend.rng_streams)
        return ("dropout", *(s for s in own if s != "dropout"))

    @nn.compact
    def __call__(self, images: jnp.ndarray, *, train: bool = False, step=None) -> tuple[Any, dict]:
        """images: f[B, H, W, C] → (backbone outputs, e.g. f32[B, num_classes], aux).

        aux = {"frontend": the front-end's aux ({} without one), "resized": the backbone's
        input f[B, h, w, C], "backbone": the backbone's aux}. `step` (the training step) goes
        to the front-end (e.g. the saliency sampler's blur schedule).
        """
        check_bool(train, "train")
        if self.frontend is None:
            resized, frontend_aux = images, {}
        else:
            resized, frontend_aux = self.frontend(images, train=train, step=step)
        backbone_input = resized
        if self.input_mean is not None or self.input_std is not None:
            mean = jnp.asarray(self.input_mean or 0.0, resized.dtype)
            std = jnp.asarray(self.input_std or 1.0, resized.dtype)
            backbone_input = (resized - mean) / std
        outputs, backbone_aux = self.backbone(backbone_input, train=train)
        return outputs, {"frontend": frontend_aux, "resized": resized, "backbone": backbone_aux}

    @nn.nowrap
    def to_input(self, dense: jax.Array, aux: dict, input_shape: tuple[int, int]) -> jax.Array:
        """Dense outputs f[B, h, w, K] of the backbone → f32[B, H, W, K] on the input image's
        pixel grid, by the front-end's own `to_input` (given the `aux` of the same call)."""
        if self.frontend is None:
            return resize_to_input(dense, input_shape)
        return self.frontend.to_input(dense, aux["frontend"], input_shape)
