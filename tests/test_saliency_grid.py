"""saliency_grid: the paper's equations (NumPy oracle), flat maps, zooming, separable grids."""

import math

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from resize_jax import ops
from tests import reference_saliency_numpy as ref

# One compilation per configuration (the tests share a busy CPU).
grid_fn = jax.jit(
    ops.saliency_grid,
    static_argnames=(
        "output_shape",
        "pad",
        "fwhm",
        "sigma",
        "map_pad_mode",
        "separable",
        "implementation",
    ),
)
sample = jax.jit(ops.grid_sample, static_argnames="padding_mode")
sample_separable = jax.jit(ops.sample_separable, static_argnames="padding_mode")


def _random_saliency(seed, shape, temperature=2.0):
    logits = np.random.default_rng(seed).normal(size=shape) * temperature
    s = np.exp(logits)
    return (s / s.sum(axis=(1, 2), keepdims=True)).astype(np.float32)


def _peak(strength, shape=(31, 31), cell=(8, 20)):
    s = np.ones((1, *shape))
    s[0, cell[0], cell[1]] += strength
    return (s / s.sum()).astype(np.float32)


@pytest.mark.parametrize("map_pad_mode", ["edge", "reflect", "constant"])
@pytest.mark.parametrize(
    ("cells", "pad", "out"),
    [((31, 31), 30, (20, 24)), ((7, 9), 4, (11, 5)), ((12, 5), 6, (9, 13)), ((5, 5), 0, (8, 8))],
)
@pytest.mark.parametrize("gaussian", ["code", "text"])
def test_matches_numpy_oracle(cells, pad, out, map_pad_mode, gaussian):
    saliency = _random_saliency(sum(cells) + pad, (2, *cells))
    # The public code's FWHM 13 or the paper's text, σ = a third of the map width.
    kwargs = {"fwhm": 13.0} if gaussian == "code" else {"sigma": cells[1] / 3}
    got = grid_fn(saliency, out, pad=pad, map_pad_mode=map_pad_mode, **kwargs)
    want = ref.saliency_grid(saliency, out, pad=pad, pad_mode=map_pad_mode, **kwargs)
    chex.assert_shape(got, (2, *out, 2))
    np.testing.assert_allclose(got, want, atol=1e-5)


@pytest.mark.parametrize("map_pad_mode", ["edge", "reflect", "constant"])
def test_separable_grid_matches_numpy_oracle(map_pad_mode):
    saliency = _random_saliency(3, (2, 9, 7))
    got = grid_fn(saliency, (11, 13), pad=5, map_pad_mode=map_pad_mode, separable=True)
    want_x, want_y = ref.separable_saliency_grid(saliency, (11, 13), pad=5, pad_mode=map_pad_mode)
    assert isinstance(got, ops.SeparableGrid)
    chex.assert_shape([got.x, got.y], [(2, 13), (2, 11)])
    np.testing.assert_allclose(got.x, want_x, atol=1e-5)
    np.testing.assert_allclose(got.y, want_y, atol=1e-5)


@pytest.mark.parametrize("separable", [False, True])
def test_lax_conv_implementation_matches_the_default_matmul(separable):
    # The Gaussian passes as depthwise lax convolutions (one call per pass, three channels)
    # or as banded-matrix products (the default, much faster on CPU): the same sums.
    saliency = _random_saliency(5, (2, 31, 31))
    for implementation in ("conv", "matmul"):
        got = grid_fn(saliency, (20, 24), separable=separable, implementation=implementation)
        if separable:
            want_x, want_y = ref.separable_saliency_grid(saliency, (20, 24))
            np.testing.assert_allclose(got.x, want_x, atol=1e-5)
            np.testing.assert_allclose(got.y, want_y, atol=1e-5)
        else:
            np.testing.assert_allclose(got, ref.saliency_grid(saliency, (20, 24)), atol=1e-5)
    jaxpr = str(
        jax.make_jaxpr(lambda s: ops.saliency_grid(s, (8, 8), implementation="conv"))(saliency)
    )
    assert jaxpr.count("conv_general_dilated") == 2 and "feature_group_count=3" in jaxpr


