"""ENet: parameter count from the layer shapes, the architecture's dilations and kernels, output
shapes, input checks, max pooling with indices and unpooling.

Shape-only evaluation (`jax.eval_shape`, `jax.make_jaxpr`) throughout: training ENet end to end
(batch statistics, dropout, the unpooling path's gradient) is tests/test_configs_tasks.py's.
"""

import collections

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from resize_jax import models
from resize_jax.config_args import model_section
from resize_jax.models import ENet, count_params, get_model
from resize_jax.models.enet import max_pool_with_indices, max_unpool


def _shapes(model, shape, dtype=jnp.float32):
    x = jax.ShapeDtypeStruct(shape, dtype)
    outputs, variables = jax.eval_shape(model.init_with_output, jax.random.key(0), x)
    return variables, outputs


def _encoder_block(cin, cout, kind):
    """Trainable parameters of an encoder bottleneck, from its layer shapes."""
    i = cout // 4
    project = (4 if kind == "down" else 1) * cin * i  # 2×2 stride-2 or 1×1, no bias
    main = (5 * i * i + 5 * i * i + i) if kind == "asym" else (9 * i * i + i)  # one bias
    bn_prelu = 2 * i + i  # BN scale/offset + PReLU slopes, after projection and main conv
    return project + bn_prelu + main + bn_prelu + i * cout + 2 * cout + cout  # + final PReLU


def _decoder_block(cin, cout, up, prelu):
    i = cout // 4
    act = 1 if prelu else 0
    n = cin * i + 2 * i + act * i  # 1×1 projection, BN, activation
    n += 9 * i * i + i + 2 * i + act * i  # 3×3 conv or 3×3 stride-2 transposed conv (bias)
    n += i * cout + 2 * cout  # 1×1 expansion, BN
    if up or cin != cout:
        n += cin * cout + 2 * cout  # shortcut 1×1 conv + BN before unpooling
    return n + act * cout


def _expected_params(num_classes, prelu=True, channels=3):
    initial = 9 * channels * (16 - channels) + (16 - channels) + 2 * 16 + 16
    stage23 = 2 * _encoder_block(128, 128, "reg") + 4 * _encoder_block(128, 128, "dil")
    stage23 += 2 * _encoder_block(128, 128, "asym")
    encoder = (
        initial
        + _encoder_block(16, 64, "down")
        + 4 * _encoder_block(64, 64, "reg")
        + _encoder_block(64, 128, "down")
        + 2 * stage23
    )
    decoder = (
        _decoder_block(128, 64, True, prelu)
        + 2 * _decoder_block(64, 64, False, prelu)
        + _decoder_block(64, 16, True, prelu)
        + _decoder_block(16, 16, False, prelu)
    )
    return encoder + decoder + 4 * 16 * num_classes + num_classes  # 2×2 fullconv with bias


@pytest.mark.parametrize(
    ("num_classes", "activation", "exact"),
    [(19, "prelu", 364_647), (19, "relu", 364_311), (12, "prelu", None)],
)
def test_parameter_count_matches_the_layer_shapes(num_classes, activation, exact):
    model = get_model("enet", num_classes=num_classes, decoder_activation=activation)
    variables, _ = _shapes(model, (1, 64, 128, 3))
    counts = count_params(variables)
    assert counts["trainable"] == _expected_params(num_classes, activation == "prelu")
    if exact is not None:  # Cityscapes (19 classes): the paper's "0.37M", rounded.
        assert counts["trainable"] == exact
        assert abs(exact - 370_000) / 370_000 < 0.02
    assert counts["batch_stats"] == 8_352


def test_architecture_dilations_and_kernels():
    model = ENet(num_classes=5)
    x = jnp.zeros((1, 32, 32, 3))
    variables = jax.eval_shape(model.init, jax.random.key(0), x)
    jaxpr = jax.make_jaxpr(model.apply)(variables, x)
    dilations = collections.Counter(
        eqn.params["rhs_dilation"]
        for eqn in jaxpr.jaxpr.eqns
        if eqn.primitive.name == "conv_general_dilated"
    )
    # Stages 2 and 3 each hold dilated 2, 4, 8, 16 once.
    assert {d: n for d, n in dilations.items() if d != (1, 1)} == {
        (2, 2): 2,
        (4, 4): 2,
        (8, 8): 2,
        (16, 16): 2,
    }
    params = variables["params"]
    for stage in (2, 3):
        for block in (3, 7):
            asym = params[f"bottleneck{stage}_{block}"]
            assert asym["conv_1x5"]["kernel"].shape == (1, 5, 32, 32)
            assert "bias" not in asym["conv_1x5"]
            assert asym["conv_5x1"]["kernel"].shape == (5, 1, 32, 32)
    assert params["initial"]["conv"]["kernel"].shape == (3, 3, 3, 13)
    assert params["bottleneck1_0"]["project"]["kernel"].shape == (2, 2, 16, 16)
    assert params["bottleneck2_0"]["project"]["kernel"].shape == (2, 2, 64, 32)
    assert params["bottleneck4_0"]["conv_transpose"]["kernel"].shape == (3, 3, 16, 16)
    assert params["bottleneck5_0"]["shortcut"]["kernel"].shape == (1, 1, 64, 16)
    assert params["fullconv"]["kernel"].shape == (2, 2, 16, 5)
    assert params["bottleneck1_1"]["prelu_out"]["negative_slope"].shape == (64,)
    assert len([k for k in params if k.startswith("bottleneck")]) == 5 + 9 + 8 + 3 + 2


