"""ops.conv_resized: the one-pass convolution + resize + statistics against the composition it
replaces (values and gradients), when it applies, sharding, vmap and errors."""

from __future__ import annotations

import os
import shutil

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from resize_jax import ops
from resize_jax.frontends.resized_batch_norm import ResizedBatchNorm
from resize_jax.ops import conv, conv_resized, native

needs_compiler = pytest.mark.skipif(
    shutil.which(os.environ.get("CXX", "c++")) is None, reason="no C++ compiler on this machine"
)


def _composition(x, w, b, slope, spec):
    y = conv.conv2d_same_bias_leaky(x, w, b, slope)
    return spec(y), jnp.mean(y, axis=(0, 1, 2)), jnp.mean(y * y, axis=(0, 1, 2))


def _inputs(x_shape, w_shape, seed=0):
    kx, kw, kb = jax.random.split(jax.random.key(seed), 3)
    x = jax.random.normal(kx, x_shape)
    w = jax.random.normal(kw, w_shape) / np.sqrt(np.prod(w_shape[:3]))
    b = 0.3 * jax.random.normal(kb, (w_shape[-1],))
    return x, w, b


def _loss(fn, spec, cotangents):
    """A scalar that weights all three outputs, so every cotangent path is exercised."""
    g_resized, g_mean, g_mean_sq = cotangents

    def loss(x, w, b):
        resized, mean, mean_sq = fn(x, w, b, 0.2, spec)
        return jnp.sum(resized * g_resized) + jnp.sum(mean * g_mean) + jnp.sum(mean_sq * g_mean_sq)

    return loss


# (x shape, kernel size, Resize): factor 2 (bilinear's two taps), factor 3 (one tap), 4× with
# bicubic (four taps), different factors per axis, one axis kept, 3x3 kernel.
CASES = [
    ((2, 12, 16, 16), 1, ops.Resize((6, 8))),
    ((1, 9, 12, 16), 1, ops.Resize((3, 4))),
    ((2, 16, 8, 16), 1, ops.Resize((4, 2), "bicubic")),
    ((1, 12, 12, 3), 3, ops.Resize((6, 3))),
    ((2, 8, 10, 16), 1, ops.Resize((8, 5))),
]


@needs_compiler
@pytest.mark.parametrize(("x_shape", "size", "spec"), CASES)
def test_one_pass_matches_the_composition(x_shape, size, spec):
    x, w, b = _inputs(x_shape, (size, size, x_shape[-1], 32))
    assert conv_resized.fused_eligible(x, w, b, 0.2, spec)
    got = conv_resized.conv2d_same_bias_leaky_resized(x, w, b, 0.2, spec)
    want = _composition(x, w, b, 0.2, spec)
    for ours, theirs in zip(got, want, strict=True):
        np.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=1e-5)

    keys = jax.random.split(jax.random.key(1), 3)
    cotangents = tuple(jax.random.normal(k, o.shape) for k, o in zip(keys, want, strict=True))
    fused = jax.jit(
        jax.grad(_loss(conv_resized.conv2d_same_bias_leaky_resized, spec, cotangents), (0, 1, 2))
    )
    plain = jax.grad(_loss(_composition, spec, cotangents), (0, 1, 2))
    for ours, theirs in zip(fused(x, w, b), plain(x, w, b), strict=True):
        np.testing.assert_allclose(ours, theirs, rtol=1e-4, atol=1e-5)
    assert "resize_jax_conv_vec_out_bias_leaky_resized" in fused.lower(x, w, b).as_text()


@pytest.mark.parametrize(
    ("in_size", "out_size", "method", "antialias", "band"),
    [
        (448, 224, "bilinear", False, (0, 2, 2)),
        (128, 32, "bilinear", False, (1, 4, 2)),
        (96, 32, "bilinear", False, (1, 3, 1)),
        (64, 64, "bicubic", True, (0, 1, 1)),
        (448, 224, "bilinear", True, None),  # antialiased: 4 taps reach past the block
        (448, 200, "bilinear", False, None),  # not an integer factor
        (100, 200, "bilinear", False, None),  # upscaling
    ],
)
def test_block_band(in_size, out_size, method, antialias, band):
    taps = conv_resized.block_band(in_size, out_size, method, antialias)
    if band is None:
        assert taps is None
    else:
        assert (taps.start, taps.stride, taps.weights.shape[0]) == band


