"""ResizedBatchNorm equals flax's BatchNorm then the resize: values, statistics, gradients."""

import functools

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from resize_jax import ops
from resize_jax.frontends.resized_batch_norm import ResizedBatchNorm


class _BatchNormThenResize(nn.Module):
    resize: object

    @nn.compact
    def __call__(self, x, *, use_running_average):
        y = nn.BatchNorm(momentum=0.9, epsilon=1e-5, name="bn")(
            x, use_running_average=use_running_average
        )
        return self.resize(y)


class _Resized(nn.Module):
    resize: object

    @nn.compact
    def __call__(self, x, *, use_running_average):
        return ResizedBatchNorm(momentum=0.9, epsilon=1e-5, name="bn")(
            x, self.resize, use_running_average=use_running_average
        )


@pytest.mark.parametrize(
    ("method", "antialias", "out_hw"),
    [("bilinear", False, (8, 8)), ("bicubic", True, (6, 10)), ("lanczos3", False, (20, 24))],
)
@pytest.mark.parametrize("train", [True, False])
def test_matches_batch_norm_then_resize(method, antialias, out_hw, train):
    resize = functools.partial(ops.resize, output_shape=out_hw, method=method, antialias=antialias)
    x = 2.0 + 3.0 * jax.random.normal(jax.random.key(0), (2, 16, 16, 5))
    reference, ours = _BatchNormThenResize(resize), _Resized(resize)
    variables = reference.init(jax.random.key(1), x, use_running_average=False)
    assert jax.tree.structure(variables) == jax.tree.structure(
        ours.init(jax.random.key(1), x, use_running_average=False)
    )
    # Away from the initial values, so that every term of the formula is exercised.
    keys = jax.random.split(jax.random.key(2), 4)
    variables = {
        "params": {
            "bn": {
                "scale": 1 + jax.random.normal(keys[0], (5,)),
                "bias": jax.random.normal(keys[1], (5,)),
            }
        },
        "batch_stats": {
            "bn": {
                "mean": jax.random.normal(keys[2], (5,)),
                "var": 0.5 + jnp.abs(jax.random.normal(keys[3], (5,))),
            }
        },
    }

    def run(model, variables, x):
        return model.apply(
            variables, x, use_running_average=not train, mutable=["batch_stats"] if train else []
        )

    (want, want_state), (got, got_state) = run(reference, variables, x), run(ours, variables, x)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    if train:
        jax.tree.map(
            lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-6),
            got_state["batch_stats"],
            want_state["batch_stats"],
        )
        moved = got_state["batch_stats"]["bn"]["mean"]
        assert not np.allclose(moved, variables["batch_stats"]["bn"]["mean"])

    weights = jax.random.normal(jax.random.key(3), want.shape)

    def loss(model, params, x):
        return jnp.sum(run(model, {**variables, "params": params}, x)[0] * weights)

    want_grads = jax.grad(functools.partial(loss, reference), argnums=(0, 1))(
        variables["params"], x
    )
    got_grads = jax.grad(functools.partial(loss, ours), argnums=(0, 1))(variables["params"], x)
    jax.tree.map(
        lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5), got_grads, want_grads
    )


def test_statistics_are_not_updated_while_initialising_and_dtype_is_kept():
    resize = functools.partial(ops.resize, output_shape=(4, 4))
    x = jnp.full((1, 8, 8, 3), 5.0)
    module = ResizedBatchNorm(dtype=jnp.bfloat16)
    variables = module.init(jax.random.key(0), x, resize, use_running_average=False)
    np.testing.assert_array_equal(variables["batch_stats"]["mean"], 0.0)
    np.testing.assert_array_equal(variables["batch_stats"]["var"], 1.0)
    out = module.apply(variables, x, resize, use_running_average=True)
    assert out.dtype == jnp.bfloat16 and out.shape == (1, 4, 4, 3)
