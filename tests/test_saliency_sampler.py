"""SaliencySampler: the front-end contract, flat saliency, gradients, blur pretraining, errors."""

import functools

import chex
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P
from scipy import ndimage

from resize_jax import SaliencySampler, get_frontend, ops
from resize_jax.frontends import SaliencyCNN

IMAGES = np.random.default_rng(0).uniform(size=(2, 40, 48, 3)).astype(np.float32)
SMALL = {"saliency_input_shape": (32, 32), "grid_shape": (9, 9), "pad": 8}
# One model, initialised and compiled once per test process (the tests share a busy CPU).
# Its logit layer starts random (the default starts at zero: a flat map), so every layer
# gets a gradient and the grid is warped from the start.
MODEL = SaliencySampler((16, 16), saliency_net=SaliencyCNN(zero_init_logits=False), **SMALL)
APPLY = jax.jit(MODEL.apply, static_argnames="train")


@pytest.fixture(scope="module")
def variables():
    return jax.jit(MODEL.init)(jax.random.key(0), IMAGES)


class ZeroNet(nn.Module):
    """A saliency network with a parameter whose logits are all zero: flat saliency."""

    @nn.compact
    def __call__(self, x):
        scale = self.param("scale", nn.initializers.zeros, ())
        return jnp.zeros((*x.shape[:3], 1)) * scale


class Features(nn.Module):
    """A backbone-like network: 8 features per cell and an aux dict, no `train` argument."""

    @nn.compact
    def __call__(self, x):
        return nn.Conv(8, (3, 3), strides=(4, 4), name="conv")(x), {"unused": 0}


def test_contract_shapes_and_aux():
    model = get_frontend("saliency", output_shape=(16, 20), **SMALL)
    assert isinstance(model, SaliencySampler)
    variables = model.init(jax.random.key(0), IMAGES)
    out, aux = jax.jit(model.apply)(variables, IMAGES)
    chex.assert_shape(
        [out, aux["saliency"], aux["grid"]], [(2, 16, 20, 3), (2, 9, 9), (2, 16, 20, 2)]
    )
    np.testing.assert_allclose(aux["saliency"].sum(axis=(1, 2)), 1.0, atol=1e-5)
    assert np.all(aux["saliency"] > 0) and np.all(np.abs(aux["grid"]) <= 1.0)
    # The output is grid_sample of the full-resolution input on aux["grid"].
    np.testing.assert_allclose(out, jax.jit(ops.grid_sample)(IMAGES, aux["grid"]), atol=1e-6)
    assert set(variables["params"]) == {"saliency_net"}


def test_the_default_network_starts_flat_and_learns_to_warp():
    model = SaliencySampler((16, 16), **SMALL)
    variables = jax.jit(model.init)(jax.random.key(0), IMAGES)
    assert set(variables["batch_stats"]["saliency_net"]) == {"bn0", "bn1", "bn2"}
    _, aux = jax.jit(model.apply)(variables, IMAGES)
    np.testing.assert_allclose(aux["grid"], ops.identity_grid(2, 16, 16), atol=1e-5)

    def loss(params):
        (out, _), _ = model.apply(
            {**variables, "params": params}, IMAGES, train=True, mutable=["batch_stats"]
        )
        return jnp.mean(out[:, :8] ** 2)  # rewards sampling the top differently

    grads = jax.jit(jax.grad(loss))(variables["params"])
    assert np.abs(grads["saliency_net"]["logits"]["kernel"]).max() > 0
    params = jax.tree.map(lambda p, g: p - 10.0 * g, variables["params"], grads)
    _, aux = jax.jit(model.apply)({**variables, "params": params}, IMAGES)
    assert np.abs(aux["grid"] - ops.identity_grid(2, 16, 16)).max() > 1e-3