def test_other_cases_are_the_composition(monkeypatch):
    x, w, b = _inputs((2, 12, 16, 16), (1, 1, 16, 16))
    antialiased = ops.Resize((6, 8), antialias=True)
    assert not conv_resized.fused_eligible(x, w, b, 0.2, antialiased)
    assert not conv_resized.fused_eligible(x, w, b, 0.0, ops.Resize((6, 8)))  # slope 0
    assert not conv_resized.fused_eligible(x, w[..., :8], b[:8], 0.2, ops.Resize((6, 8)))
    with native.disabled():
        assert not conv_resized.fused_eligible(x, w, b, 0.2, ops.Resize((6, 8)))
    got = conv_resized.conv2d_same_bias_leaky_resized(x, w, b, 0.2, antialiased)
    for ours, theirs in zip(got, _composition(x, w, b, 0.2, antialiased), strict=True):
        np.testing.assert_allclose(ours, theirs, rtol=1e-6, atol=1e-6)
    # Off CPU the same jitted function lowers to XLA's operations (ops.conv's platform switch).
    text = (
        jax.jit(
            lambda x: conv_resized.conv2d_same_bias_leaky_resized(x, w, b, 0.2, ops.Resize((6, 8)))
        )
        .trace(x)
        .lower(lowering_platforms=("cuda",))
        .as_text()
    )
    assert "resize_jax_conv" not in text


@needs_compiler
def test_vmap_and_a_sharded_batch():
    x, w, b = _inputs((8, 8, 12, 16), (1, 1, 16, 16))
    spec = ops.Resize((4, 6))
    fn = conv_resized.conv2d_same_bias_leaky_resized
    vmapped = jax.vmap(lambda x: fn(x, w, b, 0.2, spec))(x.reshape(2, 4, 8, 12, 16))
    for half, xs in zip(range(2), x.reshape(2, 4, 8, 12, 16), strict=True):
        want = _composition(xs, w, b, 0.2, spec)
        for ours, theirs in zip(vmapped, want, strict=True):
            np.testing.assert_allclose(ours[half], theirs, rtol=1e-5, atol=1e-5)

    mesh = Mesh(np.array(jax.devices()), ("data",))
    sharded = jax.device_put(x, NamedSharding(mesh, PartitionSpec("data")))
    cotangents = tuple(jnp.ones(o.shape) for o in _composition(x, w, b, 0.2, spec))
    grad = jax.jit(jax.grad(_loss(fn, spec, cotangents), (1, 2)))
    want = jax.grad(_loss(_composition, spec, cotangents), (1, 2))(x, w, b)
    for ours, theirs in zip(grad(sharded, w, b), want, strict=True):
        np.testing.assert_allclose(ours, theirs, rtol=1e-4, atol=1e-5)
    compiled = grad.lower(sharded, w, b).compile().as_text()
    assert "all-gather" not in compiled
    per_device = 8 // len(jax.devices())
    assert f"f32[{per_device},8,12,16]{{3,2,1,0}}, f32[{per_device},4,6,16]" in compiled


def test_errors_name_the_argument():
    x, w, b = _inputs((1, 8, 8, 16), (1, 1, 16, 16))
    fn = conv_resized.conv2d_same_bias_leaky_resized
    with pytest.raises(TypeError, match=r"`spec` must be an ops\.Resize"):
        fn(x, w, b, 0.2, (4, 4))
    with pytest.raises(ValueError, match=r"spec\.output_shape"):
        fn(x, w, b, 0.2, ops.Resize((0, 4)))
    with pytest.raises(ValueError, match=r"spec\.method"):
        fn(x, w, b, 0.2, ops.Resize((4, 4), "cubic"))
    with pytest.raises(ValueError, match=r"spec\.antialias"):
        fn(x, w, b, 0.2, ops.Resize((4, 4), "bilinear", "no"))
    with pytest.raises(ValueError, match="`b` must be f\\[16\\]"):
        fn(x, w, b[:3], 0.2, ops.Resize((4, 4)))


def test_resized_batch_norm_takes_precomputed_features():
    x, w, b = _inputs((2, 8, 8, 16), (1, 1, 16, 16))
    spec = ops.Resize((4, 4))
    y = conv.conv2d_same_bias_leaky(x, w, b, 0.2)
    features = conv_resized.conv2d_same_bias_leaky_resized(x, w, b, 0.2, spec)
    module = ResizedBatchNorm(momentum=0.9)
    variables = module.init(jax.random.key(0), y, spec, use_running_average=False)
    want, want_state = module.apply(
        variables, y, spec, use_running_average=False, mutable=["batch_stats"]
    )
    got, got_state = module.apply(
        variables, features, None, use_running_average=False, mutable=["batch_stats"]
    )
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    jax.tree.map(
        lambda a, c: np.testing.assert_allclose(a, c, rtol=1e-5, atol=1e-6), got_state, want_state
    )
    with pytest.raises(ValueError, match="`ResizedBatchNorm` takes an array `x` with a `resize`"):
        module.apply(variables, features, spec, use_running_average=True)
    with pytest.raises(ValueError, match="got ArrayImpl and resize=None"):
        module.apply(variables, y, None, use_running_average=True)
