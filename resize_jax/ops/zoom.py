"""How much a sampling grid zooms, per output pixel, against the uniform grid of a resize.

A front-end that samples on a grid (the saliency sampler) is a fixed resize when its grid is
uniform. Its local magnification says where and how much it zooms instead:

    magnification(i, j) = sqrt(det J_uniform / |det J(i, j)|)

with J the grid's Jacobian (input coordinates per output pixel, central differences) and
J_uniform that of the identity grid of the same output size: 1 everywhere for a uniform
grid, 2 where the grid samples twice as densely along both axes, below 1 where it skips.
Where the grid is (nearly) flat, e.g. clamped at the image border, the magnification is
capped at `max_magnification`.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from resize_jax.ops.checks import check_number
from resize_jax.ops.grid_sample import check_grid

MAX_MAGNIFICATION = 100.0


def grid_magnification(grid, *, max_magnification: float = MAX_MAGNIFICATION) -> jnp.ndarray:
    """Local linear magnification of `grid: f[B, h, w, 2]` (h, w >= 2): f32[B, h, w].

    Raises:
      ValueError: if `grid` is not f[B, h, w, 2] with h, w >= 2, or `max_magnification` is
        not a number > 1.
    """
    check_grid(grid)
    _, height, width, _ = grid.shape
    if height < 2 or width < 2:
        raise ValueError(
            f"`grid` must be at least 2×2 to have a magnification, got shape {tuple(grid.shape)}."
        )
    check_number(max_magnification, "max_magnification", low=1, low_open=True)
    grid = grid.astype(jnp.promote_types(grid.dtype, jnp.float32))
    dx_dj, dy_dj = (jnp.gradient(grid[..., c], axis=2) for c in (0, 1))
    dx_di, dy_di = (jnp.gradient(grid[..., c], axis=1) for c in (0, 1))
    det = jnp.abs(dx_dj * dy_di - dx_di * dy_dj)
    uniform = 4.0 / ((width - 1) * (height - 1))  # identity_grid's spacing: 2/(w-1), 2/(h-1)
    det = jnp.maximum(det, uniform / float(max_magnification) ** 2)
    return jnp.sqrt(uniform / det)


def zoom_summary(grid) -> dict[str, jax.Array]:
    """Scalars that say whether a grid zooms, averaged over the batch (no gradient):

    - "zoom_spread": the standard deviation of the magnification over the output pixels
      (0 for a uniform grid, i.e. a plain resize);
    - "zoom_max": the largest magnification (1 for a uniform grid).
    """
    magnification = jax.lax.stop_gradient(grid_magnification(grid))
    return {
        "zoom_spread": jnp.mean(jnp.std(magnification, axis=(1, 2))),
        "zoom_max": jnp.mean(jnp.max(magnification, axis=(1, 2))),
    }
