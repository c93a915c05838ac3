"""invert_grid and unwarp: exact for separable grids, a measured approximation for dense ones.

Set-up shared by the measurements: a smooth 64×64 image (values in [0.05, 0.95]) warped to
48×48 by saliency grids of 31×31 maps (a peak holding ~9% of the mass, or softmax of
N(0, 1.5²) logits), then unwarped back to 64×64. "Reached" pixels are those the warp
samples at all: the grid pulls the output's borders inwards, so a band of input pixels
near the image border never appears in the warped image (they map to the nearest output
border); the error is measured on the others.
"""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from resize_jax import ops

H = W = 64
OUT = (48, 48)


def _smooth_image():
    y, x = np.mgrid[0:H, 0:W] / (H - 1)
    image = 0.5 + 0.25 * np.sin(2 * np.pi * (1.3 * x + 0.4 * y))
    image += 0.2 * np.cos(2 * np.pi * (0.7 * y - 0.5 * x))
    image = image[None, ..., None]
    return np.concatenate([image, image[:, ::-1]], 0).astype(np.float32)


def _saliency(kind):
    if kind == "peak":
        s = np.ones((2, 31, 31))
        s[0, 10, 20] += 100.0
        s[1, 22, 8] += 100.0
    else:
        s = np.exp(np.random.default_rng(0).normal(size=(2, 31, 31)) * 1.5)
    return (s / s.sum(axis=(1, 2), keepdims=True)).astype(np.float32)


@jax.jit
def _dense_measurements(saliency, image):
    grid = ops.saliency_grid(saliency, OUT)
    inverse = ops.invert_grid(grid, (H, W))
    start = ops.invert_grid(grid, (H, W), iterations=0)
    target = ops.identity_grid(2, H, W)

    def residual(inv):  # |G(o) - p| in input pixels.
        return jnp.abs(ops.grid_sample(grid, inv) - target).max(-1) * (W - 1) / 2

    back = ops.unwarp(ops.grid_sample(image, grid), grid, (H, W))
    reached = jnp.all(jnp.abs(inverse) < 1 - 2e-3, axis=-1)
    return residual(inverse), residual(start), jnp.abs(back - image)[..., 0], reached


@pytest.mark.parametrize("kind", ["peak", "random"])
def test_dense_grid_inverse_and_unwarp_error(kind):
    residual, start_residual, error, reached = map(
        np.asarray, _dense_measurements(_saliency(kind), _smooth_image())
    )
    assert reached.mean() > 0.8
    # Measured: max residual 8e-6 px (peak) and 7e-4 px (random); the scanline start alone
    # is off by up to 4e-3 / 2e-2 px, so the Newton refinement matters.
    assert residual[reached].max() < 2e-3
    assert residual[reached].max() < 0.2 * start_residual[reached].max()
    # Measured: at most 0.0020 (peak) and 0.0024 (random), the interpolation error of the
    # warped image (the exact separable inverse does no better, see below).
    assert error[reached].max() < 5e-3
    assert error[reached].mean() < 1e-3


@pytest.mark.parametrize("kind", ["peak", "random"])
def test_separable_inverse_is_exact_and_unwarp_error(kind):
    image = _smooth_image()

    @jax.jit
    def measure(saliency):
        grid = ops.saliency_grid(saliency, OUT, separable=True)
        inverse = ops.invert_grid(grid, (H, W))
        chex.assert_shape([inverse.x, inverse.y], [(2, W), (2, H)])
        back = ops.unwarp(ops.sample_separable(image, grid), grid, (H, W))
        # The warp's x map, evaluated where the inverse sends every input column.
        out_cols = jnp.broadcast_to(jnp.linspace(-1, 1, OUT[1]), (2, OUT[1]))
        x_again = jax.vmap(jnp.interp)(inverse.x, out_cols, grid.x)
        px, py = jnp.linspace(-1, 1, W), jnp.linspace(-1, 1, H)
        in_x = (px >= grid.x.min(1, keepdims=True)) & (px <= grid.x.max(1, keepdims=True))
        in_y = (py >= grid.y.min(1, keepdims=True)) & (py <= grid.y.max(1, keepdims=True))
        exactness = jnp.where(in_x, jnp.abs(x_again - px), 0.0).max() * (W - 1) / 2
        reached = in_y[:, :, None] & in_x[:, None, :]
        return exactness, jnp.abs(back - image)[..., 0], reached

    exactness, error, reached = map(np.asarray, measure(_saliency(kind)))
    # Measured: 2e-6 px, float32 rounding.
    assert exactness < 1e-4
    assert reached.mean() > 0.85
    # Measured: at most 0.0020 (peak) and 0.0023 (random).
    assert error[reached].max() < 5e-3


