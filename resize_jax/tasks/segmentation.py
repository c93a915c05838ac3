"""Semantic segmentation: per-pixel cross-entropy and mIoU at the original resolution.

The pipeline: the front-end reduces the high-resolution input, the network predicts logits in
that reduced (and, for the saliency sampler, warped) space, and the model's `to_input` brings
them back to the label map's pixel grid: each front-end knows its own way back (a bilinear
resize for the fixed and learned resizers, `ops.unwarp` through the sampling grid for the
saliency sampler, nothing without a front-end; `resize_jax.frontends.base`). The training
loop binds the task to the model (`task.for_model(model)`).

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
import warnings
from collections.abc import Callable
from typing import ClassVar

import jax
import jax.numpy as jnp
import numpy as np
import optax

from resize_jax.frontends.base import resize_to_input
from resize_jax.frontends.saliency import unwarp_dense
from resize_jax.ops.checks import check_images, check_int
from resize_jax.tasks.base import HeadlineMetric, Task, register_task


def full_resolution_logits(
    outputs: jax.Array, aux, output_shape: tuple[int, int], *, iterations: int = 4
) -> jax.Array:
    """Deprecated: use the model's `to_input(outputs, aux, output_shape)` (or a front-end's).

    outputs: f[B, h, w, K] → f32[B, H, W, K]: unwarped through a `"grid"` of `aux` (or of
    `aux["frontend"]`), else resized.
    """
    warnings.warn(
        "`tasks.full_resolution_logits` is deprecated and will be removed in the next "
        "release; use `model.to_input(outputs, aux, output_shape)` of the FrontEndModel.",
        DeprecationWarning,
        stacklevel=2,
    )
    aux = aux or {}
    grid = aux.get("grid", aux.get("frontend", {}).get("grid"))
    if grid is None:
        return resize_to_input(outputs, output_shape)
    return unwarp_dense(outputs, grid, output_shape, iterations=iterations)


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
      to_input: `(logits, aux, (H, W)) -> f32[B, H, W, K]`, the model's way back to the
        input's pixel grid (`FrontEndModel.to_input`); `for_model(model)` sets it. None: the
        logits are resized (a model without a front-end).

    Model outputs: logits f[B, h, w, K]; batches: "label": int[B, H, W] label maps in [0, K)
    or `ignore_label`. Labels outside both are not trained on, and make `finalize` raise.
    """

    ignore_label: int = 255
    class_weights: tuple[float, ...] = ()
    to_input: Callable | None = dataclasses.field(default=None, compare=False, repr=False)
    name: str = "segmentation"
    headline_metric: ClassVar[HeadlineMetric] = HeadlineMetric("eval/miou", "mIoU", "higher")

    def __post_init__(self):
        check_int(self.ignore_label, "ignore_label")
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

    def for_model(self, model) -> Segmentation:
        """This task, mapping the logits back with `model.to_input`."""
        return dataclasses.replace(self, to_input=model.to_input)

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
        if self.to_input is not None:
            logits = self.to_input(outputs, aux, tuple(shape[1:]))
        elif aux and aux.get("frontend"):
            # Resizing would be silently wrong for a warping front-end.
            raise ValueError(
                "The model has a front-end: bind the task to it with `task.for_model(model)` "
                "so that the logits go back to the labels' pixel grid its own way."
            )
        else:
            logits = resize_to_input(outputs, tuple(shape[1:]))
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
