"""ops.banded_resize: the native banded pass `ops.resize` takes on CPU for irregular factors,
against the dense products: values, gradients, vmap, a sharded batch, other platforms."""

from __future__ import annotations

import os
import shutil

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from resize_jax import ops
from resize_jax.ops import banded_resize as banded
from resize_jax.ops import native

needs_compiler = pytest.mark.skipif(
    shutil.which(os.environ.get("CXX", "c++")) is None, reason="no C++ compiler on this machine"
)

TARGET = "resize_jax_banded_resize"


def _xla(fn, *args):
    with native.disabled():
        return jax.jit(lambda *a: fn(*a))(*args)


@pytest.mark.parametrize(
    ("in_size", "out_size", "method", "antialias"),
    [
        (266, 224, "bilinear", True),
        (37, 13, "bicubic", True),
        (30, 71, "bilinear", False),
        (90, 33, "lanczos3", True),
        (5, 5, "bilinear", False),
    ],
)
def test_band_holds_the_matrix(in_size, out_size, method, antialias):
    matrix = ops.interpolation_matrix(in_size, out_size, method, antialias)
    starts, weights = banded.band(matrix)
    taps = weights.shape[1]
    assert starts.min() >= 0 and starts.max() + taps <= in_size
    rebuilt = np.zeros_like(matrix)
    for o in range(out_size):
        rebuilt[o, starts[o] : starts[o] + taps] = weights[o]
    np.testing.assert_allclose(rebuilt, matrix, atol=1e-7)


CASES = [
    ((2, 266, 266, 3), (224, 224), "bilinear", True),  # the saliency sampler's copy
    ((1, 61, 53, 5), (29, 23), "bicubic", True),
    ((2, 30, 40, 1), (71, 50), "bilinear", False),  # upscaling
    ((2, 100, 90, 3), (100, 33), "lanczos3", True),  # one axis kept
]


@needs_compiler
@pytest.mark.parametrize(("shape", "out", "method", "antialias"), CASES)
def test_native_pass_matches_the_dense_products(shape, out, method, antialias):
    x = jax.random.normal(jax.random.key(0), shape)

    def fn(x):
        return ops.resize(x, out, method=method, antialias=antialias)

    assert TARGET in jax.jit(fn).lower(x).as_text()
    np.testing.assert_allclose(jax.jit(fn)(x), _xla(fn, x), rtol=1e-5, atol=1e-5)
    weights = jax.random.normal(jax.random.key(1), (shape[0], *out, shape[3]))

    def loss(x):
        return jnp.sum(fn(x) * weights)

    np.testing.assert_allclose(
        jax.jit(jax.grad(loss))(x), _xla(jax.grad(loss), x), rtol=1e-5, atol=1e-5
    )
    # The gradient is the native pass with the transposed bands (the forward pass, which
    # this linear loss's gradient does not need, is gone).
    assert TARGET in jax.jit(jax.grad(loss)).lower(x).as_text()


def _random_band(rng, out_size, in_size, taps):
    """A banded f64[out, in] matrix with random weights and rows in random order."""
    matrix = np.zeros((out_size, in_size))
    for o, start in enumerate(rng.integers(0, in_size - taps + 1, size=out_size)):
        matrix[o, start : start + taps] = rng.normal(size=taps)
    return matrix


@needs_compiler
@pytest.mark.parametrize(
    ("shape", "out", "taps"),
    [
        ((3, 31, 31, 2), (224, 224), (2, 2)),  # a saliency grid's upsampling: along x first
        ((2, 9, 12, 4), (300, 40), (3, 2)),  # generic channels, many row blocks, x first
        ((2, 120, 50, 2), (37, 64), (7, 3)),  # along y first
        ((1, 40, 30, 1), (70, 20), (1, 5)),
    ],
)
def test_both_orders_and_row_blocks_match_numpy(shape, out, taps):
    rng = np.random.default_rng(sum(shape))
    matrix_y = _random_band(rng, out[0], shape[1], taps[0])
    matrix_x = _random_band(rng, out[1], shape[2], taps[1])
    x = rng.normal(size=shape).astype(np.float32)
    fn = jax.jit(lambda x: banded.banded_resize(x, matrix_y, matrix_x))
    assert TARGET in fn.lower(x).as_text()
    expected = np.einsum("oh,bhwc,pw->bopc", matrix_y, x.astype(np.float64), matrix_x)
    np.testing.assert_allclose(fn(x), expected, rtol=1e-5, atol=1e-5)


@needs_compiler
def test_regular_factors_and_nearest_keep_their_paths():
    x = jnp.zeros((1, 448, 448, 3))
    for method in ("bilinear", "nearest"):
        text = jax.jit(lambda x, m=method: ops.resize(x, (224, 224), method=m)).lower(x).as_text()
        assert TARGET not in text
    # bf16 images are XLA's products.
    half = jnp.zeros((1, 266, 266, 3), jnp.bfloat16)
    text = jax.jit(lambda x: ops.resize(x, (224, 224), antialias=True)).lower(half).as_text()
    assert TARGET not in text


@needs_compiler
def test_vmap_and_a_sharded_batch():
    x = jax.random.normal(jax.random.key(0), (8, 40, 30, 3))

    def fn(x):
        return ops.resize(x, (17, 13), antialias=True)

    expected = _xla(fn, x)
    vmapped = jax.jit(jax.vmap(fn))(x.reshape(2, 4, 40, 30, 3))
    np.testing.assert_allclose(vmapped.reshape(expected.shape), expected, rtol=1e-5, atol=1e-5)
    mesh = Mesh(np.array(jax.devices()), ("data",))
    sharded = jax.device_put(x, NamedSharding(mesh, PartitionSpec("data")))
    np.testing.assert_allclose(jax.jit(fn)(sharded), expected, rtol=1e-5, atol=1e-5)
    compiled = jax.jit(fn).lower(sharded).compile().as_text()
    assert "all-gather" not in compiled
    assert f"f32[{8 // len(jax.devices())},17,13,3]" in compiled


@needs_compiler
def test_gpu_and_tpu_lowerings_use_xla_operations():
    x = jnp.zeros((2, 266, 266, 3))
    traced = jax.jit(lambda x: ops.resize(x, (224, 224), antialias=True)).trace(x)
    assert TARGET in traced.lower(lowering_platforms=("cpu",)).as_text()
    for platform in ("cuda", "tpu"):
        text = traced.lower(lowering_platforms=(platform,)).as_text()
        assert "resize_jax_" not in text and "dot_general" in text
