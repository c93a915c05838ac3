"""Backbones: reference parameter counts, output shapes, dtypes, input checks, registry.

Shape-only evaluation (`jax.eval_shape`) throughout: nothing here compiles a big network.
"""

import chex
import jax
import jax.numpy as jnp
import pytest

from resize_jax import models
from resize_jax.models import count_params, get_model, model_names

BIG = ["densenet121", "efficientnet_b0", "inception_v2", "mobilenet_v2", "resnet18", "resnet50"]


def _shapes(model, shape, dtype=jnp.float32):
    """(variables, (logits, aux)) as ShapeDtypeStructs, from a single trace of `init`."""
    x = jax.ShapeDtypeStruct(shape, dtype)
    outputs, variables = jax.eval_shape(model.init_with_output, jax.random.key(0), x)
    return variables, outputs


@pytest.mark.parametrize(
    ("name", "kwargs", "expected"),
    [
        ("resnet18", {}, 11_689_512),
        ("resnet50", {}, 25_557_032),
        ("densenet121", {}, 7_978_856),
        ("mobilenet_v2", {}, 3_504_872),
        ("efficientnet_b0", {}, 5_288_548),
        # Cadene's pretrainedmodels `bninception` (the Caffe BN-Inception): biased convs.
        ("inception_v2", {}, 11_295_240),
        ("inception_v2", {"conv_bias": False}, 11_285_224),
    ],
)
def test_parameter_counts_match_the_references(name, kwargs, expected):
    model = get_model(name, num_classes=1000, **kwargs)
    x = jax.ShapeDtypeStruct((1, 224, 224, 3), jnp.float32)
    counts = count_params(jax.eval_shape(model.init, jax.random.key(0), x))
    assert counts["trainable"] == expected
    assert counts["batch_stats"] > 0  # Running statistics exist and are not counted above.


def test_small_cnn_parameter_count():
    conv = lambda cin, cout: 9 * cin * cout + 2 * cout  # no conv bias; BN scale and bias
    expected = conv(3, 32) + conv(32, 64) + conv(64, 64) + conv(64, 128) + 128 * 10 + 10
    model = get_model("small_cnn", num_classes=10)
    x = jax.ShapeDtypeStruct((1, 32, 32, 3), jnp.float32)
    counts = count_params(jax.eval_shape(model.init, jax.random.key(0), x))
    assert counts["trainable"] == expected == 131_754
    assert 50_000 <= expected <= 150_000


@pytest.mark.parametrize("name", [*BIG, "small_cnn"])
@pytest.mark.parametrize(
    ("batch", "height", "width", "channels", "num_classes", "dtype"),
    [
        (2, 64, 96, 1, 7, jnp.float32),  # Non-square, any channel count.
        (1, 45, 33, 4, 1000, jnp.bfloat16),  # Odd sizes; bf16 compute with f32 parameters.
    ],
)
def test_output_shapes_and_dtypes(name, batch, height, width, channels, num_classes, dtype):
    model = get_model(name, num_classes=num_classes, dtype=dtype)
    variables, (logits, aux) = _shapes(model, (batch, height, width, channels), dtype)
    chex.assert_shape(logits, (batch, num_classes))
    assert logits.dtype == jnp.float32  # The head's output is cast for a stable loss.
    assert aux["pre_logits"].ndim == 2 and aux["pre_logits"].shape[0] == batch
    assert aux["pre_logits"].dtype == dtype
    assert set(variables) == {"params", "batch_stats"}
    assert {leaf.dtype for leaf in jax.tree.leaves(variables)} == {jnp.dtype(jnp.float32)}


@pytest.mark.parametrize("name", [*BIG, "small_cnn"])
def test_works_at_documented_minimum_and_rejects_smaller(name):
    model = get_model(name, num_classes=3)
    size = model.min_input_size
    assert size == (8 if name == "small_cnn" else 32)
    _, (logits, _) = _shapes(model, (1, size, size + 1, 3))
    chex.assert_shape(logits, (1, 3))
    for shape in [(1, size - 1, size, 3), (1, size, size - 1, 3)]:
        with pytest.raises(ValueError, match=r"`images` must be at least"):
            _shapes(model, shape)


@pytest.mark.parametrize(
    ("shape", "dtype", "match"),
    [
        ((32, 32, 3), jnp.float32, r"`images` must have rank 4"),
        ((1, 1, 32, 32, 3), jnp.float32, r"`images` must have rank 4"),
        ((1, 32, 32, 3), jnp.uint8, r"`images` must be a floating-point array"),
    ],
)
@pytest.mark.parametrize("name", ["resnet18", "small_cnn"])
def test_bad_images_raise(name, shape, dtype, match):
    with pytest.raises(ValueError, match=match):
        _shapes(get_model(name, num_classes=3), shape, dtype)


def test_registry_names_and_unknown_name():
    vits = ["vit_b16", "vit_l16", "vit_s16", "vit_ti16"]
    assert model_names() == sorted([*BIG, *vits, "enet", "small_cnn"])
    with pytest.raises(ValueError, match=r"Unknown model `name`='resnet51'.*resnet50"):
        get_model("resnet51", num_classes=10)
    with pytest.raises(ValueError, match=r"Unknown model `name`='vgg16'.*small_cnn"):
        models.model_factory("vgg16")
    assert models.model_factory("small_cnn") is models.SmallCNN


@pytest.mark.parametrize("num_classes", [0, -1, 2.5, True, None])
def test_bad_num_classes_raise(num_classes):
    with pytest.raises(ValueError, match=r"`num_classes` must be a positive integer"):
        get_model("small_cnn", num_classes=num_classes)


@pytest.mark.parametrize(
    ("name", "kwargs", "match"),
    [
        ("mobilenet_v2", {"dropout_rate": 1.0}, r"`dropout_rate`"),
        ("efficientnet_b0", {"stochastic_depth_rate": -0.1}, r"`stochastic_depth_rate`"),
        ("small_cnn", {"widths": ()}, r"`widths`"),
        ("small_cnn", {"widths": (16, 0)}, r"`widths`"),
    ],
)
def test_bad_fields_raise(name, kwargs, match):
    with pytest.raises(ValueError, match=match):
        get_model(name, num_classes=10, **kwargs)


def test_resnet50_is_v1_5_and_layer_names_are_stable():
    model = get_model("resnet50", num_classes=10)
    variables, (_, aux) = _shapes(model, (1, 32, 32, 3))
    params = variables["params"]
    assert {"stem", "head", "stage1_block1", "stage4_block3"} <= set(params)
    block = params["stage2_block1"]
    # v1.5: the first block of a stage strides in its 3×3 conv (conv2), so conv1 is 1×1.
    chex.assert_shape(block["conv1"]["conv"]["kernel"], (1, 1, 256, 128))
    chex.assert_shape(block["conv2"]["conv"]["kernel"], (3, 3, 128, 128))
    chex.assert_shape(block["shortcut"]["conv"]["kernel"], (1, 1, 256, 512))
    chex.assert_shape(aux["pre_logits"], (1, 2048))


def test_variants_are_partials_of_shared_classes():
    assert isinstance(models.ResNet18(num_classes=2), models.ResNet)
    assert isinstance(models.ResNet50(num_classes=2), models.ResNet)
    assert isinstance(models.DenseNet121(num_classes=2), models.DenseNet)
    assert isinstance(models.EfficientNetB0(num_classes=2), models.EfficientNet)