def test_flat_saliency_equals_an_align_corners_bilinear_resize():
    model = SaliencySampler((16, 20), saliency_net=ZeroNet(), **SMALL)
    variables = jax.jit(model.init)(jax.random.key(0), IMAGES)
    out, aux = jax.jit(model.apply)(variables, IMAGES)
    np.testing.assert_allclose(aux["saliency"], 1 / 81, atol=1e-7)
    np.testing.assert_allclose(aux["grid"], ops.identity_grid(2, 16, 20), atol=1e-5)
    scale = jnp.asarray([15 / 39, 19 / 47])
    resized = jax.jit(
        lambda x: jax.image.scale_and_translate(
            x, (2, 16, 20, 3), (1, 2), scale, 0.5 - 0.5 * scale, "linear", antialias=False
        )
    )(IMAGES)
    # The grid is uniform to 1e-5 (softmax rounding), i.e. to 2.4e-4 pixel here, and
    # neighbouring pixels of this noise image differ by up to 1.
    np.testing.assert_allclose(out, resized, atol=2e-4)


def test_jit_grad_wrt_saliency_net_params_and_no_retrace(variables):
    model = MODEL
    target = np.random.default_rng(1).normal(size=(2, 16, 16, 3)).astype(np.float32)
    chex.clear_trace_counter()

    @jax.jit
    @chex.assert_max_traces(n=1)
    def loss_and_grad(params, images):
        def loss(params):
            (out, _), _ = model.apply(
                {"params": params, "batch_stats": variables["batch_stats"]},
                images,
                train=True,
                mutable=["batch_stats"],
            )
            return jnp.mean((out - target) ** 2)

        return jax.value_and_grad(loss)(params)

    for seed in range(3):  # New values, same shapes: traced once.
        images = np.random.default_rng(seed).uniform(size=IMAGES.shape).astype(np.float32)
        loss, grads = loss_and_grad(variables["params"], images)
        assert np.isfinite(loss)
        for path, leaf in jax.tree_util.tree_leaves_with_path(grads):
            assert np.all(np.isfinite(leaf)), path
            if jax.tree_util.keystr(path) == "['saliency_net']['logits']['bias']":
                # A bias shifts every logit alike and the softmax ignores such shifts.
                np.testing.assert_allclose(leaf, 0.0, atol=1e-6)
            else:
                assert np.abs(leaf).max() > 0, path


def test_vmap_over_an_extra_batch_axis(variables):
    stacked = np.stack([IMAGES, IMAGES[:, ::-1]])
    batched = jax.jit(jax.vmap(lambda x: MODEL.apply(variables, x)[0]))(stacked)
    direct = APPLY(variables, stacked[1])[0]
    np.testing.assert_allclose(batched[1], direct, atol=1e-5)


def test_separable_mode_samples_its_outer_product_grid(variables):
    model = SaliencySampler((12, 14), separable=True, **SMALL)
    out, aux = jax.jit(model.apply)(variables, IMAGES)
    assert isinstance(aux["grid"], ops.SeparableGrid)
    dense = ops.separable_to_grid(aux["grid"])
    np.testing.assert_allclose(out, jax.jit(ops.grid_sample)(IMAGES, dense), atol=1e-5)


def test_custom_network_with_features_gets_a_1x1_head():
    model = SaliencySampler((12, 12), saliency_net=Features(), **SMALL)
    variables = jax.jit(model.init)(jax.random.key(0), IMAGES)
    assert set(variables["params"]) == {"saliency_net", "saliency_head"}
    assert variables["params"]["saliency_head"]["kernel"].shape == (1, 1, 8, 1)
    _, aux = jax.jit(model.apply)(variables, IMAGES)
    chex.assert_shape(aux["saliency"], (2, 9, 9))  # 8×8 features resized to the grid.