def test_default_gaussian_is_the_public_codes_fwhm_13():
    saliency = _random_saliency(0, (1, 9, 9))
    default = grid_fn(saliency, (10, 10), pad=8)
    np.testing.assert_array_equal(default, grid_fn(saliency, (10, 10), pad=8, fwhm=13.0))
    sigma = 13.0 / (2 * math.sqrt(2 * math.log(2)))
    np.testing.assert_allclose(default, grid_fn(saliency, (10, 10), pad=8, sigma=sigma), atol=1e-6)
    # The paper's text (σ = width / 3) is a different, wider Gaussian here.
    assert np.abs(default - grid_fn(saliency, (10, 10), pad=8, sigma=3.0)).max() > 1e-3


def test_gaussian_kernel_is_separable_and_parametrised_both_ways():
    k = ops.gaussian_kernel_1d(61, fwhm=13.0)
    np.testing.assert_allclose(np.outer(k, k), ref.make_gaussian(61, fwhm=13.0), atol=1e-12)
    assert k[30] == 1.0 and k.shape == (61,)
    # Half maximum at ±FWHM/2.
    np.testing.assert_allclose(np.exp(-((6.5) ** 2) / (2 * (13 / 2.3548200450309493) ** 2)), 0.5)
    np.testing.assert_allclose(
        ops.gaussian_kernel_1d(9, sigma=2.0), np.exp(-(np.arange(-4, 5) ** 2) / 8)
    )
    np.testing.assert_array_equal(ops.gaussian_kernel_1d(61), k)


@pytest.mark.parametrize("map_pad_mode", ["edge", "reflect"])
@pytest.mark.parametrize(("cells", "out"), [((31, 31), (24, 40)), ((6, 11), (9, 7))])
def test_flat_saliency_gives_the_uniform_grid(cells, out, map_pad_mode):
    flat = np.full((2, *cells), 1.0 / math.prod(cells), np.float32)
    pad = min(cells) - 1
    grid = grid_fn(flat, out, pad=pad, map_pad_mode=map_pad_mode)
    np.testing.assert_allclose(grid, ops.identity_grid(2, *out), atol=1e-5)
    sep = grid_fn(flat, out, pad=pad, map_pad_mode=map_pad_mode, separable=True)
    np.testing.assert_allclose(
        sep.x, np.broadcast_to(np.linspace(-1, 1, out[1]), (2, out[1])), atol=1e-5
    )
    np.testing.assert_allclose(
        sep.y, np.broadcast_to(np.linspace(-1, 1, out[0]), (2, out[0])), atol=1e-5
    )


def test_flat_saliency_sampling_is_an_align_corners_bilinear_resize():
    # The uniform grid puts output pixel o at input position o (n - 1) / (m - 1): a bilinear
    # resize with align-corners semantics, *not* ops.resize's half-pixel centres.
    images = np.random.default_rng(0).uniform(size=(2, 40, 30, 3)).astype(np.float32)
    flat = np.full((2, 31, 31), 1 / 961, np.float32)
    out = sample(images, grid_fn(flat, (17, 23)))
    scale = jnp.asarray([(17 - 1) / (40 - 1), (23 - 1) / (30 - 1)])
    # scale_and_translate maps output o to input (o + 0.5 - t) / s - 0.5; t = 0.5 - 0.5 s
    # makes that o / s: align corners.
    align_corners = jax.jit(
        lambda x: jax.image.scale_and_translate(
            x, (2, 17, 23, 3), (1, 2), scale, 0.5 - 0.5 * scale, "linear", antialias=False
        )
    )(images)
    np.testing.assert_allclose(out, align_corners, atol=1e-5)
    assert np.abs(out - ops.resize(images, (17, 23))).max() > 1e-2


