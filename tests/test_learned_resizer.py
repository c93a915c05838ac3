"""LearnedResizer: architecture (parity with a NumPy oracle), shapes, training, numerics, errors."""

import chex
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from resize_jax import LearnedResizer, ops
from resize_jax.ops import conv_padded
from tests import reference_numpy as ref


def _init(model, shape, seed=0):
    x = jax.random.uniform(jax.random.key(seed), shape)
    return x, model.init(jax.random.key(seed + 1), x)


def _randomise(variables, seed=2, scale=0.3):
    """Small random values everywhere (biases and BN statistics included) for parity tests."""
    leaves, treedef = jax.tree.flatten(variables)
    keys = jax.random.split(jax.random.key(seed), len(leaves))
    new = [scale * jax.random.normal(k, leaf.shape) for k, leaf in zip(keys, leaves, strict=True)]
    out = jax.tree.unflatten(treedef, new)
    # Variances must stay positive.
    out["batch_stats"] = jax.tree_util.tree_map_with_path(
        lambda path, v: jnp.abs(v) + 0.5 if path[-1].key == "var" else v, out["batch_stats"]
    )
    return out


@pytest.mark.parametrize(
    ("in_hw", "out_hw", "channels"),
    [
        ((448, 448), (224, 224), 3),
        ((300, 300), (150, 150), 3),
        ((224, 224), (160, 320), 3),
        ((64, 64), (128, 128), 3),
        ((40, 40), (20, 20), 1),
        ((40, 40), (20, 20), 4),
    ],
)
def test_output_shapes(in_hw, out_hw, channels):
    model = LearnedResizer(out_hw)
    x = jax.ShapeDtypeStruct((2, *in_hw, channels), jnp.float32)
    variables = jax.eval_shape(model.init, jax.random.key(0), x)
    out, aux = jax.eval_shape(model.apply, variables, x)
    chex.assert_shape([out, aux["skip"]], (2, *out_hw, channels))


def _expected_param_count(channels, n, r):
    conv = lambda k, cin, cout: k * k * cin * cout + cout
    bn = lambda c: 2 * c  # scale and bias; running statistics are not parameters.
    block = 2 * conv(3, n, n) + 2 * bn(n)
    return (
        conv(7, channels, n)
        + conv(1, n, n)
        + bn(n)
        + r * block
        + conv(3, n, n)
        + bn(n)
        + conv(7, n, channels)
    )


@pytest.mark.parametrize(("n", "r", "channels"), [(16, 1, 3), (16, 2, 3), (32, 1, 3), (16, 1, 1)])
def test_parameter_count_follows_the_layer_shapes(n, r, channels):
    model = LearnedResizer((8, 8), num_filters=n, num_res_blocks=r)
    x = jax.ShapeDtypeStruct((1, 16, 16, channels), jnp.float32)
    variables = jax.eval_shape(model.init, jax.random.key(0), x)
    count = sum(v.size for v in jax.tree.leaves(variables["params"]))
    assert count == _expected_param_count(channels, n, r)
    if (n, r, channels) == (16, 1, 3):
        assert count == 12_083  # The paper's default configuration.


@pytest.mark.parametrize("train", [False, True])
@pytest.mark.parametrize(("in_hw", "out_hw", "r"), [((12, 12), (6, 6), 1), ((10, 14), (7, 5), 2)])
def test_forward_matches_numpy_oracle(train, in_hw, out_hw, r):
    model = LearnedResizer(out_hw, num_filters=4, num_res_blocks=r)
    x, variables = _init(model, (2, *in_hw, 3))
    variables = _randomise(variables)
    if train:
        (out, _), _ = model.apply(variables, x, train=True, mutable=["batch_stats"])
    else:
        out, _ = model.apply(variables, x)
    args = (np.asarray(x, np.float64), variables["params"], variables["batch_stats"], out_hw)
    expected = ref.learned_resizer(*args, train=train)
    np.testing.assert_allclose(out, expected, atol=1e-4, rtol=1e-4)
    if r > 1:
        # The oracle can tell chained blocks from the known "all blocks read y" bug.
        unchained = ref.learned_resizer(*args, train=train, chain_blocks=False)
        assert np.abs(unchained - expected).max() > 1e-3


@pytest.mark.parametrize("r", [0, 2])
def test_inference_with_folded_batch_norm_matches_numpy_oracle(r):
    # 16 filters: on CPU with the native kernels, inference folds each BatchNorm into its
    # convolution and chains padded layers (LearnedResizer._inference_tail).
    model = LearnedResizer((7, 5), num_res_blocks=r)
    x, variables = _init(model, (2, 10, 14, 3))
    variables = _randomise(variables)
    forward = jax.jit(lambda v, x: model.apply(v, x)[0])
    if conv_padded.native_eligible(x, jnp.zeros((3, 3, 16, 16))):
        assert "resize_jax_conv_vec_out_padded" in forward.lower(variables, x).as_text()
    args = (np.asarray(x, np.float64), variables["params"], variables["batch_stats"], (7, 5))
    expected = ref.learned_resizer(*args, train=False)
    np.testing.assert_allclose(forward(variables, x), expected, atol=1e-4, rtol=1e-4)


