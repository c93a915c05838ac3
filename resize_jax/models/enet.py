"""ENet (Paszke, Chaurasia, Kim & Culurciello 2016): a fast network for dense prediction.

Table 1 of the paper, with the details of the authors' Torch code (e-lab/ENet-training):

    initial       3×3/2 conv, 16 − C filters (bias) ‖ 2×2 max pool of the input → BN → PReLU
    1.0           downsampling bottleneck → 64          (H/4)
    1.1–1.4       4 × regular bottleneck 64
    2.0           downsampling bottleneck → 128         (H/8)
    2.1–2.8       regular, dilated 2, asymmetric 5, dilated 4,
                  regular, dilated 8, asymmetric 5, dilated 16
    3.1–3.8       stage 2 again, without 2.0
    4.0           upsampling bottleneck → 64, max-unpooled with the indices of 2.0   (H/4)
    4.1–4.2       2 × regular bottleneck 64
    5.0           upsampling bottleneck → 16, max-unpooled with the indices of 1.0   (H/2)
    5.1           regular bottleneck 16
    fullconv      2×2/2 transposed conv → num_classes (bias)                        (H)

A bottleneck is a shortcut plus a branch: 1×1 projection to a quarter of the output width (a
2×2 stride-2 conv when downsampling) → BN → activation → the main conv → BN → activation →
1×1 expansion → BN → spatial dropout; the two are added, then the activation. The main conv is
a 3×3 conv (bias), a dilated 3×3 conv (bias), or the asymmetric pair 1×5 (no bias) then 5×1
(bias). The downsampling shortcut is a 2×2 max pool whose argmax indices are kept, zero-padded
to the output width; the upsampling shortcut is a 1×1 conv → BN → max unpooling with those
indices, and its branch's main conv is a 3×3 stride-2 transposed conv (bias). The 1×1 and 2×2
projections have no bias; BatchNorm epsilon is 1e-3 as in the Torch code.

Activations: PReLU with one slope per channel (initial 0.25, Torch's), everywhere by default,
as the paper says ("we replaced all ReLUs in the network with PReLUs"); the released decoder
uses ReLU (`decoder_activation="relu"`). Spatial dropout (whole channels): 0.01 in stage 1 and
0.1 afterwards (paper); the released decoder has none (`decoder_dropout_rate=0.0`).

Parameters (tested in tests/test_models_enet.py against a count derived from the layer
shapes): 364,647 trainable for RGB input and 19 classes (Cityscapes), 364,311 with the
released code's ReLU decoder; the paper reports "0.37M". BatchNorm scales and offsets
count as trainable; the running statistics (8,352 values) do not. The input height and
width must be multiples of 8 (three 2× poolings whose indices the decoder reuses); the
logits come back at the input resolution.
Layer names are the checkpoint format: do not rename them.
"""

from __future__ import annotations

import functools
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from resize_jax.models.common import batch_norm, conv_init
from resize_jax.ops.checks import check_choice, check_images, check_positive_int, check_rate

ACTIVATIONS = ("prelu", "relu")
# (name, kind, dilation) of stages 2 and 3 after their first block; Table 1 of the paper.
_STAGE_2_3 = (
    ("1", "regular", 1),
    ("2", "dilated", 2),
    ("3", "asymmetric", 1),
    ("4", "dilated", 4),
    ("5", "regular", 1),
    ("6", "dilated", 8),
    ("7", "asymmetric", 1),
    ("8", "dilated", 16),
)
_ASYMMETRIC_KERNEL = 5
_INTERNAL_RATIO = 4  # The bottlenecks' projection reduces the width four times.


def _check_even(x: jnp.ndarray, name: str) -> None:
    height, width = x.shape[1:3]
    if height % 2 or width % 2:
        raise ValueError(
            f"`{name}` must have an even height and width for a 2×2 pooling, got shape "
            f"{tuple(x.shape)}."
        )


