"""FrontEndModel: every registered front-end × SmallCNN, forward and backward under jit;
parameters under "frontend"/"backbone"; freezing the backbone leaves it bit-identical."""

import chex
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from resize_jax.frontends import frontend_names, get_frontend
from resize_jax.frontends.base import FrontEnd
from resize_jax.models import FrontEndModel, get_model
from tests.test_models_training_mode import cheap_variables

IN_HW, OUT_HW = (48, 40), (32, 32)


def _model(frontend_name):
    frontend = None if frontend_name is None else get_frontend(frontend_name, output_shape=OUT_HW)
    return FrontEndModel(frontend, get_model("small_cnn", num_classes=3))


def _batch(seed=0, channels=3):
    rng = np.random.default_rng(seed)
    x = jnp.asarray(rng.uniform(size=(2, *IN_HW, channels)), jnp.float32)
    return x, jnp.array([0, 2])


def _loss_fn(model, batch_stats, x, labels, key):
    def loss_fn(params):
        (logits, aux), updates = model.apply(
            {"params": params, "batch_stats": batch_stats},
            x,
            train=True,
            rngs={"dropout": key},
            mutable=["batch_stats"],
        )
        loss = optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()
        return loss, (aux, updates["batch_stats"])

    return loss_fn


def _init(model, x):
    variables = cheap_variables(model, x)
    return variables["params"], variables.get("batch_stats", {})


@pytest.mark.parametrize("frontend_name", frontend_names())
def test_each_frontend_with_small_cnn_trains_under_jit_with_the_backbone_frozen(frontend_name):
    """Forward and backward under jit, then one optimiser step that trains the front-end on a
    frozen backbone (the paper's second stage): the backbone stays bit-identical."""
    model = _model(frontend_name)
    x, labels = _batch()
    params, stats = _init(model, x)
    assert "backbone" in params
    assert set(params) <= {"frontend", "backbone"}
    # Labels by top-level name ("fixed" has no parameters, hence no "frontend" entry).
    tx = optax.multi_transform(
        {"train": optax.sgd(0.1), "freeze": optax.set_to_zero()},
        {key: "freeze" if key == "backbone" else "train" for key in params},
    )

    @jax.jit
    def step(params, opt_state):
        loss_fn = _loss_fn(model, stats, x, labels, jax.random.key(0))
        (loss, (aux, new_stats)), grads = jax.value_and_grad(loss_fn, has_aux=True)(params)
        updates, opt_state = tx.update(grads, opt_state, params)
        return loss, aux, new_stats, grads, optax.apply_updates(params, updates)

    loss, aux, new_stats, grads, new_params = step(params, tx.init(params))
    assert np.isfinite(loss)
    chex.assert_tree_all_finite(grads)
    chex.assert_shape(aux["resized"], (2, *OUT_HW, 3))
    chex.assert_shape(aux["backbone"]["pre_logits"], (2, 128))
    chex.assert_trees_all_equal_structs(new_stats, stats)
    for part in params:  # The loss reaches both parts...
        assert max(float(jnp.abs(g).max()) for g in jax.tree.leaves(grads[part])) > 0
    # ...but only the front-end moves.
    chex.assert_trees_all_equal(new_params["backbone"], params["backbone"])
    if "frontend" in params:
        moved = jax.tree.map(
            lambda a, b: bool(jnp.any(a != b)), new_params["frontend"], params["frontend"]
        )
        assert any(jax.tree.leaves(moved))
    # Evaluation mode: same outputs structure, no RNG needed.
    logits, eval_aux = jax.eval_shape(model.apply, {"params": params, "batch_stats": stats}, x)
    chex.assert_shape(logits, (2, 3))
    assert set(eval_aux) >= {"resized", "backbone"}


def test_frontend_aux_is_namespaced_in_the_models_aux():
    model = _model("learned")
    x, _ = _batch()
    variables = cheap_variables(model, x)
    _, aux = jax.eval_shape(model.apply, variables, x)
    assert set(aux) == {"frontend", "resized", "backbone"}
    chex.assert_shape([aux["frontend"]["skip"], aux["resized"]], (2, *OUT_HW, 3))
    assert set(variables["params"]) == {"frontend", "backbone"}
    assert set(variables["batch_stats"]) == {"frontend", "backbone"}


