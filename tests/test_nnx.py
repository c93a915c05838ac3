"""`resize_jax.nnx.to_nnx`: a linen front-end as an NNX module that trains like one."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

from resize_jax import FixedResizer, LearnedResizer
from resize_jax.nnx import to_nnx

IMAGES = jax.random.uniform(jax.random.key(0), (2, 16, 16, 3))  # f32[B, H, W, C]


def test_matches_linen_and_updates_batch_stats_in_training():
    frontend = LearnedResizer(output_shape=(8, 8), num_filters=4)
    module = to_nnx(frontend, IMAGES, rngs=nnx.Rngs(0))
    linen_vars = frontend.init(jax.random.key(0), IMAGES)
    params = nnx.state(module, nnx.Param)
    assert jax.tree.structure(jax.tree.map(jnp.shape, nnx.to_pure_dict(params))) == (
        jax.tree.structure(jax.tree.map(jnp.shape, linen_vars["params"]))
    )
    stats = lambda: np.concatenate(
        [np.ravel(x) for x in jax.tree.leaves(nnx.state(module, nnx.BatchStat))]
    )
    before = stats()
    out_eval, _ = module(IMAGES)
    np.testing.assert_array_equal(stats(), before)  # evaluation reads the statistics only
    variables = {
        "params": nnx.to_pure_dict(params),
        "batch_stats": nnx.to_pure_dict(nnx.state(module, nnx.BatchStat)),
    }
    expected_eval, _ = frontend.apply(variables, IMAGES)
    np.testing.assert_allclose(out_eval, expected_eval, atol=1e-6)
    (expected, _), updates = frontend.apply(variables, IMAGES, train=True, mutable=["batch_stats"])
    out, aux = module(IMAGES, train=True)
    np.testing.assert_allclose(out, expected, atol=1e-6)
    assert aux["skip"].shape == (2, 8, 8, 3)
    after = stats()
    assert not np.allclose(after, before)
    np.testing.assert_allclose(
        after,
        np.concatenate([np.ravel(x) for x in jax.tree.leaves(updates["batch_stats"])]),
        atol=1e-6,
    )


def test_trains_inside_an_nnx_module():
    class Net(nnx.Module):
        def __init__(self, rngs):
            self.front = to_nnx(
                LearnedResizer(output_shape=(8, 8), num_filters=4), IMAGES, rngs=rngs
            )
            self.head = nnx.Linear(3, 2, rngs=rngs)

        def __call__(self, x, train=False):
            y, _ = self.front(x, train=train)
            return self.head(y.mean(axis=(1, 2)))

    model = Net(nnx.Rngs(0))
    optimizer = nnx.Optimizer(model, optax.adam(1e-2), wrt=nnx.Param)
    labels = jnp.array([0, 1])

    @nnx.jit
    def step(model, optimizer):
        def loss_fn(model):
            logits = model(IMAGES, train=True)
            return optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()

        loss, grads = nnx.value_and_grad(loss_fn)(model)
        optimizer.update(model, grads)
        return loss

    kernel = np.asarray(model.front.conv_in["kernel"])
    losses = [float(step(model, optimizer)) for _ in range(4)]
    assert losses[-1] < losses[0]
    assert not np.allclose(model.front.conv_in["kernel"], kernel)  # the front-end trains


def test_bad_arguments():
    with pytest.raises(ValueError, match="`frontend` must be a flax"):
        to_nnx(lambda x: x, IMAGES, rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match="`rngs` must be a flax"):
        to_nnx(FixedResizer(output_shape=(8, 8)), IMAGES, rngs=0)
