"""warp_points / unwarp_points against the dense grid, both directions, dense and separable
grids; gradients; input checks. Grids: saliency grids of 31×31 maps (a peak holding ~9% of
the mass, or softmax of N(0, 1.5²) logits) from a 64×64 input to a 48×48 warped image."""

import functools
import pathlib
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from resize_jax import ops

H = W = 64
OUT = (48, 48)


def _saliency(kind):
    if kind == "peak":
        s = np.ones((2, 31, 31))
        s[0, 10, 20] += 100.0
        s[1, 22, 8] += 100.0
    else:
        s = np.exp(np.random.default_rng(0).normal(size=(2, 31, 31)) * 1.5)
    return jnp.asarray(s / s.sum(axis=(1, 2), keepdims=True), jnp.float32)


@functools.cache
def _grids(kind):
    saliency = _saliency(kind)
    return ops.saliency_grid(saliency, OUT), ops.saliency_grid(saliency, OUT, separable=True)


def _input_points(count=200, seed=1):
    return jnp.asarray(np.random.default_rng(seed).uniform(-1, 1, (2, count, 2)), jnp.float32)


@pytest.mark.parametrize("kind", ["peak", "random"])
def test_unwarp_points_reads_the_dense_grid(kind):
    grid, separable = _grids(kind)
    # At the warped image's pixel centres, unwarp_points is the grid itself.
    centres = ops.identity_grid(2, *OUT).reshape(2, -1, 2)
    np.testing.assert_allclose(
        ops.unwarp_points(centres, grid), np.asarray(grid).reshape(2, -1, 2), atol=1e-6
    )
    # Between centres, the separable path equals the dense grid of the same warp.
    points = _input_points()
    dense = ops.separable_to_grid(separable)
    np.testing.assert_allclose(
        ops.unwarp_points(points, separable), ops.unwarp_points(points, dense), atol=1e-6
    )


@pytest.mark.parametrize("kind", ["peak", "random"])
@pytest.mark.parametrize("separable", [False, True])
def test_warp_then_unwarp_returns_the_points(kind, separable):
    grid = _grids(kind)[int(separable)]
    points = _input_points()
    warped = ops.warp_points(points, grid)
    back = ops.unwarp_points(warped, grid)
    # Points the warp reaches (not sent to the warped image's border) come back exactly.
    reached = np.all(np.abs(np.asarray(warped)) < 1 - 1e-3, axis=-1)
    assert reached.mean() > 0.6
    error_px = np.abs(np.asarray(back - points)).max(-1)[reached] * (W - 1) / 2
    assert error_px.max() < 1e-3
    # The others are sent to the warped image's border.
    assert np.all(np.abs(np.asarray(warped))[~reached].max(-1) > 1 - 1e-3)


@pytest.mark.parametrize("kind", ["peak", "random"])
def test_unwarp_then_warp_returns_the_points(kind):
    grid, separable = _grids(kind)
    points = _input_points(seed=2) * 0.9  # inside the warped image, off its clamped rim
    for g in (grid, separable):
        back = ops.warp_points(ops.unwarp_points(points, g), g)
        np.testing.assert_allclose(back, points, atol=2e-4)


@pytest.mark.parametrize("kind", ["peak", "random"])
def test_dense_warp_points_agree_with_invert_grid_and_the_separable_solution(kind):
    grid, separable = _grids(kind)
    # At the input's pixel centres, warp_points solves G(o) = p as well as the dense
    # inverse of `invert_grid` does, and finds the same o where it is unique (near the
    # warped image's rim a strongly varying map can fold the grid: two o, one p).
    centres = ops.identity_grid(2, H, W).reshape(2, -1, 2)
    inverse = ops.invert_grid(grid, (H, W)).reshape(2, -1, 2)
    warped = ops.warp_points(centres, grid)

    def residual_px(o):
        return np.abs(np.asarray(ops.unwarp_points(o, grid) - centres)).max(-1) * (W - 1) / 2

    reached = np.all(np.abs(np.asarray(inverse)) < 1 - 2e-3, axis=-1)
    assert residual_px(warped)[reached].max() < max(residual_px(inverse)[reached].max(), 1e-3)
    inner = np.all(np.abs(np.asarray(inverse)) < 0.9, axis=-1)
    np.testing.assert_allclose(np.asarray(warped)[inner], np.asarray(inverse)[inner], atol=2e-4)
    # A separable warp solved as a dense grid agrees with its exact separable inverse.
    points = _input_points()
    np.testing.assert_allclose(
        ops.warp_points(points, ops.separable_to_grid(separable)),
        ops.warp_points(points, separable),
        atol=2e-4,
    )


