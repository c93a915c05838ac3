"""A finished run, read back from its workdir alone: its config, model and trained variables.

A workdir written by `resize_jax.train.train_and_evaluate` holds `config.json` (the run's
config), `dataset.json` (the dataset's task, sizes and class names), `metrics.jsonl`,
TensorBoard events and `checkpoints/` (orbax). `load_run(workdir)` rebuilds the model
from the config and restores the newest checkpoint's parameters and batch statistics onto one
device, with no dataset needed: the class count is read from the checkpoint's shapes.
"""

from __future__ import annotations

import dataclasses
import json
import os
import types
from typing import Any

import jax
import ml_collections
import orbax.checkpoint as ocp
from absl import logging

from resize_jax.train import build
from resize_jax.train.checkpoint import CHECKPOINT_DIR, step_directory, verify_step

CONFIG_FILE = "config.json"
DATASET_FILE = "dataset.json"


def write_dataset_info(workdir: str, info) -> None:
    """Writes `workdir/dataset.json`: the `DatasetInfo` of the run's data (task, class count
    and names, split sizes, image shape), so that tools can name classes without the data."""
    record = {
        "task": info.task,
        "num_classes": int(info.num_classes),
        "class_names": list(info.class_names) if info.class_names else None,
        "num_train": int(info.num_train),
        "num_eval": int(info.num_eval),
        "image_shape": [int(v) for v in info.image_shape],
    }
    os.makedirs(workdir, exist_ok=True)
    with open(os.path.join(workdir, DATASET_FILE), "w") as f:
        json.dump(record, f, indent=2)


def read_class_names(workdir: str) -> tuple[str, ...] | None:
    """The class names a run was trained with (`dataset.json`), or None if unknown."""
    path = os.path.join(workdir, DATASET_FILE)
    if not os.path.exists(path):
        return None
    with open(path) as f:
        names = json.load(f).get("class_names")
    return tuple(names) if names else None


def load_config(workdir: str) -> ml_collections.ConfigDict:
    """`workdir/config.json` as a ConfigDict (lists become tuples, as the configs write them).

    Raises:
      ValueError: naming `workdir` when it is not a directory or has no readable config.json.
    """
    if not os.path.isdir(workdir):
        raise ValueError(f"`workdir`={workdir!r} is not a directory.")
    path = os.path.join(workdir, CONFIG_FILE)
    if not os.path.exists(path):
        raise ValueError(
            f"`workdir`={workdir!r} has no {CONFIG_FILE}: it is not a workdir written by "
            "resize_jax.train.train_and_evaluate (which saves the run's config there)."
        )
    try:
        with open(path) as f:
            raw = json.load(f)
    except (OSError, json.JSONDecodeError) as error:
        raise ValueError(f"`workdir`={workdir!r}: cannot read {path}: {error}") from error
    return ml_collections.ConfigDict(_tuples(raw))


def _tuples(value):
    # JSON has no tuples; configs hold sizes such as output_shape=(32, 32) as tuples.
    if isinstance(value, dict):
        return {k: _tuples(v) for k, v in value.items()}
    if isinstance(value, list):
        return tuple(_tuples(v) for v in value)
    return value


@dataclasses.dataclass
class TrainedRun:
    """A run restored from its workdir.

    Attributes:
      workdir: the run's directory.
      config: its config (from config.json).
      model: the `FrontEndModel` rebuilt from the config.
      variables: {"params": ..., "batch_stats": ...} of the newest checkpoint (one device).
      step: the checkpoint's training step.
      num_classes: the model's output classes (read from the checkpoint).
      image_size: (H, W) of the images the run was trained on (the data config's size).
      class_names: the dataset's class names (`dataset.json`), or None when unknown.
    """

    workdir: str
    config: ml_collections.ConfigDict
    model: Any
    variables: dict
    step: int
    num_classes: int
    image_size: tuple[int, int]
    class_names: tuple[str, ...] | None = None


def describe(config) -> str:
    """A short name of a run's front-end: "fixed bilinear (antialiased)", "learned resizer"
    (`resize_jax.frontends.describe_frontend`)."""
    from resize_jax.frontends import describe_frontend

    return describe_frontend(config.frontend)


