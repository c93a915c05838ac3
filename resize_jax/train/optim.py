"""Optimizers from the config: SGD+momentum or AdamW, warmup + cosine, masked weight decay,
clipping, per-part learning-rate multipliers, freezing by parameter path, accumulation.

Parameter paths are '/'-joined keys of the params tree ("frontend/conv_in/kernel"). A rule
names a path prefix ("frontend", "backbone", "frontend/saliency_net") and applies to every
parameter under it; where several rules match, the longest prefix wins.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import optax

OPTIMIZERS = ("sgd", "adamw")
SCHEDULES = ("cosine", "constant")


def path_of(key_path) -> str:
    """'/'-joined names of a jax key path."""
    return "/".join(str(getattr(k, "key", getattr(k, "name", k))) for k in key_path)


def _matches(path: str, prefix: str) -> bool:
    return path == prefix or path.startswith(prefix.rstrip("/") + "/")


def parse_multipliers(spec: Any, field: str = "optimizer.lr_multipliers") -> dict[str, float]:
    """Accepts "a/b:0.1,c:2", {"a/b": 0.1} or (("a/b", 0.1), ...) → {"a/b": 0.1}."""
    if not spec:
        return {}
    if isinstance(spec, str):
        pairs = []
        for item in filter(None, (s.strip() for s in spec.split(","))):
            if ":" not in item:
                raise ValueError(
                    f"`{field}` entries must look like 'path:multiplier', got {item!r}."
                )
            path, value = item.rsplit(":", 1)
            pairs.append((path.strip(), value))
    elif isinstance(spec, Mapping):
        pairs = list(spec.items())
    else:
        pairs = list(spec)
    out = {}
    for path, value in pairs:
        try:
            out[str(path)] = float(value)
        except (TypeError, ValueError) as error:
            raise ValueError(
                f"`{field}` multiplier for {path!r} must be a number, got {value!r}."
            ) from error
    return out


def parse_paths(spec: Any) -> tuple[str, ...]:
    """Accepts "frontend,backbone/head" or a sequence of prefixes."""
    if not spec:
        return ()
    if isinstance(spec, str):
        return tuple(filter(None, (s.strip() for s in spec.split(","))))
    if isinstance(spec, Sequence):
        return tuple(str(s) for s in spec)
    raise ValueError(f"Parameter path prefixes must be a string or a list, got {spec!r}.")


def is_frozen(path: str, frozen: Sequence[str]) -> bool:
    return any(_matches(path, prefix) for prefix in frozen)


def check_prefixes_exist(params, prefixes: Sequence[str], field: str) -> None:
    """Every rule must name at least one parameter, so a typo is not silently ignored."""
    paths = [path_of(p) for p, _ in jax.tree_util.tree_leaves_with_path(params)]
    for prefix in prefixes:
        if not any(_matches(p, prefix) for p in paths):
            tops = sorted({p.split("/")[0] for p in paths})
            raise ValueError(
                f"`{field}` names {prefix!r}, which matches no parameter; top-level parts: {tops}."
            )


def _multiplier_tree(params, multipliers: Mapping[str, float], frozen: Sequence[str]):
    def lookup(key_path, _):
        path = path_of(key_path)
        if is_frozen(path, frozen):
            return 0.0
        best = max((p for p in multipliers if _matches(path, p)), key=len, default=None)
        return 1.0 if best is None else multipliers[best]

    return jax.tree_util.tree_map_with_path(lookup, params)


def _scale_by_tree(factors) -> optax.GradientTransformation:
    def update_fn(updates, state, params=None):
        del params  # Unused.
        return jax.tree.map(lambda u, f: u * jnp.asarray(f, u.dtype), updates, factors), state

    return optax.GradientTransformation(lambda _: optax.EmptyState(), update_fn)


def make_schedule(config, num_train_steps: int) -> optax.Schedule:
    """Warmup (linear from 0) then cosine to 0, or constant after warmup, in optimizer steps."""
    name = config.get("schedule", "cosine")
    if name not in SCHEDULES:
        raise ValueError(f"`optimizer.schedule` must be one of {list(SCHEDULES)}, got {name!r}.")
    peak = float(config.learning_rate)
    warmup = int(config.get("warmup_steps", 0))
    steps = max(num_train_steps // int(config.get("accumulation_steps", 1)), 1)
    if name == "constant":
        return (
            optax.join_schedules(
                [optax.linear_schedule(0.0, peak, max(warmup, 1)), optax.constant_schedule(peak)],
                [warmup],
            )
            if warmup
            else optax.constant_schedule(peak)
        )
    return optax.warmup_cosine_decay_schedule(0.0, peak, warmup, max(steps, warmup + 1), 0.0)


def make_optimizer(config, params, num_train_steps: int):
    """Builds `(tx, schedule)` from `config` (the `optimizer` ConfigDict) for `params`.

    Fields: name ("sgd" | "adamw"), learning_rate, schedule, warmup_steps, momentum,
    nesterov, b1, b2, weight_decay, grad_clip_norm (0 = off), lr_multipliers, freeze,
    accumulation_steps.
    """
    name = config.name
    if name not in OPTIMIZERS:
        raise ValueError(f"`optimizer.name` must be one of {list(OPTIMIZERS)}, got {name!r}.")
    schedule = make_schedule(config, num_train_steps)
    multipliers = parse_multipliers(config.get("lr_multipliers", ""))
    frozen = parse_paths(config.get("freeze", ""))
    check_prefixes_exist(params, list(multipliers), "optimizer.lr_multipliers")
    check_prefixes_exist(params, frozen, "optimizer.freeze")

    # Decay kernels only: biases, BatchNorm scales/offsets and PReLU slopes are 1-D.
    decay_mask = jax.tree.map(lambda p: p.ndim > 1, params)
    parts = []
    if config.get("grad_clip_norm", 0.0):
        parts.append(optax.clip_by_global_norm(float(config.grad_clip_norm)))
    weight_decay = float(config.get("weight_decay", 0.0))
    if name == "sgd":
        if weight_decay:
            parts.append(optax.add_decayed_weights(weight_decay, decay_mask))
        momentum = float(config.get("momentum", 0.9))
        if momentum:
            parts.append(optax.trace(momentum, nesterov=bool(config.get("nesterov", False))))
    else:
        parts.append(
            optax.scale_by_adam(float(config.get("b1", 0.9)), float(config.get("b2", 0.999)))
        )
        if weight_decay:
            parts.append(optax.add_decayed_weights(weight_decay, decay_mask))
    parts.append(optax.scale_by_learning_rate(schedule))
    if multipliers or frozen:
        # A frozen parameter's update is multiplied by exactly 0, so it stays bit-identical
        # (p + 0 == p); a multiplier scales the learning rate of its part.
        parts.append(_scale_by_tree(_multiplier_tree(params, multipliers, frozen)))
    tx = optax.chain(*parts)
    accumulation = int(config.get("accumulation_steps", 1))
    if accumulation > 1:
        tx = optax.MultiSteps(tx, every_k_schedule=accumulation)
    return tx, schedule
