"""Moving points between an input image and its warped (sampled) image: `warp_points` and
`unwarp_points`, for landmarks, gaze points in the image and box corners.

A sampling grid maps every pixel of the warped image to a point of the input (`grid_sample`);
between pixels the warped image is the bilinear interpolation of its pixels, so a point `o`
of the warped image shows the input at G(o), the bilinear interpolation of the grid there.
Points are in the grid convention of their image (x, y in [-1, 1], ±1 at the centres of the
border pixels; `pixels_to_grid` and `grid_to_pixels` convert from and to pixel indices).

- `unwarp_points`: warped image → input, G(o): exact, one bilinear read of the grid.
- `warp_points`: input → warped image, the o with G(o) = p. Separable grids: exact (each
  axis is a monotone piecewise-linear map, inverted by linear interpolation). Dense grids:
  the scanline inverse of `invert_grid` (on a raster twice as fine as the grid) read at the
  points, refined by damped Newton
  iterations on G(o) = p (the solver `invert_grid` uses), so `unwarp_points(warp_points(p))`
  returns p to within 1e-3 pixel on the pixels the warp reaches (`tests/test_points.py`).
  Input points the warp never reaches (the band along the border that a zooming grid leaves
  out) go to the nearest border of the warped image, clamped to [-1, 1].

Both are differentiable: `unwarp_points` by autodiff through the bilinear read; `warp_points`
by the implicit function theorem (do/dp = J⁻¹, do/dgrid = -J⁻¹ ∂G/∂grid) at the solution,
zero for clamped points. A box is its corners: with a separable grid an axis-aligned box stays
an axis-aligned box (warp its two corners); with a dense grid its edges bend, so warp the
corners (or points along the edges) and take their bounding box.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

from resize_jax.ops import native
from resize_jax.ops.checks import check_images, check_size_pair
from resize_jax.ops.grid_sample import check_grid, clamp, grid_sample
from resize_jax.ops.saliency import SeparableGrid, check_separable_grid
from resize_jax.ops.warp import (
    _check_iterations,
    _interp,
    _linspace,
    _two_pass_inverse,
    implicit_adjoint,
    newton_inverse,
)


def check_points(points, name: str = "points") -> None:
    """Checks `points` is a floating f[B, N, 2] array of (x, y)."""
    check_images(points, name, rank=3)
    if points.shape[-1] != 2:
        raise ValueError(
            f"`{name}` must be f[B, N, 2] points (x, y), got shape {tuple(points.shape)}."
        )


def _grid_batch(grid, name: str = "grid") -> tuple[int, int, int]:
    """(batch, out_h, out_w) of a dense or separable grid, after checking it."""
    if isinstance(grid, SeparableGrid):
        check_separable_grid(grid, name)
        return int(grid.x.shape[0]), int(grid.y.shape[1]), int(grid.x.shape[1])
    check_grid(grid, name)
    return tuple(int(v) for v in grid.shape[:3])


def _check_pair(points, grid) -> None:
    check_points(points)
    batch = _grid_batch(grid)[0]
    if points.shape[0] != batch:
        raise ValueError(
            f"`points` must have the grid's batch size {batch}, got shape {tuple(points.shape)}."
        )


def pixels_to_grid(points, image_shape: tuple[int, int]) -> jnp.ndarray:
    """Pixel indices (x = column, y = row; pixel centres at integers) of an (H, W) image →
    the grid convention: f[..., 2] → f[..., 2]."""
    height, width = check_size_pair(image_shape, "image_shape")
    points = jnp.asarray(points)
    scale = jnp.asarray([max(width - 1, 1), max(height - 1, 1)], points.dtype)
    return points / scale * 2.0 - 1.0


def grid_to_pixels(points, image_shape: tuple[int, int]) -> jnp.ndarray:
    """The grid convention → pixel indices of an (H, W) image (inverse of `pixels_to_grid`)."""
    height, width = check_size_pair(image_shape, "image_shape")
    points = jnp.asarray(points)
    scale = jnp.asarray([max(width - 1, 1), max(height - 1, 1)], points.dtype)
    return (points + 1.0) / 2.0 * scale


def unwarp_points(points, grid) -> jnp.ndarray:
    """Points of the warped image → where they are in the input image.

    Args:
      points: f[B, N, 2] (x, y) in the warped image's grid convention.
      grid: the warp's grid, f[B, h, w, 2] or `SeparableGrid(x: f[B, w], y: f[B, h])`.

    Returns:
      f[B, N, 2] in the input's grid convention (points outside [-1, 1] are clamped first).

    Raises:
      ValueError: naming the argument, for bad ranks, dtypes, or batch sizes that differ.
    """
    _check_pair(points, grid)
    if isinstance(grid, SeparableGrid):
        dtype = jnp.promote_types(grid.x.dtype, jnp.float32)

        def axis(values, coords):  # The piecewise-linear map: output → input coordinates.
            coords = coords.astype(dtype)
            ramp = jnp.broadcast_to(_linspace(coords.shape[-1], dtype), coords.shape)
            return _interp(values.astype(dtype), ramp, coords)

        return jnp.stack([axis(points[..., 0], grid.x), axis(points[..., 1], grid.y)], axis=-1)
    dtype = jnp.promote_types(grid.dtype, jnp.float32)
    where = clamp(points.astype(dtype), -1.0, 1.0)
    return grid_sample(grid.astype(dtype), where[:, None])[:, 0]


def warp_points(points, grid, *, iterations: int = 6) -> jnp.ndarray:
    """Points of the input image → where the warp puts them in the warped image.

    Args:
      points: f[B, N, 2] (x, y) in the input image's grid convention.
      grid: the warp's grid, f[B, h, w, 2] (Newton iterations) or `SeparableGrid` (exact).
      iterations: Newton iterations for dense grids (ignored for separable ones).

    Returns:
      f[B, N, 2] in the warped image's grid convention, in [-1, 1] (see the module docstring
      for points the warp does not reach).

    Raises:
      ValueError: naming the argument, for bad ranks, dtypes, batch sizes that differ or a
        negative `iterations`.
    """
    _check_pair(points, grid)
    if isinstance(grid, SeparableGrid):
        dtype = jnp.promote_types(grid.x.dtype, jnp.float32)

        def axis(coords, values):  # Its monotone inverse: input → output coordinates.
            ramp = _linspace(coords.shape[-1], dtype)
            return _interp(values.astype(dtype), coords.astype(dtype), ramp)

        return jnp.stack([axis(grid.x, points[..., 0]), axis(grid.y, points[..., 1])], axis=-1)
    iterations = _check_iterations(iterations)
    dtype = jnp.promote_types(grid.dtype, jnp.float32)
    return _warp_points_jit(grid.astype(dtype), points.astype(dtype), iterations)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2,))
def _warp_points_dense(grid, points, iterations: int):
    """o with G(o) = p: grid f[B, h, w, 2], points f[B, N, 2] → f[B, N, 2]."""
    _, out_h, out_w, _ = grid.shape
    # The scanline inverse over an input raster twice as fine as the grid, read at the
    # points: a raster as coarse as the grid left a point of a random 31×31 map in a wrong
    # bilinear cell, where Newton stalled 0.06 px off.
    start = grid_sample(_two_pass_inverse(grid, 2 * out_h, 2 * out_w), points[:, None])
    ones = jnp.ones(2, grid.dtype)
    return newton_inverse(grid, points[:, None], start, iterations, ones)[:, 0]


def _warp_points_fwd(grid, points, iterations):
    where = _warp_points_dense(grid, points, iterations)
    return where, (grid, where)


def _warp_points_bwd(iterations, residuals, cotangent):
    del iterations
    grid, where = residuals
    grid_bar, points_bar = implicit_adjoint(grid, where[:, None], cotangent[:, None])
    return grid_bar, points_bar[:, 0].astype(where.dtype)


_warp_points_dense.defvjp(_warp_points_fwd, _warp_points_bwd)


# Vmapped over the batch (as `invert_grid`), so a batch sharded over devices never enters
# the broadcasts of a batch of one; jitted so an eager call compiles once.
@native.jit(static_argnums=(2,))
def _warp_points_jit(grid, points, iterations):
    return jax.vmap(lambda g, p: _warp_points_dense(g[None], p[None], iterations)[0])(grid, points)
