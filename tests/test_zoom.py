"""The grid's local magnification and the zoom scalars the saliency sampler logs."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from resize_jax import SaliencySampler, ops
from resize_jax.ops.zoom import grid_magnification, zoom_summary


def test_uniform_grid_magnifies_one_everywhere():
    magnification = grid_magnification(ops.identity_grid(2, 8, 12))
    np.testing.assert_allclose(magnification, 1.0, atol=1e-5)
    summary = zoom_summary(ops.identity_grid(2, 8, 12))
    np.testing.assert_allclose(summary["zoom_spread"], 0.0, atol=1e-5)
    np.testing.assert_allclose(summary["zoom_max"], 1.0, atol=1e-5)


def test_a_centred_half_crop_magnifies_two_and_a_warp_spreads():
    crop = 0.5 * ops.identity_grid(1, 9, 9)  # the central half of the image, both axes
    np.testing.assert_allclose(grid_magnification(crop), 2.0, rtol=1e-5)
    # x' = x³: dense sampling (large magnification) at the centre, sparse at the sides.
    warped = ops.identity_grid(1, 9, 9).at[..., 0].set(ops.identity_grid(1, 9, 9)[..., 0] ** 3)
    magnification = np.asarray(grid_magnification(warped))[0]
    assert magnification[4, 4] > 3 and magnification[4, 0] < 1
    assert float(zoom_summary(warped)["zoom_spread"]) > 0.5


def test_a_flat_grid_is_capped():
    flat = jnp.zeros((1, 4, 4, 2))
    np.testing.assert_allclose(grid_magnification(flat, max_magnification=10.0), 10.0)


@pytest.mark.parametrize(
    ("grid", "kwargs", "message"),
    [
        (np.zeros((1, 4, 4, 3), np.float32), {}, "last dimension of 2"),
        (np.zeros((1, 1, 4, 2), np.float32), {}, "at least 2×2"),
        (np.zeros((1, 4, 4, 2), np.float32), {"max_magnification": 1.0}, "number > 1"),
    ],
)
def test_bad_input(grid, kwargs, message):
    with pytest.raises(ValueError, match=message):
        grid_magnification(grid, **kwargs)


def test_sampler_sows_its_zoom_only_when_metrics_are_mutable():
    images = np.random.default_rng(0).uniform(size=(2, 32, 32, 3)).astype(np.float32)
    model = SaliencySampler((8, 8), saliency_input_shape=(16, 16), grid_shape=(9, 9), pad=8)
    variables = jax.jit(model.init)(jax.random.key(0), images)
    assert "metrics" not in variables
    (_, aux), sown = jax.jit(
        lambda v, x: model.apply(v, x, mutable=["metrics"]),
    )(variables, images)
    expected = zoom_summary(aux["grid"])
    assert set(sown["metrics"]) == {"zoom_spread", "zoom_max"}
    for name, value in expected.items():
        np.testing.assert_allclose(sown["metrics"][name], value, rtol=1e-6)
    # A randomly initialised saliency network already warps the grid a little.
    assert float(sown["metrics"]["zoom_spread"]) > 0
