"""LearnedResizer: Talebi & Milanfar, "Learning to Resize Images for Computer Vision Tasks",
ICCV 2021 (arXiv 2103.09950), Figure 3.

    skip = resize(x)
    y = BN(LeakyReLU(conv1x1(LeakyReLU(conv7x7_n(x)))))      # at the input resolution
    y = resize(y)                                           # "bilinear feature resizer"
    z = block_r(... block_1(y))                             # chained residual blocks
    z = BN(conv3x3(z)) + y
    out = conv7x7_C(z) + skip

Each residual block is conv3x3 → BN → LeakyReLU → conv3x3 → BN plus its own input, with no
activation after the add. Layer names below are the checkpoint format: do not rename them.
"""

from __future__ import annotations

import functools
from typing import Any, ClassVar

import flax.linen as nn
import jax.numpy as jnp
from flax.linen.dtypes import promote_dtype

from resize_jax import ops
from resize_jax.frontends.base import FrontEnd, keep_checked, resolve_renamed_fields
from resize_jax.frontends.batch_norm import BatchNorm, fold_into_conv
from resize_jax.frontends.conv_leaky import ConvLeakyWeights
from resize_jax.frontends.registry import register_frontend
from resize_jax.frontends.resized_batch_norm import ResizedBatchNorm
from resize_jax.models.common import ModuleDef
from resize_jax.ops.checks import (
    check_bool,
    check_choice,
    check_images,
    check_int,
    check_number,
    check_size_pair,
)
from resize_jax.ops.conv import conv_general_dilated
from resize_jax.ops.conv_head import leaky_head_resized
from resize_jax.ops.conv_padded import conv_padded
from resize_jax.ops.conv_padded import native_eligible as conv_padded_native


class ResidualBlock(nn.Module):
    """conv3x3 → BN → LeakyReLU → conv3x3 → BN, plus the block's input; no final activation.

    `conv`, `norm`: the resizer's convolution and BatchNorm partials (settings and dtypes)."""

    features: int
    negative_slope: float = 0.2
    conv: ModuleDef = nn.Conv
    norm: ModuleDef = nn.BatchNorm

    @nn.compact
    def __call__(self, x: jnp.ndarray, *, train: bool = False) -> jnp.ndarray:
        """x: f[B, h, w, features] → f[B, h, w, features]."""
        norm = functools.partial(self.norm, use_running_average=not train)
        y = norm(name="bn1")(self.conv(self.features, (3, 3), name="conv1")(x))
        y = nn.leaky_relu(y, self.negative_slope)
        y = norm(name="bn2")(self.conv(self.features, (3, 3), name="conv2")(y))
        return x + y


