"""FixedResizer: a classical resize behind the front-end interface (the honest baseline)."""

from __future__ import annotations

from typing import Any, ClassVar

import flax.linen as nn
import jax.numpy as jnp

from resize_jax import ops
from resize_jax.frontends.base import FrontEnd, keep_checked
from resize_jax.frontends.registry import register_frontend
from resize_jax.ops.checks import check_bool, check_choice, check_images, check_size_pair


@register_frontend("fixed")
class FixedResizer(FrontEnd):
    """Resizes with a fixed kernel; no parameters.

    Attributes:
      output_shape: (out_h, out_w) of the resized images.
      method: interpolation method, see `resize_jax.ops.METHODS`.
      antialias: low-pass filter when downscaling (see `resize_jax.ops.resize`).
      dtype: computation dtype of the output.
    """

    label: ClassVar[str] = "fixed"

    output_shape: tuple[int, int]
    method: str = "bilinear"
    antialias: bool = False
    dtype: Any = jnp.float32
    param_dtype: Any = jnp.float32  # Unused: no parameters; kept for the uniform contract.

    def __post_init__(self):
        keep_checked(self, output_shape=check_size_pair(self.output_shape, "output_shape"))
        check_choice(self.method, "method", ops.METHODS)
        check_bool(self.antialias, "antialias")
        super().__post_init__()

    @classmethod
    def describe(cls, section) -> str:
        """ "fixed bilinear", "fixed bicubic (antialiased)", ..."""
        name = f"{cls.label} {section.get('method', 'bilinear')}"
        return name + (" (antialiased)" if section.get("antialias") else "")

    @nn.compact
    def __call__(self, images: jnp.ndarray, *, train: bool = False, step=None):
        """images: f[B, H, W, C] → (f[B, out_h, out_w, C], {})."""
        check_bool(train, "train")  # Unused: a fixed resize is the same in training and eval.
        del step  # Unused.
        check_images(images)
        resized = ops.resize(
            images.astype(self.dtype),
            self.output_shape,
            method=self.method,
            antialias=self.antialias,
        )
        return resized, {}
