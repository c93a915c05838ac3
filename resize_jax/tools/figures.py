"""Plots shared by the report, the demo and `apply` (`resize_jax.tools`; matplotlib, Agg).

Images are NumPy arrays f[H, W, 3] with values in [0, 1] (callers map their value range);
they are drawn with nearest-neighbour magnification so every pixel a network sees shows.
Sampling grids follow the library's convention (`grid[..., 0]` is x, `grid[..., 1]` is y, in
[-1, 1] with ±1 at the centres of the border pixels).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from resize_jax.extras import require

require("viz", "resize_jax.tools.figures")

import matplotlib

matplotlib.use("Agg")  # Files only: no display is needed or wanted (CI, servers).

import matplotlib.pyplot as plt
import numpy as np

DPI = 80  # Keeps the committed PNGs small.


def save(fig, path: str) -> None:
    """Saves `fig` as a 256-colour PNG (a third of the size of matplotlib's RGBA) and closes it."""
    import io

    from PIL import Image

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=DPI)
    plt.close(fig)
    buffer.seek(0)
    with Image.open(buffer) as image:
        image.convert("RGB").quantize(256).save(path, optimize=True)


def to_display(image, value_range=(0.0, 1.0)) -> np.ndarray:
    """f[H, W, C] in `value_range` → f32[H, W, 3] in [0, 1] (clipped; grey repeated to RGB)."""
    low, high = value_range
    image = (np.asarray(image, np.float32) - low) / (high - low)
    if image.shape[-1] == 1:
        image = np.repeat(image, 3, axis=-1)
    return np.clip(image, 0.0, 1.0)


def _blank(ax) -> None:
    ax.set_xticks([])
    ax.set_yticks([])


def show(ax, image: np.ndarray, title: str | None = None) -> None:
    """Draws an f[H, W, 3] image in [0, 1] pixel for pixel (nearest), without ticks."""
    ax.imshow(image, interpolation="nearest", vmin=0.0, vmax=1.0)
    _blank(ax)
    if title:
        ax.set_title(title, fontsize=8)


