"""Vision Transformer (Dosovitskiy et al., ICLR 2021): pre-norm encoder blocks, learned
position embeddings, a class token or global average pooling.

Variants ViT-Ti/16, S/16, B/16 and L/16 have exactly the trainable parameters of timm's
`vit_{tiny,small,base,large}_patch16_224` (ViT-B/16: 86,567,656 at 1000 classes): the position
embeddings include the class token's row, as timm's do. Layer names follow big_vision's
`vit.py` (`embedding`, `cls`, `pos_embedding`, `Transformer/encoderblock_i/...`, `head`) so its
`.npz` checkpoints map one to one; they are the checkpoint format: do not rename them.

Resolution flexibility:
- The position embeddings are stored for one grid (`posemb_grid`, by default the grid of the
  input seen at initialisation). An input of another size resamples them on the fly
  (`resize_jax.ops.resample_posemb`: bicubic with antialiasing, as timm).
- The patch-embedding kernel is stored at `patch_embedding_size` (default `patch_size`); a
  different `patch_size` resamples it on the fly with FlexiViT's pseudo-inverse resize, so one
  set of weights serves several patch sizes.
- A patch size that does not divide the input is refused (ValueError): padding would add
  tokens that hold no image and change what the pretrained model sees; resize the input to a
  multiple of the patch size (the front-end's `output_shape`) instead.
"""

from __future__ import annotations

import functools
from typing import Any

import flax.linen as nn
import jax.numpy as jnp
from jax import lax

from resize_jax.models.common import Classifier, ModuleDef
from resize_jax.ops.checks import check_choice, check_positive_int, check_size_pair
from resize_jax.ops.resample_embeddings import (
    posemb_grid_shape,
    resample_patch_kernel,
    resample_posemb,
)

CLASSIFIERS = ("token", "gap")


class PatchEmbedding(nn.Module):
    """Non-overlapping patches → linear tokens; the kernel resampled if the patch size differs.

    `__call__(images)`: f[B, H, W, C] with H, W multiples of `patch_size` →
    f[B, H / p, W / p, hidden_size].
    """

    hidden_size: int
    patch_size: int
    kernel_size: int
    dtype: Any = jnp.float32
    param_dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, images: jnp.ndarray) -> jnp.ndarray:
        channels = images.shape[-1]
        kernel = self.param(
            "kernel",
            nn.initializers.lecun_normal(),
            (self.kernel_size, self.kernel_size, channels, self.hidden_size),
            self.param_dtype,
        )
        bias = self.param("bias", nn.initializers.zeros, (self.hidden_size,), self.param_dtype)
        kernel = resample_patch_kernel(kernel, (self.patch_size, self.patch_size))
        x = lax.conv_general_dilated(
            images.astype(self.dtype),
            kernel.astype(self.dtype),
            window_strides=(self.patch_size, self.patch_size),
            padding="VALID",
            dimension_numbers=("NHWC", "HWIO", "NHWC"),
        )
        return x + bias.astype(self.dtype)


class MlpBlock(nn.Module):
    """Dense(mlp_dim) → GELU → dropout → Dense(D) → dropout. x: f[B, N, D] → f[B, N, D].

    `dense`: `nn.Dense` with the model's dtypes bound."""

    mlp_dim: int
    dropout_rate: float = 0.0
    gelu_approximate: bool = False
    dense: ModuleDef = nn.Dense

    @nn.compact
    def __call__(self, x: jnp.ndarray, *, train: bool = False) -> jnp.ndarray:
        y = self.dense(self.mlp_dim, name="Dense_0")(x)
        y = nn.gelu(y, approximate=self.gelu_approximate)
        y = nn.Dropout(self.dropout_rate, deterministic=not train)(y)
        y = self.dense(x.shape[-1], name="Dense_1")(y)
        return nn.Dropout(self.dropout_rate, deterministic=not train)(y)


