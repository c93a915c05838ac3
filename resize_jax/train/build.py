"""From a config to the objects the loop runs: model, task, and up-front config checks.

Every check here runs before anything is compiled, and its error names the config field.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from resize_jax import frontends, models, tasks
from resize_jax.ops.checks import check_size_pair
from resize_jax.train.optim import OPTIMIZERS
from resize_jax.train.sharding import check_sharding_config

DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}
PRNG_IMPLS = ("rbg", "threefry2x32", "unsafe_rbg")
NO_FRONTEND = "none"  # The backbone sees the full-resolution input (the upper bound).


def _kwargs(section) -> dict:
    return {k: v for k, v in section.items() if k != "name"}


def compute_dtype(config):
    name = config.get("dtype", "float32")
    if name not in DTYPES:
        raise ValueError(f"`config.dtype` must be one of {list(DTYPES)}, got {name!r}.")
    return DTYPES[name]


def build_model(config, info) -> models.FrontEndModel:
    """FrontEndModel(frontend from `config.frontend`, backbone from `config.model`)."""
    dtype = compute_dtype(config)
    frontend = None
    if config.frontend.name != NO_FRONTEND:
        frontend = frontends.get_frontend(
            config.frontend.name, **_kwargs(config.frontend), dtype=dtype
        )
    backbone = models.get_model(
        config.model.name, num_classes=info.num_classes, **_kwargs(config.model), dtype=dtype
    )
    return models.FrontEndModel(frontend=frontend, backbone=backbone)


def build_task(config, model: models.FrontEndModel | None = None) -> tasks.Task:
    """The task of `config.task`, bound to `model` when given (`Task.for_model`)."""
    task = tasks.get_task(config.task.name, **_kwargs(config.task))
    return task if model is None else task.for_model(model)


def validate_config(config, info, num_devices: int) -> None:
    """Raises ValueError naming the field for configs that cannot work; compiles nothing."""
    if config.optimizer.name not in OPTIMIZERS:
        raise ValueError(
            f"`config.optimizer.name` must be one of {list(OPTIMIZERS)}, "
            f"got {config.optimizer.name!r}."
        )
    names = [NO_FRONTEND, *frontends.frontend_names()]
    if config.frontend.name not in names:
        raise ValueError(
            f"`config.frontend.name` must be one of {names}, got {config.frontend.name!r}."
        )
    if config.model.name not in models.model_names():
        raise ValueError(
            f"`config.model.name` must be one of {models.model_names()}, got {config.model.name!r}."
        )
    if config.task.name not in tasks.task_names():
        raise ValueError(
            f"`config.task.name` must be one of {tasks.task_names()}, got {config.task.name!r}."
        )
    build_task(config).check_dataset(info)
    compute_dtype(config)
    check_sharding_config(config)
    if config.prng_impl not in PRNG_IMPLS:
        raise ValueError(
            f"`config.prng_impl` must be one of {list(PRNG_IMPLS)}, got {config.prng_impl!r}."
        )
    for field in ("batch_size", "eval_batch_size"):
        size = config[field]
        if size <= 0 or size % num_devices or size % jax.process_count():
            raise ValueError(
                f"`config.{field}`={size} must be a positive multiple of the device count "
                f"({num_devices}) and of the process count ({jax.process_count()})."
            )
    if config.num_train_steps < 0:
        raise ValueError(f"`config.num_train_steps` must be >= 0, got {config.num_train_steps}.")
    if config.frontend.name != NO_FRONTEND:
        check_size_pair(config.frontend.output_shape, "config.frontend.output_shape")
    if config.get("init_from") and not config.get("init_parts"):
        raise ValueError("`config.init_parts` must name the parts to load from `init_from`.")