@register_frontend("learned")
class LearnedResizer(FrontEnd):
    """The learned resizer of Talebi & Milanfar (2021).

    Attributes:
      output_shape: (out_h, out_w); any size and aspect ratio, down- or up-scaling.
      num_filters: n, the width of every hidden convolution (paper default 16).
      num_res_blocks: r, the number of chained residual blocks (paper default 1).
      method: the resize used for the skip path and the feature bottleneck, one of
        `resize_jax.ops.METHODS` (as `FixedResizer.method`).
      antialias: whether those resizes antialias (default False: the paper used TF's
        `tf.image.resize` without antialiasing).
      negative_slope: LeakyReLU slope (paper: 0.2).
      bn_momentum, bn_epsilon: BatchNorm running-average momentum and epsilon. The defaults
        are PyTorch's (0.9 in Flax's convention, 1e-5), which suit the short from-scratch runs
        a front-end is usually trained in; Keras' are 0.99 and 1e-3.
      dtype: computation dtype; param_dtype: parameter dtype (bf16 compute with f32 params
        works).
      interpolation: the deprecated name of `method` (kept for one release).

    `__call__(images, *, train=False, step=None)` returns `(resized, aux)` with
    `resized: f[B, out_h, out_w, C]` and `aux = {"skip": the plain resize of the input}`.
    BatchNorm statistics live in the `batch_stats` collection: pass `mutable=["batch_stats"]`
    to `apply` when `train=True`.
    """

    output_shape: tuple[int, int]
    num_filters: int = 16
    num_res_blocks: int = 1
    method: str = "bilinear"
    antialias: bool = False
    negative_slope: float = 0.2
    bn_momentum: float = 0.9
    bn_epsilon: float = 1e-5
    dtype: Any = jnp.float32
    param_dtype: Any = jnp.float32
    interpolation: str | None = None  # Deprecated name of `method`.

    label: ClassVar[str] = "learned resizer"
    renamed_fields: ClassVar[dict[str, str]] = {"interpolation": "method"}

    def __post_init__(self):
        resolve_renamed_fields(self)
        keep_checked(self, output_shape=check_size_pair(self.output_shape, "output_shape"))
        check_choice(self.method, "method", ops.METHODS)
        check_int(self.num_filters, "num_filters", minimum=1)
        check_int(self.num_res_blocks, "num_res_blocks", minimum=0)
        check_bool(self.antialias, "antialias")
        # flax.linen.BatchNorm takes any value: a negative epsilon gives NaN, a momentum
        # outside [0, 1] running statistics that diverge.
        check_number(self.bn_epsilon, "bn_epsilon", low=0, low_open=True)
        check_number(self.bn_momentum, "bn_momentum", low=0, high=1)
        check_number(self.negative_slope, "negative_slope")
        super().__post_init__()

    def _check_channels(self, channels: int) -> None:
        # Flax would only fail deep inside `conv_in` with a shape error; name the culprit.
        if self.is_initializing() or not self.has_variable("params", "conv_in"):
            return
        expected = self.variables["params"]["conv_in"]["kernel"].shape[2]
        if channels != expected:
            raise ValueError(
                f"`images` has {channels} channels but the resizer was initialised with "
                f"{expected}; initialise it with images of the same channel count."
            )

    def _folds_for_inference(self, y: jnp.ndarray) -> bool:
        """Whether inference runs `_inference_tail`: on CPU with the native kernels, float32,
        16-channel multiples, and every variable present (not while initialising)."""
        return (
            not self.is_initializing()
            and y.dtype == jnp.float32
            and jnp.dtype(self.param_dtype) == jnp.float32
            and self.num_filters % 16 == 0
            and "batch_stats" in self.variables
            and "conv_out" in self.variables.get("params", {})
            and conv_padded_native(y, self.variables["params"]["conv_proj"]["kernel"])
        )

    def _inference_tail(self, y: jnp.ndarray, skip: jnp.ndarray) -> jnp.ndarray:
        """Everything after `bn_in` with running statistics: y, skip f32[B, h, w, ·] → f32[B,
        h, w, C].

        Each BatchNorm is folded into the convolution before it, and every layer writes its
        output already zero-padded for the next one, with the activation and the residual
        applied by the convolution itself (`ops.conv_padded`): the features between layers are
        written once per layer instead of once more by a pass that pads them, which on CPU is
        about a sixth of the resizer's inference time.
        """
        params, stats = self.variables["params"], self.variables["batch_stats"]

        def folded(block: str | None, conv: str, norm: str):
            p, s = (params, stats) if block is None else (params[block], stats[block])
            return fold_into_conv(p[conv], p[norm], s[norm], self.bn_epsilon)

        y_padded = jnp.pad(y, ((0, 0), (1, 1), (1, 1), (0, 0)))
        z = y_padded
        for k in range(self.num_res_blocks):
            block = f"res_block_{k}"
            h = conv_padded(
                z, *folded(block, "conv1", "bn1"), negative_slope=self.negative_slope, out_pad=1
            )
            z = conv_padded(
                h, *folded(block, "conv2", "bn2"), residual=z, residual_pad=1, out_pad=1
            )
        last = params["conv_out"]
        z = conv_padded(
            z,
            *folded(None, "conv_proj", "bn_proj"),
            residual=y_padded,
            residual_pad=1,
            out_pad=last["kernel"].shape[0] // 2,
        )
        return conv_padded(z, last["kernel"], last["bias"], residual=skip)

    @nn.compact
    def __call__(self, images: jnp.ndarray, *, train: bool = False, step=None):
        """images: f[B, H, W, C] → (f[B, out_h, out_w, C], {"skip": f[B, out_h, out_w, C]})."""
        del step  # No schedule: training and evaluation differ only in BatchNorm.
        check_images(images)
        check_bool(train, "train")
        channels = images.shape[-1]
        self._check_channels(channels)
        resize = functools.partial(
            ops.resize,
            output_shape=self.output_shape,
            method=self.method,
            antialias=self.antialias,
        )
        # ops.conv_general_dilated: XLA's convolution, except on CPU where these narrow layers
        # run as native direct convolutions (ops/conv.py); same parameters either way.
        conv = functools.partial(
            nn.Conv,
            padding="SAME",
            dtype=self.dtype,
            param_dtype=self.param_dtype,
            conv_general_dilated=conv_general_dilated,
        )
        # flax's BatchNorm variables and semantics with a one-pass backward (batch_norm.py).
        norm = functools.partial(
            BatchNorm,
            momentum=self.bn_momentum,
            epsilon=self.bn_epsilon,
            dtype=self.dtype,
            param_dtype=self.param_dtype,
        )
        n = self.num_filters
        x = images.astype(self.dtype)

        skip = resize(x)
        # conv_in and conv_mix (conv + bias + LeakyReLU each, nn.Conv's variables), then
        # resize(BN(y)) normalising after the resize: the head hands over only what that
        # needs, the resized features and their statistics, and on CPU computes them without
        # writing the full-resolution features at all in inference, and only conv_in's in
        # training, whose gradient pass is one native call too (ops/conv_head.py).
        weights = functools.partial(ConvLeakyWeights, param_dtype=self.param_dtype)
        first = weights(n, 7, name="conv_in")(channels)
        second = weights(n, 1, name="conv_mix")(n)
        x_head, *head_weights = promote_dtype(x, *first, *second, dtype=self.dtype)
        y = leaky_head_resized(
            x_head,
            tuple(head_weights[:2]),
            tuple(head_weights[2:]),
            self.negative_slope,
            ops.Resize(self.output_shape, self.method, self.antialias),
        )
        y = ResizedBatchNorm(
            momentum=self.bn_momentum,
            epsilon=self.bn_epsilon,
            dtype=self.dtype,
            param_dtype=self.param_dtype,
            name="bn_in",
        )(y, None, use_running_average=not train)

        if not train and self._folds_for_inference(y):
            return self._inference_tail(y, skip), {"skip": skip}
        z = y
        for k in range(self.num_res_blocks):
            z = ResidualBlock(n, self.negative_slope, conv=conv, norm=norm, name=f"res_block_{k}")(
                z, train=train
            )
        z = conv(n, (3, 3), name="conv_proj")(z)
        z = norm(use_running_average=not train, name="bn_proj")(z) + y
        out = conv(channels, (7, 7), name="conv_out")(z) + skip
        return out, {"skip": skip}
