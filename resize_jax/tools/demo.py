"""`make demo`: the same small network behind six front-ends, side by side, on a laptop CPU.

    python -m resize_jax.tools.demo                      # what `make demo` runs
    python -m resize_jax.tools.demo --seeds 0,1,2,3,4 --runs bilinear,learned,saliency
    python -m resize_jax.tools.demo --runs bilinear,learned --steps 100 --out runs/quick

Generates `small_details` (128×128, 4000 train / 1000 test; see the README's Data section)
under `<out>/tensorflow_datasets` on first use, then trains `configs/default.py`'s small CNN
with the same seeds, steps (300), batch (32) and 32×32 task size behind: a fixed bilinear
resize (no antialiasing, the papers' baseline), a fixed antialiased bilinear resize (the fair
classical baseline), a fixed bicubic resize, the learned resizer, the saliency sampler
(antialiased sampling, blur pretraining over the first quarter), and no front-end at all (the
network on the 128×128 input: the upper bound, trained for the first seed only unless
`--full_res_all_seeds`, as it costs as much as the five others together).

Then, on real images: `cluttered_digits` (a handwritten digit scan among fragments of others,
from images that ship with scikit-learn), the antialiased resize against the saliency
sampler, 1000 steps, first seed, into `<out>/cluttered_digits/` with its own results.md and
figures (`--real_dataset ""` skips it; `--real_runs`, `--real_seeds`, `--real_steps`).

Progress: one line per run and per 25 steps, each with the demo's elapsed time and ETA.
Each run is an ordinary workdir `<out>/<run>_seed<k>` (config.json, metrics.jsonl,
checkpoint), so `python -m resize_jax.tools.report <out>` rebuilds the same `results.md`,
`results.json` and figures from them, and `python -m resize_jax.tools.apply --workdir
<out>/learned_seed0 ...` runs a trained front-end on other images. A finished run with the
same config is reused (running the demo again only redraws); one with another config is
retrained.
"""

from __future__ import annotations

import argparse
import json
import logging as std_logging
import os
import shutil
import sys
import time
from collections.abc import Sequence

from absl import logging

# Run name → its configs/default.py argument; the runs' labels are the front-ends' own
# (`resize_jax.frontends.describe_frontend`), their table order the report's.
RUNS = {
    "bilinear": "frontend=fixed,method=bilinear",
    "bilinear_aa": "frontend=fixed,method=bilinear,antialias=true",
    "bicubic": "frontend=fixed,method=bicubic",
    "learned": "frontend=learned",
    "saliency": "frontend=saliency",
    "full_res": "frontend=none",
}
# The sampler is the default experiment's (resize_jax.train.default_config): the paper's
# Gaussian (FWHM 13 cells, 31×31 grid) and blur (σ up to 3 px) over the first quarter of the
# steps, with antialiased sampling, without which it starts zooming anywhere from step 100
# to not at all (README, Demo section).
# The real-image part: `cluttered_digits` (a small real handwritten digit among fragments of
# others), the antialiased baseline against the saliency sampler, first seed only; it needs
# more steps than small_details before any front-end reads the digit (benchmarks/
# real_images.py has every front-end over two seeds).
REAL_DATASET = "cluttered_digits"
REAL_RUNS = ("bilinear_aa", "saliency")
REAL_STEPS = 1000
# Training cost per image (CPU milliseconds, forward + backward, measured on a 2-core x86 VM)
# and a fixed cost per run (start-up, compilation, evaluation), in CPU seconds: only for the
# demo's overall ETA before the first run has finished.
_COST_MS = {"fixed": 2.2, "saliency": 2.4, "learned": 17.0, "none": 35.0}
_RUN_OVERHEAD_S = 17.0


