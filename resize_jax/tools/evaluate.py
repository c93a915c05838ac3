"""Evaluates a trained run's newest checkpoint, without training.

    python -m resize_jax.tools.evaluate --workdir runs/mine
    python -m resize_jax.tools.evaluate --workdir runs/mine --split 'test[:200]'

The model and the data come from the workdir's `config.json` (the split defaults to the run's
`eval_split`); the result goes to `<workdir>/eval_<split>_step<N>.json` ({"step", "split",
"metrics", ...}) and one printed line. `metrics.jsonl` is left as training wrote it. Every
example of the split is counted once, as in training's evaluation.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import types
from collections.abc import Sequence

from resize_jax import console

if __name__ == "__main__":
    console.import_tensorflow_quietly()

import jax

from resize_jax import data
from resize_jax.data.config import resolve
from resize_jax.train import build, sharding
from resize_jax.train.loop import evaluate as evaluate_split
from resize_jax.train.state import TrainState
from resize_jax.train.step import make_eval_step
from resize_jax.train.workdir import describe, load_run


def result_path(workdir: str, split: str, step: int) -> str:
    """`<workdir>/eval_<split>_step<step>.json`, the split's characters made file-safe."""
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", split).strip("_") or "split"
    return os.path.join(workdir, f"eval_{safe}_step{step}.json")


def evaluate(workdir: str, split: str | None = None, batch_size: int | None = None) -> dict:
    """Evaluates `workdir`'s newest checkpoint on `split` and writes the result file.

    Args:
      workdir: a run's directory (config.json and a checkpoint).
      split: a TFDS-style split of the run's dataset; None: the run's `data.eval_split`.
      batch_size: global eval batch; None: the run's `eval_batch_size`.

    Returns:
      {"step", "split", "metrics": {name: value}, "frontend", "file": the written path}.

    Raises:
      ValueError: naming the workdir, split or batch size that cannot be used.
    """
    run = load_run(workdir)
    config = run.config
    data_config = config.data
    if split is not None:
        if not isinstance(split, str) or not split:
            raise ValueError(f"`split` must be a non-empty split name, got {split!r}.")
        data_config = data_config.copy_and_resolve_references()
        data_config.unlock()
        data_config.eval_split = split
    mesh = sharding.make_mesh(1)  # The restored variables live on one device.
    batch = int(batch_size or config.eval_batch_size)
    if batch < 1:
        raise ValueError(f"`batch_size` must be a positive int, got {batch_size!r}.")
    info = data.get_info(data_config)
    task = build.build_task(config)
    task.check_dataset(info)
    eval_step = jax.jit(make_eval_step(run.model, task))
    eval_config = types.SimpleNamespace(data=data_config, eval_batch_size=batch)
    state = TrainState(
        step=jax.numpy.asarray(run.step),
        params=run.variables["params"],
        batch_stats=run.variables.get("batch_stats", {}),
        opt_state=(),  # No optimizer: evaluation reads the variables only.
    )
    metrics = evaluate_split(eval_step, state, task=task, config=eval_config, mesh=mesh)
    split_name = resolve(data_config).eval_split
    result = {
        "step": run.step,
        "split": split_name,
        "metrics": metrics,
        "frontend": describe(config),
        "dataset": config.data.name,
    }
    path = result_path(workdir, split_name, run.step)
    with open(path, "w") as f:
        json.dump(result, f, indent=2)
    return {**result, "file": path}


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m resize_jax.tools.evaluate", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--workdir", required=True, help="a trained run's workdir")
    parser.add_argument(
        "--split", default=None, help="split to evaluate (default: the run's eval_split)"
    )
    parser.add_argument(
        "--batch_size", type=int, default=None, help="eval batch (default: the run's)"
    )
    console.add_verbosity_argument(parser)
    args = parser.parse_args(argv)
    console.quiet_logging(args.verbosity)
    try:
        result = evaluate(args.workdir, args.split, args.batch_size)
    except ValueError as error:
        parser.exit(2, f"error: {error}\n")
    metrics = ", ".join(f"{k} {v:.4g}" for k, v in result["metrics"].items())
    print(
        f"{args.workdir} ({result['frontend']}), step {result['step']}, "
        f"split {result['split']!r}: {metrics}; wrote {result['file']}"
    )


if __name__ == "__main__":
    main(sys.argv[1:])