def test_both_gaussian_settings(variables):
    text = SaliencySampler((16, 16), fwhm=None, sigma_fraction=1 / 3, **SMALL)
    _, aux_code = APPLY(variables, IMAGES)
    _, aux_text = jax.jit(text.apply)(variables, IMAGES)
    grid = jax.jit(ops.saliency_grid, static_argnames=("output_shape", "pad", "fwhm", "sigma"))
    np.testing.assert_allclose(
        aux_code["grid"], grid(aux_code["saliency"], (16, 16), pad=8, fwhm=13.0), atol=1e-6
    )
    np.testing.assert_allclose(
        aux_text["grid"], grid(aux_text["saliency"], (16, 16), pad=8, sigma=3.0), atol=1e-6
    )


def test_bfloat16_compute_with_float32_params(variables):
    model = MODEL.clone(dtype=jnp.bfloat16)
    out, aux = jax.jit(model.apply)(variables, IMAGES)
    assert out.dtype == jnp.bfloat16 and aux["grid"].dtype == jnp.float32
    assert all(leaf.dtype == jnp.float32 for leaf in jax.tree.leaves(variables))
    reference, _ = APPLY(variables, IMAGES)
    np.testing.assert_allclose(out.astype(jnp.float32), reference, atol=5e-2)


def test_blur_pretraining_only_early_and_only_in_training(variables):
    model = MODEL.clone(blur_steps=10, blur_max_sigma=2.0)
    rngs = {"blur": jax.random.key(1)}

    @functools.partial(jax.jit, static_argnames="train")
    def apply(variables, images, train=False, **kwargs):
        # The saliency network's BatchNorm uses batch statistics in training.
        (out, aux), _ = model.apply(
            variables, images, train=train, mutable=["batch_stats"], **kwargs
        )
        return out, aux

    unblurred, _ = apply(variables, IMAGES, train=True)  # train mode without a step
    plain, _ = apply(variables, IMAGES)
    early, _ = apply(variables, IMAGES, train=True, step=jnp.asarray(3), rngs=rngs)
    late, _ = apply(variables, IMAGES, train=True, step=jnp.asarray(10), rngs=rngs)
    evaluation, _ = apply(variables, IMAGES, train=False, step=jnp.asarray(3))
    np.testing.assert_array_equal(late, unblurred)
    np.testing.assert_array_equal(evaluation, plain)
    assert np.abs(early - unblurred).max() > 1e-3
    # Blurring smooths: less high-frequency energy than the sharp sample.
    assert np.abs(np.diff(early, axis=2)).mean() < np.abs(np.diff(unblurred, axis=2)).mean()
    # The "blur" RNG stream draws σ: another key, another blur.
    other, _ = apply(variables, IMAGES, train=True, step=3, rngs={"blur": jax.random.key(2)})
    assert np.abs(early - other).max() > 0
    # Without the declared stream, a clear error instead of a fixed key.
    with pytest.raises(ValueError, match='needs the "blur" RNG stream'):
        apply(variables, IMAGES, train=True, step=3)


def test_maybe_blur_pure_function():
    images = jnp.asarray(IMAGES)
    blur = jax.jit(ops.maybe_blur, static_argnames=("blur_steps", "max_sigma"))
    key = jax.random.key(0)
    np.testing.assert_array_equal(blur(images, 5, blur_steps=5, max_sigma=2.0, rng=key), images)
    blurred = blur(images, 0, blur_steps=5, max_sigma=2.0, rng=key)
    assert np.abs(blurred - images).max() > 1e-3
    # Normalised kernel with edge padding: a constant image stays constant.
    flat = jnp.full((1, 9, 9, 2), 0.7)
    np.testing.assert_allclose(ops.gaussian_blur(flat, 1.5, radius=4), flat, atol=1e-6)
    np.testing.assert_allclose(ops.gaussian_blur(images, 0.0, radius=3), images, atol=1e-7)
    # A truncated, normalised Gaussian with edge replication: SciPy's gaussian_filter.
    want = ndimage.gaussian_filter(
        IMAGES.astype(np.float64), sigma=(0, 1.5, 1.5, 0), mode="nearest", truncate=4 / 1.5
    )
    np.testing.assert_allclose(ops.gaussian_blur(images, 1.5, radius=4), want, atol=1e-5)
    sigmas = [
        float(ops.blur_sigma(s, blur_steps=5, max_sigma=2.0, rng=jax.random.key(s)))
        for s in range(8)
    ]
    assert all(0 <= s <= 2 for s in sigmas[:5]) and sigmas[5:] == [0.0, 0.0, 0.0]


