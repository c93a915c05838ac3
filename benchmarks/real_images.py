"""Real-image benchmark: every front-end on `cluttered_digits`, same network, steps and seeds.

    python benchmarks/real_images.py                          # the table in docs/saliency.md
    python benchmarks/real_images.py --runs bilinear_aa,saliency --seeds 0,1,2
    python benchmarks/real_images.py --steps 200 --out /tmp/quick   # a smoke run

`cluttered_digits` (resize_jax/data/generated/cluttered_digits.py) is built offline from
real images that ship with scikit-learn: a handwritten digit scan, 1/8 of the image side,
at a random place among fragments of other scans, on a crop of a real photograph. The
benchmark trains configs/default.py's small CNN at 128 → 32 behind a fixed bilinear resize,
an antialiased one, a bicubic one, the learned resizer, the saliency sampler, and the
full-resolution upper bound (no front-end), for every seed, with the same steps, batch and
learning rate: by default configs/default.py's own (1500 steps × 64, AdamW 3e-3), so the
table is what `train.py --config configs/default.py:frontend=...` gives on this data (the
demo's machinery: `resize_jax.tools.demo`; each run is an ordinary workdir under `--out`,
reused when finished). The table goes to `<out>/results.md` and, with `--save`, to
benchmarks/results/real_images.md.

Cost per seed on a 2-core CPU running two benchmark processes side by side (each process
one run at a time; `--runs`/`--seeds` split the work over processes sharing one `--out`):
7–10 min per fixed resize, ~15 min for the saliency sampler, ~30 min for the learned
resizer, about 2 h for the full-resolution network (it works on all 128×128 pixels).
"""

from __future__ import annotations

import argparse
import os
import pathlib
import shutil
import sys

DATASET = "cluttered_digits"
ALL_RUNS = "bilinear,bilinear_aa,bicubic,learned,saliency,full_res"
RESULTS = pathlib.Path(__file__).resolve().parent / "results"


def main(argv=None) -> str:
    from resize_jax.train import default_config

    defaults = default_config.get_config()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="runs/real_images", help="runs and the table go here")
    parser.add_argument("--runs", default=ALL_RUNS, help="front-ends (the demo's run names)")
    parser.add_argument("--seeds", default="0,1", help="comma-separated seeds, every run")
    parser.add_argument(
        "--steps", type=int, default=defaults.num_train_steps, help="training steps of every run"
    )
    parser.add_argument(
        "--batch_size", type=int, default=defaults.batch_size, help="global batch size"
    )
    parser.add_argument("--model", default="small_cnn", help='the task network, e.g. "vit_ti16"')
    parser.add_argument("--task_size", type=int, default=32, help="side of the network's input")
    parser.add_argument(
        "--learning_rate",
        type=float,
        default=defaults.optimizer.learning_rate,
        help="peak (AdamW, cosine)",
    )
    parser.add_argument("--dataset", default=DATASET, help='e.g. "cluttered_digits/tiny"')
    parser.add_argument("--data_dir", default=None, help="default: <out>/tensorflow_datasets")
    parser.add_argument("--save", action="store_true", help="copy the table to benchmarks/results/")
    args = parser.parse_args(argv)

    from resize_jax.tools import demo

    demo_args = [
        f"--out={args.out}",
        f"--runs={args.runs}",
        f"--seeds={args.seeds}",
        f"--steps={args.steps}",
        f"--batch_size={args.batch_size}",
        f"--dataset={args.dataset}",
        f"--model={args.model}",
        f"--task_size={args.task_size}",
        f"--learning_rate={args.learning_rate}",
        "--full_res_all_seeds",
        "--real_dataset=",  # the demo's own second part: this benchmark is that, in full
    ]
    if args.data_dir:
        demo_args.append(f"--data_dir={args.data_dir}")
    markdown = demo.main(demo_args)
    if args.save:
        RESULTS.mkdir(exist_ok=True)
        shutil.copy(os.path.join(args.out, "results.md"), RESULTS / "real_images.md")
    return markdown


if __name__ == "__main__":
    main(sys.argv[1:])
