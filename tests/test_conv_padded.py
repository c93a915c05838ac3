"""ops.conv_padded: one convolution layer between zero-padded features (native on CPU) against
its composition, gradients, vmap, a sharded batch, other platforms' lowering, and errors."""

from __future__ import annotations

import os
import shutil

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from resize_jax.ops import conv_padded as cp

needs_compiler = pytest.mark.skipif(
    shutil.which(os.environ.get("CXX", "c++")) is None, reason="no C++ compiler on this machine"
)


def _composition(x_padded, w, b, slope=None, residual=None, residual_pad=0, out_pad=0):
    """The definition, written out: VALID convolution, bias, leaky ReLU, residual, zero pad."""
    y = jax.lax.conv_general_dilated(
        x_padded, w, (1, 1), "VALID", dimension_numbers=("NHWC", "HWIO", "NHWC")
    )
    y = y + b
    if slope is not None:
        y = jnp.where(y >= 0, y, slope * y)
    if residual is not None:
        h, w_ = y.shape[1:3]
        y = y + residual[:, residual_pad : residual_pad + h, residual_pad : residual_pad + w_]
    return jnp.pad(y, ((0, 0), (out_pad, out_pad), (out_pad, out_pad), (0, 0)))


def _operands(size, ci, co, residual_pad, batch=2, height=9, width=13, seed=0):
    keys = jax.random.split(jax.random.key(seed), 4)
    x = jax.random.normal(keys[0], (batch, height + size - 1, width + size - 1, ci))
    w = jax.random.normal(keys[1], (size, size, ci, co)) / np.sqrt(size * size * ci)
    b = 0.3 * jax.random.normal(keys[2], (co,))
    r_shape = (batch, height + 2 * residual_pad, width + 2 * residual_pad, co)
    return x, w, b, jax.random.normal(keys[3], r_shape)


CASES = [
    # size, ci, co, slope, with residual, residual_pad, out_pad
    (3, 16, 16, 0.2, False, 0, 1),  # a residual block's first layer
    (3, 16, 16, None, True, 1, 1),  # its second, adding the block's input
    (3, 16, 16, None, True, 1, 3),  # the projection, padded for a 7x7 layer
    (7, 16, 3, None, True, 0, 0),  # the output layer (vectorised over its input)
    (7, 3, 32, 0.1, False, 0, 2),
    (1, 16, 16, None, True, 2, 0),
]


@needs_compiler
@pytest.mark.parametrize(("size", "ci", "co", "slope", "with_residual", "rp", "out_pad"), CASES)
def test_matches_the_composition(size, ci, co, slope, with_residual, rp, out_pad):
    x, w, b, r = _operands(size, ci, co, rp)
    r = r if with_residual else None
    assert cp.native_eligible(x, w)
    fn = jax.jit(
        lambda x, w, b, r: cp.conv_padded(
            x, w, b, negative_slope=slope, residual=r, residual_pad=rp, out_pad=out_pad
        )
    )
    target = "resize_jax_conv_vec_out_padded" if co % 16 == 0 else "resize_jax_conv_vec_in"
    assert target in fn.lower(x, w, b, r).as_text()
    # The border is compared too: the kernel writes its zeros (XLA's buffers are not cleared).
    np.testing.assert_allclose(
        fn(x, w, b, r), _composition(x, w, b, slope, r, rp, out_pad), rtol=1e-5, atol=1e-5
    )


@needs_compiler
@pytest.mark.parametrize("case", [CASES[1], CASES[3]])
def test_gradients_are_the_compositions(case):
    size, ci, co, slope, _, rp, out_pad = case
    x, w, b, r = _operands(size, ci, co, rp)
    weights = jax.random.normal(
        jax.random.key(9), _composition(x, w, b, slope, r, rp, out_pad).shape
    )

    def loss(fn):
        return lambda *args: jnp.sum(fn(*args) * weights)

    ours = jax.jit(
        jax.grad(
            loss(
                lambda x, w, b, r: cp.conv_padded(
                    x, w, b, negative_slope=slope, residual=r, residual_pad=rp, out_pad=out_pad
                )
            ),
            (0, 1, 2, 3),
        )
    )(x, w, b, r)
    theirs = jax.grad(
        loss(lambda x, w, b, r: _composition(x, w, b, slope, r, rp, out_pad)), (0, 1, 2, 3)
    )(x, w, b, r)
    jax.tree.map(lambda a, c: np.testing.assert_allclose(a, c, rtol=1e-4, atol=1e-4), ours, theirs)


