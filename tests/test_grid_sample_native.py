"""ops.grid_sample's native CPU kernels (the samples, and the samples with their slopes for
the derivative with respect to the grid) against the XLA formulation: both padding modes and
any channel count, derivatives of every order, vmap, a sharded batch, non-finite
coordinates, and which platforms and dtypes take them."""

from __future__ import annotations

import importlib
import os
import shutil

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from resize_jax import ops
from resize_jax.ops import native

# The module, not the function `ops.grid_sample` that shadows it in the package.
gs = importlib.import_module("resize_jax.ops.grid_sample")

pytestmark = pytest.mark.skipif(
    shutil.which(os.environ.get("CXX", "c++")) is None, reason="no C++ compiler on this machine"
)


def _inputs(shape, points=(5, 6), seed=0, spread=1.4):
    batch = shape[0]
    images = jax.random.normal(jax.random.key(seed), shape)
    grid = jax.random.uniform(
        jax.random.key(seed + 1), (batch, *points, 2), minval=-spread, maxval=spread
    )
    # Points exactly on the corners and edges, where the clamps and floors switch.
    return images, grid.at[0, 0, 0].set(jnp.array([1.0, -1.0])).at[0, 0, 1].set(-1.0)


def _hlo(fn, *args):
    return jax.jit(fn).lower(*args).as_text()


# Channel counts 1-4 run specialised loops, 5 the generic one; axes of one pixel.
@pytest.mark.parametrize("padding_mode", ["border", "zeros"])
@pytest.mark.parametrize(
    "shape", [(3, 9, 7, 3), (2, 1, 5, 2), (2, 6, 1, 4), (2, 13, 17, 1), (1, 4, 6, 5)]
)
def test_samples_and_slopes_match_xla(shape, padding_mode):
    images, grid = _inputs(shape)
    samples = jax.jit(lambda i, g: gs._sample_plain(i, g, padding_mode))(images, grid)
    expected = gs._xla_samples(images, grid, padding_mode)
    np.testing.assert_allclose(samples, expected, rtol=1e-6, atol=1e-6)
    slopes = jax.jit(lambda i, g: gs._sample_and_slopes(i, g, padding_mode))(images, grid)
    for got, want in zip(
        slopes, gs._xla_samples_and_slopes(images, grid, padding_mode), strict=True
    ):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


# Rows of 37 points: "border" padding takes a vector register of points at a time (16 with
# AVX-512: two blocks, then 5 points one by one; 8 with AVX2; 4 otherwise). With AVX-512 three
# and four channels read each corner pair as a 4-float vector, four points to a register, and
# the other counts are gathered (one and two as float pairs); without it two to four channels
# (three and four with the slopes) are read point by point as 4-float vectors. A block with a
# point at the last pixels falls back to the gathers (one is placed in the first row).
@pytest.mark.parametrize("padding_mode", ["border", "zeros"])
@pytest.mark.parametrize(
    "shape", [(2, 9, 7, 3), (2, 13, 17, 1), (2, 6, 5, 2), (1, 4, 6, 4), (1, 4, 6, 5), (1, 1, 6, 3)]
)
def test_rows_of_many_points_match_xla(shape, padding_mode):
    images, grid = _inputs(shape, points=(3, 37))
    grid = grid.at[0, 0, 3].set(jnp.array([1.0, 1.0]))
    # Infinite coordinates inside the second block of a row; a NaN one inside the first (the
    # samples only: the slopes of a NaN point are NaN here, partly 0 in XLA's version).
    grid = grid.at[0, 2, 20, 1].set(jnp.inf).at[0, 2, 30, 0].set(-jnp.inf)
    nan = grid.at[0, 1, 4, 0].set(jnp.nan)
    samples = jax.jit(lambda i, g: gs._sample_plain(i, g, padding_mode))(images, nan)
    expected = gs._xla_samples(images, nan, padding_mode)
    np.testing.assert_allclose(samples, expected, rtol=1e-6, atol=1e-6)
    assert bool(jnp.isnan(samples[0, 1, 4]).all()) and bool(jnp.isfinite(samples[0, 1, 5:]).all())
    slopes = jax.jit(lambda i, g: gs._sample_and_slopes(i, g, padding_mode))(images, grid)
    for got, want in zip(
        slopes, gs._xla_samples_and_slopes(images, grid, padding_mode), strict=True
    ):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def test_the_native_kernels_are_what_runs_on_cpu():
    images, grid = _inputs((2, 8, 8, 3))
    assert native.available()

    def to_grid(images, grid, padding_mode="border"):
        loss = lambda g: jnp.sum(ops.grid_sample(images, g, padding_mode=padding_mode))
        return jax.grad(loss)(grid)

    assert "resize_jax_grid_sample_slopes" in _hlo(to_grid, images, grid)
    assert "resize_jax_grid_sample" in _hlo(ops.grid_sample, images, grid)
    # Half-precision grids are widened to float32 and still take it; bf16 images do not.
    assert "resize_jax_grid_sample" in _hlo(to_grid, images, grid.astype(jnp.bfloat16))
    low = images.astype(jnp.bfloat16)
    assert "resize_jax_grid_sample" not in _hlo(to_grid, low, grid.astype(jnp.bfloat16))
    assert "resize_jax_grid_sample" not in _hlo(ops.grid_sample, low, grid)
    with native.disabled():
        text = _hlo(lambda i, g: to_grid(i, g, "zeros"), images, grid)
    assert "resize_jax_grid_sample" not in text


