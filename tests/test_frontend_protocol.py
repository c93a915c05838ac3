"""The front-end protocol (resize_jax/frontends/base.py), checked for every registered
front-end: fields, the call in evaluation and in training (with exactly the declared RNG
streams), jit, and `to_input`, the way back to the input image."""

import dataclasses

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from resize_jax.frontends import frontend_names, get_frontend
from resize_jax.frontends.base import FrontEnd
from resize_jax.models import FrontEndModel, get_model

IN_HW, OUT_HW = (24, 32), (12, 16)
# Small settings for front-ends whose defaults are sized for real images; blur pretraining on,
# so that the saliency sampler's declared stream is really drawn from.
SMALL = {
    "saliency": {
        "saliency_input_shape": (16, 16),
        "grid_shape": (7, 7),
        "pad": 6,
        "blur_steps": 4,
    }
}


def _frontend(name):
    return get_frontend(name, output_shape=OUT_HW, **SMALL.get(name, {}))


def _ramp(batch=2):
    """f32[B, H, W, 2]: the pixels' own x and y coordinates (in units of the image's height),
    a smooth image whose way in and way back are easy to follow."""
    y, x = np.meshgrid(np.arange(IN_HW[0]), np.arange(IN_HW[1]), indexing="ij")
    x, y = x / IN_HW[0], y / IN_HW[0]
    return jnp.asarray(np.broadcast_to(np.stack([x, y], -1), (batch, *IN_HW, 2)), jnp.float32)


def _neutral(name, variables):
    # The learned resizer at initialisation adds a random residual to its resize; with its
    # last convolution zeroed it is exactly its skip path, a geometric resize.
    if name == "learned":
        params = dict(variables["params"])
        params["conv_out"] = jax.tree.map(jnp.zeros_like, params["conv_out"])
        return {**variables, "params": params}
    return variables


@pytest.fixture(scope="module", params=frontend_names())
def case(request):
    """(name, front-end, images, variables, its evaluation outputs on the neutral variables)."""
    name = request.param
    frontend = _frontend(name)
    images = _ramp()
    variables = jax.jit(frontend.init)(jax.random.key(0), images)
    evaluated = jax.jit(frontend.apply)(_neutral(name, variables), images)
    return name, frontend, images, variables, evaluated


def test_fields_and_declared_streams(case):
    name, frontend, _, _, _ = case
    assert isinstance(frontend, FrontEnd), f"{name} does not derive from FrontEnd"
    fields = {f.name for f in dataclasses.fields(frontend)}
    assert {"output_shape", "dtype", "param_dtype"} <= fields
    assert isinstance(frontend.rng_streams, tuple)
    assert all(isinstance(s, str) and s for s in frontend.rng_streams)
    model = FrontEndModel(frontend, get_model("small_cnn", num_classes=3))
    assert model.rng_streams[0] == "dropout"
    assert set(frontend.rng_streams) <= set(model.rng_streams)


def test_call_in_evaluation_and_in_training_under_jit(case):
    name, frontend, images, variables, (resized, aux) = case
    chex.assert_shape(resized, (2, *OUT_HW, 2))
    assert isinstance(aux, dict)

    # Training: the step and exactly the declared streams; nothing else is needed.
    @jax.jit
    def train(variables, images, step, rngs):
        return frontend.apply(
            variables, images, train=True, step=step, rngs=rngs, mutable=["batch_stats"]
        )

    def keys(seed):
        return {s: jax.random.key(seed + k) for k, s in enumerate(frontend.rng_streams)}

    step = jnp.asarray(0, jnp.int32)
    (trained, _), _ = train(variables, images, step, keys(0))
    chex.assert_shape(trained, (2, *OUT_HW, 2))
    chex.assert_tree_all_finite(trained)
    if frontend.rng_streams:  # The streams change the result: they are really used.
        (again, _), _ = train(variables, images, step, keys(100))
        assert float(jnp.abs(again - trained).max()) > 0, name


def test_to_input_maps_dense_outputs_back_to_the_input(case):
    """The image's own coordinates, resized the front-end's way and mapped back, land on
    the input's pixels again (a plain resize would miss the saliency sampler's by 1.5 px)."""
    name, frontend, images, _, (resized, aux) = case
    back = jax.jit(lambda r, a: frontend.to_input(r, a, IN_HW))(resized, aux)
    chex.assert_shape(back, (2, *IN_HW, 2))
    assert back.dtype == jnp.float32
    interior = (slice(None), slice(3, -3), slice(3, -3))
    error = np.abs(np.asarray(back)[interior] - np.asarray(images)[interior]).max() * IN_HW[0]
    assert error < 0.5, f"{name}: the way back is off by {error:.2f} pixels"
    # Any channel count and any dense size (a network predicting at a fraction of its input).
    dense = jnp.ones((2, OUT_HW[0] // 2, OUT_HW[1] // 2, 5), jnp.bfloat16)
    ones = jax.jit(lambda d, a: frontend.to_input(d, a, IN_HW))(dense, aux)
    chex.assert_shape(ones, (2, *IN_HW, 5))
    np.testing.assert_allclose(ones, 1.0, atol=1e-5)
