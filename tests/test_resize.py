"""ops.resize against TensorFlow (no antialias) and jax.image.resize (antialias)."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import tensorflow as tf

from resize_jax import ops
from resize_jax.ops.resize import _keys_cubic

SHAPES = [((16, 16), (8, 8)), ((8, 8), (16, 16)), ((17, 13), (6, 9)), ((10, 10), (23, 31))]
JAX_NAMES = {"bilinear": "linear", "bicubic": "cubic", "nearest": "nearest"}
JAX_NAMES.update(lanczos3="lanczos3", lanczos5="lanczos5")


def _random_images(shape, seed=0):
    return np.random.default_rng(seed).random((2, *shape, 3)).astype(np.float32)


@pytest.mark.parametrize("method", ["bilinear", "nearest", "lanczos3", "lanczos5"])
@pytest.mark.parametrize(("in_hw", "out_hw"), SHAPES)
def test_matches_tensorflow_without_antialias(method, in_hw, out_hw):
    x = _random_images(in_hw)
    ours = ops.resize(jnp.asarray(x), out_hw, method=method)
    theirs = tf.image.resize(x, out_hw, method=method, antialias=False).numpy()
    np.testing.assert_allclose(ours, theirs, atol=1e-5)


POWER_OF_TWO_SHAPES = [((16, 16), (8, 8)), ((8, 8), (16, 16)), ((448, 8), (224, 32))]


@pytest.mark.parametrize(("in_hw", "out_hw"), POWER_OF_TWO_SHAPES)
def test_bicubic_matches_tensorflow_at_power_of_two_scales(in_hw, out_hw):
    # Power-of-two scales put every sample at a multiple of 1/1024: TF's table is exact there.
    x = _random_images(in_hw)
    ours = ops.resize(jnp.asarray(x), out_hw, method="bicubic")
    theirs = tf.image.resize(x, out_hw, method="bicubic").numpy()
    np.testing.assert_allclose(ours, theirs, atol=1e-5)


def _tf_table_bicubic_matrix(n_in, n_out):
    # TF's resize_bicubic rounds the fractional position to its 1024-entry weight table.
    pos = (np.arange(n_out, dtype=np.float32) + np.float32(0.5)) * np.float32(n_in / n_out) - 0.5
    floor = np.floor(pos)
    frac = np.round((pos - floor) * 1024) / 1024
    weights = np.zeros((n_out, n_in))
    for o in range(n_out):
        for k in (-1, 0, 1, 2):
            if 0 <= int(floor[o]) + k < n_in:
                weights[o, int(floor[o]) + k] += _keys_cubic(np.array(k - frac[o]))
    return weights / weights.sum(1, keepdims=True)


@pytest.mark.parametrize(("in_hw", "out_hw"), SHAPES[2:])
def test_bicubic_differs_from_tensorflow_only_by_its_weight_table(in_hw, out_hw):
    x = _random_images(in_hw)
    theirs = tf.image.resize(x, out_hw, method="bicubic").numpy()
    # 1) Exact Keys cubic: the same as jax.image.resize's and within TF's table error.
    ours = np.asarray(ops.resize(jnp.asarray(x), out_hw, method="bicubic"))
    exact = jax.image.resize(x, (2, *out_hw, 3), "cubic", antialias=False)
    np.testing.assert_allclose(ours, exact, atol=1e-5)
    np.testing.assert_allclose(ours, theirs, atol=1e-3)
    # 2) With TF's table quantisation reproduced, the two agree to float precision.
    tabled = np.einsum("oh,bhwc->bowc", _tf_table_bicubic_matrix(in_hw[0], out_hw[0]), x)
    tabled = np.einsum("ow,bhwc->bhoc", _tf_table_bicubic_matrix(in_hw[1], out_hw[1]), tabled)
    np.testing.assert_allclose(tabled, theirs, atol=1e-5)


@pytest.mark.parametrize("method", list(ops.METHODS))
@pytest.mark.parametrize(("in_hw", "out_hw"), SHAPES)
def test_antialias_matches_jax_image_resize(method, in_hw, out_hw):
    x = _random_images(in_hw, seed=1)
    ours = ops.resize(jnp.asarray(x), out_hw, method=method, antialias=True)
    theirs = jax.image.resize(x, (2, *out_hw, 3), JAX_NAMES[method], antialias=True)
    np.testing.assert_allclose(ours, theirs, atol=1e-5)


def test_antialias_changes_downscaling_but_not_upscaling():
    x = jnp.asarray(_random_images((32, 32)))
    down = [ops.resize(x, (8, 8), antialias=a) for a in (False, True)]
    assert np.abs(down[0] - down[1]).max() > 1e-2
    up = [ops.resize(x, (64, 64), antialias=a) for a in (False, True)]
    np.testing.assert_allclose(up[0], up[1], atol=1e-6)


@pytest.mark.parametrize("method", list(ops.METHODS))
def test_identity_and_constant_images(method):
    x = jnp.asarray(_random_images((9, 7)))
    np.testing.assert_array_equal(ops.resize(x, (9, 7), method=method), x)
    flat = jnp.full((1, 13, 11, 2), 0.3)
    np.testing.assert_allclose(ops.resize(flat, (5, 17), method=method), 0.3, atol=1e-6)


def test_jit_grad_vmap_and_dtype():
    x = jnp.asarray(_random_images((12, 12)))

    @jax.jit
    @chex.assert_max_traces(n=1)
    def loss(images):
        return jnp.sum(ops.resize(images, (5, 7), method="bicubic") ** 2)

    grad = jax.grad(loss)(x)
    loss(x + 1.0)
    assert jnp.all(jnp.isfinite(grad)) and jnp.abs(grad).sum() > 0
    batched = jax.vmap(lambda im: ops.resize(im, (6, 6)))(jnp.stack([x, x]))
    chex.assert_shape(batched, (2, 2, 6, 6, 3))
    assert ops.resize(x.astype(jnp.bfloat16), (6, 6)).dtype == jnp.bfloat16


@pytest.mark.parametrize(
    ("images", "kwargs", "match"),
    [  # Each case: images, keyword overrides, the message it must raise.
        (np.zeros((4, 4, 3), np.float32), {}, "`images` must have rank 4"),
        (np.zeros((1, 4, 4, 3), np.uint8), {}, r"`images` must be a floating-point.*astype"),
        (np.zeros((1, 4, 4, 3), np.int32), {}, "`images` must be a floating-point"),
        (np.zeros((1, 4, 4, 3), np.float32), {"output_shape": (0, 4)}, "`output_shape` .*positive"),
        (np.zeros((1, 4, 4, 3), np.float32), {"output_shape": (-2, 4)}, "`output_shape`"),
        (
            np.zeros((1, 4, 4, 3), np.float32),
            {"output_shape": (2.5, 4)},
            "`output_shape` .*integers",
        ),
        (np.zeros((1, 4, 4, 3), np.float32), {"output_shape": (float("inf"), 4)}, "finite"),
        (np.zeros((1, 4, 4, 3), np.float32), {"output_shape": (float("nan"), 4)}, "finite"),
        (np.zeros((1, 4, 4, 3), np.float32), {"output_shape": 4}, "`output_shape` must be a pair"),
        (np.zeros((1, 4, 4, 3), np.float32), {"output_shape": (4, 4, 4)}, "must be a pair"),
        (np.zeros((1, 4, 4, 3), np.float32), {"method": "area"}, "`method` must be one of"),
    ],
)
def test_bad_input_names_the_argument(images, kwargs, match):
    kwargs = {"output_shape": (2, 2), **kwargs}
    output_shape = kwargs.pop("output_shape")
    with pytest.raises(ValueError, match=match):
        ops.resize(images, output_shape, **kwargs)
