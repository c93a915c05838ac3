"""SaliencyCNN's inference with BatchNorm folded into native padded convolutions (CPU) against
its layer-by-layer evaluation, and where each form is used."""

from __future__ import annotations

import os
import shutil

import jax
import numpy as np
import pytest

from resize_jax.frontends import SaliencyCNN
from resize_jax.ops import native

needs_compiler = pytest.mark.skipif(
    shutil.which(os.environ.get("CXX", "c++")) is None, reason="no C++ compiler on this machine"
)

FOLDED = "resize_jax_conv_vec_out_padded"


def _variables(model, x):
    variables = model.init(jax.random.key(1), x)
    # Running statistics away from their initial values, so the folding has work to do.
    stats = jax.tree.map(
        lambda v: v + 0.3 * jax.random.uniform(jax.random.key(2), v.shape),
        variables["batch_stats"],
    )
    return {"params": variables["params"], "batch_stats": stats}


@needs_compiler
@pytest.mark.parametrize(
    "config",
    [
        {},  # the default: stride 2, plain, dilated 2
        {"features": (16, 32, 16), "strides": (2, 2, 1), "dilations": (1, 1, 3)},
        {"features": (16, 16), "strides": (1, 2), "dilations": (2, 1)},
        {"features": (16, 16), "strides": (1, 1), "dilations": (1, 1)},
        {"features": (16, 16, 16), "strides": (1, 1, 1), "dilations": (2, 1, 1)},
    ],
)
def test_folded_inference_matches_the_layers(config):
    model = SaliencyCNN(**config, zero_init_logits=False)
    x = jax.random.uniform(jax.random.key(0), (2, 48, 36, 3))
    variables = _variables(model, x)
    infer = jax.jit(lambda v, x: model.apply(v, x))
    assert FOLDED in infer.lower(variables, x).as_text()
    with native.disabled():
        expected = jax.jit(lambda v, x: model.apply(v, x))(variables, x)
    np.testing.assert_allclose(infer(variables, x), expected, rtol=1e-5, atol=1e-5)


@needs_compiler
def test_training_and_unfoldable_networks_keep_the_layers():
    x = jax.random.uniform(jax.random.key(0), (2, 48, 42, 3))
    model = SaliencyCNN(zero_init_logits=False)
    variables = _variables(model, x)

    def train(v, x):
        return model.apply(v, x, train=True, mutable=["batch_stats"])[0]

    assert FOLDED not in jax.jit(train).lower(variables, x).as_text()
    # No BatchNorm; widths no multiple of 16; a size the dilation does not divide.
    for other, shape in (
        (SaliencyCNN(batch_norm=False), (2, 48, 42, 3)),
        (SaliencyCNN(features=(8, 8, 8)), (2, 48, 42, 3)),
        (SaliencyCNN(), (2, 46, 42, 3)),
    ):
        x = jax.random.uniform(jax.random.key(0), shape)
        v = other.init(jax.random.key(1), x)
        assert FOLDED not in jax.jit(lambda v, x, m=other: m.apply(v, x)).lower(v, x).as_text()
