"""ops.conv_head: the learned resizer's two-layer head in one native pass (inference) against
the layers run separately, its gradients, fallbacks, vmap, a sharded batch and errors."""

from __future__ import annotations

import os
import shutil

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from resize_jax import ops
from resize_jax.frontends.conv_leaky import ConvLeaky, ConvLeakyWeights
from resize_jax.ops import conv, conv_head

needs_compiler = pytest.mark.skipif(
    shutil.which(os.environ.get("CXX", "c++")) is None, reason="no C++ compiler on this machine"
)


def _separate(x, first, second, slope, spec):
    y = conv.conv2d_same_bias_leaky(x, *first, slope)
    y = conv.conv2d_same_bias_leaky(y, *second, slope)
    return spec(y), jnp.mean(y, axis=(0, 1, 2)), jnp.mean(y * y, axis=(0, 1, 2))


def _layers(channels=3, hidden=16, out=32, size=5, seed=0):
    keys = jax.random.split(jax.random.key(seed), 4)
    w1 = jax.random.normal(keys[0], (size, size, channels, hidden)) / np.sqrt(
        size * size * channels
    )
    w2 = jax.random.normal(keys[1], (1, 1, hidden, out)) / np.sqrt(hidden)
    b1 = 0.2 * jax.random.normal(keys[2], (hidden,))
    b2 = 0.2 * jax.random.normal(keys[3], (out,))
    return (w1, b1), (w2, b2)


@needs_compiler
@pytest.mark.parametrize(
    ("x_shape", "spec"),
    [((2, 12, 16, 3), ops.Resize((6, 8))), ((1, 12, 9, 3), ops.Resize((3, 3), "bicubic"))],
)
def test_inference_matches_the_separate_layers(x_shape, spec):
    x = jax.random.normal(jax.random.key(5), x_shape)
    first, second = _layers()
    assert conv_head.head_eligible(x, first, second, 0.2, spec)
    head = jax.jit(lambda x: conv_head.leaky_head_resized(x, first, second, 0.2, spec))
    assert "resize_jax_conv_head_resized" in head.lower(x).as_text()
    for ours, theirs in zip(head(x), _separate(x, first, second, 0.2, spec), strict=True):
        np.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=1e-5)


def _loss(fn, x, first, spec, used=(0, 1, 2)):
    """A loss on the outputs listed in `used`, differentiable in (x, first, second)."""
    outputs = _separate(x, first, _layers()[1], 0.2, spec)
    weights = [jax.random.normal(jax.random.key(k), o.shape) for k, o in enumerate(outputs)]

    def value(x, first, second):
        outs = fn(x, first, second, 0.2, spec)
        return sum(jnp.sum(outs[i] * weights[i]) for i in used)

    return value


@needs_compiler
def test_gradients_with_the_input_match_the_separate_layers():
    x = jax.random.normal(jax.random.key(5), (2, 8, 12, 3))
    first, second = _layers()
    spec = ops.Resize((4, 6))
    ours = jax.jit(jax.grad(_loss(conv_head.leaky_head_resized, x, first, spec), (0, 1, 2)))
    theirs = jax.grad(_loss(_separate, x, first, spec), (0, 1, 2))
    jax.tree.map(
        lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5),
        ours(x, first, second),
        theirs(x, first, second),
    )


@needs_compiler
@pytest.mark.parametrize(
    ("x_shape", "spec", "used"),
    [
        ((2, 8, 12, 3), ops.Resize((4, 6)), (0, 1, 2)),
        ((2, 8, 12, 3), ops.Resize((4, 6)), (0,)),  # the statistics' cotangents are zero
        ((2, 8, 12, 3), ops.Resize((4, 6)), (1, 2)),  # the resized output's is
        ((1, 12, 9, 3), ops.Resize((3, 3), "bicubic"), (0, 1, 2)),
        ((3, 10, 10, 3), ops.Resize((5, 5), "nearest"), (0, 2)),
    ],
)
def test_parameter_gradients_take_one_native_pass(x_shape, spec, used):
    x = jax.random.normal(jax.random.key(5), x_shape)
    first, second = _layers()
    loss = _loss(conv_head.leaky_head_resized, x, first, spec, used)
    grad = jax.jit(jax.grad(lambda first, second: loss(x, first, second), (0, 1)))
    hlo = grad.lower(first, second).as_text()
    assert "resize_jax_conv_head_resized_keep_first" in hlo
    assert "resize_jax_conv_head_resized_grad" in hlo
    reference = _loss(_separate, x, first, spec, used)
    theirs = jax.grad(lambda first, second: reference(x, first, second), (0, 1))(first, second)
    jax.tree.map(
        lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5),
        grad(first, second),
        theirs,
    )


@needs_compiler
def test_parameter_gradients_under_vmap_and_a_sharded_batch():
    x = jax.random.normal(jax.random.key(5), (8, 8, 12, 3))
    first, second = _layers()
    spec = ops.Resize((4, 6))
    loss = _loss(conv_head.leaky_head_resized, x[:4], first, spec)
    reference = _loss(_separate, x[:4], first, spec)
    grad = jax.grad(lambda x, first, second: loss(x, first, second), (1, 2))
    theirs = jax.grad(lambda x, first, second: reference(x, first, second), (1, 2))
    halves = x.reshape(2, 4, 8, 12, 3)
    vmapped = jax.jit(jax.vmap(grad, in_axes=(0, None, None)))(halves, first, second)
    for half, xs in enumerate(halves):
        jax.tree.map(
            lambda a, b, half=half: np.testing.assert_allclose(a[half], b, rtol=1e-4, atol=1e-5),
            vmapped,
            theirs(xs, first, second),
        )
    whole = _loss(conv_head.leaky_head_resized, x, first, spec)
    mesh = Mesh(np.array(jax.devices()), ("data",))
    sharded = jax.device_put(x, NamedSharding(mesh, PartitionSpec("data")))
    step = jax.jit(jax.grad(whole, (1, 2)))
    jax.tree.map(
        lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5),
        step(sharded, first, second),
        jax.grad(_loss(_separate, x, first, spec), (1, 2))(x, first, second),
    )
    compiled = step.lower(sharded, first, second).compile().as_text()
    assert "all-gather" not in compiled
    per_device = 8 // len(jax.devices())
    assert f"f32[{per_device},8,12,16]" in compiled  # the first layer's output, per device


