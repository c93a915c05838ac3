"""ops.block_mean: the native pass on CPU against NumPy and XLA's slices: values, gradients,
vmap, a sharded batch, other platforms, and the errors."""

from __future__ import annotations

import os
import shutil

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from resize_jax.ops import native
from resize_jax.ops.block_mean import block_mean

needs_compiler = pytest.mark.skipif(
    shutil.which(os.environ.get("CXX", "c++")) is None, reason="no C++ compiler on this machine"
)

TARGET = "resize_jax_block_mean"


def _crop(x, k_h, k_w):
    _, h, w, _ = x.shape
    top, left = (h % k_h) // 2, (w % k_w) // 2
    return x[:, top : top + h // k_h * k_h, left : left + w // k_w * k_w]


def _numpy(x, k_h, k_w):
    x = _crop(x, k_h, k_w)
    b, h, w, c = x.shape
    return x.astype(np.float64).reshape(b, h // k_h, k_h, w // k_w, k_w, c).mean(axis=(2, 4))


@needs_compiler
@pytest.mark.parametrize(
    ("shape", "k_h", "k_w"),
    [
        ((2, 16, 24, 3), 8, 8),
        ((1, 9, 10, 1), 3, 2),
        ((3, 6, 6, 5), 1, 3),
        ((2, 4, 8, 2), 4, 1),
        ((2, 35, 30, 3), 8, 3),  # the centred 32×30 (rows 1 to 32)
        ((1, 20, 23, 3), 3, 4),  # the centred 18×20 (rows 1 to 18, columns 1 to 20)
        # Blocks taller than the 8 rows summed per pass: passes of 8, 8 and 4 rows, and of
        # 8, 8 and 1 (and rows of 150 floats: two 64-float chunks and a remainder).
        ((1, 42, 50, 3), 20, 2),
        ((2, 36, 24, 1), 17, 8),
    ],
)
def test_matches_numpy_and_xla(shape, k_h, k_w):
    x = np.random.default_rng(sum(shape)).normal(size=shape).astype(np.float32)
    fn = jax.jit(lambda x: block_mean(x, k_h, k_w))
    assert TARGET in fn.lower(x).as_text()
    np.testing.assert_allclose(fn(x), _numpy(x, k_h, k_w), rtol=1e-5, atol=1e-6)
    g = np.random.default_rng(1).normal(size=_numpy(x, k_h, k_w).shape).astype(np.float32)

    def loss(x):
        return jnp.sum(block_mean(x, k_h, k_w) * g)

    inner = np.repeat(np.repeat(g, k_h, axis=1), k_w, axis=2) / (k_h * k_w)
    expected = np.zeros_like(x)
    _crop(expected, k_h, k_w)[...] = inner  # the remainder gets no gradient
    np.testing.assert_allclose(jax.jit(jax.grad(loss))(x), expected, rtol=1e-6, atol=1e-7)
    with native.disabled():
        xla = jax.jit(lambda x: block_mean(x, k_h, k_w))
        assert TARGET not in xla.lower(x).as_text()
        np.testing.assert_allclose(xla(x), fn(x), rtol=1e-5, atol=1e-6)


@needs_compiler
def test_vmap_and_a_sharded_batch():
    x = jax.random.normal(jax.random.key(0), (8, 12, 12, 3))
    expected = _numpy(np.asarray(x), 3, 4)
    vmapped = jax.jit(jax.vmap(lambda x: block_mean(x, 3, 4)))(x.reshape(2, 4, 12, 12, 3))
    np.testing.assert_allclose(vmapped.reshape(expected.shape), expected, rtol=1e-5, atol=1e-6)
    mesh = Mesh(np.array(jax.devices()), ("data",))
    sharded = jax.device_put(x, NamedSharding(mesh, PartitionSpec("data")))
    fn = jax.jit(lambda x: block_mean(x, 3, 4))
    np.testing.assert_allclose(fn(sharded), expected, rtol=1e-5, atol=1e-6)
    compiled = fn.lower(sharded).compile().as_text()
    assert "all-gather" not in compiled
    assert f"f32[{8 // len(jax.devices())},4,3,3]" in compiled


@needs_compiler
def test_other_dtypes_and_platforms_use_xla():
    half = jnp.zeros((1, 8, 8, 3), jnp.bfloat16)
    assert TARGET not in jax.jit(lambda x: block_mean(x, 2, 2)).lower(half).as_text()
    traced = jax.jit(lambda x: block_mean(x, 2, 2)).trace(jnp.zeros((1, 8, 8, 3)))
    assert TARGET in traced.lower(lowering_platforms=("cpu",)).as_text()
    for platform in ("cuda", "tpu"):
        assert "resize_jax_" not in traced.lower(lowering_platforms=(platform,)).as_text()


def test_one_by_one_is_the_identity_and_errors_name_the_argument():
    x = jnp.ones((1, 6, 6, 3))
    assert block_mean(x, 1, 1) is x
    with pytest.raises(ValueError, match="`k_h`"):
        block_mean(x, 0, 2)
    with pytest.raises(ValueError, match="`k_w`"):
        block_mean(x, 2, 2.5)
    with pytest.raises(ValueError, match=r"\(k_h, k_w\) = \(7, 2\) must fit in `images` of 6×6"):
        block_mean(x, 7, 2)
    with pytest.raises(ValueError, match="`images`"):
        block_mean(jnp.ones((6, 6, 3)), 2, 2)