@pytest.mark.parametrize(
    ("shape", "dtype"),
    [((2, 8, 8, 3), jnp.float32), ((1, 24, 40, 1), jnp.bfloat16), ((1, 64, 128, 4), jnp.float32)],
)
def test_output_shapes_and_dtypes(shape, dtype):
    model = ENet(num_classes=7, dtype=dtype)
    variables, (logits, aux) = _shapes(model, shape, dtype)
    batch, height, width, _ = shape
    chex.assert_shape(logits, (batch, height, width, 7))
    assert logits.dtype == jnp.float32
    chex.assert_shape(aux["encoder"], (batch, height // 8, width // 8, 128))
    assert {leaf.dtype for leaf in jax.tree.leaves(variables)} == {jnp.dtype(jnp.float32)}
    assert model.min_input_size == 8


@pytest.mark.parametrize(
    ("shape", "dtype", "match"),
    [
        ((1, 12, 16, 3), jnp.float32, r"multiples of 8 for ENet.*\(12×16\).*\(16, 16\)"),
        ((1, 16, 20, 3), jnp.float32, r"multiples of 8 for ENet"),
        ((1, 4, 8, 3), jnp.float32, r"multiples of 8 for ENet"),
        ((1, 16, 16, 16), jnp.float32, r"fewer channels than the initial block"),
        ((16, 16, 3), jnp.float32, r"`images` must have rank 4"),
        ((1, 16, 16, 3), jnp.uint8, r"`images` must be a floating-point array"),
    ],
)
def test_bad_images_raise(shape, dtype, match):
    with pytest.raises(ValueError, match=match):
        _shapes(ENet(num_classes=3), shape, dtype)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"num_classes": 0}, r"`num_classes` must be a positive integer"),
        ({"num_classes": 3, "decoder_activation": "elu"}, r"`decoder_activation` must be one"),
        ({"num_classes": 3, "dropout_rate": 1.0}, r"`dropout_rate` must be a probability"),
        ({"num_classes": 3, "stage1_dropout_rate": -0.1}, r"`stage1_dropout_rate` must be"),
    ],
)
def test_bad_fields_raise(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ENet(**kwargs)


def test_registry_and_config_section():
    assert isinstance(get_model("enet", num_classes=4), models.ENet)
    section = model_section("enet")
    assert section.name == "enet"
    assert section.decoder_activation == "prelu"
    assert (section.stage1_dropout_rate, section.dropout_rate) == (0.01, 0.1)


def test_max_pool_with_indices_and_unpool_against_numpy():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2, 6, 8, 3)).astype(np.float32)
    x[0, 0, 0, 0] = x[0, 0, 1, 0] = x[0, 1, 0, 0] = x[0, 1, 1, 0] = 5.0  # A four-way tie.
    pooled, indices = max_pool_with_indices(jnp.asarray(x))
    windows = x.reshape(2, 3, 2, 4, 2, 3).transpose(0, 1, 3, 5, 2, 4).reshape(2, 3, 4, 3, 4)
    np.testing.assert_array_equal(pooled, windows.max(-1))
    np.testing.assert_array_equal(indices, windows.argmax(-1))
    assert indices.dtype == jnp.int32 and int(indices[0, 0, 0, 0]) == 0  # First of the tie.

    unpooled = np.asarray(max_unpool(pooled, indices))
    expected = np.zeros_like(x)
    for b, i, j, c in np.ndindex(*pooled.shape):
        k = int(indices[b, i, j, c])
        expected[b, 2 * i + k // 2, 2 * j + k % 2, c] = x[b, 2 * i + k // 2, 2 * j + k % 2, c]
    np.testing.assert_array_equal(unpooled, expected)

    # The gradient goes to the argmax alone (the first one on ties), like Torch's.
    grad = jax.grad(lambda v: max_pool_with_indices(v)[0].sum())(jnp.asarray(x))
    np.testing.assert_array_equal(grad, (expected != 0).astype(np.float32))


def test_pool_and_unpool_bad_input():
    with pytest.raises(ValueError, match=r"`x` must have an even height and width"):
        max_pool_with_indices(jnp.zeros((1, 5, 4, 2)))
    values = jnp.zeros((1, 2, 2, 3))
    with pytest.raises(ValueError, match=r"`indices` must have the shape of `x`"):
        max_unpool(values, jnp.zeros((1, 2, 2, 2), jnp.int32))
    with pytest.raises(ValueError, match=r"`indices` must be an integer array"):
        max_unpool(values, jnp.zeros((1, 2, 2, 3)))
