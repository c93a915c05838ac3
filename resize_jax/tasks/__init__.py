"""Tasks: losses and metrics per task, behind one interface the training loop calls."""

from resize_jax.tasks.base import Task, get_task, register_task, task_names
from resize_jax.tasks.classification import Classification, smoothed_cross_entropy, topk_correct

__all__ = [
    "Classification",
    "Task",
    "get_task",
    "register_task",
    "smoothed_cross_entropy",
    "task_names",
    "topk_correct",
]