def make_config(run: str, args: argparse.Namespace, seed: int):
    """The config of demo run `run` for `seed`: configs/default.py plus the demo's settings."""
    from resize_jax.train import default_config

    config = default_config.get_config(f"{RUNS[run]},task_size={args.task_size}")
    if args.model != "small_cnn":
        from resize_jax.config_args import model_section

        config.model = model_section(args.model)
    config.seed = seed
    config.data.name = args.dataset
    data_dir = args.data_dir or os.path.join(args.out, "tensorflow_datasets")
    config.data.data_dir = os.path.abspath(data_dir)
    config.num_train_steps = args.steps
    config.num_devices = args.num_devices
    config.batch_size = args.batch_size
    config.eval_batch_size = args.eval_batch_size
    config.log_every_steps = max(1, min(args.log_every, args.steps))
    # A few evaluations for the learning curves; a checkpoint at the end only.
    config.eval_every_steps = max(1, args.steps // args.num_evals) if args.num_evals > 1 else 0
    config.checkpoint_every_steps = 0
    config.keep_checkpoints = 1
    config.optimizer.learning_rate = args.learning_rate
    config.optimizer.warmup_steps = min(50, args.steps // 10)
    if config.frontend.name in ("learned", "saliency") and args.frontend_lr_multiplier != 1.0:
        config.optimizer.lr_multipliers = f"frontend:{args.frontend_lr_multiplier:g}"
    return config


def _finished(workdir: str, config) -> bool:
    """Whether `workdir` holds this exact config, trained and evaluated to its last step."""
    from resize_jax.train.writer import read_metrics

    path = os.path.join(workdir, "config.json")
    if not os.path.exists(path):
        return False
    with open(path) as f:
        if json.load(f) != json.loads(config.to_json_best_effort()):
            return False
    return any(
        r.get("step") == config.num_train_steps and "eval/top1" in r for r in read_metrics(workdir)
    )


def _cost(config) -> float:
    """Estimated CPU seconds of a run (for the ETA only)."""
    per_image = _COST_MS.get(config.frontend.name, _COST_MS["learned"]) / 1000
    return _RUN_OVERHEAD_S + per_image * config.num_train_steps * config.batch_size


def _clock(seconds: float) -> str:
    seconds = max(0, int(seconds))
    return f"{seconds // 60}:{seconds % 60:02d}"


class _DemoProgress:
    """Overall progress: appends the demo's position and ETA to the loop's step lines."""

    def __init__(self, costs: Sequence[float]):
        self.costs = list(costs)
        self.index = 0
        self.start = time.perf_counter()
        self.fraction_of_run = 0.0

    def done_cost(self) -> float:
        return sum(self.costs[: self.index]) + self.costs[self.index] * self.fraction_of_run

    def eta(self) -> str:
        done, total = self.done_cost(), sum(self.costs)
        if done <= 0:
            return "?"
        return _clock((time.perf_counter() - self.start) * (total - done) / done)

    def filter(self, record) -> bool:
        # Libraries' INFO chatter (orbax, clu's metric lines, TFDS) would bury the progress:
        # keep this package's lines and every warning.
        if record.levelno < std_logging.WARNING and "resize_jax" not in record.pathname:
            return False
        # absl logs the loop's progress as "step %d/%d  loss ... ETA %s".
        if isinstance(record.msg, str) and record.msg.startswith("step %d/%d"):
            step, steps = record.args[0], record.args[1]
            self.fraction_of_run = step / max(steps, 1)
            record.msg += "  | demo run %d/%d, elapsed %s, demo ETA %s"
            record.args = (
                *record.args,
                self.index + 1,
                len(self.costs),
                _clock(time.perf_counter() - self.start),
                self.eta(),
            )
        return True


def _use_compilation_cache(out: str) -> None:
    """Persistent XLA cache under `out` (unless one is configured): each seed's runs have the
    same programs as the first seed's, so they skip compilation (~10 s a run on 2 cores)."""
    import jax

    if not jax.config.jax_compilation_cache_dir:
        jax.config.update("jax_compilation_cache_dir", os.path.join(os.path.abspath(out), ".xla"))


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m resize_jax.tools.demo", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--out", default="runs/demo", help="output directory")
    parser.add_argument("--runs", default=",".join(RUNS), help=f"subset of {list(RUNS)}")
    parser.add_argument("--seeds", default="0,1", help="comma-separated seeds")
    parser.add_argument(
        "--full_res_all_seeds",
        action="store_true",
        help="train the full-resolution upper bound for every seed (default: the first only; "
        "it costs as much as the other five runs together)",
    )
    parser.add_argument("--steps", type=int, default=300, help="training steps of every run")
    parser.add_argument("--batch_size", type=int, default=32)
    parser.add_argument(
        "--model",
        default="small_cnn",
        help='the task network, any registered backbone ("vit_ti16")',
    )
    parser.add_argument("--task_size", type=int, default=32, help="side of the network's input")
    parser.add_argument("--eval_batch_size", type=int, default=200)
    parser.add_argument("--learning_rate", type=float, default=3e-3)
    parser.add_argument(
        "--frontend_lr_multiplier", type=float, default=1.0, help="front-end lr multiplier"
    )
    parser.add_argument("--num_evals", type=int, default=3, help="evaluations per run")
    parser.add_argument("--log_every", type=int, default=25, help="steps between log lines")
    parser.add_argument("--dataset", default="small_details", help='e.g. "small_details/tiny"')
    parser.add_argument("--data_dir", default=None, help="default: <out>/tensorflow_datasets")
    parser.add_argument("--num_devices", type=int, default=-1, help="-1: every device")
    parser.add_argument(
        "--real_dataset",
        default=REAL_DATASET,
        help='the real-image part\'s dataset (e.g. "cluttered_digits/tiny"); "" skips it',
    )
    parser.add_argument("--real_runs", default=",".join(REAL_RUNS), help="its runs")
    parser.add_argument("--real_seeds", default="0", help="its seeds")
    parser.add_argument("--real_steps", type=int, default=REAL_STEPS, help="its steps")
    args = parser.parse_args(argv)
    for prefix in ("", "real_"):
        runs = [r.strip() for r in getattr(args, f"{prefix}runs").split(",") if r.strip()]
        unknown = sorted(set(runs) - set(RUNS))
        if unknown or not runs:
            parser.error(f"--{prefix}runs: unknown {unknown or runs}; known: {list(RUNS)}.")
        setattr(args, f"{prefix}runs", runs)
        text = getattr(args, f"{prefix}seeds")
        try:
            seeds = [int(s) for s in text.split(",") if s.strip()]
        except ValueError:
            parser.error(f"--{prefix}seeds must be comma-separated integers, got {text!r}.")
        if not seeds:
            parser.error(f"--{prefix}seeds must name at least one seed.")
        setattr(args, f"{prefix}seeds", seeds)
    if min(args.steps, args.real_steps, args.batch_size, args.task_size) < 1:
        parser.error(
            f"--steps, --real_steps, --batch_size and --task_size must be >= 1, got "
            f"{args.steps}, {args.real_steps}, {args.batch_size}, {args.task_size}."
        )
    from resize_jax import models

    if args.model not in models.model_names():
        parser.error(f"--model: unknown {args.model!r}; known: {models.model_names()}.")
    return args


def _part_args(args: argparse.Namespace, **changes) -> argparse.Namespace:
    """`args` for one part of the demo (its dataset, runs, seeds, steps and output folder);
    every part shares one TFDS data directory."""
    data_dir = args.data_dir or os.path.join(args.out, "tensorflow_datasets")
    return argparse.Namespace(**{**vars(args), "data_dir": data_dir, **changes})


def _train_part(args: argparse.Namespace, started: float):
    """Trains `args.runs` × `args.seeds` on `args.dataset` into `args.out`; returns the
    report's (results.md text, results.json dict)."""
    from resize_jax import data
    from resize_jax.frontends import describe_frontend
    from resize_jax.tools import report
    from resize_jax.train import train_and_evaluate

    plan = [
        (run, seed)
        for seed in args.seeds
        for run in args.runs
        if run != "full_res" or seed == args.seeds[0] or args.full_res_all_seeds
    ]
    configs = {key: make_config(key[0], args, key[1]) for key in plan}
    first = configs[plan[0]]
    logging.info(
        "demo: %d runs on %s (%s × seeds %s), %d steps × batch %d, into %s",
        len(plan),
        args.dataset,
        ", ".join(args.runs),
        ",".join(map(str, args.seeds)),
        args.steps,
        args.batch_size,
        os.path.abspath(args.out),
    )
    tick = time.perf_counter()
    logging.info("demo: preparing %s in %s ...", args.dataset, first.data.data_dir)
    info = data.get_info(first.data)
    logging.info(
        "demo: %s ready (%d train / %d test, %s) in %.0f s",
        args.dataset,
        info.num_train,
        info.num_eval,
        "×".join(map(str, info.image_shape)),
        time.perf_counter() - tick,
    )

    workdirs = {key: os.path.join(args.out, f"{key[0]}_seed{key[1]}") for key in plan}
    todo = [key for key in plan if not _finished(workdirs[key], configs[key])]
    progress = _DemoProgress([_cost(configs[key]) for key in todo] or [1.0])
    absl_logger = logging.get_absl_logger()
    absl_logger.addFilter(progress.filter)
    try:
        for key in plan:
            workdir, config = workdirs[key], configs[key]
            label = describe_frontend(config.frontend)
            if key not in todo:
                logging.info("demo: %s, seed %d: reusing %s (trained)", label, key[1], workdir)
                continue
            stale = os.path.join(workdir, "config.json")
            if os.path.exists(stale):
                with open(stale) as f:
                    if json.load(f) != json.loads(config.to_json_best_effort()):
                        logging.info("demo: %s was made with another config: retraining", workdir)
                        shutil.rmtree(workdir)
            progress.index, progress.fraction_of_run = todo.index(key), 0.0
            logging.info(
                "demo: run %d/%d: %s, seed %d (%s) ... elapsed %s, ETA of this part %s",
                progress.index + 1,
                len(todo),
                label,
                key[1],
                workdir,
                _clock(time.perf_counter() - started),
                progress.eta(),
            )
            tick = time.perf_counter()
            result = train_and_evaluate(config, workdir)
            if result.preempted:
                logging.warning("demo: stopped by SIGTERM; run it again to continue.")
                sys.exit(0)
            logging.info(
                "demo: %s, seed %d: test accuracy %.3f (%.0f s)",
                label,
                key[1],
                result.eval_metrics.get("top1", float("nan")),
                time.perf_counter() - tick,
            )
    finally:
        absl_logger.removeFilter(progress.filter)

    logging.info("demo: writing the table and figures of %s ...", args.dataset)
    return report.build_report([workdirs[k] for k in plan], args.out)


def main(argv: Sequence[str] | None = None) -> str:
    """Runs the demo; returns the main part's results.md text (both tables are printed)."""
    args = parse_args(argv)
    logging.set_verbosity(logging.INFO)
    started = time.perf_counter()
    os.makedirs(args.out, exist_ok=True)
    _use_compilation_cache(args.out)
    from resize_jax.tools import report

    parts = [_part_args(args)]
    if args.real_dataset:
        parts.append(
            _part_args(
                args,
                dataset=args.real_dataset,
                runs=args.real_runs,
                seeds=args.real_seeds,
                steps=args.real_steps,
                out=os.path.join(args.out, args.real_dataset.split("/")[0]),
            )
        )
    tables, markdown = [], ""
    for part in parts:
        text, results = _train_part(part, started)
        markdown = markdown or text
        tables.append(
            f"{part.dataset}, {part.steps} steps:\n\n{report.main_table(results['groups'])}"
        )
    print("\n" + "\n\n".join(tables) + "\n", flush=True)
    print(
        f"Demo finished in {_clock(time.perf_counter() - started)} (min:s). Results, figures and "
        f"runs: {os.path.abspath(args.out)}/ (results.md, results.json, *.png)"
        + (f" and {os.path.abspath(parts[1].out)}/" if len(parts) > 1 else ""),
        flush=True,
    )
    return markdown


if __name__ == "__main__":
    main(sys.argv[1:])