def test_identity_and_uniform_warps_invert_to_the_identity():
    invert = jax.jit(ops.invert_grid, static_argnums=1)
    grid = ops.identity_grid(2, 9, 13)
    np.testing.assert_allclose(invert(grid, (9, 13)), grid, atol=1e-5)
    # A uniform 9×13 → 5×7 grid: the inverse of an align-corners resize is one back.
    small = ops.identity_grid(2, 5, 7)
    np.testing.assert_allclose(invert(small, (9, 13)), grid, atol=1e-5)
    sep = ops.SeparableGrid(x=small[:, 0, :, 0], y=small[:, :, 0, 1])
    inverse = invert(sep, (9, 13))
    np.testing.assert_allclose(inverse.x, grid[:, 0, :, 0], atol=1e-6)
    np.testing.assert_allclose(inverse.y, grid[:, :, 0, 1], atol=1e-6)


def test_dense_inverse_gradient_matches_finite_differences():
    # The gradient comes from the implicit function theorem, not from the iterations.
    saliency = _saliency("peak")[:1]
    grid = jax.jit(lambda s: ops.saliency_grid(s, (12, 12)))(saliency)
    invert = jax.jit(lambda g: ops.invert_grid(g, (16, 16), iterations=8))
    reached = np.asarray(jnp.all(jnp.abs(invert(grid)) < 0.99, axis=-1))
    rng = np.random.default_rng(0)
    weights = rng.normal(size=(1, 16, 16, 2)).astype(np.float32) * reached[..., None]
    loss = jax.jit(lambda g: jnp.sum(ops.invert_grid(g, (16, 16), iterations=8) * weights))
    direction = rng.normal(size=grid.shape).astype(np.float32)
    eps = 1e-3
    fd = (loss(grid + eps * direction) - loss(grid - eps * direction)) / (2 * eps)
    np.testing.assert_allclose(np.vdot(jax.jit(jax.grad(loss))(grid), direction), fd, rtol=2e-2)


def test_unwarp_is_differentiable_and_vmappable():
    grid = jax.jit(lambda s: ops.saliency_grid(s, (12, 12), pad=8))(_saliency("peak"))
    outputs = np.random.default_rng(0).normal(size=(2, 12, 12, 4)).astype(np.float32)
    unwarp = jax.jit(ops.unwarp, static_argnums=2)
    g_out, g_grid = jax.jit(
        jax.grad(lambda o, g: jnp.sum(ops.unwarp(o, g, (16, 16)) ** 2), argnums=(0, 1))
    )(outputs, grid)
    assert np.all(np.isfinite(g_out)) and np.abs(g_out).max() > 0
    assert np.all(np.isfinite(g_grid)) and np.abs(g_grid).max() > 0
    batched = jax.jit(jax.vmap(lambda o, g: ops.unwarp(o[None], g[None], (16, 16))[0]))
    np.testing.assert_allclose(batched(outputs, grid), unwarp(outputs, grid, (16, 16)), atol=1e-5)


def test_bad_inputs_raise_value_errors():
    grid = jnp.zeros((2, 4, 5, 2))
    outputs = jnp.zeros((2, 4, 5, 3))
    with pytest.raises(ValueError, match="`grid` must have a last dimension of 2"):
        ops.invert_grid(jnp.zeros((2, 4, 5, 3)), (8, 8))
    with pytest.raises(ValueError, match="`grid` must have rank 4"):
        ops.invert_grid(grid[0], (8, 8))
    with pytest.raises(ValueError, match="`input_shape`"):
        ops.invert_grid(grid, (8, -8))
    with pytest.raises(ValueError, match="`iterations` must be a non-negative integer"):
        ops.invert_grid(grid, (8, 8), iterations=-1)
    with pytest.raises(ValueError, match="`outputs` must have the batch and spatial shape"):
        ops.unwarp(outputs[:, :3], grid, (8, 8))
    with pytest.raises(ValueError, match="`outputs` must have rank 4"):
        ops.unwarp(outputs[0], grid, (8, 8))
    sep = ops.SeparableGrid(x=jnp.zeros((2, 5)), y=jnp.zeros((2, 4)))
    with pytest.raises(ValueError, match="`outputs` must have the batch and spatial shape"):
        ops.unwarp(outputs[:, :, :4], sep, (8, 8))
    with pytest.raises(ValueError, match=r"`grid.y` must have rank 2"):
        ops.invert_grid(ops.SeparableGrid(x=sep.x, y=jnp.zeros((2, 4, 1))), (8, 8))
