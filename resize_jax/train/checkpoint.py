"""Orbax checkpoints: periodic async saves, keep-N, resume, fallback, partial init.

Resume order (the first that applies wins):
  1. the workdir's own latest checkpoint (a restarted or preempted run continues);
     if it cannot be read (truncated or corrupt), a warning names it and the previous
     checkpoint is tried, and so on;
  2. `config.init_from`: another run's workdir; only the top-level parts named in
     `config.init_parts` (e.g. "backbone", "frontend") are loaded, the rest stay fresh and
     the step and optimizer state start from scratch (two-stage training, resizer transfer);
  3. scratch.
"""

from __future__ import annotations

import os
from typing import Any

import jax
import numpy as np
import orbax.checkpoint as ocp
from absl import logging

from resize_jax.train.optim import parse_paths
from resize_jax.train.state import TrainState

CHECKPOINT_DIR = "checkpoints"


def make_manager(workdir: str, *, max_to_keep: int = 3) -> ocp.CheckpointManager:
    """Async-saving manager under `workdir/checkpoints`."""
    options = ocp.CheckpointManagerOptions(
        max_to_keep=max_to_keep, create=True, enable_async_checkpointing=True
    )
    return ocp.CheckpointManager(
        os.path.join(os.path.abspath(workdir), CHECKPOINT_DIR), options=options
    )


def save(manager: ocp.CheckpointManager, state: TrainState, *, force: bool = False) -> bool:
    """Saves `state` at its own step (asynchronously)."""
    step = int(jax.device_get(state.step))
    return manager.save(step, args=ocp.args.StandardSave(state), force=force)


def restore_latest(manager: ocp.CheckpointManager, abstract_state: TrainState) -> TrainState | None:
    """The newest readable checkpoint as `abstract_state`'s structure and shardings, or None."""
    for step in sorted(manager.all_steps(), reverse=True):
        try:
            state = manager.restore(step, args=ocp.args.StandardRestore(abstract_state))
        except Exception as error:  # Orbax raises many kinds of errors for a bad file.
            logging.warning(
                "Checkpoint at step %d in %s cannot be restored (%s: %s); "
                "falling back to the previous one.",
                step,
                manager.directory,
                type(error).__name__,
                error,
            )
            continue
        logging.info("Resumed from %s at step %d.", manager.directory, step)
        return state
    return None


def load_parts(init_from: str, parts: Any, state: TrainState) -> TrainState:
    """Replaces the top-level `parts` of `state`'s params and batch_stats with those of
    `init_from`'s latest checkpoint; everything else (step, optimizer) stays as in `state`.

    Raises:
      ValueError: naming `config.init_from` / `config.init_parts` when the run has no
        checkpoint, a part is missing, or shapes disagree.
    """
    parts = parse_paths(parts)
    if not parts:
        raise ValueError("`config.init_parts` must name at least one part when `init_from` is set.")
    directory = os.path.join(os.path.abspath(init_from), CHECKPOINT_DIR)
    if not os.path.isdir(directory):
        raise ValueError(f"`config.init_from`={init_from!r} has no {CHECKPOINT_DIR}/ directory.")
    with ocp.CheckpointManager(directory) as source:
        step = source.latest_step()
        if step is None:
            raise ValueError(f"`config.init_from`={init_from!r} holds no checkpoint.")
        loaded = source.restore(step, args=ocp.args.StandardRestore())
    new = {"params": dict(state.params), "batch_stats": dict(state.batch_stats or {})}
    for collection, target in new.items():
        source_tree = loaded.get(collection) or {}
        for part in parts:
            if part not in target:
                if collection == "params":
                    raise ValueError(
                        f"`config.init_parts` names {part!r}, not a top-level part of this "
                        f"model ({sorted(target)})."
                    )
                continue
            if part not in source_tree:
                raise ValueError(
                    f"`config.init_from`={init_from!r} has no {collection}/{part} to load."
                )
            target[part] = _cast_like(source_tree[part], target[part], f"{collection}/{part}")
    logging.info("Loaded %s from %s (step %d).", list(parts), init_from, step)
    return state.replace(params=new["params"], batch_stats=new["batch_stats"])


def _cast_like(source, target, where: str):
    source_struct = jax.tree.structure(source)
    if source_struct != jax.tree.structure(target):
        raise ValueError(f"`config.init_from`: {where} has a different structure than this model.")

    def cast(s, t):
        if tuple(np.shape(s)) != tuple(t.shape):
            raise ValueError(
                f"`config.init_from`: a {where} array has shape {np.shape(s)}, "
                f"this model expects {t.shape}."
            )
        return jax.device_put(np.asarray(s, dtype=t.dtype), t.sharding)

    return jax.tree.map(cast, source, target)
