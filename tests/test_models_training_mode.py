"""Real forward/backward passes: SmallCNN fully, EfficientNet-B0 once at a tiny input.

BatchNorm must differ between training and evaluation; dropout and stochastic depth must act
in training only, drawing from the "dropout" RNG stream.
"""

import chex
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from resize_jax.models import get_model
from resize_jax.models.efficientnet import MBConv


def cheap_variables(model, x, seed=0):
    """He-normal weights, zero biases, unit BN scales and variances, made with NumPy.

    `model.init` would compile JAX's threefry sampler for every parameter shape, which takes
    seconds on a CPU even for the small CNN; the tests only need sensible random values.
    """
    shapes = jax.eval_shape(model.init, jax.random.key(0), x)
    rng = np.random.default_rng(seed)

    def fill(path, leaf):
        name = path[-1].key
        if name in ("scale", "var"):
            return jnp.ones(leaf.shape, leaf.dtype)
        if name in ("bias", "mean"):
            return jnp.zeros(leaf.shape, leaf.dtype)
        fan_in = int(np.prod(leaf.shape[:-1]))
        values = rng.normal(size=leaf.shape) * np.sqrt(2.0 / fan_in)
        return jnp.asarray(values, leaf.dtype)

    return jax.tree_util.tree_map_with_path(fill, shapes)


def _init(model, shape, seed=0):
    x = jnp.asarray(np.random.default_rng(seed).normal(size=shape), jnp.float32)
    return x, cheap_variables(model, x, seed)


def test_small_cnn_batch_norm_differs_between_train_and_eval():
    model = get_model("small_cnn", num_classes=4)
    x, variables = _init(model, (4, 16, 16, 3))
    x = 3.0 * x + 1.0  # Off the running statistics' initial mean 0 / variance 1.
    apply_train = jax.jit(lambda v, x: model.apply(v, x, train=True, mutable=["batch_stats"]))
    (train_logits, _), updates = apply_train(variables, x)
    eval_logits, _ = jax.jit(model.apply)(variables, x)
    assert not np.allclose(train_logits, eval_logits, atol=1e-3)
    # Training mode updates the running statistics; evaluation mode leaves them alone.
    old, new = variables["batch_stats"], updates["batch_stats"]
    assert not np.allclose(old["stage1"]["bn"]["mean"], new["stage1"]["bn"]["mean"])
    chex.assert_trees_all_equal_shapes(old, new)


def test_small_cnn_dropout_only_in_training():
    model = get_model("small_cnn", num_classes=4, dropout_rate=0.5)
    x, variables = _init(model, (4, 16, 16, 3))

    @jax.jit
    def train_logits(key):
        rngs = {"dropout": key}
        return model.apply(variables, x, train=True, rngs=rngs, mutable=["batch_stats"])[0][0]

    a, b = train_logits(jax.random.key(5)), train_logits(jax.random.key(6))
    assert not np.allclose(a, b)
    chex.assert_trees_all_equal(train_logits(jax.random.key(5)), a)  # Same key, same mask.
    # Evaluation needs no RNG and is deterministic; training with p = 0.5 differs from it.
    evaluate = jax.jit(model.apply)
    chex.assert_trees_all_equal(evaluate(variables, x)[0], evaluate(variables, x)[0])


def test_small_cnn_forward_backward_under_jit_at_full_resolution():
    # 128×128: the small CNN is also the full-resolution upper bound. (Other sizes and
    # channel counts: shapes in test_models_backbones.py, 32×32 in test_models_frontend_model.)
    model = get_model("small_cnn", num_classes=5)
    x, variables = _init(model, (2, 128, 128, 3))
    labels = jnp.array([1, 3])

    @jax.jit
    def loss_fn(params):
        (logits, aux), _ = model.apply(
            {**variables, "params": params}, x, train=True, mutable=["batch_stats"]
        )
        chex.assert_shape(aux["pre_logits"], (2, 128))
        return optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()

    loss, grads = jax.value_and_grad(loss_fn)(variables["params"])
    assert np.isfinite(loss)
    chex.assert_tree_all_finite(grads)
    # Every parameter receives gradient.
    assert all(float(jnp.abs(g).max()) > 0 for g in jax.tree.leaves(grads))


def test_small_cnn_learns_a_tiny_problem():
    """Memorises 32 random 8×8 images with random labels: can fail if the net cannot learn."""
    model = get_model("small_cnn", num_classes=4)
    x, variables = _init(model, (32, 8, 8, 3))
    labels = jnp.asarray(np.random.default_rng(7).integers(0, 4, size=32))
    tx = optax.adam(3e-3)
    params, stats = variables["params"], variables["batch_stats"]
    opt_state = tx.init(params)

    @jax.jit
    def step(params, stats, opt_state):
        def loss_fn(p):
            (logits, _), upd = model.apply(
                {"params": p, "batch_stats": stats}, x, train=True, mutable=["batch_stats"]
            )
            loss = optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()
            return loss, upd["batch_stats"]

        (loss, stats), grads = jax.value_and_grad(loss_fn, has_aux=True)(params)
        updates, opt_state = tx.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), stats, opt_state, loss

    first = None
    for _ in range(60):
        params, stats, opt_state, loss = step(params, stats, opt_state)
        first = loss if first is None else first
    logits, _ = model.apply({"params": params, "batch_stats": stats}, x)
    accuracy = float(jnp.mean(jnp.argmax(logits, -1) == labels))
    assert float(loss) < 0.25 * float(first)
    assert accuracy >= 0.9


def test_stochastic_depth_drops_whole_examples_in_training_only():
    block = MBConv(16, kernel_size=3, strides=1, expansion=2, drop_path_rate=0.5)
    x, variables = _init(block, (64, 4, 4, 16))
    no_drop = block.clone(drop_path_rate=0.0)

    @jax.jit
    def run(key):
        train, _ = block.apply(
            variables, x, train=True, rngs={"dropout": key}, mutable=["batch_stats"]
        )
        branch = no_drop.apply(variables, x, train=True, mutable=["batch_stats"])[0] - x
        return train, block.apply(variables, x), branch

    (train_a, eval_a, branch), (train_b, eval_b, _) = run(jax.random.key(1)), run(jax.random.key(2))
    kept = np.asarray(jnp.any(train_a != x, axis=(1, 2, 3)))
    assert 16 <= kept.sum() <= 48  # About half of 64 examples keep their branch.
    # Dropped examples are exactly the identity; kept ones rescale the branch by 1 / (1 - p).
    chex.assert_trees_all_equal(train_a[~kept], x[~kept])
    chex.assert_trees_all_close(train_a[kept], x[kept] + 2.0 * branch[kept], atol=1e-5)
    assert not np.array_equal(train_a, train_b)  # Another key, another mask.
    chex.assert_trees_all_equal(eval_a, eval_b)  # Evaluation: deterministic, no RNG needed.


def test_efficientnet_b0_wires_linearly_growing_drop_rates():
    """torchvision's rule: block i of 16 drops with probability 0.2 · i / 16."""
    model = get_model("efficientnet_b0", num_classes=3)
    rates = []

    def record(next_fun, args, kwargs, context):
        if isinstance(context.module, MBConv) and context.method_name == "__call__":
            rates.append(context.module.drop_path_rate)
        return next_fun(*args, **kwargs)

    x = jax.ShapeDtypeStruct((1, 32, 32, 3), jnp.float32)
    with nn.intercept_methods(record):
        jax.eval_shape(model.init, jax.random.key(0), x)
    assert rates == pytest.approx([0.2 * i / 16 for i in range(16)])
