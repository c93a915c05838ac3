"""The task interface: what the training loop asks of a task, and nothing task-specific.

A task turns the model's outputs into a training loss and into evaluation statistics. The
loop never branches on the task: classification, image quality and segmentation differ only
in the `Task` they plug in.

Evaluation is split in three so that it works over many batches and hosts:
`eval_statistics` runs inside the jitted eval step on one batch (it must honour
`batch["mask"]`, 0 for padding), `accumulate` folds a batch's statistics into a running
host-side value, and `finalize` turns the total into named scalars. The default accumulates
by summation, which suits counts and sums; tasks whose metrics are not sums (rank
correlations) override `accumulate` to concatenate.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, ClassVar, NamedTuple

import jax
import numpy as np

Array = jax.Array


class HeadlineMetric(NamedTuple):
    """The metric a task's results lead with (the report's table): its key in the run's
    metrics ("eval/top1"), its name for people, and whether "higher" or "lower" is better."""

    key: str
    name: str
    better: str

    @property
    def label(self) -> str:
        """The name, with "(lower is better)" where it is."""
        return self.name + (" (lower is better)" if self.better == "lower" else "")


class Task:
    """Base class of a task. Subclasses set `name` and implement `loss` and the eval trio.

    `headline_metric`: what the task's results lead with; the eval loss unless a task
    names a better one."""

    name: str = ""
    headline_metric: ClassVar[HeadlineMetric] = HeadlineMetric("eval/loss", "loss", "lower")

    def for_model(self, model) -> Task:
        """The task bound to `model` (a `FrontEndModel`), for tasks that need the model's
        own mappings (dense tasks: `model.to_input`); the loop calls it once. Default: self."""
        del model  # Unused.
        return self

    def check_dataset(self, info) -> None:
        """Raises ValueError if the dataset (a `resize_jax.data.DatasetInfo`) cannot feed this
        task; the loop calls it before compiling anything. The default accepts any dataset."""
        del info  # Unused.

    def bind_dataset(self, info) -> Task:
        """This task completed from the dataset (a `DatasetInfo`), e.g. with target statistics
        the config left empty; the loop calls it once before training. Default: unchanged."""
        del info  # Unused.
        return self

    def recorded_fields(self) -> dict[str, Any]:
        """Task fields the run records in its config.json beyond the config's own (what
        `bind_dataset` filled in), so a run rebuilt from its workdir has the same task."""
        return {}

    def loss(
        self, outputs: Array, aux: Mapping[str, Any], batch: Mapping[str, Array]
    ) -> tuple[Array, dict[str, Array]]:
        """Training loss (a scalar mean over the batch) and scalar training metrics."""
        raise NotImplementedError

    def eval_statistics(
        self, outputs: Array, aux: Mapping[str, Any], batch: Mapping[str, Array]
    ) -> dict[str, Array]:
        """Per-batch statistics, padding (mask 0) excluded; runs under jit."""
        raise NotImplementedError

    def accumulate(self, total: dict[str, np.ndarray] | None, stats: Mapping[str, np.ndarray]):
        """Folds one batch's host-side statistics into the running total (default: sums)."""
        if total is None:
            return {k: np.asarray(v, np.float64) for k, v in stats.items()}
        return {k: total[k] + np.asarray(v, np.float64) for k, v in stats.items()}

    def finalize(self, total: Mapping[str, np.ndarray]) -> dict[str, float]:
        """Named scalar metrics from the accumulated statistics."""
        raise NotImplementedError


_TASKS: dict[str, Callable[..., Task]] = {}


def accumulate_with_examples(total, stats, per_example: tuple[str, ...]):
    """`Task.accumulate` for tasks whose metrics are not sums of per-batch parts (rank
    correlations, percentiles): the `per_example` entries are concatenated over batches
    (f64[N]), every other entry is summed."""
    stats = {k: np.asarray(v, np.float64) for k, v in stats.items()}
    if total is None:
        return {k: v.reshape(-1) if k in per_example else v for k, v in stats.items()}
    return {
        k: np.concatenate([total[k], v.reshape(-1)]) if k in per_example else total[k] + v
        for k, v in stats.items()
    }


def register_task(name: str):
    """Class decorator: makes `get_task(name, **kwargs)` build the decorated task."""

    def decorate(cls):
        _TASKS[name] = cls
        return cls

    return decorate


def task_names() -> list[str]:
    return sorted(_TASKS)


def task_class(name: str) -> type[Task]:
    """The class registered as `name`; unknown names raise a ValueError listing them."""
    if name not in _TASKS:
        raise ValueError(f"Unknown task `name`={name!r}; known tasks: {task_names()}.")
    return _TASKS[name]


def get_task(name: str, **kwargs) -> Task:
    """Builds the task registered as `name`; unknown names raise a ValueError listing them."""
    return task_class(name)(**kwargs)
