"""From a config to the objects the loop runs: model, task, and up-front config checks.

Every check here runs before anything is compiled, and its error names the config field.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from resize_jax import frontends, models, tasks
from resize_jax.frontends.registry import NO_FRONTEND
from resize_jax.frontends.saliency_trunk import get_saliency_net
from resize_jax.models import pretrained
from resize_jax.ops.checks import check_size_pair
from resize_jax.train.optim import OPTIMIZERS
from resize_jax.train.sharding import check_sharding_config

DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}
PRNG_IMPLS = ("rbg", "threefry2x32", "unsafe_rbg")


# Config fields that say where weights come from, not how a module is built.
WEIGHT_FIELDS = (
    "weights",
    "weights_source",
    "saliency_net_weights",
    "saliency_net_weights_source",
)


def _kwargs(section) -> dict:
    return {k: v for k, v in section.items() if k != "name" and k not in WEIGHT_FIELDS}


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
        kwargs = _kwargs(config.frontend)
        if isinstance(kwargs.get("saliency_net"), str):  # "resnet18_layer3"
            kwargs["saliency_net"] = get_saliency_net(kwargs["saliency_net"], dtype=dtype)
        frontend = frontends.get_frontend(config.frontend.name, **kwargs, dtype=dtype)
    # A pretrained backbone computes as its framework does (BatchNorm epsilon and momentum)
    # and sees inputs normalised as there.
    source = config.model.get("weights_source", "")
    fields = pretrained.model_fields(source, config.model.name) if source else {}
    normalise = pretrained.preprocessing(source, config.model.name) if source else {}
    backbone = models.get_model(
        config.model.name,
        num_classes=info.num_classes,
        **{**_kwargs(config.model), **fields},
        dtype=dtype,
    )
    return models.FrontEndModel(
        frontend=frontend,
        backbone=backbone,
        input_mean=normalise.get("mean"),
        input_std=normalise.get("std"),
    )


def build_task(config, model: models.FrontEndModel | None = None, info=None) -> tasks.Task:
    """The task of `config.task`, bound to `model` when given (`Task.for_model`) and completed
    from the dataset's `info` when given (e.g. the regression targets' statistics,
    `Task.bind_dataset`)."""
    task = tasks.get_task(config.task.name, **_kwargs(config.task))
    if info is not None:
        task = task.bind_dataset(info)
    return task if model is None else task.for_model(model)


def recorded_config(config, task: tasks.Task):
    """`config` as the run records it in config.json: a copy with what the task took from
    the dataset (`Task.recorded_fields`) written into `config.task`."""
    fields = task.recorded_fields()
    if not fields:
        return config
    config = config.copy_and_resolve_references()
    with config.unlocked():
        for key, value in fields.items():
            config.task[key] = value
    return config


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
    if config.model.get("weights_source") or config.model.get("weights"):
        source = config.model.get("weights_source", "")
        if source not in pretrained.SOURCES:
            raise ValueError(
                f"`config.model.weights_source` must be one of {list(pretrained.SOURCES)} "
                f"when `config.model.weights` is set, got {source!r}."
            )
        pretrained.recipe(source, config.model.name)
    if config.get("init_from") and not config.get("init_parts"):
        raise ValueError("`config.init_parts` must name the parts to load from `init_from`.")
