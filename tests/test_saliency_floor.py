"""SaliencySampler's `saliency_floor`: the saliency it reports, the zoom it bounds, its errors."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from resize_jax import SaliencySampler
from resize_jax.ops.zoom import MAX_MAGNIFICATION, grid_magnification

IMAGES = np.random.default_rng(0).uniform(size=(1, 32, 32, 1)).astype(np.float32)
SMALL = {"saliency_input_shape": (16, 16), "grid_shape": (9, 9), "pad": 8, "fwhm": 4.0}


class PeakNet(nn.Module):
    """Logits peaked on one cell (the centre of a 9×9 map): a sampler that over-zooms."""

    @nn.compact
    def __call__(self, x):
        logits = jnp.zeros((x.shape[0], 9, 9, 1)).at[:, 4, 4, 0].set(30.0)
        return logits + 0.0 * self.param("unused", nn.initializers.zeros, ())


def _run(floor):
    model = SaliencySampler((16, 16), saliency_net=PeakNet(), saliency_floor=floor, **SMALL)
    variables = model.init(jax.random.key(0), IMAGES)
    return model.apply(variables, IMAGES)[1]


def test_floor_mixes_the_softmax_with_the_uniform_map():
    peaked, floored = _run(0.0)["saliency"], _run(0.25)["saliency"]
    np.testing.assert_allclose(floored, 0.75 * peaked + 0.25 / 81, rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(floored.sum(), 1.0, rtol=1e-5)


def test_floor_bounds_the_magnification():
    magnification = {f: float(grid_magnification(_run(f)["grid"]).max()) for f in (0.0, 0.3, 0.6)}
    # Without a floor the peaked map pulls the whole grid onto one point (the metric's cap);
    # each floor keeps the zoom finite, the larger one more so.
    assert magnification[0.0] == pytest.approx(MAX_MAGNIFICATION)
    assert 1.5 < magnification[0.6] < magnification[0.3] < 0.5 * MAX_MAGNIFICATION


@pytest.mark.parametrize("floor", [-0.1, 1.0, 2, True, "0.5", float("nan")])
def test_bad_floor_is_refused(floor):
    with pytest.raises(ValueError, match=r"`saliency_floor` must be a finite number in \[0, 1\)"):
        SaliencySampler((16, 16), saliency_floor=floor)
