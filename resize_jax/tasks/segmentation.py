"""Semantic segmentation: per-pixel cross-entropy and mIoU at the original resolution.

The pipeline: the front-end reduces the high-resolution input, the network predicts logits in
that reduced (and, for the saliency sampler, warped) space, and `full_resolution_logits`
brings them back to the label map's pixel grid:

- front-ends with a sampling grid (`aux["grid"]`: the saliency sampler, dense or separable)
  → `ops.unwarp` with the grid (LZU-style "unzoom"): every label pixel reads the logits at
  the place the warp sent it;
- any other front-end (fixed or learned resizer) → a bilinear resize of the logits
  (`ops.resize`, half-pixel centres, the inverse geometry of the resizers);
- no front-end → the logits are already at full resolution.

Both the training loss and the metrics are computed on these full-resolution logits, so the
loss optimises exactly what is measured and the front-end gets gradient through the way
back (through the grid, for the saliency sampler). The price is one f32[B, H, W, K] tensor
at the label's resolution.

Metrics (every pixel whose label is `ignore_label` is left out, and so is every padding
example, `batch["mask"]` = 0): a confusion matrix summed over the eval split (so the default
summing `accumulate` suffices), from which the IoU of each class is TP / (TP + FP + FN);
mIoU is their mean over the classes that appear in the labels or the predictions (a class
absent from both has no IoU and does not count; a class only predicted has IoU 0); pixel
accuracy is TP / all counted pixels.
"""

from __future__ import annotations

import dataclasses
import math
import numbers

import jax
import jax.numpy as jnp
import numpy as np
import optax

from resize_jax import ops
from resize_jax.ops.checks import check_images
from resize_jax.tasks.base import Task, register_task


def _grid_shape(grid) -> tuple[int, int]:
    if isinstance(grid, ops.SeparableGrid):
        return int(grid.y.shape[1]), int(grid.x.shape[1])
    return int(grid.shape[1]), int(grid.shape[2])


def full_resolution_logits(
    outputs: jax.Array, aux, output_shape: tuple[int, int], *, iterations: int = 4
) -> jax.Array:
    """Brings dense logits back to the label's pixel grid (see the module docstring).

    Args:
      outputs: f[B, h, w, K] logits of the network.
      aux: the model's aux dict; a `"grid"` entry (f[B, h', w', 2] or `ops.SeparableGrid`)
        means the network saw a warped image, which is then undone with `ops.unwarp`.
      output_shape: (H, W) of the label maps.
      iterations: Newton iterations of the inverse of a dense grid (`ops.invert_grid`).

    Returns:
      f32[B, H, W, K].

    Raises:
      ValueError: if `outputs` is not f[B, h, w, K].
    """
    check_images(outputs, "outputs")
    outputs = outputs.astype(jnp.float32)
    grid = aux.get("grid") if aux is not None else None
    if grid is not None:
        warped_shape = _grid_shape(grid)
        if tuple(outputs.shape[1:3]) != warped_shape:
            # A network that predicts at a fraction of its input: back to the warped image's
            # size first, then undo the warp.
            outputs = ops.resize(outputs, warped_shape)
        return ops.unwarp(outputs, grid, output_shape, iterations=iterations)
    if tuple(outputs.shape[1:3]) == tuple(output_shape):
        return outputs
    return ops.resize(outputs, output_shape, method="bilinear", antialias=False)


def confusion_matrix(
    labels: jax.Array, predictions: jax.Array, weights: jax.Array, num_classes: int
) -> jax.Array:
    """int32[K, K] counts: rows are true classes, columns predicted ones.

    labels, predictions: int[...] in [0, K) wherever `weights` (int/bool[...]) is nonzero.
    """
    index = jnp.where(weights > 0, labels * num_classes + predictions, 0).reshape(-1)
    counts = jnp.bincount(
        index, weights=weights.astype(jnp.int32).reshape(-1), length=num_classes**2
    )
    return counts.reshape(num_classes, num_classes)


def iou_from_confusion(confusion: np.ndarray) -> np.ndarray:
    """Per-class IoU f64[K] from a confusion matrix; NaN for classes absent from both the
    labels and the predictions."""
    confusion = np.asarray(confusion, np.float64)
    tp = np.diag(confusion)
    union = confusion.sum(0) + confusion.sum(1) - tp
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(union > 0, tp / np.where(union > 0, union, 1.0), np.nan)


