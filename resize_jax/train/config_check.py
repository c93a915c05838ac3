"""One validation pass over a training config, run before anything is written to the workdir.

Each field of the shared training section has a type and a range (`FIELDS`); the front-end
and backbone sections must only name fields their module has. Errors name the field as it
is written on the command line (`config.optimizer.learning_rate`), what it got and what was
expected. Checks that need the dataset or the device count live in `build.validate_config`;
the modules' own checks run when the model is first traced, under `naming_fields`, which
names their arguments as config fields.
"""

from __future__ import annotations

import contextlib
import dataclasses
import difflib
import functools
import math
import numbers
import re
from collections.abc import Callable

import numpy as np

from resize_jax.train.optim import SCHEDULES
from resize_jax.train.sharding import SHARDINGS

_F32_MAX = float(np.finfo(np.float32).max)


def _integer(value) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _real(value) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def integer(low: int | None = None) -> Callable[[object], str | None]:
    def check(value):
        if not _integer(value):
            return "an integer"
        if low is not None and value < low:
            return f"an integer >= {low}"
        return None

    return check


def real(low=-math.inf, high=math.inf, *, high_open=False) -> Callable[[object], str | None]:
    """A finite number (representable in float32: parameters and optimizer state are f32)
    in [low, high] (or [low, high) with `high_open`)."""
    bracket = ")" if high_open else "]"

    def check(value):
        wanted = f"a finite number in [{low}, {high}{bracket}"
        if not _real(value) or not math.isfinite(float(value)) or abs(value) > _F32_MAX:
            return wanted + " (representable in float32)"
        if value < low or value > high or (high_open and value == high):
            return wanted
        return None

    return check


def boolean(value) -> str | None:
    return None if isinstance(value, bool | np.bool_) else "True or False"


def string(value) -> str | None:
    return None if isinstance(value, str) else "a string"


def choice(*options) -> Callable[[object], str | None]:
    return lambda value: None if value in options else f"one of {list(options)}"


# The training fields shared by every config (`config_args.training_defaults`): each with
# what it must be. Absent fields keep their defaults and are not checked.
FIELDS: dict[str, Callable[[object], str | None]] = {
    "seed": integer(),
    "batch_size": integer(1),
    "eval_batch_size": integer(1),
    "num_train_steps": integer(0),
    "log_every_steps": integer(1),
    "eval_every_steps": integer(0),
    "checkpoint_every_steps": integer(0),
    "keep_checkpoints": integer(1),
    "preemption_check_every_steps": integer(1),
    "init_from": string,
    "init_parts": string,
    "resume_changes": string,
    "num_devices": integer(-1),
    "sharding": choice(*SHARDINGS),
    "fsdp_min_size_mb": real(0.0),
    "optimizer.learning_rate": real(0.0),
    "optimizer.warmup_steps": integer(0),
    "optimizer.schedule": choice(*SCHEDULES),
    "optimizer.momentum": real(0.0, 1.0, high_open=True),
    "optimizer.nesterov": boolean,
    "optimizer.b1": real(0.0, 1.0, high_open=True),
    "optimizer.b2": real(0.0, 1.0, high_open=True),
    "optimizer.weight_decay": real(0.0),
    "optimizer.grad_clip_norm": real(0.0),
    "optimizer.lr_multipliers": string,
    "optimizer.freeze": string,
    "optimizer.accumulation_steps": integer(1),
    "distributed.enabled": boolean,
}


def _lookup(config, dotted: str):
    node = config
    for part in dotted.split("."):
        if not hasattr(node, "get") or part not in node:
            return _ABSENT
        node = node[part]
    return node


_ABSENT = object()


def check_fields(config) -> None:
    """Checks every field of `FIELDS` present in `config`.

    Raises:
      ValueError: "`config.<field>` must be <expected>, got <value>."
    """
    for dotted, check in FIELDS.items():
        value = _lookup(config, dotted)
        if value is _ABSENT:
            continue
        wanted = check(value)
        if wanted is not None:
            raise ValueError(f"`config.{dotted}` must be {wanted}, got {value!r}.")
    if config.get("num_devices", -1) == 0:
        raise ValueError("`config.num_devices` must be -1 (every device) or >= 1, got 0.")


def _module_fields(factory) -> set[str]:
    keywords = {}
    while isinstance(factory, functools.partial):
        keywords.update(factory.keywords)
        factory = factory.func
    return {f.name for f in dataclasses.fields(factory) if f.init} | set(keywords)


def check_section_names(section_name: str, section, factory, kind: str) -> None:
    """Every key of `config.<section_name>` (but `name`) must be a field of the module.

    Raises:
      ValueError: naming the unknown field, the closest known one and all known ones.
    """
    from resize_jax.train.build import WEIGHT_FIELDS

    known = (_module_fields(factory) - {"parent", "name"}) | set(WEIGHT_FIELDS)
    for key in section:
        if key == "name" or key in known:
            continue
        close = difflib.get_close_matches(key, sorted(known), n=1)
        hint = f" Did you mean `config.{section_name}.{close[0]}`?" if close else ""
        raise ValueError(
            f"`config.{section_name}.{key}` is not a field of {kind} "
            f"{section.name!r}.{hint} Known fields: {sorted(known)}."
        )


def check_config(config) -> None:
    """The whole pass over a training config; compiles and writes nothing.

    Raises:
      ValueError: naming the first bad field.
    """
    from resize_jax import frontends, models
    from resize_jax.train.build import NO_FRONTEND

    check_fields(config)
    if config.frontend.name != NO_FRONTEND and config.frontend.name in frontends.frontend_names():
        check_section_names(
            "frontend", config.frontend, frontends.frontend_class(config.frontend.name), "front-end"
        )
    if config.model.name in models.model_names():
        check_section_names("model", config.model, models.model_factory(config.model.name), "model")


@contextlib.contextmanager
def naming_fields(config):
    """Re-raises a module's ValueError about an argument (`method`) as one about the config
    field it came from (`config.frontend.method`), so the user knows what to change."""
    try:
        yield
    except ValueError as error:
        message = str(error)
        renamed = re.sub(r"`(\w+)`", functools.partial(_field_name, config), message)
        if renamed == message:
            raise
        raise ValueError(renamed) from error


def _field_name(config, match: re.Match) -> str:
    name = match.group(1)
    for section in ("frontend", "model", "task"):
        part = config.get(section)
        if part is not None and name != "name" and name in part:
            return f"`config.{section}.{name}`"
    return match.group(0)