def test_bad_inputs_raise_value_errors():
    with pytest.raises(ValueError, match="`output_shape`"):
        SaliencySampler((0, 12))
    with pytest.raises(ValueError, match="`grid_shape` must be at least"):
        SaliencySampler((12, 12), grid_shape=(1, 9))
    with pytest.raises(ValueError, match="`pad` must be a non-negative integer"):
        SaliencySampler((12, 12), pad=-1)
    with pytest.raises(ValueError, match="at most one of `fwhm` and `sigma_fraction`"):
        SaliencySampler((12, 12), sigma_fraction=1 / 3)
    with pytest.raises(ValueError, match="`sigma_fraction` must be a positive finite number"):
        SaliencySampler((12, 12), fwhm=None, sigma_fraction=-1.0)
    with pytest.raises(ValueError, match="`fwhm` must be a positive finite number"):
        SaliencySampler((12, 12), fwhm=0.0)
    with pytest.raises(ValueError, match="`map_pad_mode` must be one of"):
        SaliencySampler((12, 12), map_pad_mode="wrap")
    with pytest.raises(ValueError, match="`padding_mode` must be one of"):
        SaliencySampler((12, 12), padding_mode="reflection")
    with pytest.raises(ValueError, match="`blur_steps` must be a non-negative integer"):
        SaliencySampler((12, 12), blur_steps=-1)
    with pytest.raises(ValueError, match="`unwarp_iterations` must be a non-negative int"):
        SaliencySampler((12, 12), unwarp_iterations=-1)
    with pytest.raises(ValueError, match=r"`output_shape` .* is larger than supported"):
        model = SaliencySampler((12, 20_000), **SMALL)
        jax.eval_shape(model.init, jax.random.key(0), IMAGES)
    with pytest.raises(ValueError, match="`images` must have rank 4"):
        jax.eval_shape(MODEL.init, jax.random.key(0), IMAGES[0])
    with pytest.raises(ValueError, match="`images` must be a floating-point"):
        jax.eval_shape(MODEL.init, jax.random.key(0), IMAGES.astype(np.uint8))

    class Flat(nn.Module):
        @nn.compact
        def __call__(self, x):
            return x.reshape(x.shape[0], -1)

    with pytest.raises(ValueError, match="`saliency_net` must return f\\[B, h, w, F\\]"):
        jax.eval_shape(
            SaliencySampler((12, 12), saliency_net=Flat(), **SMALL).init, jax.random.key(0), IMAGES
        )
    with pytest.raises(ValueError, match="`blur_steps`"):
        ops.maybe_blur(jnp.asarray(IMAGES), 0, blur_steps=1.5, max_sigma=1.0, rng=jax.random.key(0))
    with pytest.raises(ValueError, match="`max_sigma`"):
        ops.maybe_blur(jnp.asarray(IMAGES), 0, blur_steps=3, max_sigma=-1.0, rng=jax.random.key(0))


