"""frontends.batch_norm: the same values, running statistics and gradients as flax's BatchNorm,
and `batch_norm_train`'s hand-written gradient against automatic differentiation."""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from resize_jax.frontends.batch_norm import BatchNorm, batch_norm_train


def _pair(**kwargs):
    return BatchNorm(**kwargs), nn.BatchNorm(**kwargs)


@pytest.mark.parametrize("train", [True, False])
def test_matches_flax_batch_norm(train):
    x = 3 * jax.random.normal(jax.random.key(0), (4, 6, 5, 16)) + 1
    weights = jax.random.normal(jax.random.key(1), x.shape)
    ours, flax_bn = _pair(momentum=0.9, epsilon=1e-3, use_running_average=not train)
    variables = flax_bn.init(jax.random.key(2), x)
    assert jax.tree.map(jnp.shape, ours.init(jax.random.key(2), x)) == jax.tree.map(
        jnp.shape, variables
    )
    params = {"scale": jnp.linspace(0.5, 2, 16), "bias": jnp.linspace(-1, 1, 16)}
    stats = {"mean": jnp.linspace(-0.3, 0.3, 16), "var": jnp.linspace(0.5, 1.5, 16)}

    def loss(module, params, x):
        y, updates = module.apply(
            {"params": params, "batch_stats": stats}, x, mutable=["batch_stats"]
        )
        return jnp.sum(nn.leaky_relu(y, 0.2) * weights), (y, updates)

    (value, (y, updates)), grads = jax.value_and_grad(loss, (1, 2), has_aux=True)(ours, params, x)
    (ref_value, (ref_y, ref_updates)), ref_grads = jax.value_and_grad(loss, (1, 2), has_aux=True)(
        flax_bn, params, x
    )
    np.testing.assert_allclose(y, ref_y, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(value, ref_value, rtol=1e-5)
    jax.tree.map(
        lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5), updates, ref_updates
    )
    jax.tree.map(
        lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4), grads, ref_grads
    )


def test_initialising_leaves_the_running_statistics():
    x = jax.random.normal(jax.random.key(0), (2, 3, 3, 16)) + 5
    variables = BatchNorm(use_running_average=False).init(jax.random.key(1), x)
    np.testing.assert_array_equal(variables["batch_stats"]["mean"], 0)
    np.testing.assert_array_equal(variables["batch_stats"]["var"], 1)


def test_bfloat16_input_keeps_float32_statistics():
    x = (jax.random.normal(jax.random.key(0), (2, 4, 4, 16)) + 3).astype(jnp.bfloat16)
    ours, flax_bn = _pair(use_running_average=False, dtype=jnp.bfloat16)
    variables = flax_bn.init(jax.random.key(1), x)
    y, updates = ours.apply(variables, x, mutable=["batch_stats"])
    ref_y, ref_updates = flax_bn.apply(variables, x, mutable=["batch_stats"])
    assert y.dtype == jnp.bfloat16 and updates["batch_stats"]["mean"].dtype == jnp.float32
    np.testing.assert_allclose(
        y.astype(jnp.float32), ref_y.astype(jnp.float32), rtol=2e-2, atol=2e-2
    )
    jax.tree.map(
        lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5), updates, ref_updates
    )


def test_gradient_through_every_output_matches_autodiff():
    x = 2 * jax.random.normal(jax.random.key(0), (3, 5, 4, 16)) - 1
    scale, bias = jnp.linspace(0.5, 2, 16), jnp.linspace(-1, 1, 16)
    w_y, w_mean, w_var = (
        jax.random.normal(jax.random.key(k), s) for k, s in ((1, x.shape), (2, (16,)), (3, (16,)))
    )

    def reference(x, scale, bias):
        mean = jnp.mean(x, axis=(0, 1, 2))
        var = jnp.maximum(0.0, jnp.mean(x * x, axis=(0, 1, 2)) - mean * mean)
        return (x - mean) * (jax.lax.rsqrt(var + 1e-3) * scale) + bias, mean, var

    def loss(fn):
        def value(x, scale, bias):
            y, mean, var = fn(x, scale, bias)
            return jnp.sum(y * w_y) + jnp.sum(mean * w_mean) + jnp.sum(var * w_var)

        return value

    ours = jax.grad(loss(lambda *a: batch_norm_train(*a, 1e-3)), (0, 1, 2))(x, scale, bias)
    theirs = jax.grad(loss(reference), (0, 1, 2))(x, scale, bias)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4), ours, theirs)


def test_under_jit_and_vmap():
    x = jax.random.normal(jax.random.key(0), (2, 3, 4, 4, 16))
    fn = jax.jit(jax.vmap(lambda x: batch_norm_train(x, jnp.ones(16), jnp.zeros(16), 1e-5)[0]))
    for i in range(2):
        expected = batch_norm_train(x[i], jnp.ones(16), jnp.zeros(16), 1e-5)[0]
        np.testing.assert_allclose(fn(x)[i], expected, rtol=1e-5, atol=1e-5)
