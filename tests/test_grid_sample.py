"""grid_sample and identity_grid: the grid convention, SciPy parity, gradients, errors."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import ndimage

from resize_jax import ops

# SciPy's modes for PyTorch-style padding: "nearest" clamps the coordinate; "grid-constant"
# interpolates towards the zero outside the image (plain "constant" would not).
SCIPY_MODES = {"border": "nearest", "zeros": "grid-constant"}
# One compilation per shape instead of one per primitive: the tests run on a busy CPU.
sample = jax.jit(ops.grid_sample, static_argnames="padding_mode")


def _scipy_sample(images, grid, padding_mode):
    """map_coordinates(order=1) at the pixel positions of the grid convention."""
    images, grid = np.asarray(images, np.float64), np.asarray(grid, np.float64)
    _, height, width, channels = images.shape
    rows = (grid[..., 1] + 1) / 2 * (height - 1)
    cols = (grid[..., 0] + 1) / 2 * (width - 1)
    return np.stack(
        [
            np.stack(
                [
                    ndimage.map_coordinates(
                        image[..., c], [r, q], order=1, mode=SCIPY_MODES[padding_mode]
                    )
                    for c in range(channels)
                ],
                axis=-1,
            )
            for image, r, q in zip(images, rows, cols, strict=True)
        ]
    )


@pytest.mark.parametrize("padding_mode", ["border", "zeros"])
@pytest.mark.parametrize("shape", [(2, 7, 9, 3), (1, 12, 5, 1), (1, 1, 6, 2)])
def test_matches_scipy_map_coordinates(padding_mode, shape):
    rng = np.random.default_rng(0)
    images = rng.normal(size=shape).astype(np.float32)
    # Points inside and up to 30% outside the image on every side.
    grid = rng.uniform(-1.3, 1.3, size=(shape[0], 5, 6, 2)).astype(np.float32)
    out = sample(jnp.asarray(images), jnp.asarray(grid), padding_mode=padding_mode)
    chex.assert_shape(out, (shape[0], 5, 6, shape[3]))
    np.testing.assert_allclose(out, _scipy_sample(images, grid, padding_mode), atol=1e-5)


def test_identity_grid_reproduces_the_image():
    images = np.random.default_rng(0).uniform(size=(2, 6, 11, 3)).astype(np.float32)
    grid = ops.identity_grid(2, 6, 11)
    chex.assert_shape(grid, (2, 6, 11, 2))
    # x runs along the width, y along the height, -1/+1 at the first/last pixel centres.
    np.testing.assert_allclose(grid[0, 0, :, 0], np.linspace(-1, 1, 11), atol=1e-7)
    np.testing.assert_allclose(grid[0, :, 0, 1], np.linspace(-1, 1, 6), atol=1e-7)
    for mode in ("border", "zeros"):
        out = sample(images, grid, padding_mode=mode)
        # Exact up to the float32 rounding of the linspace coordinates.
        np.testing.assert_allclose(out, images, atol=1e-6)


def test_padding_modes_differ_only_outside():
    images = jnp.ones((1, 4, 4, 1))
    grid = jnp.asarray([[[[0.0, 0.0], [-1.0, -1.0], [-1.5, 0.0], [-3.0, 0.0], [5.0, 5.0]]]])
    border = sample(images, grid, padding_mode="border")
    zeros = sample(images, grid, padding_mode="zeros")
    np.testing.assert_allclose(border[0, 0, :, 0], [1, 1, 1, 1, 1])
    # -1.5 is 0.75 pixel left of the first centre: 0.25 of it reads the outside zero.
    np.testing.assert_allclose(zeros[0, 0, :, 0], [1, 1, 0.25, 0, 0], atol=1e-6)


def _interior_grid(rng, batch, out_h, out_w, height, width):
    """Sample points whose fractional pixel positions stay in [0.2, 0.8] (away from kinks)."""
    cells = np.asarray([width - 1, height - 1])
    pos = rng.integers(0, cells, size=(batch, out_h, out_w, 2)) + rng.uniform(
        0.2, 0.8, size=(batch, out_h, out_w, 2)
    )
    return (pos / cells * 2 - 1).astype(np.float32)


@pytest.mark.parametrize("padding_mode", ["border", "zeros"])
def test_gradients_match_finite_differences(padding_mode):
    rng = np.random.default_rng(0)
    images = rng.normal(size=(2, 5, 7, 3)).astype(np.float32)
    grid = _interior_grid(rng, 2, 3, 4, 5, 7)
    weights = rng.normal(size=(2, 3, 4, 3)).astype(np.float32)

    def loss(images, grid):
        return jnp.sum(ops.grid_sample(images, grid, padding_mode=padding_mode) * weights)

    loss_jit = jax.jit(loss)
    g_img, g_grid = jax.jit(jax.grad(loss, argnums=(0, 1)))(images, grid)
    assert np.all(np.isfinite(g_grid)) and np.any(g_grid != 0)
    # The loss is linear in the images: a unit central difference is exact.
    v = rng.normal(size=images.shape).astype(np.float32)
    fd = loss_jit(images + 0.5 * v, grid) - loss_jit(images - 0.5 * v, grid)
    np.testing.assert_allclose(np.vdot(g_img, v), fd, rtol=1e-4)
    # Piecewise linear in the grid: steps of a few hundredths of a pixel cross no kink.
    u = rng.normal(size=grid.shape).astype(np.float32)
    eps = 0.01 * 2 / 6
    fd = (loss_jit(images, grid + eps * u) - loss_jit(images, grid - eps * u)) / (2 * eps)
    np.testing.assert_allclose(np.vdot(g_grid, u), fd, rtol=2e-3)


def test_gradient_at_the_image_border_is_one_sided_and_finite():
    # Coordinates exactly at ±1 (identity grid, clamped saliency grids) are common.
    images = jnp.arange(5.0).reshape(1, 1, 5, 1) ** 2
    grid = jnp.asarray([[[[-1.0, 0.0], [1.0, 0.0]]]])
    g = jax.jit(jax.grad(lambda g: ops.grid_sample(images, g).sum()))(grid)
    # d/dx of the pixel positions (x + 1) * 2: the slope of the nearest inside segment.
    np.testing.assert_allclose(g[0, 0, :, 0], [2 * (1 - 0), 2 * (16 - 9)])


def test_grid_gradient_needs_no_scatter():
    # The backward with respect to the grid reads the gathered corners; only the image
    # gradient is a scatter-add.
    images = jnp.ones((1, 8, 8, 3))
    grid = ops.identity_grid(1, 4, 4)
    jaxpr = str(jax.make_jaxpr(jax.grad(lambda g: ops.grid_sample(images, g).sum()))(grid))
    assert "scatter" not in jaxpr
    jaxpr = str(jax.make_jaxpr(jax.grad(lambda x: ops.grid_sample(x, grid).sum()))(images))
    assert "scatter" in jaxpr


def test_jit_vmap_and_dtype():
    rng = np.random.default_rng(0)
    images = rng.uniform(size=(3, 2, 6, 5, 2)).astype(np.float32)
    grid = rng.uniform(-1, 1, size=(3, 2, 4, 4, 2)).astype(np.float32)
    batched = jax.jit(jax.vmap(ops.grid_sample))(images, grid)
    direct = sample(images.reshape(6, 6, 5, 2), grid.reshape(6, 4, 4, 2))
    np.testing.assert_allclose(batched.reshape(6, 4, 4, 2), direct, atol=1e-6)
    half = sample(jnp.asarray(images[0], jnp.bfloat16), grid[0])
    assert half.dtype == jnp.bfloat16
    np.testing.assert_allclose(half.astype(jnp.float32), direct[:2], atol=2e-2)


def test_bad_inputs_raise_value_errors():
    images, grid = jnp.ones((2, 4, 4, 3)), jnp.zeros((2, 3, 3, 2))
    with pytest.raises(ValueError, match="`images` must have rank 4"):
        ops.grid_sample(images[0], grid)
    with pytest.raises(ValueError, match="`images` must be a floating-point"):
        ops.grid_sample(images.astype(jnp.int32), grid)
    with pytest.raises(ValueError, match="`grid` must have rank 4"):
        ops.grid_sample(images, grid[0])
    with pytest.raises(ValueError, match="`grid` must have a last dimension of 2"):
        ops.grid_sample(images, jnp.zeros((2, 3, 3, 3)))
    with pytest.raises(ValueError, match="`grid` must have the batch size of `images`"):
        ops.grid_sample(images, grid[:1])
    with pytest.raises(ValueError, match="`padding_mode` must be one of"):
        ops.grid_sample(images, grid, padding_mode="reflection")
    with pytest.raises(ValueError, match="`height` must be a positive integer"):
        ops.identity_grid(1, 0, 4)


def test_images_larger_than_the_int32_index_are_refused():
    # Shapes only: eval_shape traces without allocating the 2.5 G-pixel image.
    images = jax.ShapeDtypeStruct((1, 50_000, 50_000, 1), jnp.float32)
    grid = jax.ShapeDtypeStruct((1, 2, 2, 2), jnp.float32)
    with pytest.raises(ValueError, match="`images` of 50000×50000 pixels is larger than"):
        jax.eval_shape(ops.grid_sample, images, grid)


@pytest.mark.parametrize("padding_mode", ["border", "zeros"])
@pytest.mark.parametrize("shape", [(2, 7, 9, 3), (1, 12, 5, 1), (1, 1, 6, 2), (1, 6, 6, 11)])
def test_hand_written_derivatives_equal_autodiff_of_the_plain_sampler(padding_mode, shape):
    # grid_sample's grid derivative is a hand-written JVP (faster); the plain gather
    # formulation differentiated by JAX is the oracle, in reverse and forward mode, with
    # points inside, outside and exactly on the border (the identity grid's corners).
    from resize_jax.ops.grid_sample import _sample_plain

    rng = np.random.default_rng(1)
    images = jnp.asarray(rng.normal(size=shape), jnp.float32)
    grid = rng.uniform(-1.3, 1.3, size=(shape[0], 5, 6, 2)).astype(np.float32)
    grid[:, 0, :2] = [[-1.0, -1.0], [1.0, 1.0]]
    grid = jnp.asarray(grid)
    weights = jnp.asarray(rng.normal(size=(shape[0], 5, 6, shape[3])), jnp.float32)

    def loss(sampler):
        return lambda x, g: jnp.sum(weights * sampler(x, g))

    ours = jax.jit(
        jax.grad(loss(lambda x, g: ops.grid_sample(x, g, padding_mode=padding_mode)), (0, 1))
    )
    plain = jax.jit(jax.grad(loss(lambda x, g: _sample_plain(x, g, padding_mode)), (0, 1)))
    chex.assert_trees_all_close(ours(images, grid), plain(images, grid), atol=1e-5, rtol=1e-5)
    tangents = (jnp.ones_like(images), jnp.asarray(rng.normal(size=grid.shape), jnp.float32))
    _, jvp_ours = jax.jvp(
        lambda x, g: ops.grid_sample(x, g, padding_mode=padding_mode), (images, grid), tangents
    )
    _, jvp_plain = jax.jvp(lambda x, g: _sample_plain(x, g, padding_mode), (images, grid), tangents)
    np.testing.assert_allclose(jvp_ours, jvp_plain, atol=1e-5, rtol=1e-5)
