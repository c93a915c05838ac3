"""Pictures of what the front-end does, for TensorBoard at each evaluation.

`frontend_pictures` runs the model on a few eval images and returns uint8 pictures keyed by
TensorBoard tag: the inputs, the front-end's outputs (the network's input, clipped to the
data's value range), and for a saliency sampler its saliency map and its sampling grid drawn
over the input. Everything is computed from the model's own aux, as a person would inspect it.
"""

from __future__ import annotations

import jax
import numpy as np

from resize_jax import ops

_GRID_LINES = 12  # grid rows and columns drawn over the input
_GRID_COLOUR = np.array([255, 220, 0], np.uint8)


def _to_uint8(images: np.ndarray, value_range: tuple[float, float]) -> np.ndarray:
    low, high = value_range
    scaled = (np.asarray(images, np.float32) - low) / (high - low)
    return (np.clip(scaled, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def _as_rgb(images: np.ndarray) -> np.ndarray:
    if images.shape[-1] == 3:
        return images
    return np.repeat(images[..., :1], 3, axis=-1)


def saliency_picture(saliency: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """saliency: f[B, g_h, g_w] → uint8[B, H, W, 3] grey, each map scaled to its maximum,
    magnified by nearest neighbours to about `size`."""
    saliency = np.asarray(saliency, np.float32)
    peak = saliency.max(axis=(1, 2), keepdims=True)
    scaled = saliency / np.where(peak > 0, peak, 1.0)
    ry = max(size[0] // saliency.shape[1], 1)
    rx = max(size[1] // saliency.shape[2], 1)
    big = np.repeat(np.repeat(scaled, ry, axis=1), rx, axis=2)
    return np.repeat((big[..., None] * 255.0 + 0.5).astype(np.uint8), 3, axis=-1)


def grid_picture(inputs: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """inputs: uint8[B, H, W, 3]; grid: f[B, h, w, 2] (x, y in [-1, 1], align-corners) →
    the inputs with every few grid rows and columns drawn where they sample."""
    pictures = inputs.copy()
    height, width = inputs.shape[1:3]
    grid = np.asarray(grid, np.float32)
    rows = np.unique(np.linspace(0, grid.shape[1] - 1, _GRID_LINES).round().astype(int))
    cols = np.unique(np.linspace(0, grid.shape[2] - 1, _GRID_LINES).round().astype(int))
    for b in range(grid.shape[0]):
        points = np.concatenate(
            [grid[b, rows].reshape(-1, 2), grid[b, :, cols].reshape(-1, 2)], axis=0
        )
        x = np.clip(((points[:, 0] + 1) / 2 * (width - 1)).round().astype(int), 0, width - 1)
        y = np.clip(((points[:, 1] + 1) / 2 * (height - 1)).round().astype(int), 0, height - 1)
        pictures[b, y, x] = _GRID_COLOUR
    return pictures


def frontend_pictures(
    apply_fn,
    variables,
    images: np.ndarray,
    value_range: tuple[float, float],
    *,
    has_frontend: bool = True,
) -> dict[str, np.ndarray]:
    """TensorBoard pictures of the front-end on `images`.

    Args:
      apply_fn: `(variables, images) -> (outputs, aux)` in evaluation mode, e.g. a jitted
        `functools.partial(model.apply, train=False)` of a `FrontEndModel`.
      variables: the model's variables.
      images: f32[n, H, W, C] eval images in `value_range`.
      value_range: (low, high) of the data's pixel values.
      has_frontend: whether the model has a front-end (else there is no output to show).

    Returns:
      {tag: uint8[n, h, w, 3]}: "input", with a front-end "frontend_output" (at its own size);
      for a saliency sampler also "saliency" and "grid".
    """
    _, aux = apply_fn(variables, images)
    aux = jax.device_get(aux)
    inputs = _as_rgb(_to_uint8(images, value_range))
    pictures = {"input": inputs}
    if has_frontend:
        pictures["frontend_output"] = _as_rgb(_to_uint8(aux["resized"], value_range))
    frontend_aux = aux.get("frontend", {})
    if "saliency" in frontend_aux:
        pictures["saliency"] = saliency_picture(frontend_aux["saliency"], images.shape[1:3])
    grid = frontend_aux.get("grid")
    if isinstance(grid, ops.SeparableGrid):
        grid = np.asarray(ops.separable_to_grid(grid))
    if grid is not None:
        pictures["grid"] = grid_picture(inputs, grid)
    return pictures