def image_size(config) -> tuple[int, int]:
    """(H, W) of the high-resolution images a run's data pipeline delivers."""
    from resize_jax.data.config import resolve

    return tuple(int(v) for v in resolve(config.data).image_size)


def _restore_raw(workdir: str) -> tuple[int, dict]:
    directory = os.path.join(os.path.abspath(workdir), CHECKPOINT_DIR)
    steps, last_error = [], None
    if os.path.isdir(directory):
        handler = ocp.StandardCheckpointHandler()
        with ocp.CheckpointManager(directory, item_handlers=handler) as manager:
            steps = sorted(manager.all_steps(), reverse=True)
            # Restored onto one device whatever the saving run's mesh was.
            device = jax.sharding.SingleDeviceSharding(jax.devices()[0])
            for step in steps:
                problem = verify_step(step_directory(directory, step))
                if problem is not None:
                    # Read-only here: the checkpoint is left in place for the training run
                    # to quarantine, and the fallback is said aloud.
                    logging.warning(
                        "Checkpoint at step %d in %s is corrupt (%s); using an older one.",
                        step,
                        directory,
                        problem,
                    )
                    last_error = ValueError(problem)
                    continue
                try:
                    metadata = manager.item_metadata(step)
                    target = jax.tree.map(
                        lambda m: jax.ShapeDtypeStruct(m.shape, m.dtype, sharding=device),
                        dict(metadata),
                    )
                    return step, manager.restore(step, args=ocp.args.StandardRestore(target))
                except Exception as error:  # Orbax raises many kinds of errors for a bad file.
                    logging.warning(
                        "Checkpoint at step %d in %s is corrupt (%s: %s); using an older one.",
                        step,
                        directory,
                        type(error).__name__,
                        error,
                    )
                    last_error = error
            if steps:
                raise ValueError(
                    f"`workdir`={workdir!r}: no checkpoint in {directory} can be restored "
                    f"(newest error: {type(last_error).__name__}: {last_error})."
                )
    raise ValueError(
        f"`workdir`={workdir!r} holds no checkpoint ({directory} is missing or empty): "
        "train the run first (checkpoints are written at the end of training)."
    )


def _num_classes(config, params: dict, sample_shape: tuple[int, ...]) -> int:
    # Build the model with 1 class; the leaves whose last axis then differs from the
    # checkpoint's are the classifier's, and the checkpoint's last axis is the class count.
    model = build.build_model(config, types.SimpleNamespace(num_classes=1))
    spec = jax.ShapeDtypeStruct(sample_shape, "float32")
    abstract = jax.eval_shape(lambda x: model.init(jax.random.key(0), x), spec)["params"]
    counts = set()

    def compare(path, a, b):
        if tuple(a.shape) != tuple(b.shape) and a.shape[-1] == 1:
            counts.add(int(b.shape[-1]))

    try:
        jax.tree_util.tree_map_with_path(compare, abstract, params)
    except ValueError as error:
        raise ValueError(
            f"The checkpoint's parameters do not match the model that config.json describes "
            f"({error})."
        ) from error
    if len(counts) > 1:
        raise ValueError(f"Cannot tell the class count from the checkpoint: {sorted(counts)}.")
    return counts.pop() if counts else 1


def load_run(workdir: str) -> TrainedRun:
    """Rebuilds the model of `workdir` and restores its newest checkpoint.

    Raises:
      ValueError: naming `workdir` when it has no config.json or no readable checkpoint,
        or when the checkpoint does not fit the config's model.
    """
    config = load_config(workdir)
    step, raw = _restore_raw(workdir)
    params = raw.get("params") or {}
    size = image_size(config)
    num_classes = _num_classes(config, params, (1, *size, 3))
    model = build.build_model(config, types.SimpleNamespace(num_classes=num_classes))
    variables = {"params": params}
    if raw.get("batch_stats"):
        variables["batch_stats"] = raw["batch_stats"]
    return TrainedRun(
        workdir=workdir,
        config=config,
        model=model,
        variables=variables,
        step=int(step),
        num_classes=num_classes,
        image_size=size,
        class_names=read_class_names(workdir),
    )
