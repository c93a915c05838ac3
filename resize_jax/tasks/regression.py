"""Regression of a few real numbers per image, e.g. a gaze point on a screen (iTracker-style).

The backbone's `num_classes` = D outputs are the prediction, f[B, D]; the target is
`batch["label"]`, f[B, D], in the dataset's own units (centimetres for a gaze point).

Optional per-dimension normalisation (`normalize=True`): the network learns
z = (y − mean) / std, the statistics of the train split's targets. They are computed once
from the dataset (`DatasetInfo.target_mean` / `target_std`) when the config leaves
`target_mean` / `target_std` empty, and the training loop records them in the run's
`config.json`, so evaluation and `apply` turn outputs back into the original units
(`predictions`). Why: targets of a few centimetres with offsets of ten (GazeCapture's
screen coordinates) make the head's initial outputs (≈ 0) far off and badly scaled.

Losses (on the normalised values when normalising): "l2", the mean over examples of the
squared Euclidean distance summed over the D dimensions (½ of it, as is usual, would only
rescale the learning rate: not taken); "smooth_l1", Huber's loss with `delta` (Fast R-CNN's
smooth L1 for delta = 1: ½x² for |x| < delta, delta·(|x| − ½delta) beyond), summed over
dimensions.

Metrics, always in the original units: the Euclidean error ‖ŷ − y‖ of each example; its mean,
median and 90th percentile over the whole eval split, and the mean absolute error per
dimension. The percentiles are exact: each example's error is kept (padding dropped by
`batch["mask"]`) and they are taken over the concatenation, NumPy's linear interpolation
between order statistics (`np.percentile`'s default).
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from typing import ClassVar

import jax
import jax.numpy as jnp
import numpy as np
import optax

from resize_jax.tasks.base import HeadlineMetric, Task, accumulate_with_examples, register_task

LOSSES = ("l2", "smooth_l1")
# Per-example statistics that `accumulate` concatenates; everything else is summed.
_PER_EXAMPLE = ("error", "mask")


def _check_floats(values, name: str) -> tuple[float, ...]:
    ok = isinstance(values, tuple | list) and all(
        isinstance(v, numbers.Real) and not isinstance(v, bool) and math.isfinite(v) for v in values
    )
    if not ok:
        raise ValueError(
            f"`{name}` must be a tuple of finite numbers (empty: none), got {values!r}."
        )
    return tuple(float(v) for v in values)


def euclidean_error(predictions: jax.Array, targets: jax.Array) -> jax.Array:
    """‖predictions − targets‖₂ per example: f[B, D], f[B, D] → f32[B]."""
    diff = predictions.astype(jnp.float32) - targets.astype(jnp.float32)
    return jnp.sqrt(jnp.sum(jnp.square(diff), axis=-1))


def regression_loss(
    predictions: jax.Array, targets: jax.Array, kind: str = "l2", delta: float = 1.0
) -> jax.Array:
    """Per-example loss f32[B] of f[B, D] predictions against f[B, D] targets, summed over D.

    kind: "l2" (squared Euclidean distance) or "smooth_l1" (Huber with `delta`, through
    `optax.huber_loss`).
    """
    if kind not in LOSSES:
        raise ValueError(f"`kind` must be one of {list(LOSSES)}, got {kind!r}.")
    predictions, targets = predictions.astype(jnp.float32), targets.astype(jnp.float32)
    if kind == "l2":
        return jnp.sum(jnp.square(predictions - targets), axis=-1)
    return jnp.sum(optax.huber_loss(predictions, targets, delta=delta), axis=-1)


@register_task("regression")
@dataclasses.dataclass(frozen=True)
class Regression(Task):
    """Regression of D numbers per image (see the module docstring).

    Attributes:
      loss_type: "l2" or "smooth_l1".
      delta: the smooth-L1 (Huber) transition point, in (normalised) target units.
      normalize: learn (y − mean) / std instead of y.
      target_mean, target_std: the statistics, D values each; empty: taken from the dataset
        (the train split) when the run starts, then recorded in the run's config.
      num_targets: D; 0 accepts any. Batches and outputs of another width raise ValueError.

    Model outputs: f[B, D]. Batches: "label": f[B, D].
    """

    loss_type: str = "l2"
    delta: float = 1.0
    normalize: bool = True
    target_mean: tuple[float, ...] = ()
    target_std: tuple[float, ...] = ()
    num_targets: int = 0
    name: str = "regression"
    headline_metric: ClassVar[HeadlineMetric] = HeadlineMetric(
        "eval/mean_error", "mean error", "lower"
    )

    def __post_init__(self):
        if self.loss_type not in LOSSES:
            raise ValueError(f"`loss_type` must be one of {list(LOSSES)}, got {self.loss_type!r}.")
        if (
            isinstance(self.delta, bool)
            or not isinstance(self.delta, numbers.Real)
            or not math.isfinite(self.delta)
            or self.delta <= 0
        ):
            raise ValueError(f"`delta` must be a finite number > 0, got {self.delta!r}.")
        if not isinstance(self.normalize, bool):
            raise ValueError(f"`normalize` must be True or False, got {self.normalize!r}.")
        d = self.num_targets
        if isinstance(d, bool) or not isinstance(d, numbers.Integral) or d < 0:
            raise ValueError(f"`num_targets` must be a non-negative int (0: any), got {d!r}.")
        mean = _check_floats(self.target_mean, "target_mean")
        std = _check_floats(self.target_std, "target_std")
        if len(mean) != len(std):
            raise ValueError(
                f"`target_mean` and `target_std` must have the same length, got {len(mean)} "
                f"and {len(std)}."
            )
        if any(s <= 0 for s in std):
            raise ValueError(f"`target_std` must be positive, got {std!r}.")
        if mean and d and len(mean) != d:
            raise ValueError(f"`target_mean` has {len(mean)} values but `num_targets`={d}.")
        object.__setattr__(self, "target_mean", mean)
        object.__setattr__(self, "target_std", std)

    def check_dataset(self, info) -> None:
        """The dataset must be a regression one, with D = `num_targets` targets if set."""
        if info.task != "regression":
            raise ValueError(
                f"`config.task.name`={self.name!r} needs a regression dataset (numeric "
                f"targets), but the configured dataset's task is {info.task!r}."
            )
        if self.num_targets and info.num_classes != self.num_targets:
            raise ValueError(
                f"`config.task.num_targets`={self.num_targets}, but the dataset's targets have "
                f"{info.num_classes} values."
            )
        if self.target_mean and len(self.target_mean) != info.num_classes:
            raise ValueError(
                f"`config.task.target_mean` has {len(self.target_mean)} values, but the "
                f"dataset's targets have {info.num_classes}."
            )

    def bind_dataset(self, info) -> Regression:
        """This task with the dataset's target statistics filled in when normalising and the
        config gave none (`info.target_mean` / `info.target_std`)."""
        if not self.normalize or self.target_mean:
            return self
        if info.target_mean is None or info.target_std is None:
            raise ValueError(
                f"`config.task.normalize`=True needs the target statistics, but dataset task "
                f"{info.task!r} provides none; set `config.task.target_mean` and `target_std`."
            )
        # A constant target has std 0: divide by 1 instead (its normalised value is 0).
        std = tuple(float(s) if s > 0 else 1.0 for s in info.target_std)
        return dataclasses.replace(
            self, target_mean=tuple(float(m) for m in info.target_mean), target_std=std
        )

    def recorded_fields(self) -> dict:
        """The fields the run records in its config.json (the statistics it trained with)."""
        return {"target_mean": self.target_mean, "target_std": self.target_std}

    def _stats(self, width: int):
        if not self.normalize:
            return None
        if not self.target_mean:
            raise ValueError(
                "`normalize`=True but `target_mean`/`target_std` are empty: build the task "
                "with `bind_dataset(info)` (the training loop does) or set them."
            )
        if len(self.target_mean) != width:
            raise ValueError(
                f"The model predicts {width} values but `target_mean` has {len(self.target_mean)}."
            )
        return jnp.asarray(self.target_mean, jnp.float32), jnp.asarray(self.target_std, jnp.float32)

    def _check(self, outputs, batch):
        shape = getattr(outputs, "shape", None)
        if shape is None or len(shape) != 2:
            raise ValueError(
                f"`outputs` must be f[B, D] predictions, got "
                f"{shape if shape is not None else type(outputs).__name__}."
            )
        if self.num_targets and shape[1] != self.num_targets:
            raise ValueError(f"`outputs` must have D = {self.num_targets} columns, got {shape}.")
        labels = batch["label"]
        if getattr(labels, "shape", None) != tuple(shape):
            raise ValueError(
                f"`batch['label']` must be f{list(shape)} targets (the outputs' shape), got "
                f"{getattr(labels, 'shape', type(labels).__name__)}."
            )
        return labels.astype(jnp.float32)

    def predictions(self, outputs: jax.Array) -> jax.Array:
        """The model's outputs f[B, D] in the targets' original units: f32[B, D]."""
        outputs = jnp.asarray(outputs, jnp.float32)
        stats = self._stats(outputs.shape[-1])
        if stats is None:
            return outputs
        return outputs * stats[1] + stats[0]

    def _normalised_targets(self, targets):
        stats = self._stats(targets.shape[-1])
        return targets if stats is None else (targets - stats[0]) / stats[1]

    def loss(self, outputs, aux, batch):
        """outputs: f[B, D]; batch["label"]: f[B, D] targets in the original units."""
        del aux  # Unused: the loss is on the prediction alone.
        targets = self._check(outputs, batch)
        per_example = regression_loss(
            outputs, self._normalised_targets(targets), self.loss_type, self.delta
        )
        error = euclidean_error(self.predictions(outputs), targets)
        return per_example.mean(), {"mean_error": error.mean()}

    def eval_statistics(self, outputs, aux, batch):
        """Sums (count, loss, absolute error per dimension) and per-example errors."""
        del aux  # Unused.
        targets = self._check(outputs, batch)
        mask = batch["mask"].astype(jnp.float32)
        keep = mask > 0
        loss = regression_loss(
            outputs, self._normalised_targets(targets), self.loss_type, self.delta
        )
        predictions = self.predictions(outputs)
        return {
            "count": mask.sum(),
            "loss": jnp.where(keep, loss, 0.0).sum(),
            "abs_error": jnp.where(keep[:, None], jnp.abs(predictions - targets), 0.0).sum(0),
            "error": euclidean_error(predictions, targets),
            "mask": mask,
        }

    def accumulate(self, total, stats):
        """Sums the counts; concatenates the per-example errors (percentiles are not sums)."""
        return accumulate_with_examples(total, stats, _PER_EXAMPLE)

    def finalize(self, total):
        """{"mean_error", "median_error", "p90_error" (Euclidean, original units), "loss",
        "mae/<k>" per dimension, "count"}; NaN errors when the split held no example."""
        errors = np.asarray(total["error"])[np.asarray(total["mask"]) > 0]
        count = float(total["count"])
        denominator = max(count, 1.0)
        metrics = {
            "mean_error": float(errors.mean()) if errors.size else math.nan,
            "median_error": float(np.median(errors)) if errors.size else math.nan,
            "p90_error": float(np.percentile(errors, 90)) if errors.size else math.nan,
            "loss": float(total["loss"]) / denominator,
            "count": count,
        }
        for k, value in enumerate(np.asarray(total["abs_error"]).reshape(-1)):
            metrics[f"mae/{k}"] = float(value) / denominator
        return metrics


@register_task("gaze")
@dataclasses.dataclass(frozen=True)
class Gaze(Regression):
    """Gaze estimation: a 2-D gaze point (x, y), e.g. on a screen in centimetres from the
    camera (GazeCapture's convention), trained with the smooth-L1 loss on normalised
    targets. A `Regression` with D = 2 required."""

    loss_type: str = "smooth_l1"
    num_targets: int = 2
    name: str = "gaze"
