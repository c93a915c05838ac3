"""What the saliency sampler could reach on `cluttered_digits` if it knew where the digit is.

    python benchmarks/saliency_oracle.py                       # seeds 0 and 1, 1000 steps × 32
    python benchmarks/saliency_oracle.py --steps 200 --seeds 0  # a smoke run

Separates the sampler's two jobs. Its warp (the paper's grid: 31×31 cells, FWHM 13, edge
padding; antialiased sampling) is fed an *oracle* saliency map, a blob on the digit's box
that the dataset records, instead of a learned one; the small CNN of `configs/default.py` is
then trained on the fixed 32×32 samples. Rows, all at 32×32 and the same optimiser, steps and
seeds: the antialiased resize, the oracle warp at two peak heights (how far it zooms), and an
oracle crop (the 32×32 pixels around the digit at full resolution: 4× zoom, no clutter).
If the oracle warp beats the antialiased resize by far and the learned sampler does not, the
sampler's shortfall is in finding the digit, not in the warp. Table to stdout (Markdown) and,
with `--save`, to benchmarks/results/saliency_oracle.md.
"""

from __future__ import annotations

import argparse
import pathlib
import time

import jax
import numpy as np
import optax

from resize_jax import models, ops
from resize_jax.ops.zoom import zoom_summary

RESULTS = pathlib.Path(__file__).resolve().parent / "results"
GRID, TASK = 31, 32


def load(split: str, data_dir: str | None):
    """images: f32[N, 128, 128, 3] in [0, 1], labels: i32[N], boxes: f32[N, 4] (fractions)."""
    import tensorflow_datasets as tfds

    data = tfds.as_numpy(
        tfds.load("cluttered_digits", split=split, data_dir=data_dir, batch_size=-1)
    )
    return data["image"].astype(np.float32) / 255.0, data["label"].astype(np.int32), data["digit"]


def oracle_saliency(boxes: np.ndarray, peak: float) -> np.ndarray:
    """f32[N, 31, 31]: 1 everywhere, `peak` on the cells that the digit's box covers."""
    centres = (np.arange(GRID) + 0.5) / GRID
    inside_y = (centres[None] >= boxes[:, :1]) & (centres[None] <= boxes[:, 2:3])
    inside_x = (centres[None] >= boxes[:, 1:2]) & (centres[None] <= boxes[:, 3:4])
    blob = inside_y[:, :, None] & inside_x[:, None, :]
    return np.where(blob, peak, 1.0).astype(np.float32)


def oracle_crop(images: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """The TASK×TASK full-resolution pixels centred on each digit (clamped inside the image)."""
    size = images.shape[1]
    centres = ((boxes[:, :2] + boxes[:, 2:]) / 2 * size).round().astype(int)
    tops = np.clip(centres - TASK // 2, 0, size - TASK)
    return np.stack(
        [im[t : t + TASK, s : s + TASK] for im, (t, s) in zip(images, tops, strict=True)]
    )


@jax.jit
def _warp(images, saliency):
    grid = ops.saliency_grid(saliency, (TASK, TASK), pad=30, fwhm=13.0)
    return ops.grid_sample_antialiased(images, grid), zoom_summary(grid)["zoom_max"]


def views(images, boxes):
    """name → (f32[N, 32, 32, 3] that the network is trained on, mean zoom_max or None)."""
    out = {
        "fixed bilinear, antialiased": (
            np.asarray(ops.resize(images, (TASK, TASK), antialias=True)),
            None,
        )
    }
    for peak in (30.0, 300.0):
        chunks, zooms = [], []
        for i in range(0, len(images), 500):
            saliency = oracle_saliency(boxes[i : i + 500], peak)
            sampled, zoom = _warp(images[i : i + 500], saliency)
            chunks.append(np.asarray(sampled))
            zooms.append(float(zoom))
        out[f"oracle warp, peak {peak:g}"] = (np.concatenate(chunks), float(np.mean(zooms)))
    out["oracle crop (4× zoom, no clutter)"] = (oracle_crop(images, boxes), None)
    return out


def train_and_test(train_x, train_y, test_x, test_y, *, steps, batch, seed, lr=3e-3):
    """The small CNN trained on fixed views: test top-1."""
    model = models.get_model("small_cnn", num_classes=10)
    rng = np.random.default_rng(seed)
    variables = model.init(jax.random.key(seed), train_x[:2])
    schedule = optax.warmup_cosine_decay_schedule(0.0, lr, min(50, steps // 10), steps)
    tx = optax.adamw(schedule, weight_decay=1e-4)
    params, stats = variables["params"], variables.get("batch_stats", {})
    opt = tx.init(params)

    @jax.jit
    def step(params, stats, opt, x, y):
        def loss_fn(p):
            (logits, _), new = model.apply(
                {"params": p, "batch_stats": stats}, x, train=True, mutable=["batch_stats"]
            )
            return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean(), new

        (_, new), grads = jax.value_and_grad(loss_fn, has_aux=True)(params)
        updates, opt = tx.update(grads, opt, params)
        return optax.apply_updates(params, updates), new["batch_stats"], opt

    for _ in range(steps):
        idx = rng.integers(0, len(train_x), batch)
        params, stats, opt = step(params, stats, opt, train_x[idx], train_y[idx])
    predict = jax.jit(lambda x: model.apply({"params": params, "batch_stats": stats}, x)[0])
    logits = np.concatenate([predict(test_x[i : i + 250]) for i in range(0, len(test_x), 250)])
    return float((logits.argmax(-1) == test_y).mean())


def main(argv=None) -> str:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="0,1")
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--batch_size", type=int, default=32)
    parser.add_argument("--data_dir", default=None)
    parser.add_argument("--save", action="store_true")
    args = parser.parse_args(argv)
    seeds = [int(s) for s in args.seeds.split(",")]
    train, test = load("train", args.data_dir), load("test", args.data_dir)
    train_views, test_views = views(train[0], train[2]), views(test[0], test[2])
    lines = [
        f"cluttered_digits, 128×128 → 32×32, small CNN, {args.steps} steps × {args.batch_size}, "
        f"seeds {args.seeds}; test top-1 on {len(test[1])} images.",
        "",
        "| view | zoom_max (test) | test top-1 (mean) | per seed | s/run |",
        "|---|---:|---:|---|---:|",
    ]
    for name in train_views:
        tick, scores = time.perf_counter(), []
        for seed in seeds:
            scores.append(
                train_and_test(
                    train_views[name][0],
                    train[1],
                    test_views[name][0],
                    test[1],
                    steps=args.steps,
                    batch=args.batch_size,
                    seed=seed,
                )
            )
        per_run = (time.perf_counter() - tick) / len(seeds)
        per_seed = ", ".join(f"{s:.3f}" for s in scores)
        zoom = test_views[name][1]
        zoom = "–" if zoom is None else f"{zoom:.1f}"
        row = f"| {name} | {zoom} | {np.mean(scores):.3f} | {per_seed} | {per_run:.0f} |"
        lines.append(row)
        print(row, flush=True)
    markdown = "\n".join(lines) + "\n"
    print(markdown)
    if args.save:
        RESULTS.mkdir(exist_ok=True)
        (RESULTS / "saliency_oracle.md").write_text(markdown)
    return markdown


if __name__ == "__main__":
    main()