def test_other_cases_are_the_separate_layers():
    x = jax.random.normal(jax.random.key(5), (2, 8, 12, 3))
    first, second = _layers()
    w2, b2 = second
    antialiased = ops.Resize((4, 6), antialias=True)
    assert not conv_head.head_eligible(x, first, second, 0.2, antialiased)
    assert not conv_head.head_eligible(
        x, first, (jnp.tile(w2, (3, 3, 1, 1)), b2), 0.2, ops.Resize((4, 6))
    )
    assert not conv_head.head_eligible(x, first, second, 0.0, ops.Resize((4, 6)))
    got = conv_head.leaky_head_resized(x, first, second, 0.2, antialiased)
    for ours, theirs in zip(got, _separate(x, first, second, 0.2, antialiased), strict=True):
        np.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=1e-5)


@needs_compiler
def test_vmap_and_a_sharded_batch():
    x = jax.random.normal(jax.random.key(5), (8, 8, 12, 3))
    first, second = _layers()
    spec = ops.Resize((4, 6))
    fn = conv_head.leaky_head_resized
    vmapped = jax.vmap(lambda x: fn(x, first, second, 0.2, spec))(x.reshape(2, 4, 8, 12, 3))
    for half, xs in enumerate(x.reshape(2, 4, 8, 12, 3)):
        for ours, theirs in zip(vmapped, _separate(xs, first, second, 0.2, spec), strict=True):
            np.testing.assert_allclose(ours[half], theirs, rtol=1e-5, atol=1e-5)
    mesh = Mesh(np.array(jax.devices()), ("data",))
    sharded = jax.device_put(x, NamedSharding(mesh, PartitionSpec("data")))
    head = jax.jit(lambda x: fn(x, first, second, 0.2, spec))
    for ours, theirs in zip(head(sharded), _separate(x, first, second, 0.2, spec), strict=True):
        np.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=1e-5)
    compiled = head.lower(sharded).compile().as_text()
    assert "all-gather" not in compiled
    assert f"f32[{8 // len(jax.devices())},4,6,32]" in compiled


def test_errors_name_the_argument():
    x = jnp.zeros((1, 8, 8, 3))
    first, (w2, b2) = _layers()
    with pytest.raises(TypeError, match=r"`spec` must be an ops\.Resize"):
        conv_head.leaky_head_resized(x, first, (w2, b2), 0.2, (4, 4))
    with pytest.raises(ValueError, match="biases must match"):
        conv_head.leaky_head_resized(x, first, (w2, b2[:3]), 0.2, ops.Resize((4, 4)))


def test_conv_leaky_weights_are_conv_leakys():
    x = jnp.zeros((1, 4, 4, 3))
    layer = ConvLeaky(16, 7).init(jax.random.key(0), x)
    weights = ConvLeakyWeights(16, 7).init(jax.random.key(0), 3)
    jax.tree.map(np.testing.assert_array_equal, layer, weights)


@needs_compiler
def test_gpu_and_tpu_lowerings_use_xla_operations():
    # Lowering needs no accelerator: the same jitted train-step gradient is XLA's there.
    x = jax.random.normal(jax.random.key(5), (2, 8, 12, 3))
    first, second = _layers()
    loss = _loss(conv_head.leaky_head_resized, x, first, ops.Resize((4, 6)))
    traced = jax.jit(jax.grad(lambda first, second: loss(x, first, second), (0, 1))).trace(
        first, second
    )
    assert (
        "resize_jax_conv_head_resized_grad" in traced.lower(lowering_platforms=("cpu",)).as_text()
    )
    for platform in ("cuda", "tpu"):
        text = traced.lower(lowering_platforms=(platform,)).as_text()
        assert "resize_jax_" not in text and "convolution" in text


@needs_compiler
def test_parameter_gradients_under_scan_and_remat():
    xs = jax.random.normal(jax.random.key(5), (3, 2, 8, 12, 3))
    first, second = _layers()
    spec = ops.Resize((4, 6))

    def loss(fn, wrap):
        def value(first, second):
            def body(total, x):
                outs = wrap(lambda x: fn(x, first, second, 0.2, spec))(x)
                return total + jnp.sum(outs[0] ** 2) + jnp.sum(outs[1]), None

            return jax.lax.scan(body, 0.0, xs)[0]

        return value

    theirs = jax.grad(loss(_separate, lambda f: f), (0, 1))(first, second)
    for wrap in (lambda f: f, jax.checkpoint):
        ours = jax.jit(jax.grad(loss(conv_head.leaky_head_resized, wrap), (0, 1)))
        assert "resize_jax_conv_head_resized_grad" in ours.lower(first, second).as_text()
        jax.tree.map(
            lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4),
            ours(first, second),
            theirs,
        )