def test_no_frontend_feeds_the_images_unchanged():
    model = _model(None)
    x, _ = _batch()
    variables = cheap_variables(model, x)
    logits, aux = jax.jit(model.apply)(variables, x)
    chex.assert_trees_all_equal(aux["resized"], x)
    assert set(variables["params"]) == {"backbone"}
    direct, _ = jax.jit(model.backbone.apply)({k: v["backbone"] for k, v in variables.items()}, x)
    chex.assert_trees_all_close(logits, direct)


def test_a_trained_frontend_can_be_moved_to_another_backbone():
    """Loading a resizer trained with one backbone into a model with another (the paper's
    resizer-transfer experiment) is a dict replacement under "frontend"."""
    x, _ = _batch()
    source = FrontEndModel(
        get_frontend("learned", output_shape=OUT_HW), get_model("small_cnn", num_classes=3)
    )
    target = FrontEndModel(
        get_frontend("learned", output_shape=OUT_HW),
        get_model("small_cnn", num_classes=5, widths=(16, 32)),
    )
    src = cheap_variables(source, x, seed=1)
    dst = cheap_variables(target, x, seed=2)
    moved = {**dst, "params": {**dst["params"], "frontend": src["params"]["frontend"]}}
    logits, aux = jax.jit(target.apply)(moved, x)
    chex.assert_shape(logits, (2, 5))
    resized, _ = jax.jit(source.frontend.apply)(
        {"params": src["params"]["frontend"], "batch_stats": dst["batch_stats"]["frontend"]}, x
    )
    chex.assert_trees_all_close(aux["resized"], resized)


_STEPS = []


class _RecordingFrontEnd(FrontEnd):
    """A parameter-free front-end that records the `step` it was called with (at trace time)."""

    output_shape: tuple[int, int] = OUT_HW

    def __call__(self, images, *, train=False, step=None):
        _STEPS.append(step)
        return images[:, : self.output_shape[0], : self.output_shape[1]], {}


def test_extra_keywords_reach_the_frontend_only():
    model = FrontEndModel(_RecordingFrontEnd(), get_model("small_cnn", num_classes=3))
    x, _ = _batch()
    variables = cheap_variables(model, x)
    _STEPS.clear()
    jax.eval_shape(lambda v, x: model.apply(v, x, step=7), variables, x)
    jax.eval_shape(model.apply, variables, x)
    assert _STEPS == [7, None]


class _ReportingFrontEnd(FrontEnd):
    """Crops, and reports the mean of its input as a training scalar."""

    output_shape: tuple[int, int] = OUT_HW

    @nn.compact
    def __call__(self, images, *, train=False, step=None):
        self.sow("metrics", "input_mean", jnp.mean(images))
        return images[:, : self.output_shape[0], : self.output_shape[1]], {}


def test_sown_frontend_scalars_reach_the_train_metrics():
    from resize_jax.tasks import get_task
    from resize_jax.train.state import TrainState
    from resize_jax.train.step import make_train_step

    model = FrontEndModel(_ReportingFrontEnd(), get_model("small_cnn", num_classes=3))
    x, labels = _batch()
    variables = jax.jit(model.init)(jax.random.key(0), x)  # Holds the sown "metrics" too.
    tx = optax.sgd(0.1)
    state = TrainState(
        step=jnp.zeros((), jnp.int32),
        params=variables["params"],
        batch_stats=variables.get("batch_stats", {}),
        opt_state=tx.init(variables["params"]),
    )
    step = make_train_step(
        model, get_task("classification"), tx, lambda _: 0.1, seed=0, prng_impl="threefry2x32"
    )
    _, metrics = jax.jit(step)(state, {"image": x, "label": labels})
    np.testing.assert_allclose(metrics["frontend/input_mean"], jnp.mean(x), rtol=1e-6)
