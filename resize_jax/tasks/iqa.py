"""Image quality assessment (NIMA-style, as in the learned-resizer paper's AVA experiments).

The backbone's `num_classes` = 10 logits become, through a softmax, a predicted distribution
p over the rating bins 1..10; the target q is the normalised histogram of human ratings. The
loss is the Earth Mover's Distance between them with the r-norm over the CDFs,

    EMD_r(p, q) = (1/K Σ_k |CDF_p(k) − CDF_q(k)|^r)^(1/r),   r = 2, K = 10,

per example, averaged over the batch (Talebi & Milanfar, NIMA, 2018). Metrics are those of
the AVA literature, on the mean scores μ = Σ_k k·p_k (k = 1..10): SRCC (Spearman) and PLCC
(Pearson) between predicted and true means over the whole eval split, and the binary
accuracy of "μ > 5" (high quality), plus the mean EMD.
"""

from __future__ import annotations

import dataclasses
import math
from typing import ClassVar

import jax
import jax.numpy as jnp
import numpy as np

from resize_jax.ops.checks import check_number
from resize_jax.tasks.base import HeadlineMetric, Task, accumulate_with_examples, register_task

# Per-example statistics that `accumulate` concatenates; everything else is summed.
_PER_EXAMPLE = ("pred_mean", "true_mean", "mask")


def _check_histograms(x, name: str) -> None:
    shape = getattr(x, "shape", None)
    if shape is None or len(shape) != 2 or shape[-1] < 2:
        raise ValueError(
            f"`{name}` must be f[B, K] histograms with K >= 2 bins, got "
            f"{shape if shape is not None else type(x).__name__}."
        )


def _safe_root(x: jax.Array, r: float) -> jax.Array:
    """x^(1/r) for x >= 0, with gradient 0 (a subgradient) instead of inf/NaN at x = 0."""
    positive = x > 0
    return jnp.where(positive, jnp.where(positive, x, 1.0) ** (1.0 / r), 0.0)


def emd_loss(probs: jax.Array, targets: jax.Array, r: float = 2.0) -> jax.Array:
    """Per-example EMD_r between histograms: f32[B].

    Args:
      probs: f[B, K] predicted distributions (rows sum to 1).
      targets: f[B, K] target distributions (rows sum to 1).
      r: the norm over the CDF differences (NIMA and the learned-resizer paper: 2).

    The gradient is finite everywhere, including at identical histograms (where it is 0).

    Raises:
      ValueError: if the shapes are not equal f[B, K].
    """
    _check_histograms(probs, "probs")
    _check_histograms(targets, "targets")
    if probs.shape != targets.shape:
        raise ValueError(
            f"`probs` and `targets` must have the same shape, got {tuple(probs.shape)} and "
            f"{tuple(targets.shape)}."
        )
    diff = jnp.cumsum(probs.astype(jnp.float32), -1) - jnp.cumsum(targets.astype(jnp.float32), -1)
    # |d|^r written so that its gradient at d = 0 is 0, not NaN, for every r >= 1.
    powered = jnp.abs(diff) ** r if r != 2 else jnp.square(diff)
    return _safe_root(jnp.mean(powered, axis=-1), r)


def mean_scores(probs: jax.Array) -> jax.Array:
    """μ = Σ_k k·p_k with scores k = 1..K: f[B, K] → f32[B]."""
    scores = jnp.arange(1, probs.shape[-1] + 1, dtype=jnp.float32)
    return probs.astype(jnp.float32) @ scores


def normalise(histograms: jax.Array) -> jax.Array:
    """Rows scaled to sum to 1 (rating counts or histograms alike); all-zero rows (eval
    padding) stay zero instead of becoming NaN."""
    histograms = histograms.astype(jnp.float32)
    total = jnp.sum(histograms, axis=-1, keepdims=True)
    return histograms / jnp.where(total > 0, total, 1.0)


def rank_average_ties(x: np.ndarray) -> np.ndarray:
    """Ranks 1..n of a 1-D array, ties sharing their average rank (scipy's 'average')."""
    x = np.asarray(x)
    order = np.argsort(x, kind="mergesort")
    _, first, counts = np.unique(x[order], return_index=True, return_counts=True)
    ranks = np.empty(len(x), np.float64)
    ranks[order] = np.repeat(first + (counts + 1) / 2.0, counts)
    return ranks


