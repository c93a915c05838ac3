"""Tasks: losses and metrics per task, behind one interface the training loop calls."""

from resize_jax.tasks.base import (
    HeadlineMetric,
    Task,
    get_task,
    register_task,
    task_class,
    task_names,
)
from resize_jax.tasks.classification import Classification, smoothed_cross_entropy, topk_correct
from resize_jax.tasks.iqa import ImageQuality, emd_loss, mean_scores
from resize_jax.tasks.regression import Gaze, Regression, euclidean_error, regression_loss
from resize_jax.tasks.segmentation import Segmentation, full_resolution_logits

__all__ = [
    "Classification",
    "Gaze",
    "HeadlineMetric",
    "ImageQuality",
    "Regression",
    "Segmentation",
    "Task",
    "emd_loss",
    "euclidean_error",
    "full_resolution_logits",
    "get_task",
    "mean_scores",
    "register_task",
    "regression_loss",
    "smoothed_cross_entropy",
    "task_class",
    "task_names",
    "topk_correct",
]