def _magnification(grid, cells, cell):
    """Uniform output spacing / local grid spacing at the output pixel that samples `cell`."""
    grid = np.asarray(grid)[0]
    out_h, out_w, _ = grid.shape
    target = np.asarray([2 * cell[1] / (cells[1] - 1) - 1, 2 * cell[0] / (cells[0] - 1) - 1])
    i, j = np.unravel_index(np.abs(grid - target).sum(-1).argmin(), grid.shape[:2])
    dx = (grid[i, j + 1, 0] - grid[i, j - 1, 0]) / 2
    dy = (grid[i + 1, j, 1] - grid[i - 1, j, 1]) / 2
    return (2 / (out_w - 1)) / dx, (2 / (out_h - 1)) / dy


@pytest.mark.parametrize("kwargs", [{"fwhm": 13.0}, {"sigma": 31 / 3}])
def test_a_saliency_peak_magnifies_locally(kwargs):
    cell = (8, 20)
    magnifications = []
    for strength in (0.0, 100.0, 1000.0):  # 1000: the peak holds half the mass.
        grid = grid_fn(_peak(strength, cell=cell), (64, 64), **kwargs)
        magnifications.append(_magnification(grid, (31, 31), cell))
    np.testing.assert_allclose(magnifications[0], (1, 1), atol=1e-3)
    assert min(magnifications[2]) > 1.5, magnifications
    # Stronger peaks zoom more.
    assert np.all(np.diff(np.asarray(magnifications), axis=0) > 0), magnifications


@pytest.mark.parametrize("padding_mode", ["border", "zeros"])
def test_separable_sampling_equals_grid_sample_of_the_outer_product(padding_mode):
    rng = np.random.default_rng(0)
    images = rng.normal(size=(2, 13, 17, 3)).astype(np.float32)
    # Monotone saliency grids and arbitrary coordinates, some outside [-1, 1].
    for sep in (
        grid_fn(_random_saliency(1, (2, 9, 9)), (7, 11), pad=8, separable=True),
        ops.SeparableGrid(
            x=rng.uniform(-1.2, 1.2, size=(2, 11)).astype(np.float32),
            y=rng.uniform(-1.2, 1.2, size=(2, 7)).astype(np.float32),
        ),
    ):
        dense = ops.separable_to_grid(sep)
        chex.assert_shape(dense, (2, 7, 11, 2))
        np.testing.assert_array_equal(dense[0, 3, :, 0], sep.x[0])
        np.testing.assert_array_equal(dense[1, :, 5, 1], sep.y[1])
        np.testing.assert_allclose(
            sample_separable(images, sep, padding_mode=padding_mode),
            sample(images, dense, padding_mode=padding_mode),
            atol=1e-5,
        )


def test_separable_sampling_uses_no_gather():
    sep = ops.SeparableGrid(x=jnp.zeros((1, 5)), y=jnp.zeros((1, 4)))
    jaxpr = str(jax.make_jaxpr(ops.sample_separable)(jnp.ones((1, 8, 9, 3)), sep))
    assert "gather" not in jaxpr and "dot_general" in jaxpr


def test_jit_vmap_grad_and_no_retrace():
    chex.clear_trace_counter()

    @jax.jit
    @chex.assert_max_traces(n=1)
    def loss(logits):
        saliency = jax.nn.softmax(logits.reshape(2, -1)).reshape(logits.shape)
        return jnp.sum(ops.saliency_grid(saliency, (12, 12), pad=6) ** 2)

    grad = jax.jit(jax.grad(loss))
    for seed in range(3):  # Same shapes, new values: one trace.
        logits = jnp.asarray(np.random.default_rng(seed).normal(size=(2, 7, 7)), jnp.float32)
        g = grad(logits)
        assert np.all(np.isfinite(g)) and np.abs(g).max() > 0
        loss(logits)
    saliency = _random_saliency(0, (6, 7, 7)).reshape(3, 2, 7, 7)
    batched = jax.jit(jax.vmap(lambda s: ops.saliency_grid(s, (5, 6), pad=6)))(saliency)
    direct = grid_fn(saliency.reshape(6, 7, 7), (5, 6), pad=6)
    np.testing.assert_allclose(batched.reshape(6, 5, 6, 2), direct, atol=1e-6)