class EncoderBlock(nn.Module):
    """Pre-norm block: x + MHSA(LN(x)), then + MLP(LN(·)). x: f[B, N, D] → f[B, N, D].

    `attention`, `mlp`, `norm`: the model's `MultiHeadDotProductAttention`, `MlpBlock` and
    `LayerNorm` partials (heads, widths, epsilon and dtypes bound once in `ViT`)."""

    attention: ModuleDef
    mlp: ModuleDef
    norm: ModuleDef = nn.LayerNorm
    dropout_rate: float = 0.0

    @nn.compact
    def __call__(self, x: jnp.ndarray, *, train: bool = False) -> jnp.ndarray:
        y = self.norm(name="LayerNorm_0")(x)
        y = self.attention(deterministic=not train, name="MultiHeadDotProductAttention_0")(y, y)
        y = nn.Dropout(self.dropout_rate, deterministic=not train)(y)
        x = x + y
        y = self.norm(name="LayerNorm_1")(x)
        return x + self.mlp(name="MlpBlock_0")(y, train=train)


class Encoder(nn.Module):
    """`depth` encoder blocks then a final LayerNorm. x: f[B, N, D] → f[B, N, D].

    `block`, `norm`: the model's `EncoderBlock` and `LayerNorm` partials."""

    depth: int
    block: ModuleDef
    norm: ModuleDef = nn.LayerNorm

    @nn.compact
    def __call__(self, x: jnp.ndarray, *, train: bool = False) -> jnp.ndarray:
        for i in range(self.depth):
            x = self.block(name=f"encoderblock_{i}")(x, train=train)
        return self.norm(name="encoder_norm")(x)