def pixel_grid(grid: np.ndarray, height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """grid f[h, w, 2] in [-1, 1] → (x, y) pixel coordinates f[h, w] of an H×W image."""
    grid = np.asarray(grid, np.float32)
    x = (grid[..., 0] + 1.0) / 2.0 * (width - 1)
    y = (grid[..., 1] + 1.0) / 2.0 * (height - 1)
    return x, y


def draw_grid(
    ax, grid: np.ndarray, height: int, width: int, *, color="yellow", lines: int = 16
) -> None:
    """Draws the sampling grid f[h, w, 2] over an H×W image on `ax`: about `lines` of its
    rows and columns (every k-th, the last included), so that a zoom shows as lines bunching."""
    x, y = pixel_grid(grid, height, width)
    rows = sorted({*range(0, x.shape[0], max(1, x.shape[0] // lines)), x.shape[0] - 1})
    cols = sorted({*range(0, x.shape[1], max(1, x.shape[1] // lines)), x.shape[1] - 1})
    for i in rows:
        ax.plot(x[i], y[i], color=color, linewidth=0.5)
    for j in cols:
        ax.plot(x[:, j], y[:, j], color=color, linewidth=0.5)
    ax.set_xlim(-0.5, width - 0.5)
    ax.set_ylim(height - 0.5, -0.5)


def draw_saliency(ax, image: np.ndarray, saliency: np.ndarray) -> None:
    """The input f[H, W, 3] with the saliency map f[g_h, g_w] laid over it (alpha heat map)."""
    height, width = image.shape[:2]
    ax.imshow(image, interpolation="nearest")
    ax.imshow(
        np.asarray(saliency, np.float32),
        cmap="inferno",
        alpha=0.55,
        interpolation="bilinear",
        extent=(-0.5, width - 0.5, height - 0.5, -0.5),
    )
    _blank(ax)


def frontend_outputs(
    path: str,
    inputs: np.ndarray,
    outputs: Mapping[str, np.ndarray],
    *,
    title: str,
    row_labels: Sequence[str] | None = None,
) -> None:
    """One row per image: the input, then what each front-end feeds the network.

    inputs: f[N, H, W, 3] in [0, 1]; outputs: label → f[N, h, w, 3] in [0, 1].
    """
    count, columns = len(inputs), 1 + len(outputs)
    fig, axes = plt.subplots(count, columns, figsize=(1.45 * columns, 1.5 * count + 0.5))
    axes = np.asarray(axes).reshape(count, columns)
    height, width = inputs.shape[1:3]
    for row in range(count):
        show(axes[row, 0], inputs[row], f"input {height}×{width}" if row == 0 else None)
        if row_labels is not None:
            axes[row, 0].set_ylabel(row_labels[row], fontsize=7)
        for col, (label, images) in enumerate(outputs.items(), start=1):
            h, w = images.shape[1:3]
            show(axes[row, col], images[row], f"{label}\n{h}×{w}" if row == 0 else None)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    save(fig, path)


def residual(
    path: str,
    inputs: np.ndarray,
    skip: np.ndarray,
    outputs: np.ndarray,
    *,
    title: str,
    skip_label: str = "skip path",
) -> float:
    """Columns: input, the skip path, the learned output and their difference.

    inputs f[N, H, W, 3], skip and outputs f[N, h, w, 3], all in the images' value units
    (skip/outputs unclipped). The residual `outputs - skip` is drawn as 0.5 + gain·residual
    with one gain for all images (returned), so mid-grey is zero. The gain maps the 99th
    percentile of |residual| to full scale: a trained resizer's residual has a few extreme
    values (on the details it amplifies) that would otherwise grey out everything else.
    """
    res = np.asarray(outputs, np.float32) - np.asarray(skip, np.float32)
    peak = float(np.percentile(np.abs(res), 99)) or float(np.max(np.abs(res))) or 1.0
    gain = 0.5 / peak
    count = len(inputs)
    fig, axes = plt.subplots(count, 4, figsize=(6.2, 1.5 * count + 0.5))
    axes = np.asarray(axes).reshape(count, 4)
    difference = f"output − {skip_label}\n(×{gain:.2g}, grey = 0, clipped)"
    titles = ("input", skip_label, "learned output", difference)
    for row in range(count):
        panels = (
            np.clip(inputs[row], 0, 1),
            np.clip(skip[row], 0, 1),
            np.clip(outputs[row], 0, 1),
            np.clip(0.5 + gain * res[row], 0, 1),
        )
        for col, panel in enumerate(panels):
            show(axes[row, col], panel, titles[col] if row == 0 else None)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    save(fig, path)
    return gain


def saliency(
    path: str,
    inputs: np.ndarray,
    saliency_maps: np.ndarray,
    grids: np.ndarray,
    sampled: np.ndarray,
    *,
    title: str,
) -> None:
    """Columns: the saliency map over the input, the sampling grid over the input, and the
    sampled image. inputs f[N, H, W, 3] and sampled f[N, h, w, 3] in [0, 1]; saliency_maps
    f[N, g_h, g_w]; grids f[N, h, w, 2] (dense)."""
    count = len(inputs)
    height, width = inputs.shape[1:3]
    fig, axes = plt.subplots(count, 3, figsize=(4.8, 1.6 * count + 0.5))
    axes = np.asarray(axes).reshape(count, 3)
    for row in range(count):
        draw_saliency(axes[row, 0], inputs[row], saliency_maps[row])
        show(axes[row, 1], inputs[row])
        draw_grid(axes[row, 1], grids[row], height, width)
        show(axes[row, 2], sampled[row])
        if row == 0:
            axes[row, 0].set_title("saliency over input", fontsize=8)
            axes[row, 1].set_title("sampling grid", fontsize=8)
            h, w = sampled.shape[1:3]
            axes[row, 2].set_title(f"sampled {h}×{w}", fontsize=8)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    save(fig, path)


def learning_curves(path: str, curves: Sequence[Mapping], *, metric_label: str) -> None:
    """Training loss and the eval metric against the step, every run on the same axes.

    curves: dicts with "label", "color", "linestyle", "loss" [(step, value)...] and
    "eval" [(step, value)...].
    """
    fig, (ax_loss, ax_eval) = plt.subplots(1, 2, figsize=(10, 3.8))
    for curve in curves:
        style = {"color": curve["color"], "linestyle": curve.get("linestyle", "-")}
        if curve["loss"]:
            steps, values = zip(*curve["loss"], strict=True)
            ax_loss.plot(steps, values, label=curve["label"], linewidth=1.0, **style)
        if curve["eval"]:
            steps, values = zip(*curve["eval"], strict=True)
            ax_eval.plot(steps, values, marker="o", markersize=3, label=curve["label"], **style)
    ax_loss.set_xlabel("training step")
    ax_loss.set_ylabel("training loss")
    ax_eval.set_xlabel("training step")
    ax_eval.set_ylabel(metric_label)
    for ax in (ax_loss, ax_eval):
        ax.grid(alpha=0.3)
    ax_eval.legend(fontsize=7, loc="best")
    fig.tight_layout()
    save(fig, path)


def panel(path: str, images: Sequence[tuple[str, np.ndarray]], *, title: str) -> None:
    """A row of labelled images (each f[h, w, 3] in [0, 1]) in one PNG."""
    fig, axes = plt.subplots(1, len(images), figsize=(2.4 * len(images), 2.8))
    for ax, (label, image) in zip(np.atleast_1d(axes), images, strict=True):
        show(ax, image, label)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    save(fig, path)
