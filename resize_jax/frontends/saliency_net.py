"""The default saliency network of `SaliencySampler`: a small CNN on the low-resolution copy.

The paper uses an ImageNet-pretrained ResNet-18 truncated after layer3, its third stage
(`resize_jax.frontends.saliency_trunk`); any linen module can be passed to
`SaliencySampler(saliency_net=...)` instead. This default is cheap enough for CPU runs.
Each layer is a 3×3 convolution (with its stride and dilation), then BatchNorm (optional),
then ReLU; a 1×1 convolution gives one logit per cell.

Defaults (docs/saliency.md has the ablation behind them): on a 64×64 copy, one stride-2
layer, so the map has 32×32 cells, about the paper's 31×31 grid: an object 1/8 of the image
side spans 4×4 cells and the grid can centre on it; the dilated last layer widens the
receptive field to 15 pixels of the copy (an eighth-of-the-side object and its
surroundings) without another downsampling; about 5 M multiply-adds per image. BatchNorm
keeps the layers' scale fixed while the task network changes; the zero-initialised logit
layer makes the starting saliency flat, so the sampler starts as a uniform resize instead of
a random warp. The earlier default, three stride-2 layers (`features=(16, 32, 64),
strides=(2, 2, 2), dilations=(1, 1, 1), batch_norm=False, zero_init_logits=False`), puts
such an object in one cell of an 8×8 map.
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax.numpy as jnp

from resize_jax.frontends.batch_norm import BatchNorm, fold_into_conv
from resize_jax.ops.conv import as_valid_layer, conv_general_dilated
from resize_jax.ops.conv_padded import conv_padded
from resize_jax.ops.conv_padded import native_eligible as conv_padded_native


class SaliencyCNN(nn.Module):
    """images: f[B, h, w, C] → saliency logits f[B, h/s, w/s, 1], s the product of strides.

    Attributes:
      features: widths of the 3×3 convolutions, one per layer.
      strides: each layer's stride (same length as `features`).
      dilations: each layer's dilation (same length as `features`).
      batch_norm: BatchNorm after each convolution (batch statistics in training, their
        running averages at evaluation; stored under "batch_stats").
      zero_init_logits: start the 1×1 logit layer at zero, so the saliency is flat and the
        sampler starts as a uniform resize (and the layers below it get gradients once the
        logit layer has moved).
      dtype: computation dtype; param_dtype: parameter dtype.

    Layer names: "conv{k}", "bn{k}", "logits".
    """

    features: tuple[int, ...] = (16, 16, 16)
    strides: tuple[int, ...] = (2, 1, 1)
    dilations: tuple[int, ...] = (1, 1, 2)
    batch_norm: bool = True
    zero_init_logits: bool = True
    dtype: Any = jnp.float32
    param_dtype: Any = jnp.float32

    def __post_init__(self):
        for name in ("features", "strides", "dilations"):
            value = getattr(self, name)
            if (
                not isinstance(value, tuple | list)
                or not value
                or not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in value)
            ):
                raise ValueError(
                    f"`{name}` must be a non-empty tuple of positive ints, got {value!r}."
                )
        if not len(self.features) == len(self.strides) == len(self.dilations):
            raise ValueError(
                "`features`, `strides` and `dilations` must have one entry per layer, got "
                f"{self.features!r}, {self.strides!r} and {self.dilations!r}."
            )
        super().__post_init__()

    def _folds_for_inference(self, x: jnp.ndarray, train: bool) -> bool:
        """Whether the 3×3 layers run as `_folded_layers`: BatchNorm with running statistics,
        float32 on CPU with the native kernels, 16-channel multiples, every variable present
        (not while initialising) and dilated layers on sizes their dilation divides."""
        if train or not self.batch_norm or self.is_initializing():
            return False
        if "batch_stats" not in self.variables or "conv0" not in self.variables.get("params", {}):
            return False
        if x.dtype != jnp.float32 or jnp.dtype(self.param_dtype) != jnp.float32:
            return False
        if any(width % 16 for width in self.features) or any(
            s > 1 and d > 1 for s, d in zip(self.strides, self.dilations, strict=True)
        ):
            return False
        height, width = x.shape[1:3]
        for stride, dilation in zip(self.strides, self.dilations, strict=True):
            height, width = -(-height // stride), -(-width // stride)
            if height % dilation or width % dilation:
                return False
        return conv_padded_native(x, self.variables["params"]["conv0"]["kernel"])

    def _folded_layers(self, x: jnp.ndarray) -> jnp.ndarray:
        """The 3×3 layers with running statistics: x f32[B, h, w, C] → f32[B, h/s, w/s, F].

        Each BatchNorm is folded into its convolution, and the bias and ReLU are applied by
        the convolution itself (`ops.conv_padded`), which writes its output already padded
        when the next layer is a plain one: no pass between the layers normalises, activates
        or pads the features. Strided and dilated layers run as stride-1 valid ones
        (`ops.conv.as_valid_layer`), as in training.
        """
        params, stats = self.variables["params"], self.variables["batch_stats"]
        layers = list(zip(self.strides, self.dilations, strict=True))
        padded = False  # whether x is already the current layer's padded input
        for k, (stride, dilation) in enumerate(layers):
            kernel, bias = fold_into_conv(
                params[f"conv{k}"], params[f"bn{k}"], stats[f"bn{k}"], BatchNorm.epsilon
            )
            if padded:
                x_valid, w_valid, restore = x, kernel, lambda y: y
            else:
                x_valid, w_valid, restore = as_valid_layer(x, kernel, stride, dilation)
            plain_next = k + 1 < len(layers) and layers[k + 1] == (1, 1)
            out_pad = 1 if plain_next and not dilation > 1 else 0
            y = conv_padded(x_valid, w_valid, bias, negative_slope=0.0, out_pad=out_pad)
            x, padded = restore(y), out_pad > 0
        return x

    @nn.compact
    def __call__(self, images: jnp.ndarray, *, train: bool = False) -> jnp.ndarray:
        x = images.astype(self.dtype)
        if self._folds_for_inference(x, train):
            return self._logits_layer()(self._folded_layers(x))
        layers = zip(self.features, self.strides, self.dilations, strict=True)
        for k, (width, stride, dilation) in enumerate(layers):
            x = nn.Conv(
                width,
                (3, 3),
                strides=(stride, stride),
                kernel_dilation=(dilation, dilation),
                padding="SAME",
                use_bias=not self.batch_norm,
                dtype=self.dtype,
                param_dtype=self.param_dtype,
                # Native CPU kernels for these layers, strided and dilated ones included
                # (ops/conv.py).
                conv_general_dilated=conv_general_dilated,
                name=f"conv{k}",
            )(x)
            if self.batch_norm:
                # flax's BatchNorm variables and semantics, a one-pass backward.
                x = BatchNorm(
                    use_running_average=not train,
                    momentum=0.9,
                    dtype=self.dtype,
                    param_dtype=self.param_dtype,
                    name=f"bn{k}",
                )(x)
            x = nn.relu(x)
        return self._logits_layer()(x)

    def _logits_layer(self) -> nn.Conv:
        init = nn.initializers.zeros if self.zero_init_logits else nn.linear.default_kernel_init
        return nn.Conv(
            1,
            (1, 1),
            kernel_init=init,
            dtype=self.dtype,
            param_dtype=self.param_dtype,
            name="logits",
        )
