"""Classification: cross-entropy with label smoothing; top-1 and (over 5 classes) top-5
accuracy."""

from __future__ import annotations

import dataclasses
from typing import ClassVar

import jax
import jax.numpy as jnp
import optax

from resize_jax.tasks.base import HeadlineMetric, Task, register_task


def _one_hot(labels: jax.Array, num_classes: int) -> jax.Array:
    """Integer labels int[B] or one-hot f[B, K] → f32[B, K]."""
    if labels.ndim == 2:
        return labels.astype(jnp.float32)
    return jax.nn.one_hot(labels, num_classes, dtype=jnp.float32)


def smoothed_cross_entropy(logits: jax.Array, labels: jax.Array, smoothing: float) -> jax.Array:
    """Per-example cross-entropy f32[B] with `smoothing` of the target mass spread uniformly.

    logits: f[B, K]; labels: int[B] or one-hot f[B, K].
    """
    num_classes = logits.shape[-1]
    targets = optax.smooth_labels(_one_hot(labels, num_classes), smoothing)
    return optax.softmax_cross_entropy(logits.astype(jnp.float32), targets)


def topk_correct(logits: jax.Array, labels: jax.Array, k: int) -> jax.Array:
    """f32[B]: 1 where the true class is among the k highest logits."""
    if labels.ndim == 2:
        labels = jnp.argmax(labels, axis=-1)
    k = min(k, logits.shape[-1])
    _, top = jax.lax.top_k(logits, k)
    return jnp.any(top == labels[:, None], axis=-1).astype(jnp.float32)


@register_task("classification")
@dataclasses.dataclass(frozen=True)
class Classification(Task):
    """Softmax classification.

    Attributes:
      label_smoothing: target smoothing in [0, 1) (the learned-resizer paper used 0.1).
    """

    label_smoothing: float = 0.0
    name: str = "classification"
    headline_metric: ClassVar[HeadlineMetric] = HeadlineMetric(
        "eval/top1", "top-1 accuracy", "higher"
    )

    def __post_init__(self):
        if not 0.0 <= self.label_smoothing < 1.0:
            raise ValueError(f"`label_smoothing` must be in [0, 1), got {self.label_smoothing}.")

    def check_dataset(self, info) -> None:
        # One class is learned trivially (top-1 = 1.0 from the first step): a mistake in the
        # data, such as a folder with a single label directory, never a result.
        if info.num_classes < 2:
            names = f" ({list(info.class_names)})" if info.class_names else ""
            raise ValueError(
                f"Classification needs at least 2 classes; the dataset has "
                f"{info.num_classes}{names}."
            )

    def loss(self, outputs, aux, batch):
        """outputs: f[B, K] logits; batch["label"]: int[B] or one-hot f[B, K]."""
        del aux  # Unused: the loss is on the task output alone (no loss on resized images).
        per_example = smoothed_cross_entropy(outputs, batch["label"], self.label_smoothing)
        accuracy = topk_correct(outputs, batch["label"], 1)
        return per_example.mean(), {"accuracy": accuracy.mean()}

    def eval_statistics(self, outputs, aux, batch):
        del aux  # Unused.
        mask = batch["mask"].astype(jnp.float32)
        loss = smoothed_cross_entropy(outputs, batch["label"], 0.0)
        stats = {
            "count": mask.sum(),
            "loss": (loss * mask).sum(),
            "top1": (topk_correct(outputs, batch["label"], 1) * mask).sum(),
        }
        if outputs.shape[-1] > 5:  # with 5 classes or fewer top-5 is always 1: not reported
            stats["top5"] = (topk_correct(outputs, batch["label"], 5) * mask).sum()
        return stats

    def finalize(self, total):
        count = max(float(total["count"]), 1.0)
        metrics = {
            "loss": float(total["loss"]) / count,
            "top1": float(total["top1"]) / count,
        }
        if "top5" in total:
            metrics["top5"] = float(total["top5"]) / count
        return {**metrics, "count": float(total["count"])}
