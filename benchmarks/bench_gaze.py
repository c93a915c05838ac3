"""Gaze error of each front-end on `synthetic_gaze`: the same small CNN, seeds, steps and
32×32 task size behind a bilinear resize, an antialiased bilinear resize, the learned
resizer and the saliency sampler, and the full-resolution bound (the CNN on 128×128).

    python benchmarks/bench_gaze.py                          # the table in docs/gaze.md
    python benchmarks/bench_gaze.py --runs bilinear_aa,saliency --seeds 0 --steps 100
    python benchmarks/bench_gaze.py --report_only     # table and figure of the runs so far

Each run is `configs/gaze.py:<frontend>,runlocal` (4000 train / 1000 test images, 128×128,
batch 32, AdamW, smooth-L1 loss on normalised targets) trained with `train_and_evaluate`
into `<out>/<run>_seed<k>`; finished runs are reused, so an interrupted benchmark resumes
where it stopped, and two processes may share one `<out>` (say, `--seeds 0` and `--seeds 1`):
each adds its runs to `<out>/bench_gaze.json` as they finish. Writes `<out>/bench_gaze.json`
and `bench_gaze.md` (mean, median and 90th-percentile Euclidean error on the 1000 test
images, in cm, per run and seed, and their means over seeds, plus how much each saliency
sampler magnifies the eyes), and `<out>/gaze_saliency.png`: where the first seed's saliency
sampler samples on test images, with the eyes' centres carried into the sampled image by
`ops.warp_points`.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import pathlib
import time

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[1]
# name → (label, configs/gaze.py argument); the table's row order.
RUNS = {
    "bilinear": ("fixed bilinear", "frontend=fixed,method=bilinear"),
    "bilinear_aa": ("fixed bilinear, antialiased", "frontend=fixed,method=bilinear,antialias=true"),
    "saliency": ("saliency sampler", "frontend=saliency"),
    "learned": ("learned resizer", "frontend=learned"),
    "full_res": ("full resolution, no front-end", "frontend=none"),
}
METRICS = ("mean_error", "median_error", "p90_error")


def gaze_config(arg: str):
    spec = importlib.util.spec_from_file_location("gaze_config", ROOT / "configs" / "gaze.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.get_config(arg)


def make_config(run: str, seed: int, args):
    config = gaze_config(RUNS[run][1] + ",runlocal")
    config.seed = seed
    config.data.name = args.dataset
    config.data.data_dir = os.path.abspath(args.data_dir or os.path.join(args.out, "tfds"))
    config.num_train_steps = args.steps
    config.log_every_steps = max(1, args.steps // 6)
    config.keep_checkpoints = 1
    return config


def _finished(workdir: str, steps: int) -> dict | None:
    from resize_jax.train.writer import read_metrics

    if not os.path.isdir(workdir):
        return None
    for record in read_metrics(workdir):
        if record.get("step") == steps and "eval/mean_error" in record:
            return {k[5:]: v for k, v in record.items() if k.startswith("eval/")}
    return None


def _record(path: str, key: str, result: dict, args) -> dict:
    """Adds one run's result to `path` and returns all its runs. Rereads the file first, so
    two benchmark processes on the same `--out` (say, one per seed) keep each other's runs."""
    runs = {}
    if os.path.exists(path):
        with open(path) as f:
            runs = json.load(f)["runs"]
    runs[key] = result
    with open(path + ".tmp", "w") as f:
        json.dump({"steps": args.steps, "dataset": args.dataset, "runs": runs}, f)
    os.replace(path + ".tmp", path)
    return runs