def test_a_landmark_lands_where_warp_points_says():
    """A small bright blob drawn in the input shows up, after `grid_sample`, where
    `warp_points` puts its centre (to a quarter of a warped-image pixel: the warp's
    magnification varies across the blob, which shifts its centroid a little)."""
    grid, _ = _grids("peak")
    centres = jnp.asarray([[[0.25, -0.3]], [[-0.45, 0.4]]], jnp.float32)  # near the peaks
    y, x = np.mgrid[0:H, 0:W]
    px = np.asarray(ops.grid_to_pixels(centres, (H, W)))[:, 0]
    blobs = np.exp(
        -((x[None] - px[:, 0, None, None]) ** 2 + (y[None] - px[:, 1, None, None]) ** 2) / 2.0
    )
    warped = np.asarray(ops.grid_sample(jnp.asarray(blobs[..., None], jnp.float32), grid))[..., 0]
    oy, ox = np.mgrid[0 : OUT[0], 0 : OUT[1]]
    mass = warped.sum((1, 2))
    centroid = np.stack([(warped * ox).sum((1, 2)), (warped * oy).sum((1, 2))], -1) / mass[:, None]
    predicted = np.asarray(ops.grid_to_pixels(ops.warp_points(centres, grid), OUT))[:, 0]
    np.testing.assert_allclose(centroid, predicted, atol=0.25)


def test_identity_grid_maps_points_to_themselves():
    grid = ops.identity_grid(2, *OUT)  # the shapes of the other tests: compiled once
    points = _input_points()
    np.testing.assert_allclose(ops.warp_points(points, grid), points, atol=1e-6)
    np.testing.assert_allclose(ops.unwarp_points(points, grid), points, atol=1e-6)


def test_warp_points_gradient_matches_finite_differences():
    grid, separable = _grids("random")
    points = _input_points(count=5, seed=3) * 0.3
    direction = jnp.asarray(np.random.default_rng(4).normal(size=grid.shape), jnp.float32)
    weights = jnp.asarray(np.random.default_rng(5).normal(size=points.shape), jnp.float32)

    def f(g, p):
        return jnp.sum(ops.warp_points(p, g, iterations=10) * weights)

    grad_grid, grad_points = jax.grad(f, argnums=(0, 1))(grid, points)
    eps = 1e-3
    numeric = (f(grid + eps * direction, points) - f(grid - eps * direction, points)) / (2 * eps)
    np.testing.assert_allclose(jnp.sum(grad_grid * direction), numeric, rtol=2e-2)
    step = jnp.zeros_like(points).at[0, 1, 0].set(eps)
    numeric = (f(grid, points + step) - f(grid, points - step)) / (2 * eps)
    np.testing.assert_allclose(grad_points[0, 1, 0], numeric, rtol=2e-2)
    # Separable grids: autodiff through the exact inverse, finite everywhere.
    sep_grad = jax.grad(lambda p: jnp.sum(ops.warp_points(p, separable) * weights))(points)
    assert np.isfinite(np.asarray(sep_grad)).all() and np.abs(np.asarray(sep_grad)).sum() > 0


def test_pixel_conversions():
    corners = jnp.asarray([[0.0, 0.0], [W - 1.0, H - 1.0], [(W - 1) / 2, (H - 1) / 2]])
    np.testing.assert_allclose(
        ops.pixels_to_grid(corners, (H, W)), [[-1, -1], [1, 1], [0, 0]], atol=1e-6
    )
    np.testing.assert_allclose(
        ops.grid_to_pixels(ops.pixels_to_grid(corners, (H, W)), (H, W)), corners, atol=1e-5
    )


def test_bad_inputs_raise_value_errors():
    grid, separable = _grids("peak")
    points = _input_points(count=3)
    with pytest.raises(ValueError, match="`points`"):
        ops.warp_points(points[0], grid)  # f[N, 2]
    with pytest.raises(ValueError, match=r"`points` must be f\[B, N, 2\]"):
        ops.unwarp_points(jnp.zeros((2, 3, 3)), grid)
    with pytest.raises(ValueError, match="batch size 2"):
        ops.warp_points(points[:1], separable)
    with pytest.raises(ValueError, match="`points`"):
        ops.unwarp_points(jnp.zeros((2, 3, 2), jnp.int32), grid)
    with pytest.raises(ValueError, match="`grid`"):
        ops.warp_points(points, grid[..., :1])
    with pytest.raises(ValueError, match="`iterations`"):
        ops.warp_points(points, grid, iterations=-1)
    with pytest.raises(ValueError, match="`image_shape`"):
        ops.pixels_to_grid(points, (0, 4))


def test_docs_gaze_python_blocks_run():
    page = pathlib.Path(__file__).resolve().parents[1] / "docs" / "gaze.md"
    blocks = re.findall(r"```python\n(.*?)```", page.read_text(), flags=re.S)
    assert blocks, "docs/gaze.md has no python block"
    for block in blocks:
        exec(compile(block, str(page), "exec"), {})
