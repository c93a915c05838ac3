"""Converts a torchvision / timm / Keras weights file into an orbax checkpoint for train.py.

  python -m resize_jax.tools.convert --source torchvision --model resnet50 \\
      --weights resnet50-11ad3fa6.pth --out runs/resnet50_torchvision

writes `OUT/checkpoints/0` (the layout of a training run's workdir: "params" and
"batch_stats" under "backbone") and `OUT/pretrained.json` (source, model, classes and input
normalisation). Start a run from it with

  python train.py --config configs/imagenet_resizer.py --workdir runs/x \\
      --config.model.weights_source=torchvision \\
      --config.init_from=runs/resnet50_torchvision --config.init_parts='backbone,!backbone/head'

(`weights_source` gives the backbone the source's BatchNorm settings and input
normalisation; leave out `!backbone/head` when the classes are the same). Or skip this step:
`--config.model.weights=FILE --config.model.weights_source=torchvision` reads the file
directly. See docs/pretrained.md.
"""

from __future__ import annotations

import json
import os

import jax
import numpy as np
import orbax.checkpoint as ocp
from absl import app, flags, logging

from resize_jax.models import pretrained
from resize_jax.train import checkpoint

CHECKPOINT_DIR = "checkpoints"


def convert(
    name: str,
    weights: str,
    out: str,
    *,
    source: str,
    num_classes: int | None = None,
    **model_fields,
) -> str:
    """Writes `weights` as `out`'s step-0 checkpoint; returns the checkpoint directory.
    `model_fields` go to `pretrained.load` (e.g. a narrower variant's widths)."""
    model, variables = pretrained.load(
        name, weights, source=source, num_classes=num_classes, **model_fields
    )
    state = {
        "step": np.zeros((), np.int32),
        "params": {"backbone": jax.device_get(variables["params"])},
        "batch_stats": {"backbone": jax.device_get(variables["batch_stats"])},
    }
    directory = os.path.join(os.path.abspath(out), CHECKPOINT_DIR)
    options = ocp.CheckpointManagerOptions(create=True, enable_async_checkpointing=False)
    with ocp.CheckpointManager(directory, options=options) as manager:
        if manager.latest_step() is not None:
            raise ValueError(f"`out`={out!r} already holds a checkpoint; choose another folder.")
        manager.save(0, args=ocp.args.StandardSave(state))
        manager.wait_until_finished()
    # Checksums, as a training run writes them, so starting from it verifies the files.
    checkpoint.write_manifest(checkpoint.step_directory(directory, 0))
    record = {
        "source": source,
        "model": name,
        "weights": os.path.abspath(weights),
        "num_classes": model.num_classes,
        "model_fields": {**pretrained.model_fields(source, name), **model_fields},
        "preprocessing": pretrained.preprocessing(source, name),
    }
    with open(os.path.join(out, "pretrained.json"), "w") as f:
        json.dump(record, f, indent=2)
    logging.info("Wrote %s %s from %s to %s.", source, name, weights, directory)
    return directory


FLAGS = flags.FLAGS
flags.DEFINE_enum("source", None, list(pretrained.SOURCES), "The file's framework.")
flags.DEFINE_string("model", None, "A registered backbone name, e.g. resnet50.")
flags.DEFINE_string("weights", None, "The weights file (.pth, .safetensors, .weights.h5, ...).")
flags.DEFINE_string("out", None, "Output folder (a workdir-like folder with checkpoints/).")
flags.DEFINE_integer("num_classes", None, "Head size; default: the file's.")


def main(argv):
    del argv  # Unused.
    print(
        convert(
            FLAGS.model,
            FLAGS.weights,
            FLAGS.out,
            source=FLAGS.source,
            num_classes=FLAGS.num_classes,
        )
    )


if __name__ == "__main__":
    flags.mark_flags_as_required(["source", "model", "weights", "out"])
    app.run(main)