def test_zero_mass_regions_sample_uniformly_without_nan():
    # Constant padding and a map that is zero away from one corner: the kernel of a far cell
    # sees no mass at all. The grid stays finite there (uniform) and so does the gradient.
    saliency = np.zeros((1, 9, 9), np.float32)
    saliency[0, :2, :2] = 0.25
    grid = grid_fn(saliency, (9, 9), pad=2, sigma=0.5, map_pad_mode="constant")
    assert np.all(np.isfinite(grid))
    np.testing.assert_allclose(grid[0, 8, 8], [1.0, 1.0], atol=1e-6)
    g = jax.jit(
        jax.grad(
            lambda s: jnp.sum(
                ops.saliency_grid(s, (9, 9), pad=2, sigma=0.5, map_pad_mode="constant")
            )
        )
    )(saliency)
    assert np.all(np.isfinite(g))


def test_traced_invalid_saliency_gives_nan_instead_of_garbage():
    saliency = _random_saliency(0, (2, 5, 5))
    saliency[1, 2, 2] = -0.1
    grid = grid_fn(saliency, (4, 4), pad=4)
    assert np.all(np.isfinite(grid[0])) and np.all(np.isnan(grid[1]))


def test_bad_inputs_raise_value_errors():
    good = np.full((1, 5, 5), 1 / 25, np.float32)
    cases = [
        (good * -1, {}, "`saliency` must be non-negative"),
        (np.where(good > 0, np.nan, good), {}, "`saliency` must be finite"),
        (good[0], {}, "`saliency` must have rank 3"),
        (good[None], {}, "`saliency` must have rank 3"),
        (good.astype(np.int32), {}, "`saliency` must be a floating-point"),
        (good[:, :1], {}, "`saliency` must be at least 2×2"),
        (good, {"output_shape": (0, 4)}, "`output_shape` must hold positive"),
        (good, {"output_shape": (4, 20_000)}, "`output_shape` .* is larger than supported"),
        (good, {"pad": -1}, "`pad` must be a non-negative integer"),
        (good, {"pad": 1.5}, "`pad` must be a non-negative integer"),
        (good, {"fwhm": 13.0, "sigma": 3.0}, "at most one of `fwhm` and `sigma`"),
        (good, {"fwhm": 0.0}, "`fwhm` must be a positive finite number"),
        (good, {"sigma": float("inf")}, "`sigma` must be a positive finite number"),
        (good, {"map_pad_mode": "wrap"}, "`map_pad_mode` must be one of"),
        (good, {"implementation": "fft"}, "`implementation` must be one of"),
    ]
    for saliency, kwargs, message in cases:
        kwargs = {"output_shape": (4, 4), **kwargs}
        with pytest.raises(ValueError, match=message):
            ops.saliency_grid(jnp.asarray(saliency), **kwargs)
    with pytest.raises(ValueError, match="`size` must be a positive odd integer"):
        ops.gaussian_kernel_1d(60)
    sep = ops.SeparableGrid(x=jnp.zeros((2, 5)), y=jnp.zeros((2, 4)))
    images = jnp.ones((2, 8, 8, 3))
    with pytest.raises(ValueError, match="`sep_grid` must be a SeparableGrid"):
        ops.sample_separable(images, (sep.x, sep.y))
    with pytest.raises(ValueError, match=r"`sep_grid.x` must have rank 2"):
        ops.sample_separable(images, ops.SeparableGrid(x=jnp.zeros((2, 5, 1)), y=sep.y))
    with pytest.raises(ValueError, match="same batch size"):
        ops.sample_separable(images, ops.SeparableGrid(x=sep.x[:1], y=sep.y))
    with pytest.raises(ValueError, match="batch size of `images`"):
        ops.sample_separable(images[:1], sep)
