#!/usr/bin/env python3
"""How the front-ends' inference cost grows with the input size and the batch, beside the
PyTorch reference, and the saliency sampler against the memory-bound floor.

    python benchmarks/bench_scaling.py --threads 2 [--sizes 224,448,896,1792] \
        [--batches 1,8,32] [--frontends learned,saliency] [--rounds 3] [--reps 2] \
        [--allocator retain|system]

Scaling table: each front-end at each input side S (output side S/4) and batch B, inference
(jitted, median of `--reps` calls after one warm-up). Beside it, per cell: the same input's
mean-pool pass (k×k block means down to the output side, one read of the input: the
memory-bound floor of anything that reads every pixel), GFLOP/s (XLA's cost analysis, traced
without the native kernels) as a share of the f32 matmul rate measured in the same round, and
the PyTorch reference (`benchmarks/reference_torch.py`, `--reference-setting`, default eager
channels-last) after ours in every round, all cells in one process. Cells above
`--max-pixels` input pixels per batch are skipped (the learned resizer's 16-channel
full-resolution features take 64 bytes a pixel).

Floor table (`--floor-batch 4`, → 224²): the SaliencySampler (its default 64² copy, and the
paper's 224² copy with the same network), an antialiased bilinear resize
and the mean-pool pass at each size, ours and the reference's, in the same rounds; the
sampler's time over the mean-pool pass's is its distance from the floor.

`--allocator` as in `bench_frontends.py`: by default both sides keep freed memory in the
process (`resize_jax.cpu_memory`; `GLIBC_TUNABLES` for the reference), `system` keeps glibc's
defaults on both.

Writes `<out>/bench_scaling.{json,md}` and prints both tables.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path


def _ints(text):
    return [int(v) for v in text.split(",") if v.strip()]


def _parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sizes", type=_ints, default=[224, 448, 896, 1792])
    p.add_argument("--batches", type=_ints, default=[1, 8, 32])
    p.add_argument("--frontends", default="learned,saliency")
    p.add_argument("--max-pixels", type=float, default=8 * 1792**2)
    p.add_argument("--floor-batch", type=int, default=4)
    p.add_argument("--floor-out", type=int, default=224)
    p.add_argument("--reference", default="auto")
    p.add_argument("--reference-python", default=sys.executable)
    p.add_argument("--reference-setting", default="channels_last")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--reps", type=int, default=2)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--allocator", choices=("retain", "system"), default="retain")
    p.add_argument("--out", default="benchmarks/results")
    return p.parse_args(argv)


ARGS = _parse_args() if __name__ == "__main__" else None
if ARGS is not None and ARGS.threads:
    os.sched_setaffinity(0, sorted(os.sched_getaffinity(0))[: ARGS.threads])
if ARGS is not None and ARGS.allocator == "retain":
    # Before the first computation, as in bench_frontends.py.
    from resize_jax import cpu_memory

    cpu_memory.retain_freed_memory()

import jax  # noqa: E402

sys.path.insert(0, str(Path(__file__).parent))
import bench_frontends as common  # noqa: E402

from resize_jax import cpu_memory, ops  # noqa: E402
from resize_jax.frontends import LearnedResizer  # noqa: E402
from resize_jax.frontends.saliency import SaliencySampler  # noqa: E402
from resize_jax.ops.block_mean import block_mean  # noqa: E402


def mean_pool(images, out_side):
    """The floor: k×k block means, k = side // out_side (one read of the input; the native
    pass on CPU, as the sampler's low-resolution copy)."""
    k = max(1, images.shape[1] // out_side)
    return block_mean(images, k, k)


def _model_infer(model, batch, side):
    x = common._images(batch, (side, side))
    variables = model.init(jax.random.key(1), x[:, :64, :64])
    return (lambda s: model.apply(s[0], s[1])[0]), (variables, x)


def build(kind, batch, side, out_side):
    """(infer(state), state) for one cell."""
    out = (out_side, out_side)
    if kind == "learned":
        return _model_infer(LearnedResizer(out), batch, side)
    if kind == "saliency":
        return _model_infer(SaliencySampler(out), batch, side)
    if kind == "saliency_224":
        # The paper's copy size with the default network (12× its layers' work).
        return _model_infer(SaliencySampler(out, saliency_input_shape=(224, 224)), batch, side)
    x = common._images(batch, (side, side))
    if kind == "mean_pool":
        return (lambda x: mean_pool(x, out_side)), x
    if kind == "antialiased":
        return (lambda x: ops.resize(x, out, antialias=True)), x
    raise ValueError(f"unknown kind {kind!r}")


# Our kinds → the reference's cases (no antialiased resize there: F.interpolate's antialias
# path is what `reference_torch.low_resolution` uses, so it is not timed separately).
REFERENCE_CASE = {
    "learned": ["learned"],
    "saliency": ["saliency"],
    "saliency_224": ["saliency", "--saliency-side", "224"],
    "mean_pool": ["mean_pool"],
}


def _reference_round(args, reference, cells, threads):
    """The reference's inference seconds for every cell it has (one process), else None."""
    jobs, index = [], []
    for i, (_, kind, batch, side, out_side) in enumerate(cells):
        if reference and kind in REFERENCE_CASE:
            case = [*REFERENCE_CASE[kind], "--batch", str(batch), "--size", str(side)]
            case += ["--out", str(out_side), "--skip-train"]
            command = common.reference_command(
                "", "", case, args.reference_setting, threads, args.reps, 1
            )
            jobs.append(command[2:])
            index.append(i)
    seconds = [None] * len(cells)
    if not jobs:
        return seconds
    env = dict(os.environ)
    if args.allocator == "retain":
        env["GLIBC_TUNABLES"] = cpu_memory.GLIBC_TUNABLES
    done = subprocess.run(
        [args.reference_python, reference, "--many", json.dumps(jobs)],
        capture_output=True,
        text=True,
        check=False,
        env=env,
    )
    if done.returncode != 0:
        print(f"reference failed: {done.stderr.strip()[-500:]}", file=sys.stderr)
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    for i, line in zip(index, lines, strict=False):
        seconds[i] = json.loads(line)["infer_s"]
    return seconds


def _med(values):
    values = [v for v in values if v is not None and v == v]
    return statistics.median(values) if values else float("nan")


def main(args):
    threads = len(os.sched_getaffinity(0))
    reference = common.resolve_reference(args.reference, args.reference_python)
    common.parse_settings(args.reference_setting)
    cells = []
    for kind in [k.strip() for k in args.frontends.split(",") if k.strip()]:
        for side in args.sizes:
            for batch in args.batches:
                if batch * side * side <= args.max_pixels:
                    cells.append(("scaling", kind, batch, side, side // 4))
                    cells.append(("scaling", "mean_pool", batch, side, side // 4))
    for side in args.sizes:
        if side >= args.floor_out * 2:
            for kind in ("saliency", "saliency_224", "antialiased", "mean_pool"):
                cells.append(("floor", kind, args.floor_batch, side, args.floor_out))
    cells = list(dict.fromkeys(cells))

    compiled = {}
    for cell in cells:
        fn, state = build(*cell[1:])
        exe, flops, _ = common._compiled(fn, state)
        compiled[cell] = (exe, state, flops)
        print(f"compiled {cell}", file=sys.stderr, flush=True)

    times = {cell: [] for cell in cells}
    refs = {cell: [] for cell in cells}
    matmul = []
    for r in range(args.rounds):
        matmul.append(common.matmul_gflops(args.reps))
        for cell in cells:
            exe, state, _ = compiled[cell]
            seconds, _ = common._time(exe, state, args.reps, 1, threads_state=False)
            times[cell].append(seconds)
            print(f"round {r + 1} {cell}: {seconds * 1e3:.1f} ms", file=sys.stderr, flush=True)
        # The reference right after ours, in the same round (one process for all cells).
        for cell, seconds in zip(
            cells, _reference_round(args, reference, cells, threads), strict=True
        ):
            refs[cell].append(seconds)
    rate = _med(matmul)
    rows = []
    for cell in cells:
        table, kind, batch, side, out_side = cell
        ours, theirs = _med(times[cell]), _med(refs[cell])
        floor = _med(times.get((table, "mean_pool", batch, side, out_side), []))
        flops = compiled[cell][2]
        rows.append(
            {
                "table": table,
                "kind": kind,
                "batch": batch,
                "in": side,
                "out": out_side,
                "ms": ours * 1e3,
                "rounds_ms": [t * 1e3 for t in times[cell]],
                "reference_ms": theirs * 1e3,
                "reference_rounds_ms": [None if t is None else t * 1e3 for t in refs[cell]],
                "ratio": theirs / ours,
                "floor_ms": floor * 1e3,
                "over_floor": ours / floor,
                "gflop_per_s": flops / ours / 1e9,
                "pct_matmul": 100 * flops / ours / 1e9 / rate,
                "input_gb_per_s": batch * side * side * 3 * 4 / ours / 1e9,
            }
        )
    meta = {
        "backend": jax.default_backend(),
        "threads": threads,
        "jax": jax.__version__,
        "matmul_gflop_per_s": rate,
        "matmul_rounds": matmul,
        "rounds": args.rounds,
        "reps": args.reps,
        "reference": reference,
        "reference_setting": args.reference_setting,
        "allocator": args.allocator,
        "command": " ".join([Path(sys.argv[0]).as_posix(), *sys.argv[1:]]),
    }
    text = format_tables(rows, meta)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "bench_scaling.json").write_text(json.dumps({"meta": meta, "results": rows}, indent=1))
    (out / "bench_scaling.md").write_text(text + "\n")
    print(text)


def _f(value, spec):
    return common._fmt(value, spec)


def format_tables(rows, meta):
    lines = [
        f"{meta['backend']}, {meta['threads']} threads, jax {meta['jax']}; f32 matmul rate "
        f"{meta['matmul_gflop_per_s']:.1f} GFLOP/s; inference, medians of {meta['rounds']} "
        f"rounds × {meta['reps']} reps; reference: {meta['reference_setting']}; allocator: "
        f"{meta.get('allocator', 'system')} (both sides).",
        "",
        "| front-end | in→out | batch | ms | ms/img | reference ms | ratio | GFLOP/s | % matmul "
        "| input GB/s | mean-pool ms | × mean-pool |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        if row["table"] != "scaling" or row["kind"] == "mean_pool":
            continue
        lines.append(
            f"| {row['kind']} | {row['in']}→{row['out']} | {row['batch']} | {row['ms']:.1f} | "
            f"{row['ms'] / row['batch']:.2f} | {_f(row['reference_ms'], '.1f')} | "
            f"{_f(row['ratio'], '.2f')} | {row['gflop_per_s']:.1f} | {row['pct_matmul']:.0f}% | "
            f"{row['input_gb_per_s']:.2f} | {row['floor_ms']:.2f} | {row['over_floor']:.1f} |"
        )
    floor = [row for row in rows if row["table"] == "floor"]
    if floor:
        lines += [
            "",
            f"Floor: batch {floor[0]['batch']}, → {floor[0]['out']}², inference (ms; spread "
            "over rounds in brackets).",
            "",
            "| in | saliency sampler | antialiased bilinear | mean-pool pass | sampler × "
            "mean-pool | sampler, 224² copy | × mean-pool | reference sampler | reference, "
            "224² copy | reference mean-pool |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        by = {(row["kind"], row["in"]): row for row in floor}
        for side in sorted({row["in"] for row in floor}):
            s, s224, a, m = (
                by[(k, side)] for k in ("saliency", "saliency_224", "antialiased", "mean_pool")
            )

            def over_floor(row, m=m):
                ratios = [x / y for x, y in zip(row["rounds_ms"], m["rounds_ms"], strict=True)]
                return f"{row['ms'] / m['ms']:.2f} ({min(ratios):.2f}–{max(ratios):.2f})"

            def cell(row):
                lo, hi = min(row["rounds_ms"]), max(row["rounds_ms"])
                return f"{row['ms']:.1f} ({lo:.1f}–{hi:.1f})"

            lines.append(
                f"| {side}² | {cell(s)} | {cell(a)} | {cell(m)} | {over_floor(s)} | "
                f"{cell(s224)} | {over_floor(s224)} | {_f(s['reference_ms'], '.1f')} | "
                f"{_f(s224['reference_ms'], '.1f')} | {_f(m['reference_ms'], '.1f')} |"
            )
    return "\n".join(lines)


if __name__ == "__main__":
    main(ARGS)
