"""Resampling a Vision Transformer's embeddings to another input size or patch size.

Position embeddings (`resample_posemb`): the grid of learned embeddings is treated as an
image with one channel per embedding dimension and resized with `resize_jax.ops.resize`.
The default, bicubic with antialiasing (Keys a = -0.5, kernel stretched when shrinking), is
what timm's `resample_abs_pos_embed` does (`F.interpolate(mode="bicubic", antialias=True)`),
so weights resampled here match weights timm resampled itself; bicubic rather than bilinear
because the embedding grid is smooth and bilinear leaves visible kinks when enlarging a 14×14
grid to 28×28 or more.

Patch embeddings (`resample_patch_kernel`): FlexiViT's pseudo-inverse resize (Beyer et al.,
CVPR 2023). A patch `x` of size p resized to p' is `B x` for the resize matrix `B` (here
bilinear without antialias, FlexiViT's choice); the new kernel `w'` should give the same
token for the resized patch, `<B x, w'> = <x, w>`, so `w' = pinv(Bᵀ) w`, which is exact when
enlarging and the least-squares answer when shrinking. One set of weights then serves
several patch sizes.
"""

from __future__ import annotations

import functools
import math

import jax.numpy as jnp
import numpy as np

from resize_jax.ops.checks import check_int, check_size_pair
from resize_jax.ops.resize import interpolation_matrix, resize

POSEMB_METHOD = "bicubic"
POSEMB_ANTIALIAS = True


def posemb_grid_shape(num_tokens: int, name: str = "pos_embedding") -> tuple[int, int]:
    """The square grid (side, side) holding `num_tokens` embeddings, or a ValueError naming
    `name` when `num_tokens` is not a square (a non-square grid must be given explicitly)."""
    side = math.isqrt(num_tokens)
    if side * side != num_tokens:
        raise ValueError(
            f"`{name}` holds {num_tokens} grid embeddings, not a square grid; pass the grid "
            f"shape explicitly (`posemb_grid=(rows, cols)` with rows × cols = {num_tokens})."
        )
    return side, side


def resample_posemb(
    posemb: jnp.ndarray,
    new_grid: tuple[int, int],
    *,
    old_grid: tuple[int, int] | None = None,
    num_prefix_tokens: int = 0,
    method: str = POSEMB_METHOD,
    antialias: bool = POSEMB_ANTIALIAS,
) -> jnp.ndarray:
    """Resizes a grid of position embeddings, keeping the prefix (class-token) embeddings.

    Args:
      posemb: f[1, P + h * w, D], the first `num_prefix_tokens` (P) rows unchanged.
      new_grid: (h', w'), the new grid of patches.
      old_grid: (h, w); None for a square grid (inferred; a non-square count raises).
      num_prefix_tokens: embeddings before the grid (1 for a class token, else 0).
      method, antialias: the interpolation (`resize_jax.ops.resize`); see the module docstring.

    Returns:
      f[1, P + h' * w', D], the same dtype.
    """
    if getattr(posemb, "ndim", None) != 3 or posemb.shape[0] != 1:
        raise ValueError(
            f"`posemb` must have shape [1, tokens, D], got {getattr(posemb, 'shape', posemb)}."
        )
    new_h, new_w = check_size_pair(new_grid, "new_grid")
    if check_int(num_prefix_tokens, "num_prefix_tokens", minimum=0) >= posemb.shape[1]:
        raise ValueError(
            f"`num_prefix_tokens` must be in [0, {posemb.shape[1]}), got {num_prefix_tokens!r}."
        )
    prefix, grid = posemb[:, :num_prefix_tokens], posemb[:, num_prefix_tokens:]
    if old_grid is None:
        old_h, old_w = posemb_grid_shape(grid.shape[1], "posemb")
    else:
        old_h, old_w = check_size_pair(old_grid, "old_grid")
        if old_h * old_w != grid.shape[1]:
            raise ValueError(
                f"`old_grid`={(old_h, old_w)} holds {old_h * old_w} embeddings, but `posemb` "
                f"has {grid.shape[1]} after {num_prefix_tokens} prefix tokens."
            )
    if (old_h, old_w) == (new_h, new_w):
        return posemb
    image = grid.reshape(1, old_h, old_w, grid.shape[-1])
    # Resized in float32: bf16 embeddings would lose the small differences between neighbours.
    resized = resize(
        image.astype(jnp.float32), (new_h, new_w), method=method, antialias=antialias
    ).astype(posemb.dtype)
    return jnp.concatenate([prefix, resized.reshape(1, new_h * new_w, -1)], axis=1)


@functools.lru_cache(maxsize=64)
def patch_resize_pinv(old_hw: tuple[int, int], new_hw: tuple[int, int]) -> np.ndarray:
    """f64[new_h * new_w, old_h * old_w]: `pinv(Bᵀ)` for the bilinear patch resize `B`."""
    rows = interpolation_matrix(old_hw[0], new_hw[0], "bilinear", False)
    cols = interpolation_matrix(old_hw[1], new_hw[1], "bilinear", False)
    # B maps a flattened old patch to the flattened new patch: row-major kron of the axes.
    resize_matrix = np.kron(rows, cols)
    return np.linalg.pinv(resize_matrix.T)


def resample_patch_kernel(kernel: jnp.ndarray, new_hw: tuple[int, int]) -> jnp.ndarray:
    """FlexiViT's pseudo-inverse resize of a patch-embedding kernel.

    Args:
      kernel: f[h, w, C, D], a convolution kernel with stride = its size.
      new_hw: (h', w'), the new patch size.

    Returns:
      f[h', w', C, D], the same dtype: for every patch x, `<resize(x), new> ≈ <x, kernel>`
      (exact when enlarging).
    """
    if getattr(kernel, "ndim", None) != 4:
        raise ValueError(
            f"`kernel` must have shape [h, w, C, D], got {getattr(kernel, 'shape', kernel)}."
        )
    new_h, new_w = check_size_pair(new_hw, "new_hw")
    old_h, old_w = kernel.shape[:2]
    if (old_h, old_w) == (new_h, new_w):
        return kernel
    pinv = jnp.asarray(patch_resize_pinv((old_h, old_w), (new_h, new_w)), jnp.float32)
    flat = kernel.reshape(old_h * old_w, -1).astype(jnp.float32)
    resampled = jnp.matmul(pinv, flat, precision="highest")
    return resampled.reshape(new_h, new_w, *kernel.shape[2:]).astype(kernel.dtype)