def test_batch_stats_update_only_in_training():
    model = LearnedResizer((8, 8))
    x, variables = _init(model, (4, 16, 16, 3))
    _, updated = model.apply(variables, x, train=True, mutable=["batch_stats"])
    moved = jax.tree.map(
        lambda a, b: float(jnp.abs(a - b).max()), variables["batch_stats"], updated["batch_stats"]
    )
    assert all(v > 0 for v in jax.tree.leaves(moved))
    eval_a, _ = model.apply(variables, x)
    eval_b, _ = model.apply({**variables, **updated}, x)
    assert jnp.abs(eval_a - eval_b).max() > 1e-6


def test_learned_part_contributes_after_a_training_step():
    model = LearnedResizer((8, 8))
    x, variables = _init(model, (4, 16, 16, 3))
    target = jax.random.normal(jax.random.key(5), (4, 8, 8, 3))
    skip = ops.resize(x, (8, 8))

    def loss_fn(params, stats):
        (out, _), new = model.apply(
            {"params": params, "batch_stats": stats}, x, train=True, mutable=["batch_stats"]
        )
        return jnp.mean((out - target) ** 2), new["batch_stats"]

    optimizer = optax.sgd(0.1)
    params, stats = variables["params"], variables["batch_stats"]
    (loss0, stats), grads = jax.value_and_grad(loss_fn, has_aux=True)(params, stats)
    params = optax.apply_updates(params, optimizer.update(grads, optimizer.init(params))[0])
    loss1, _ = loss_fn(params, stats)
    assert loss1 < loss0
    out, aux = model.apply({"params": params, "batch_stats": stats}, x)
    np.testing.assert_allclose(aux["skip"], skip, atol=1e-6)
    assert jnp.abs(out - skip).mean() > 1e-2  # Not the skip path alone...
    assert out.shape != x.shape  # ...and not the input.
    # Every layer on the learned path receives gradient.
    norms = jax.tree.map(lambda g: float(jnp.abs(g).sum()), grads)
    assert all(v > 0 for v in jax.tree.leaves(norms)), norms


def test_jit_vmap_grad_bf16_and_no_retrace():
    model = LearnedResizer((6, 10))
    x, variables = _init(model, (2, 12, 12, 3))

    @jax.jit
    @chex.assert_max_traces(n=1)
    def forward(variables, images):
        return model.apply(variables, images)[0]

    forward(variables, x)
    forward(variables, x + 1.0)

    stacked = jnp.stack([x, 2 * x, 3 * x])
    batched = jax.vmap(lambda im: model.apply(variables, im)[0])(stacked)
    chex.assert_shape(batched, (3, 2, 6, 10, 3))
    np.testing.assert_allclose(batched[1], model.apply(variables, 2 * x)[0], atol=1e-5)

    grads = jax.grad(lambda p: jnp.sum(model.apply({**variables, "params": p}, x)[0] ** 2))(
        variables["params"]
    )
    leaves = jax.tree.leaves(grads)
    assert all(jnp.all(jnp.isfinite(g)) for g in leaves)
    assert all(jnp.abs(g).sum() > 0 for g in leaves)

    bf16 = LearnedResizer((6, 10), dtype=jnp.bfloat16)
    bf16_vars = bf16.init(jax.random.key(1), x)
    assert all(v.dtype == jnp.float32 for v in jax.tree.leaves(bf16_vars))
    out_bf16, _ = bf16.apply(bf16_vars, x)
    out_f32, _ = model.apply(bf16_vars, x)
    assert out_bf16.dtype == jnp.bfloat16
    np.testing.assert_allclose(out_bf16.astype(jnp.float32), out_f32, atol=0.1, rtol=0.05)


def test_is_a_drop_in_submodule():
    class Net(nn.Module):
        @nn.compact
        def __call__(self, x, *, train=False):
            y, _ = LearnedResizer((4, 4), name="frontend")(x, train=train)
            return nn.Dense(2)(y.reshape(y.shape[0], -1))

    x = jnp.ones((2, 8, 8, 3))
    variables = Net().init(jax.random.key(0), x)
    assert "frontend" in variables["params"]
    chex.assert_shape(Net().apply(variables, x), (2, 2))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"output_shape": (0, 4)}, "`output_shape`"),
        ({"output_shape": (float("nan"), 4)}, "`output_shape` must be finite"),
        ({"output_shape": (4.5, 4)}, "`output_shape` must hold integers"),
        ({"output_shape": (4, 4), "method": "cubic"}, "`method` must be one of"),
        ({"output_shape": (4, 4), "num_filters": 0}, "`num_filters`"),
        ({"output_shape": (4, 4), "num_res_blocks": -1}, "`num_res_blocks`"),
    ],
)
def test_bad_configuration_names_the_argument(kwargs, match):
    with pytest.raises(ValueError, match=match):
        LearnedResizer(**kwargs)


def test_bad_images_name_the_argument():
    model = LearnedResizer((4, 4))
    x, variables = _init(model, (1, 8, 8, 3))
    with pytest.raises(ValueError, match="`images` must have rank 4"):
        model.apply(variables, x[0])
    with pytest.raises(ValueError, match=r"`images` must be a floating-point.*astype"):
        model.apply(variables, (x * 255).astype(jnp.uint8))
    with pytest.raises(ValueError, match=r"`images` has 4 channels .* initialised with 3"):
        model.apply(variables, jnp.ones((1, 8, 8, 4)))