class ViT(Classifier):
    """Vision Transformer classifier.

    Attributes:
      num_classes: output classes.
      patch_size: side p of the square patches the input is cut into.
      hidden_size, depth, num_heads, mlp_dim: width D, blocks, heads and MLP width.
      classifier: "token" (a class token, read after the final LayerNorm; timm's and the
        paper's default) or "gap" (the mean of the normalised tokens, no class token).
      posemb_grid: (rows, cols) of the stored position embeddings; None: the grid of the
        input at initialisation (when applied to another size, a square grid is inferred
        from the embeddings; a non-square grid must then be given here).
      patch_embedding_size: side of the stored patch-embedding kernel; None: `patch_size`.
        When it differs from `patch_size` the kernel is resampled (FlexiViT).
      dropout_rate: dropout in the blocks (training only; "dropout" RNG).
      layer_norm_epsilon: 1e-6, as timm and big_vision.
      gelu_approximate: False for the exact (erf) GELU of timm; big_vision uses the tanh one.
      dtype, param_dtype: computation and parameter dtypes.

    `__call__(images, *, train=False)`: images f[B, H, W, C] with H and W multiples of
    `patch_size` → (f32[B, num_classes], {"pre_logits": f[B, hidden_size]}).
    """

    patch_size: int = 16
    hidden_size: int = 768
    depth: int = 12
    num_heads: int = 12
    mlp_dim: int = 3072
    classifier: str = "token"
    posemb_grid: tuple[int, int] | None = None
    patch_embedding_size: int | None = None
    layer_norm_epsilon: float = 1e-6
    gelu_approximate: bool = False

    def __post_init__(self):
        for name in ("patch_size", "hidden_size", "depth", "num_heads", "mlp_dim"):
            check_positive_int(getattr(self, name), name)
        if self.patch_embedding_size is not None:
            check_positive_int(self.patch_embedding_size, "patch_embedding_size")
        if self.hidden_size % self.num_heads:
            raise ValueError(
                f"`hidden_size`={self.hidden_size} must be a multiple of "
                f"`num_heads`={self.num_heads}."
            )
        check_choice(self.classifier, "classifier", CLASSIFIERS)
        if self.posemb_grid is not None:
            check_size_pair(self.posemb_grid, "posemb_grid")
        super().__post_init__()

    @property
    def min_input_size(self) -> int:
        """One patch."""
        return self.patch_size

    @property
    def num_prefix_tokens(self) -> int:
        return 1 if self.classifier == "token" else 0

    def _check_divisible(self, images) -> tuple[int, int]:
        height, width = images.shape[1:3]
        if height % self.patch_size or width % self.patch_size:
            raise ValueError(
                f"`images` of shape {tuple(images.shape)}: height and width must be multiples "
                f"of `patch_size`={self.patch_size}, got {height}×{width}. Resize the input "
                f"to a multiple (e.g. the front-end's `output_shape`); padding is not done "
                f"because tokens of padding would change what the model sees."
            )
        return height // self.patch_size, width // self.patch_size

    def _position_embeddings(self, grid: tuple[int, int]) -> jnp.ndarray:
        """f[1, prefix + rows * cols, D] for the input's grid (resampled if needed)."""
        stored_grid = tuple(self.posemb_grid) if self.posemb_grid is not None else grid
        num_stored = stored_grid[0] * stored_grid[1] + self.num_prefix_tokens
        if self.has_variable("params", "pos_embedding"):
            # Read without `self.param`, which insists on the shape of a fresh initialisation:
            # the stored grid may differ from this input's.
            posemb = self.get_variable("params", "pos_embedding")
        else:
            posemb = self.param(
                "pos_embedding",
                nn.initializers.normal(stddev=0.02),
                (1, num_stored, self.hidden_size),
                self.param_dtype,
            )
        num_grid = posemb.shape[1] - self.num_prefix_tokens
        if self.posemb_grid is not None:
            stored = tuple(self.posemb_grid)
            if stored[0] * stored[1] != num_grid:
                raise ValueError(
                    f"`posemb_grid`={stored} holds {stored[0] * stored[1]} embeddings, but the "
                    f"weights' `pos_embedding` has {num_grid} (after "
                    f"{self.num_prefix_tokens} class-token rows)."
                )
        elif num_grid == grid[0] * grid[1]:
            stored = grid  # Initialised from (or saved for) an input of this grid.
        else:
            stored = posemb_grid_shape(num_grid)
        return resample_posemb(
            posemb, grid, old_grid=stored, num_prefix_tokens=self.num_prefix_tokens
        )

    def _norm(self) -> ModuleDef:
        return functools.partial(
            nn.LayerNorm,
            epsilon=self.layer_norm_epsilon,
            dtype=self.dtype,
            param_dtype=self.param_dtype,
        )

    def _block(self) -> ModuleDef:
        """The encoder block with every setting bound: the one place of widths and dtypes."""
        dtypes = {"dtype": self.dtype, "param_dtype": self.param_dtype}
        attention = functools.partial(
            nn.MultiHeadDotProductAttention,
            num_heads=self.num_heads,
            kernel_init=nn.initializers.xavier_uniform(),
            **dtypes,
        )
        mlp = functools.partial(
            MlpBlock,
            self.mlp_dim,
            self.dropout_rate,
            self.gelu_approximate,
            dense=functools.partial(nn.Dense, **dtypes),
        )
        return functools.partial(
            EncoderBlock, attention, mlp, self._norm(), dropout_rate=self.dropout_rate
        )

    @nn.compact
    def __call__(self, images: jnp.ndarray, *, train: bool = False):
        images = self.checked_input(images)
        grid = self._check_divisible(images)
        x = PatchEmbedding(
            self.hidden_size,
            self.patch_size,
            self.patch_embedding_size or self.patch_size,
            dtype=self.dtype,
            param_dtype=self.param_dtype,
            name="embedding",
        )(images)
        batch = x.shape[0]
        x = x.reshape(batch, grid[0] * grid[1], self.hidden_size)
        if self.classifier == "token":
            cls = self.param(
                "cls", nn.initializers.zeros, (1, 1, self.hidden_size), self.param_dtype
            )
            x = jnp.concatenate(
                [jnp.broadcast_to(cls.astype(x.dtype), (batch, 1, x.shape[-1])), x], 1
            )
        x = x + self._position_embeddings(grid).astype(x.dtype)
        x = nn.Dropout(self.dropout_rate, deterministic=not train)(x)
        x = Encoder(self.depth, self._block(), self._norm(), name="Transformer")(x, train=train)
        pre_logits = x[:, 0] if self.classifier == "token" else jnp.mean(x, axis=1)
        logits = nn.Dense(
            self.num_classes,
            kernel_init=nn.initializers.zeros,
            dtype=self.dtype,
            param_dtype=self.param_dtype,
            name="head",
        )(pre_logits)
        return logits.astype(jnp.float32), {"pre_logits": pre_logits}


ViTTi16 = functools.partial(ViT, patch_size=16, hidden_size=192, depth=12, num_heads=3, mlp_dim=768)
ViTS16 = functools.partial(ViT, patch_size=16, hidden_size=384, depth=12, num_heads=6, mlp_dim=1536)
ViTB16 = functools.partial(
    ViT, patch_size=16, hidden_size=768, depth=12, num_heads=12, mlp_dim=3072
)
ViTL16 = functools.partial(
    ViT, patch_size=16, hidden_size=1024, depth=24, num_heads=16, mlp_dim=4096
)