def eye_magnification(workdir: str, config, count: int = 200) -> tuple[float, float]:
    """How much a trained saliency sampler magnifies the eyes of the first `count` test
    images: the distance between the two eye centres in the sampled image (`ops.warp_points`)
    over that distance after a uniform resize to the same size. Returns (median, fraction of
    images above 1)."""
    import jax.numpy as jnp
    import tensorflow_datasets as tfds

    from resize_jax import ops
    from resize_jax.train import workdir as workdir_reader

    run = workdir_reader.load_run(workdir)
    builder = tfds.builder(config.data.name, data_dir=config.data.data_dir)
    examples = list(builder.as_dataset(split=f"test[:{count}]").as_numpy_iterator())
    ratios = []
    for start in range(0, count, 50):
        chunk = examples[start : start + 50]
        images = jnp.asarray(np.stack([e["image"] for e in chunk]), jnp.float32) / 255.0
        eyes = jnp.asarray(np.stack([e["eyes"] for e in chunk]))
        _, aux = run.model.apply(run.variables, images, train=False)
        grid = aux["frontend"]["grid"]
        warped = np.asarray(ops.warp_points(eyes, grid))
        # In grid units both images span [-1, 1]: a uniform resize keeps the distance.
        ratios.extend(
            np.linalg.norm(warped[:, 1] - warped[:, 0], axis=-1)
            / np.linalg.norm(np.asarray(eyes[:, 1] - eyes[:, 0]), axis=-1)
        )
    ratios = np.asarray(ratios)
    return float(np.median(ratios)), float(np.mean(ratios > 1))


def gaze_figure(workdir: str, config, path: str, count: int = 6) -> None:
    """Saliency, grid and sampled image of the first `count` test images, the eye centres
    marked on the input and, through `ops.warp_points`, on the sampled image."""
    import jax.numpy as jnp
    import matplotlib.pyplot as plt
    import tensorflow_datasets as tfds

    from resize_jax import ops
    from resize_jax.tools import figures
    from resize_jax.train import workdir as workdir_reader

    run = workdir_reader.load_run(workdir)
    builder = tfds.builder(config.data.name, data_dir=config.data.data_dir)
    examples = list(builder.as_dataset(split=f"test[:{count}]").as_numpy_iterator())
    images = jnp.asarray(np.stack([e["image"] for e in examples]), jnp.float32) / 255.0
    eyes = jnp.asarray(np.stack([e["eyes"] for e in examples]))
    _, aux = run.model.apply(run.variables, images, train=False)
    saliency, grid = aux["frontend"]["saliency"], aux["frontend"]["grid"]
    if isinstance(grid, ops.SeparableGrid):
        grid = ops.separable_to_grid(grid)
    warped_eyes = np.asarray(ops.warp_points(eyes, grid))
    images, sampled = np.asarray(images), np.clip(np.asarray(aux["resized"]), 0, 1)
    height, width = images.shape[1:3]
    h, w = sampled.shape[1:3]
    fig, axes = plt.subplots(count, 3, figsize=(4.8, 1.6 * count + 0.5))
    for row in range(count):
        figures.draw_saliency(axes[row, 0], images[row], np.asarray(saliency[row]))
        figures.show(axes[row, 1], images[row])
        figures.draw_grid(axes[row, 1], np.asarray(grid[row]), height, width)
        figures.show(axes[row, 2], sampled[row])
        for col, points, (n_h, n_w) in (
            (1, np.asarray(eyes[row]), (height, width)),
            (2, warped_eyes[row], (h, w)),
        ):
            x = (points[:, 0] + 1) / 2 * (n_w - 1)
            y = (points[:, 1] + 1) / 2 * (n_h - 1)
            axes[row, col].plot(x, y, "+", color="cyan", markersize=5, markeredgewidth=0.8)
    for ax, title in zip(axes[0], ("saliency", "sampling grid", f"sampled {h}×{w}"), strict=True):
        ax.set_title(title, fontsize=8)
    fig.suptitle("synthetic_gaze: saliency sampler (+: eye centres)", fontsize=9)
    fig.tight_layout()
    figures.save(fig, path)