@register_task("segmentation")
@dataclasses.dataclass(frozen=True)
class Segmentation(Task):
    """Per-pixel softmax classification at the label's resolution.

    Attributes:
      ignore_label: label-map value of void pixels: no loss, not counted in any metric
        (the data pipeline's `ignore_label`, 255 by default).
      class_weights: per-class loss weights (K values), e.g. ENet's 1 / ln(1.02 + p_k) from
        the class frequencies p_k; empty for uniform. The loss is then the weighted mean
        Σ w_y·CE / Σ w_y over the counted pixels (PyTorch's convention).
      unwarp_iterations: Newton iterations when unwarping logits through a dense saliency
        grid (`ops.invert_grid`).

    Model outputs: logits f[B, h, w, K]; batches: "label": int[B, H, W] label maps in [0, K)
    or `ignore_label`. Labels outside both are not trained on, and make `finalize` raise.
    """

    ignore_label: int = 255
    class_weights: tuple[float, ...] = ()
    unwarp_iterations: int = 4
    name: str = "segmentation"

    def __post_init__(self):
        if isinstance(self.ignore_label, bool) or not isinstance(
            self.ignore_label, numbers.Integral
        ):
            raise ValueError(f"`ignore_label` must be an int, got {self.ignore_label!r}.")
        weights = self.class_weights
        if not isinstance(weights, tuple | list) or not all(
            isinstance(w, numbers.Real) and not isinstance(w, bool) and math.isfinite(w) and w >= 0
            for w in weights
        ):
            raise ValueError(
                f"`class_weights` must be a tuple of finite non-negative numbers (empty for "
                f"uniform), got {weights!r}."
            )
        object.__setattr__(self, "class_weights", tuple(float(w) for w in weights))
        iterations = self.unwarp_iterations
        if isinstance(iterations, bool) or not isinstance(iterations, int) or iterations < 0:
            raise ValueError(f"`unwarp_iterations` must be a non-negative int, got {iterations!r}.")

    def check_dataset(self, info) -> None:
        """The dataset must deliver label maps whose void value is this task's ignore label."""
        if info.task != "segmentation":
            raise ValueError(
                f"`config.task.name`='segmentation' needs a segmentation dataset (label maps), "
                f"but the configured dataset's task is {info.task!r}."
            )
        if info.ignore_label is not None and info.ignore_label != self.ignore_label:
            raise ValueError(
                f"`config.task.ignore_label`={self.ignore_label} differs from the dataset's "
                f"ignore label {info.ignore_label} (`config.data.ignore_label`): void pixels "
                f"would be trained on as a class."
            )

    def _prepare(self, outputs, aux, batch):
        """(full-resolution logits f32[B, H, W, K], labels int32[B, H, W], valid bool[B, H, W],
        out-of-range bool[B, H, W])."""
        check_images(outputs, "outputs")
        labels = batch["label"]
        shape = getattr(labels, "shape", None)
        if shape is None or len(shape) != 3 or shape[0] != outputs.shape[0]:
            raise ValueError(
                f"`batch['label']` must be int[B, H, W] label maps with B = {outputs.shape[0]}, "
                f"got {shape if shape is not None else type(labels).__name__}."
            )
        num_classes = outputs.shape[-1]
        if self.class_weights and len(self.class_weights) != num_classes:
            raise ValueError(
                f"`class_weights` must hold one weight per class ({num_classes}), got "
                f"{len(self.class_weights)}."
            )
        logits = full_resolution_logits(
            outputs, aux, tuple(shape[1:]), iterations=self.unwarp_iterations
        )
        labels = labels.astype(jnp.int32)
        in_range = (labels >= 0) & (labels < num_classes)
        labelled = labels != self.ignore_label
        return logits, jnp.where(in_range, labels, 0), labelled & in_range, labelled & ~in_range

    def _pixel_losses(self, logits, labels, valid):
        """(Σ weighted CE, Σ weights) over the valid pixels."""
        ce = optax.softmax_cross_entropy_with_integer_labels(logits, labels)
        weight = valid.astype(jnp.float32)
        if self.class_weights:
            weight = weight * jnp.asarray(self.class_weights, jnp.float32)[labels]
        return jnp.sum(jnp.where(valid, ce, 0.0) * weight), jnp.sum(weight)

    def loss(self, outputs, aux, batch):
        """Mean cross-entropy over the labelled pixels at the label's resolution."""
        logits, labels, valid, _ = self._prepare(outputs, aux, batch)
        total, weight = self._pixel_losses(logits, labels, valid)
        correct = (jnp.argmax(logits, -1) == labels) & valid
        pixels = jnp.maximum(valid.sum(), 1)
        return total / jnp.maximum(weight, 1e-12), {"pixel_accuracy": correct.sum() / pixels}

    def eval_statistics(self, outputs, aux, batch):
        """Sums: confusion matrix, loss and its weight, counted and out-of-range pixels."""
        logits, labels, valid, out_of_range = self._prepare(outputs, aux, batch)
        example = (batch["mask"] > 0)[:, None, None]
        valid, out_of_range = valid & example, out_of_range & example
        total, weight = self._pixel_losses(logits, labels, valid)
        predictions = jnp.argmax(logits, axis=-1)
        return {
            "confusion": confusion_matrix(labels, predictions, valid, logits.shape[-1]),
            "loss": total,
            "loss_weight": weight,
            "count": batch["mask"].astype(jnp.float32).sum(),
            "out_of_range": out_of_range.sum(),
        }

    def finalize(self, total):
        """{"miou", "pixel_accuracy", "mean_class_accuracy", "loss", "count",
        "iou/<k>" per class (NaN when absent from labels and predictions)}.

        Raises:
          ValueError: if label pixels outside [0, K) other than `ignore_label` were seen.
        """
        if float(total["out_of_range"]) > 0:
            k = np.asarray(total["confusion"]).shape[0]
            raise ValueError(
                f"{int(total['out_of_range'])} label pixels were outside [0, {k}) and not "
                f"`ignore_label`={self.ignore_label}: the dataset's labels do not match the "
                f"model's {k} classes or the ignore label."
            )
        confusion = np.asarray(total["confusion"], np.float64)
        iou = iou_from_confusion(confusion)
        present = ~np.isnan(iou)
        pixels = confusion.sum()
        per_class_total = confusion.sum(1)
        labelled = per_class_total > 0
        class_accuracy = np.diag(confusion)[labelled] / per_class_total[labelled]
        metrics = {
            "miou": float(iou[present].mean()) if present.any() else math.nan,
            "pixel_accuracy": float(np.trace(confusion) / pixels) if pixels else math.nan,
            "mean_class_accuracy": float(class_accuracy.mean()) if labelled.any() else math.nan,
            "loss": float(total["loss"]) / max(float(total["loss_weight"]), 1e-12),
            "count": float(total["count"]),
        }
        metrics.update({f"iou/{k}": float(v) for k, v in enumerate(iou)})
        return metrics
