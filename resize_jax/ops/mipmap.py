"""Antialiased sampling at arbitrary points: trilinear mip-mapping (Williams, SIGGRAPH 1983).

`grid_sample` reads the four pixels around each point. Where the grid is sparser than the
image (any warp that shrinks), it skips the pixels in between and aliases, exactly as a
bilinear resize without antialiasing does: one-pixel details are seen or missed depending on
where the points happen to fall. `grid_sample_antialiased` reads instead from an image
pyramid, at the level whose pixel spacing matches the grid's local spacing:

    level 0 = the image; level l+1 = antialiased 2× reduction of level l
      (`resize(..., antialias=True)`: a tent filter 1/8, 3/8, 3/8, 1/8; sides ⌈n/2⌉)
    ρ = max(|∂p/∂col|, |∂p/∂row|)   input pixels per output pixel at each point, from central
                                    differences of the grid (one-sided at its edges)
    λ = clip(log2(max(ρ, 1)), 0, L-1)
    out = Σ_l max(0, 1 - |λ - l|) · grid_sample(level_l, grid)   (the two nearest levels)

A point keeps its physical position on every level (the levels cover the image's extent with
half-pixel centres, like `resize`), so a uniform 2^k-times-shrinking grid with half-pixel
centres reads level k exactly, i.e. the antialiased resize. Where the grid magnifies (ρ ≤ 1)
it is `grid_sample` itself. The filter is isotropic (one level per point, from the longer
axis of the footprint), as in OpenGL's default trilinear filtering.

Gradients flow to the images through every level, and to the grid through the sample
positions and through λ: a point whose loss wants more detail is pulled towards a finer
level, i.e. towards magnification. That is what lets a saliency sampler learn to zoom on
details that a plain `grid_sample` at its starting, uniform grid cannot see at all (the
README's Demo section measures it).

Cost: L gathers of the output's size, plus the pyramid (a third of the image's size more).
"""

from __future__ import annotations

import math

import jax.numpy as jnp

from resize_jax.ops import native
from resize_jax.ops.checks import check_choice, check_images, check_positive_int
from resize_jax.ops.grid_sample import PADDING_MODES, check_grid, grid_sample
from resize_jax.ops.resize import resize


def default_num_levels(image_shape: tuple[int, int], grid_shape: tuple[int, int]) -> int:
    """Levels for sampling an H×W image on an h×w grid: enough for twice the mean shrink.

    A uniform grid shrinks by s = max(H/h, W/w), read at level log2(s); a warp compresses some
    regions further, so one more level is kept. Capped where the coarsest level reaches 1 px.
    """
    (height, width), (h, w) = image_shape, grid_shape
    shrink = max(1.0, height / h, width / w)
    wanted = 2 + math.ceil(math.log2(shrink) - 1e-9)
    return max(1, min(wanted, 1 + math.ceil(math.log2(max(height, width)))))


def image_pyramid(images: jnp.ndarray, num_levels: int) -> list[jnp.ndarray]:
    """[images, its antialiased 2× reduction, ...]: `num_levels` f[B, ⌈H/2^l⌉, ⌈W/2^l⌉, C]."""
    levels = [images]
    for _ in range(num_levels - 1):
        _, height, width, _ = levels[-1].shape
        shape = (max(1, math.ceil(height / 2)), max(1, math.ceil(width / 2)))
        levels.append(resize(levels[-1], shape, method="bilinear", antialias=True))
    return levels


def level_of_detail(grid: jnp.ndarray, height: int, width: int) -> jnp.ndarray:
    """log2 of the grid's local spacing in input pixels, at least 0: f32[B, h, w].

    grid: f[B, h, w, 2] (x, y) in the `grid_sample` convention, over an H×W image.
    """
    grid = grid.astype(jnp.promote_types(grid.dtype, jnp.float32))
    x = (grid[..., 0] + 1.0) * (0.5 * (width - 1))
    y = (grid[..., 1] + 1.0) * (0.5 * (height - 1))

    def squared_step(axis: int) -> jnp.ndarray:
        if grid.shape[axis] < 2:  # One point along this axis: no spacing to measure.
            return jnp.zeros(x.shape, x.dtype)
        return jnp.gradient(x, axis=axis) ** 2 + jnp.gradient(y, axis=axis) ** 2

    # The small constant keeps the square root's derivative finite where the grid is flat.
    spacing = jnp.sqrt(jnp.maximum(squared_step(2), squared_step(1)) + 1e-12)
    return jnp.log2(jnp.maximum(spacing, 1.0))


def _level_grid(grid: jnp.ndarray, size: tuple[int, int], level_size: tuple[int, int]):
    """The same physical points in a level's coordinates (half-pixel centres, same extent)."""
    (height, width), (level_h, level_w) = size, level_size

    def axis(coord, n, m):
        if m == 1:
            return jnp.zeros_like(coord)
        position = (coord + 1.0) * (0.5 * (n - 1)) + 0.5  # pixel edges: 0 … n
        index = position * (m / n) - 0.5
        return index * (2.0 / (m - 1)) - 1.0

    return jnp.stack(
        [axis(grid[..., 0], width, level_w), axis(grid[..., 1], height, level_h)], axis=-1
    )


def grid_sample_antialiased(
    images: jnp.ndarray,
    grid: jnp.ndarray,
    *,
    padding_mode: str = "border",
    num_levels: int | None = None,
) -> jnp.ndarray:
    """Samples `images` at `grid` from the pyramid level matching the local spacing.

    Args:
      images: f[B, H, W, C].
      grid: f[B, h, w, 2], (x, y) in [-1, 1] (the `grid_sample` convention).
      padding_mode: "border" or "zeros", as in `grid_sample` (on every level).
      num_levels: pyramid levels L >= 1 (1: plain `grid_sample`); None: `default_num_levels`.

    Returns:
      f[B, h, w, C], the dtype of `images`; differentiable with respect to both arguments.

    Raises:
      ValueError: naming the argument, for the errors of `grid_sample` and for a
        `num_levels` that is not a positive integer.
    """
    check_images(images)
    check_grid(grid)
    check_choice(padding_mode, "padding_mode", PADDING_MODES)
    if grid.shape[0] != images.shape[0]:
        raise ValueError(
            f"`grid` must have the batch size of `images` ({images.shape[0]}), got shape "
            f"{tuple(grid.shape)}."
        )
    if num_levels is None:
        num_levels = default_num_levels(images.shape[1:3], grid.shape[1:3])
    num_levels = check_positive_int(num_levels, "num_levels")
    if num_levels == 1:
        return grid_sample(images, grid, padding_mode=padding_mode)
    return _grid_sample_antialiased(images, grid, padding_mode, int(num_levels))


@native.jit(static_argnames=("padding_mode", "num_levels"))
def _grid_sample_antialiased(images, grid, padding_mode: str, num_levels: int):
    _, height, width, _ = images.shape
    grid = grid.astype(jnp.promote_types(grid.dtype, jnp.float32))
    lod = jnp.clip(level_of_detail(grid, height, width), 0.0, num_levels - 1.0)
    out = None
    for level, pixels in enumerate(image_pyramid(images, num_levels)):
        level_grid = grid if level == 0 else _level_grid(grid, (height, width), pixels.shape[1:3])
        weight = jnp.maximum(0.0, 1.0 - jnp.abs(lod - level)).astype(images.dtype)[..., None]
        term = weight * grid_sample(pixels, level_grid, padding_mode=padding_mode)
        out = term if out is None else out + term
    return out