def max_pool_with_indices(x: jnp.ndarray) -> tuple[jnp.ndarray, jnp.ndarray]:
    """2×2 max pooling, stride 2, that also returns where each maximum was.

    Args:
      x: f[B, H, W, C] with H and W even.

    Returns:
      (pooled f[B, H/2, W/2, C], indices int32[B, H/2, W/2, C]): the index is the argmax's
      position in its window, 2·row + column (0 top-left ... 3 bottom-right); ties go to the
      first. The gradient flows to the argmax only (as PyTorch's and Torch's max pooling).

    Raises:
      ValueError: if `x` is not f[B, H, W, C] with even H and W.
    """
    check_images(x, "x")
    _check_even(x, "x")
    batch, height, width, channels = x.shape
    windows = x.reshape(batch, height // 2, 2, width // 2, 2, channels)
    windows = windows.transpose(0, 1, 3, 5, 2, 4).reshape(batch, height // 2, width // 2, -1, 4)
    indices = jnp.argmax(windows, axis=-1)
    # Selecting by a one-hot product rather than a gather keeps the gradient a select too
    # (no scatter), and sends it to the argmax alone, unlike `max`'s tie-splitting rule.
    pooled = jnp.sum(windows * jax.nn.one_hot(indices, 4, dtype=x.dtype), axis=-1)
    return pooled, indices.astype(jnp.int32)


def max_unpool(x: jnp.ndarray, indices: jnp.ndarray) -> jnp.ndarray:
    """The inverse placement of `max_pool_with_indices`: every value goes back to the position
    its window's maximum came from; the other three positions of the window are zero.

    Args:
      x: f[B, h, w, C].
      indices: int[B, h, w, C] in [0, 4), from `max_pool_with_indices`.

    Returns:
      f[B, 2h, 2w, C].

    Raises:
      ValueError: if the shapes differ or `indices` is not an integer array.
    """
    check_images(x, "x")
    if getattr(indices, "shape", None) != x.shape:
        raise ValueError(
            f"`indices` must have the shape of `x` {tuple(x.shape)}, got "
            f"{getattr(indices, 'shape', type(indices).__name__)}."
        )
    if not jnp.issubdtype(indices.dtype, jnp.integer):
        raise ValueError(f"`indices` must be an integer array, got dtype {indices.dtype}.")
    batch, height, width, channels = x.shape
    # A one-hot over the window's four positions, scaled by the value: a scatter without a
    # scatter op (a select per position), cheap on every backend and simple to differentiate.
    placed = jax.nn.one_hot(indices, 4, dtype=x.dtype) * x[..., None]
    placed = placed.reshape(batch, height, width, channels, 2, 2).transpose(0, 1, 4, 2, 5, 3)
    return placed.reshape(batch, 2 * height, 2 * width, channels)


class PReLU(nn.Module):
    """Parametric ReLU with one slope per channel: max(x, 0) + a_c · min(x, 0).

    Torch's `nn.PReLU(C)` (flax's `nn.PReLU` has one slope for all channels). The slopes are
    1-D, so the optimizer's weight decay (kernels only) leaves them alone.
    """

    init_slope: float = 0.25
    param_dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x: jnp.ndarray) -> jnp.ndarray:
        slope = self.param(
            "negative_slope",
            nn.initializers.constant(self.init_slope),
            (x.shape[-1],),
            self.param_dtype,
        )
        return jnp.where(x >= 0, x, slope.astype(x.dtype) * x)


class _Parts(nn.Module):
    """Shared fields and layer helpers of the ENet blocks."""

    bn_momentum: float = 0.9
    bn_epsilon: float = 1e-3
    dtype: Any = jnp.float32
    param_dtype: Any = jnp.float32

    def conv(self, features, kernel, *, name, strides=1, dilation=1, bias=False):
        """A conv with Torch's symmetric padding (k − 1)/2 · dilation for odd kernels."""
        kernel = (kernel, kernel) if isinstance(kernel, int) else tuple(kernel)
        padding = tuple(((k - 1) // 2 * dilation,) * 2 for k in kernel)
        if strides > 1:  # The 2×2 stride-2 projection: windows do not overlap, no padding.
            padding = ((0, 0), (0, 0))
        return nn.Conv(
            features,
            kernel,
            strides=(strides, strides),
            padding=padding,
            kernel_dilation=(dilation, dilation),
            use_bias=bias,
            kernel_init=conv_init,
            dtype=self.dtype,
            param_dtype=self.param_dtype,
            name=name,
        )

    def bn(self, train: bool, name: str) -> nn.BatchNorm:
        return batch_norm(self, train, name)

    def act(self, kind: str, name: str):
        if kind == "relu":
            return nn.relu
        return PReLU(param_dtype=self.param_dtype, name=name)


class InitialBlock(_Parts):
    """ENet's initial block: a cheap learned 2× downsampler.

    `features − C` filters of a 3×3 stride-2 conv (bias), concatenated with a 2×2 max pool of
    the C input channels, then BN and PReLU. images f[B, H, W, C] with even H, W and
    C < features → f[B, H/2, W/2, features].
    """

    features: int = 16

    @nn.compact
    def __call__(self, images: jnp.ndarray, *, train: bool = False) -> jnp.ndarray:
        check_images(images)
        _check_even(images, "images")
        channels = images.shape[-1]
        if channels >= self.features:
            raise ValueError(
                f"`images` must have fewer channels than the initial block's `features` "
                f"({self.features}): it concatenates {self.features} − C conv filters with the "
                f"C pooled channels; got shape {tuple(images.shape)}."
            )
        x = images.astype(self.dtype)
        conv = nn.Conv(
            self.features - channels,
            (3, 3),
            strides=(2, 2),
            padding=((1, 1), (1, 1)),
            kernel_init=conv_init,
            dtype=self.dtype,
            param_dtype=self.param_dtype,
            name="conv",
        )(x)
        pooled = nn.max_pool(x, (2, 2), strides=(2, 2))
        y = jnp.concatenate([conv, pooled], axis=-1)
        return self.act("prelu", "prelu")(self.bn(train, "bn")(y))


class EncoderBottleneck(_Parts):
    """Bottleneck of stages 1–3: regular, dilated, asymmetric or downsampling.

    x: f[B, H, W, C_in] → (f[B, H', W', features], indices int32[B, H', W', C_in] of the
    max pool when downsampling (H' = H/2), else None).
    """

    features: int = 64
    kind: str = "regular"
    dilation: int = 1
    dropout_rate: float = 0.1

    @nn.compact
    def __call__(self, x: jnp.ndarray, *, train: bool = False):
        internal = self.features // _INTERNAL_RATIO
        down = self.kind == "downsampling"
        y = self.conv(internal, 2 if down else 1, strides=2 if down else 1, name="project")(x)
        y = self.act("prelu", "prelu_project")(self.bn(train, "bn_project")(y))
        if self.kind == "asymmetric":
            y = self.conv(internal, (1, _ASYMMETRIC_KERNEL), name="conv_1x5")(y)
            y = self.conv(internal, (_ASYMMETRIC_KERNEL, 1), bias=True, name="conv_5x1")(y)
        else:
            dilation = self.dilation if self.kind == "dilated" else 1
            y = self.conv(internal, 3, dilation=dilation, bias=True, name="conv")(y)
        y = self.act("prelu", "prelu_conv")(self.bn(train, "bn_conv")(y))
        y = self.bn(train, "bn_expand")(self.conv(self.features, 1, name="expand")(y))
        y = nn.Dropout(self.dropout_rate, broadcast_dims=(1, 2), deterministic=not train)(y)

        shortcut, indices = x, None
        if down:
            shortcut, indices = max_pool_with_indices(x)
        extra = self.features - shortcut.shape[-1]
        if extra > 0:  # Torch's nn.Padding: zero channels after the input's.
            shortcut = jnp.pad(shortcut, ((0, 0), (0, 0), (0, 0), (0, extra)))
        return self.act("prelu", "prelu_out")(y + shortcut.astype(y.dtype)), indices


class DecoderBottleneck(_Parts):
    """Bottleneck of stages 4–5: regular, or upsampling with the stored pooling indices.

    x: f[B, h, w, C_in] → f[B, h, w, features], or f[B, 2h, 2w, features] when `indices`
    (int32[B, h, w, features], from the matching downsampling bottleneck) are given.
    """

    features: int = 64
    activation: str = "prelu"
    dropout_rate: float = 0.1

    @nn.compact
    def __call__(self, x: jnp.ndarray, indices: jnp.ndarray | None = None, *, train=False):
        internal = self.features // _INTERNAL_RATIO
        up = indices is not None
        y = self.conv(internal, 1, name="project")(x)
        y = self.act(self.activation, "prelu_project")(self.bn(train, "bn_project")(y))
        if up:
            # Torch's SpatialFullConvolution(3, 3, stride 2, pad 1, adj 1): output exactly 2h.
            y = nn.ConvTranspose(
                internal,
                (3, 3),
                strides=(2, 2),
                padding=((1, 2), (1, 2)),
                kernel_init=conv_init,
                dtype=self.dtype,
                param_dtype=self.param_dtype,
                name="conv_transpose",
            )(y)
        else:
            y = self.conv(internal, 3, bias=True, name="conv")(y)
        y = self.act(self.activation, "prelu_conv")(self.bn(train, "bn_conv")(y))
        y = self.bn(train, "bn_expand")(self.conv(self.features, 1, name="expand")(y))
        y = nn.Dropout(self.dropout_rate, broadcast_dims=(1, 2), deterministic=not train)(y)

        shortcut = x
        if up or x.shape[-1] != self.features:
            shortcut = self.conv(self.features, 1, name="shortcut")(x)
            shortcut = self.bn(train, "bn_shortcut")(shortcut)
        if up:
            shortcut = max_unpool(shortcut, indices)
        return self.act(self.activation, "prelu_out")(y + shortcut)


class ENet(nn.Module):
    """ENet for semantic segmentation.

    Attributes:
      num_classes: output classes (per pixel).
      decoder_activation: "prelu" (paper) or "relu" (the authors' released decoder).
      stage1_dropout_rate: spatial dropout of bottlenecks 1.x (paper: 0.01).
      dropout_rate: spatial dropout of bottlenecks 2.x and 3.x (paper: 0.1).
      decoder_dropout_rate: spatial dropout of bottlenecks 4.x and 5.x (0.1; the released
        code: 0).
      bn_momentum, bn_epsilon: BatchNorm (Torch code: momentum 0.1 = flax 0.9, eps 1e-3).
      dtype: computation dtype; param_dtype: parameter dtype. The logits are float32.

    `__call__(images, *, train=False)`: images f[B, H, W, C], H and W positive multiples of 8
    (`min_input_size` = 8) and C < 16 → (logits f32[B, H, W, num_classes],
    {"encoder": f[B, H/8, W/8, 128]}).
    """

    num_classes: int
    decoder_activation: str = "prelu"
    stage1_dropout_rate: float = 0.01
    dropout_rate: float = 0.1
    decoder_dropout_rate: float = 0.1
    bn_momentum: float = 0.9
    bn_epsilon: float = 1e-3
    dtype: Any = jnp.float32
    param_dtype: Any = jnp.float32

    # Three 2× poolings (initial, 1.0, 2.0), whose indices the decoder reuses.
    size_multiple = 8

    def __post_init__(self):
        check_positive_int(self.num_classes, "num_classes")
        check_choice(self.decoder_activation, "decoder_activation", ACTIVATIONS)
        for name in ("stage1_dropout_rate", "dropout_rate", "decoder_dropout_rate"):
            check_rate(getattr(self, name), name)
        super().__post_init__()

    @property
    def min_input_size(self) -> int:
        """Smallest input height/width (any positive multiple of 8 works)."""
        return self.size_multiple

    def _check_input(self, images: jnp.ndarray) -> None:
        check_images(images)
        height, width = images.shape[1:3]
        if height % self.size_multiple or width % self.size_multiple:
            fit = tuple(-(-s // self.size_multiple) * self.size_multiple for s in (height, width))
            raise ValueError(
                f"`images` height and width must be multiples of {self.size_multiple} for ENet "
                f"(three 2× poolings whose indices the decoder reuses), got shape "
                f"{tuple(images.shape)} ({height}×{width}); resize or pad to e.g. {fit}."
            )

    @nn.compact
    def __call__(self, images: jnp.ndarray, *, train: bool = False):
        self._check_input(images)
        common = dict(
            bn_momentum=self.bn_momentum,
            bn_epsilon=self.bn_epsilon,
            dtype=self.dtype,
            param_dtype=self.param_dtype,
        )
        enc = functools.partial(EncoderBottleneck, **common)
        dec = functools.partial(
            DecoderBottleneck,
            activation=self.decoder_activation,
            dropout_rate=self.decoder_dropout_rate,
            **common,
        )
        x = InitialBlock(features=16, name="initial", **common)(images, train=train)

        rate = self.stage1_dropout_rate
        down = functools.partial(enc, kind="downsampling")
        x, indices1 = down(features=64, dropout_rate=rate, name="bottleneck1_0")(x, train=train)
        for i in range(1, 5):
            x, _ = enc(features=64, dropout_rate=rate, name=f"bottleneck1_{i}")(x, train=train)

        rate = self.dropout_rate
        x, indices2 = down(features=128, dropout_rate=rate, name="bottleneck2_0")(x, train=train)
        for stage in (2, 3):
            for suffix, kind, dilation in _STAGE_2_3:
                block = enc(
                    features=128,
                    kind=kind,
                    dilation=dilation,
                    dropout_rate=rate,
                    name=f"bottleneck{stage}_{suffix}",
                )
                x, _ = block(x, train=train)
        encoder = x

        # Each upsampling block's output width is the width its downsampling block pooled
        # (64 for 2.0, 16 for 1.0), so every channel has its own indices.
        x = dec(features=64, name="bottleneck4_0")(x, indices2, train=train)
        x = dec(features=64, name="bottleneck4_1")(x, train=train)
        x = dec(features=64, name="bottleneck4_2")(x, train=train)
        x = dec(features=16, name="bottleneck5_0")(x, indices1, train=train)
        x = dec(features=16, name="bottleneck5_1")(x, train=train)
        logits = nn.ConvTranspose(
            self.num_classes,
            (2, 2),
            strides=(2, 2),
            padding="VALID",
            kernel_init=conv_init,
            dtype=self.dtype,
            param_dtype=self.param_dtype,
            name="fullconv",
        )(x)
        return logits.astype(jnp.float32), {"encoder": encoder}