@pytest.mark.skipif(jax.device_count() < 2, reason="needs several (fake) devices")
def test_batch_sharded_over_a_data_mesh(variables):
    # The layout of resize_jax.train: batch split over "data", parameters replicated.
    mesh = Mesh(np.asarray(jax.devices()), ("data",))
    images = np.concatenate([IMAGES] * (jax.device_count() // 2))
    sharded = jax.device_put(images, NamedSharding(mesh, P("data")))
    params = jax.device_put(variables, NamedSharding(mesh, P()))
    out, aux = APPLY(params, sharded)
    assert out.sharding.spec[0] == "data"
    reference, _ = APPLY(variables, images)
    np.testing.assert_allclose(out, reference, atol=1e-5)
    grad = jax.jit(jax.grad(lambda p, x: jnp.sum(MODEL.apply(p, x)[0] ** 2)))
    reference = jax.tree.leaves(grad(variables, images))[0]
    # Sums over a split batch round differently: tolerance relative to the largest entry.
    np.testing.assert_allclose(
        jax.tree.leaves(grad(params, sharded))[0],
        reference,
        rtol=1e-4,
        atol=1e-6 * float(np.abs(reference).max()),
    )
    unwarp = jax.jit(ops.unwarp, static_argnums=2)
    # The random-logit network warps this grid strongly; the inverse's Newton iterations
    # amplify the two programs' rounding to ~3e-5 (values in [0, 1]).
    np.testing.assert_allclose(
        unwarp(out, aux["grid"], (40, 48)),
        unwarp(np.asarray(out), np.asarray(aux["grid"]), (40, 48)),
        atol=1e-4,
    )


def test_the_saliency_network_sees_an_area_average():
    from resize_jax.frontends.saliency import _low_resolution

    low = jax.jit(_low_resolution, static_argnums=1)
    # Divisible sizes: exactly the mean of the blocks (the paper's AdaptiveAvgPool2d).
    blocks = IMAGES[:, :40, :48].reshape(2, 10, 4, 12, 4, 3).mean(axis=(2, 4))
    np.testing.assert_allclose(low(IMAGES, (10, 12)), blocks, atol=1e-6)
    tall = IMAGES[:, :40, :48].reshape(2, 20, 2, 12, 4, 3).mean(axis=(2, 4))
    np.testing.assert_allclose(low(IMAGES, (20, 12)), tall, atol=1e-6)
    # Otherwise a block mean then an antialiased resize: constants stay constant.
    flat = np.full((1, 53, 61, 2), 0.3, np.float32)
    np.testing.assert_allclose(low(flat, (14, 9)), 0.3, atol=1e-6)
    chex.assert_shape(low(IMAGES, (7, 30)), (2, 7, 30, 3))


def test_saliency_cnn_layer_lists_are_checked():
    with pytest.raises(ValueError, match="one entry per layer"):
        SaliencyCNN(features=(8, 8), strides=(2,), dilations=(1, 1))
    with pytest.raises(ValueError, match="`dilations` must be a non-empty tuple of positive"):
        SaliencyCNN(dilations=(0, 1, 2))
    with pytest.raises(ValueError, match="`features` must be a non-empty tuple of positive"):
        SaliencyCNN(features=())


def test_the_copy_size_follows_the_network_unless_given():
    # The default SaliencyCNN sees a 64×64 copy (its 32×32 map), any other network the
    # paper's 224×224, and an explicit size wins for both.
    images = jnp.zeros((1, 256, 256, 3))

    def net_input_shape(model):
        variables = jax.eval_shape(model.init, jax.random.key(0), images)
        _, state = jax.eval_shape(
            functools.partial(model.apply, capture_intermediates=True, mutable=True),
            variables,
            images,
        )
        out = state["intermediates"]["saliency_net"]["__call__"][0]
        return (out[0] if isinstance(out, tuple) else out).shape

    assert SaliencySampler((32, 32)).low_resolution_shape == (64, 64)
    assert net_input_shape(SaliencySampler((32, 32))) == (1, 32, 32, 1)
    custom = SaliencySampler((32, 32), saliency_net=Features())
    assert custom.low_resolution_shape == (224, 224)
    assert net_input_shape(custom)[:3] == (1, 224 // 4, 224 // 4)
    given = SaliencySampler((32, 32), saliency_input_shape=(48, 40))
    assert net_input_shape(given) == (1, 24, 20, 1)
