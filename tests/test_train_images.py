"""TensorBoard pictures of the front-end: inputs, outputs, saliency map and grid."""

import jax.numpy as jnp
import numpy as np

from resize_jax import ops
from resize_jax.tasks import Classification
from resize_jax.train import images


def _apply_with(aux):
    return lambda variables, x: (None, aux)


def test_pictures_of_a_saliency_sampler():
    inputs = np.random.default_rng(0).uniform(-1, 1, (2, 20, 30, 3)).astype(np.float32)
    saliency = np.zeros((2, 5, 5), np.float32)
    saliency[:, 2, 3] = 1.0
    grid = np.asarray(ops.identity_grid(2, 10, 15))  # f32[2, 10, 15, 2]
    aux = {"resized": inputs[:, ::2, ::2] * 3.0, "frontend": {"saliency": saliency, "grid": grid}}
    pictures = images.frontend_pictures(_apply_with(aux), {}, inputs, (-1.0, 1.0))
    assert set(pictures) == {"input", "frontend_output", "saliency", "grid"}
    assert all(p.dtype == np.uint8 and p.shape[-1] == 3 for p in pictures.values())
    assert pictures["input"].shape == (2, 20, 30, 3)
    assert pictures["frontend_output"].shape == (2, 10, 15, 3)
    # Values outside the range are clipped, not wrapped.
    assert pictures["frontend_output"].max() == 255 and pictures["frontend_output"].min() == 0
    # The saliency map scaled to its peak, magnified towards the input's size.
    assert pictures["saliency"].shape == (2, 20, 30, 3)
    assert pictures["saliency"][0, 8, 18, 0] == 255 and pictures["saliency"][0, 0, 0, 0] == 0
    # The identity grid's points land on the input's corners, its first row's 15 samples on
    # the first row of pixels, and most pixels stay as they were.
    marked = np.all(pictures["grid"] == images._GRID_COLOUR, axis=-1)
    assert marked[0, 0, 0] and marked[0, -1, -1] and marked[0, 0, -1] and marked[0, -1, 0]
    assert marked[0, 0].sum() == 15
    assert marked.mean() < 0.5


def test_separable_grid_and_no_frontend():
    inputs = np.zeros((1, 8, 8, 3), np.float32)
    separable = ops.SeparableGrid(jnp.linspace(-1, 1, 4)[None], jnp.linspace(-1, 1, 4)[None])
    aux = {"resized": inputs[:, :4, :4], "frontend": {"grid": separable}}
    pictures = images.frontend_pictures(_apply_with(aux), {}, inputs, (0.0, 1.0))
    assert pictures["grid"].shape == (1, 8, 8, 3)
    plain = images.frontend_pictures(
        _apply_with({"resized": inputs, "frontend": {}}), {}, inputs, (0.0, 1.0), has_frontend=False
    )
    assert set(plain) == {"input"}


def test_top5_only_above_five_classes():
    task = Classification()
    batch = {"label": jnp.array([0, 1]), "mask": jnp.ones(2)}
    few = task.finalize(task.eval_statistics(jnp.zeros((2, 4)), {}, batch))
    assert "top5" not in few and "top1" in few
    many = task.finalize(task.eval_statistics(jnp.eye(2, 8), {}, batch))
    assert many["top5"] == 1.0 and many["top1"] == 1.0