def table(results: dict, runs, seeds) -> str:
    lines = [
        "| front-end | mean error (cm) | median (cm) | 90th percentile (cm) | seeds | per seed "
        "(mean error) | wall s/run |",
        "|---|---:|---:|---:|---|---|---:|",
    ]
    for run in [r for r in RUNS if r in runs]:
        rows = [results[f"{run}_seed{s}"] for s in seeds if f"{run}_seed{s}" in results]
        if not rows:
            continue
        means = {m: float(np.mean([r["metrics"][m] for r in rows])) for m in METRICS}
        per_seed = ", ".join(f"{r['metrics']['mean_error']:.3f}" for r in rows)
        wall = np.mean([r["wall_s"] for r in rows if r.get("wall_s") is not None] or [np.nan])
        lines.append(
            f"| {RUNS[run][0]} | {means['mean_error']:.3f} | {means['median_error']:.3f} | "
            f"{means['p90_error']:.3f} | {', '.join(str(r['seed']) for r in rows)} | "
            f"{per_seed} | {wall:.0f} |"
        )
    return "\n".join(lines)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="runs/bench_gaze", help="directory for the results")
    parser.add_argument("--runs", default=",".join(RUNS))
    parser.add_argument("--seeds", default="0,1")
    parser.add_argument(
        "--steps",
        type=int,
        default=gaze_config("runlocal").num_train_steps,
        help="training steps of every run (default: configs/gaze.py's runlocal)",
    )
    parser.add_argument("--dataset", default="synthetic_gaze")
    parser.add_argument("--data_dir", default=None, help="default: <out>/tfds")
    parser.add_argument(
        "--report_only",
        action="store_true",
        help="train nothing: the table and figure from the finished runs in <out>",
    )
    args = parser.parse_args(argv)
    runs = [r for r in args.runs.split(",") if r]
    unknown = sorted(set(runs) - set(RUNS))
    if unknown:
        parser.error(f"--runs: unknown {unknown}; known: {list(RUNS)}.")
    seeds = [int(s) for s in args.seeds.split(",") if s]

    import jax

    from resize_jax.train import train_and_evaluate

    os.makedirs(args.out, exist_ok=True)
    if not jax.config.jax_compilation_cache_dir:
        jax.config.update("jax_compilation_cache_dir", os.path.join(args.out, ".xla"))
    results_path = os.path.join(args.out, "bench_gaze.json")
    results = {}
    if os.path.exists(results_path):
        with open(results_path) as f:
            results = json.load(f)["runs"]
    # Cheap runs first, every seed, so an interrupted benchmark still compares the baselines.
    for run in runs:
        for seed in seeds:
            key = f"{run}_seed{seed}"
            workdir = os.path.join(args.out, key)
            if _finished(workdir, args.steps) is not None and key in results:
                print(f"{key}: reusing {workdir}", flush=True)
                continue
            if args.report_only:
                results.pop(key, None)
                print(f"{key}: not trained, left out (--report_only)", flush=True)
                continue
            config = make_config(run, seed, args)
            tick = time.perf_counter()
            metrics = train_and_evaluate(config, workdir).eval_metrics
            wall = time.perf_counter() - tick
            results[key] = {"run": run, "seed": seed, "metrics": metrics, "wall_s": wall}
            print(f"{key}: mean error {metrics['mean_error']:.3f} cm ({wall:.0f} s)", flush=True)
            results = _record(results_path, key, results[key], args)
    markdown = table(results, runs, seeds)
    ratio = ""
    aa = [results.get(f"bilinear_aa_seed{s}") for s in seeds]
    sal = [results.get(f"saliency_seed{s}") for s in seeds]
    if all(aa) and all(sal):
        value = np.mean([r["metrics"]["mean_error"] for r in sal]) / np.mean(
            [r["metrics"]["mean_error"] for r in aa]
        )
        ratio = f"\n\nSaliency sampler / antialiased bilinear, mean error: {value:.2f}×."
    text = (
        f"{args.dataset}, {args.steps} steps × batch 32, seeds {args.seeds}; Euclidean error "
        f"of the gaze point on the test split, mean over seeds.\n\n{markdown}{ratio}\n"
    )
    with open(os.path.join(args.out, "bench_gaze.md"), "w") as f:
        f.write(text)
    print(text, flush=True)
    if "saliency" in runs:
        for seed in seeds:
            key = f"saliency_seed{seed}"
            if key in results and _finished(os.path.join(args.out, key), args.steps):
                median, share = eye_magnification(
                    os.path.join(args.out, key), make_config("saliency", seed, args)
                )
                line = (
                    f"Saliency sampler, seed {seed}: eye distance in the sampled image / after "
                    f"a uniform resize: median {median:.2f}× over 200 test images, "
                    f"{share:.0%} of them above 1×."
                )
                print(line, flush=True)
                with open(os.path.join(args.out, "bench_gaze.md"), "a") as f:
                    f.write(f"\n{line}\n")
        key = f"saliency_seed{seeds[0]}"
        if key not in results:
            return
        gaze_figure(
            os.path.join(args.out, key),
            make_config("saliency", seeds[0], args),
            os.path.join(args.out, "gaze_saliency.png"),
        )


if __name__ == "__main__":
    main()