@needs_compiler
def test_vmap_and_a_sharded_batch():
    x, w, b, r = _operands(3, 16, 16, 1, batch=8)
    fn = jax.jit(lambda x, r: cp.conv_padded(x, w, b, residual=r, residual_pad=1, out_pad=1))
    expected = _composition(x, w, b, None, r, 1, 1)
    vmapped = jax.vmap(fn)(x.reshape(2, 4, *x.shape[1:]), r.reshape(2, 4, *r.shape[1:]))
    np.testing.assert_allclose(vmapped.reshape(expected.shape), expected, rtol=1e-5, atol=1e-5)
    # One operand vmapped, the other not: one call per element.
    per_element = jax.vmap(lambda x: fn(x, r[:4]))(x.reshape(2, 4, *x.shape[1:]))
    np.testing.assert_allclose(
        per_element[1], _composition(x[4:], w, b, None, r[:4], 1, 1), rtol=1e-5, atol=1e-5
    )
    mesh = Mesh(np.array(jax.devices()), ("data",))
    batch = NamedSharding(mesh, PartitionSpec("data"))
    sharded = (jax.device_put(x, batch), jax.device_put(r, batch))
    np.testing.assert_allclose(fn(*sharded), expected, rtol=1e-5, atol=1e-5)
    compiled = fn.lower(*sharded).compile().as_text()
    assert "all-gather" not in compiled
    assert f"f32[{8 // len(jax.devices())},11,15,16]" in compiled


@needs_compiler
def test_gpu_and_tpu_lowerings_use_xla_operations():
    x, w, b, r = _operands(3, 16, 16, 1)
    traced = jax.jit(
        lambda x, r: cp.conv_padded(x, w, b, negative_slope=0.2, residual=r, residual_pad=1)
    ).trace(x, r)
    assert "resize_jax_conv_vec_out_padded" in traced.lower(lowering_platforms=("cpu",)).as_text()
    for platform in ("cuda", "tpu"):
        text = traced.lower(lowering_platforms=(platform,)).as_text()
        assert "resize_jax_" not in text and "convolution" in text


def test_other_dtypes_and_channel_counts_are_the_composition():
    x, w, b, r = _operands(3, 3, 5, 1)  # Neither side a multiple of 16.
    assert not cp.native_eligible(x, w)
    got = cp.conv_padded(x, w, b, negative_slope=0.2, residual=r, residual_pad=1, out_pad=2)
    np.testing.assert_allclose(got, _composition(x, w, b, 0.2, r, 1, 2), rtol=1e-5, atol=1e-5)
    x, w, b, _ = _operands(3, 16, 16, 0)
    half = cp.conv_padded(x.astype(jnp.bfloat16), w.astype(jnp.bfloat16), b, out_pad=1)
    assert half.dtype == jnp.float32  # b is f32: the usual promotion.
    np.testing.assert_allclose(half, _composition(x, w, b, out_pad=1), rtol=0.05, atol=0.05)


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"w": jnp.zeros((2, 2, 16, 16))}, r"`w` must be f\[K, K, CI, CO\] with odd K"),
        ({"x_padded": jnp.zeros((1, 8, 8, 3))}, r"`x_padded` must be f\[B, H \+ 2, W \+ 2, 16\]"),
        ({"x_padded": jnp.zeros((1, 2, 8, 16))}, r"`x_padded` must be .*got shape \(1, 2, 8, 16\)"),
        ({"b": jnp.zeros(3)}, r"`b` must be f\[16\]"),
        ({"out_pad": -1}, r"`out_pad` must be an integer ≥ 0, got -1"),
        ({"residual_pad": 1.5}, r"`residual_pad` must be an integer ≥ 0, got 1.5"),
        ({"residual": jnp.zeros((1, 6, 6, 16))}, r"`residual` must have shape \(1, 8, 8, 16\)"),
    ],
)
def test_errors_name_the_argument(change, match):
    args = {
        "x_padded": jnp.zeros((1, 10, 10, 16)),
        "w": jnp.zeros((3, 3, 16, 16)),
        "b": jnp.zeros(16),
        "residual": jnp.zeros((1, 8, 8, 16)),
        "residual_pad": 0,
        "out_pad": 0,
    }
    args.update(change)
    with pytest.raises(ValueError, match=match):
        cp.conv_padded(args.pop("x_padded"), args.pop("w"), args.pop("b"), **args)