def pearson(x: np.ndarray, y: np.ndarray) -> float:
    """Pearson's r of two 1-D arrays; NaN when it is undefined (n < 2 or a constant input)."""
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    if len(x) < 2:
        return math.nan
    dx, dy = x - x.mean(), y - y.mean()
    denominator = math.sqrt(float(dx @ dx) * float(dy @ dy))
    return float(dx @ dy) / denominator if denominator > 0 else math.nan


def spearman(x: np.ndarray, y: np.ndarray) -> float:
    """Spearman's rank correlation (Pearson's r of the tie-averaged ranks)."""
    return pearson(rank_average_ties(x), rank_average_ties(y))


@register_task("image_quality")
@dataclasses.dataclass(frozen=True)
class ImageQuality(Task):
    """Rating-distribution prediction trained with the EMD loss.

    Attributes:
      r: the norm of the EMD loss over the CDFs (2, as in NIMA and the learned-resizer paper).
      threshold: mean score above which an image counts as high quality for the binary
        accuracy (AVA convention: 5).

    Model outputs: logits f[B, K] (K = 10 for AVA), turned into a distribution by a softmax.
    Batches: "label": f[B, K] rating histograms (normalised here, so raw counts work too).
    """

    r: float = 2.0
    threshold: float = 5.0
    name: str = "image_quality"
    headline_metric: ClassVar[HeadlineMetric] = HeadlineMetric("eval/srcc", "SRCC", "higher")

    def __post_init__(self):
        check_number(self.r, "r", low=1)
        check_number(self.threshold, "threshold", finite=False)

    def check_dataset(self, info) -> None:
        """The dataset must be an image-quality one (rating histograms)."""
        if info.task != "image_quality":
            raise ValueError(
                f"`config.task.name`='image_quality' needs an image-quality dataset (rating "
                f"histograms), but the configured dataset's task is {info.task!r}."
            )

    def _distributions(self, outputs, batch):
        _check_histograms(outputs, "outputs")
        labels = batch["label"]
        if getattr(labels, "shape", None) != outputs.shape:
            raise ValueError(
                f"`batch['label']` must be rating histograms of the logits' shape "
                f"{tuple(outputs.shape)}, got {getattr(labels, 'shape', type(labels).__name__)}."
            )
        return jax.nn.softmax(outputs.astype(jnp.float32), axis=-1), normalise(labels)

    def loss(self, outputs, aux, batch):
        """outputs: f[B, K] logits; batch["label"]: f[B, K] histograms."""
        del aux  # Unused: the loss is on the predicted distribution alone.
        probs, targets = self._distributions(outputs, batch)
        per_example = emd_loss(probs, targets, self.r)
        pred, true = mean_scores(probs), mean_scores(targets)
        accuracy = ((pred > self.threshold) == (true > self.threshold)).astype(jnp.float32)
        return per_example.mean(), {
            "binary_accuracy": accuracy.mean(),
            "mean_score_abs_error": jnp.abs(pred - true).mean(),
        }

    def eval_statistics(self, outputs, aux, batch):
        """Sums (count, loss, correct) and per-example mean scores with the mask."""
        del aux  # Unused.
        probs, targets = self._distributions(outputs, batch)
        mask = batch["mask"].astype(jnp.float32)
        pred, true = mean_scores(probs), mean_scores(targets)
        correct = ((pred > self.threshold) == (true > self.threshold)).astype(jnp.float32)
        return {
            "count": mask.sum(),
            "loss": jnp.where(mask > 0, emd_loss(probs, targets, self.r), 0.0).sum(),
            "correct": (correct * mask).sum(),
            "pred_mean": pred,
            "true_mean": true,
            "mask": mask,
        }

    def accumulate(self, total, stats):
        """Sums the counts; concatenates the per-example mean scores (rank correlations are
        not sums of per-batch parts)."""
        return accumulate_with_examples(total, stats, _PER_EXAMPLE)

    def finalize(self, total):
        """{"loss" (mean EMD), "srcc", "plcc", "binary_accuracy", "count"}; a correlation is
        NaN when undefined (fewer than two examples, or constant scores)."""
        keep = total["mask"] > 0
        pred, true = total["pred_mean"][keep], total["true_mean"][keep]
        count = max(float(total["count"]), 1.0)
        return {
            "loss": float(total["loss"]) / count,
            "srcc": spearman(pred, true),
            "plcc": pearson(pred, true),
            "binary_accuracy": float(total["correct"]) / count,
            "count": float(total["count"]),
        }