def test_gpu_and_tpu_lowerings_use_xla_gathers():
    images, grid = _inputs((2, 8, 8, 3))
    both = lambda g, i: (
        ops.grid_sample(i, g),
        jax.grad(lambda g: jnp.sum(ops.grid_sample(i, g)))(g),
    )
    traced = jax.jit(both).trace(grid, images)
    assert "resize_jax_grid_sample" in traced.lower(lowering_platforms=("cpu",)).as_text()
    for platform in ("cuda", "tpu"):
        text = traced.lower(lowering_platforms=(platform,)).as_text()
        assert "resize_jax_grid_sample" not in text and "gather" in text


@pytest.mark.parametrize("padding_mode", ["border", "zeros"])
def test_gradients_of_first_and_second_order_match_xla(padding_mode):
    images, grid = _inputs((2, 10, 12, 3), points=(4, 5), spread=1.2)

    def loss(sample):
        return lambda i, g: jnp.sum(jnp.sin(sample(i, g)))

    native_fn = lambda i, g: ops.grid_sample(i, g, padding_mode=padding_mode)
    xla_fn = lambda i, g: gs._xla_samples(i, g, padding_mode)
    got = jax.jit(jax.grad(loss(native_fn), argnums=(0, 1)))(images, grid)
    want = jax.grad(loss(xla_fn), argnums=(0, 1))(images, grid)
    for g, w in zip(got, want, strict=True):
        np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-5)
    # Second order through the native primal values (their derivatives are XLA's).
    hessian = jax.jit(jax.jacfwd(jax.grad(lambda g: loss(native_fn)(images, g))))(grid)
    expected = jax.jacfwd(jax.grad(lambda g: loss(xla_fn)(images, g)))(grid)
    np.testing.assert_allclose(hessian, expected, rtol=1e-4, atol=1e-4)


def test_vmap_folds_or_maps_and_a_sharded_batch_stays_split():
    images, grid = _inputs((8, 6, 7, 3), points=(3, 4))
    both = jax.jit(jax.vmap(ops.grid_sample))(
        images.reshape(2, 4, 6, 7, 3), grid.reshape(2, 4, 3, 4, 2)
    )
    np.testing.assert_allclose(
        both.reshape(8, 3, 4, 3), gs._xla_samples(images, grid, "border"), rtol=1e-6, atol=1e-6
    )
    slopes = lambda i, g: gs._sample_and_slopes(i, g, "border")
    want = gs._xla_samples_and_slopes(images, grid, "border")
    both = jax.jit(jax.vmap(slopes))(images.reshape(2, 4, 6, 7, 3), grid.reshape(2, 4, 3, 4, 2))
    for got, expected in zip(both, want, strict=True):
        np.testing.assert_allclose(got.reshape(expected.shape), expected, rtol=1e-5, atol=1e-5)
    # The same images at several grids (only the grid vmapped): one call per grid.
    grids = jnp.stack([grid[:2], -grid[:2]])
    per_grid = jax.jit(jax.vmap(lambda g: slopes(images[:2], g)))(grids)
    want = gs._xla_samples_and_slopes(images[:2], -grid[:2], "border")
    for got, expected in zip(per_grid, want, strict=True):
        np.testing.assert_allclose(got[1], expected, rtol=1e-5, atol=1e-5)

    mesh = Mesh(np.array(jax.devices()), ("data",))
    split = NamedSharding(mesh, PartitionSpec("data"))
    images_s, grid_s = jax.device_put(images, split), jax.device_put(grid, split)
    to_grid = jax.jit(jax.grad(lambda g, i: jnp.sum(ops.grid_sample(i, g) ** 2)))
    np.testing.assert_allclose(
        to_grid(grid_s, images_s),
        jax.grad(lambda g: jnp.sum(gs._xla_samples(images, g, "border") ** 2))(grid),
        rtol=1e-5,
        atol=1e-5,
    )
    compiled = to_grid.lower(grid_s, images_s).compile().as_text()
    per_device = 8 // len(jax.devices())
    assert "all-gather" not in compiled
    assert f"f32[{per_device},3,4,3]{{3,2,1,0}}" in compiled and "custom-call" in compiled


@pytest.mark.parametrize("padding_mode", ["border", "zeros"])
def test_non_finite_coordinates_as_in_xla(padding_mode):
    images, grid = _inputs((1, 5, 5, 3))
    native_fn = jax.jit(lambda i, g: gs._sample_and_slopes(i, g, padding_mode))
    nan = grid.at[0, 1, 2, 0].set(jnp.nan)
    for out in (native_fn(images, nan)[0], ops.grid_sample(images, nan, padding_mode=padding_mode)):
        assert bool(jnp.isnan(out[0, 1, 2]).all())
        assert bool(jnp.isfinite(out[0, 0]).all())  # the other points are unaffected
    # An infinite coordinate is one far outside the image: clamped, or zero padding.
    for bad in (jnp.inf, -jnp.inf):
        far = grid.at[0, 1, 2, 0].set(bad).at[0, 1, 3, 1].set(bad)
        want = gs._xla_samples_and_slopes(images, far, padding_mode)
        for got, expected in zip(native_fn(images, far), want, strict=True):
            np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-6)


def test_disabled_traces_anew_after_a_native_trace():
    """The package's jitted helpers key their caches on the native switch: a FLOP count
    under `native.disabled()` sees XLA's gathers even after the kernel was traced."""
    images, grid = _inputs((2, 16, 16, 3), points=(8, 8))
    grad = lambda g, i: jax.grad(lambda g: jnp.sum(ops.grid_sample(i, g)))(g)
    for fn in (ops.grid_sample, lambda i, g: grad(g, i)):
        assert "resize_jax_grid_sample" in _hlo(fn, images, grid)
        with native.disabled():
            text = _hlo(lambda i, g, fn=fn: fn(i, g), images, grid)
        assert "resize_jax_grid_sample" not in text and "gather" in text
        assert "resize_jax_grid_sample" in _hlo(lambda i, g, fn=fn: fn(i, g), images, grid)
