#!/usr/bin/env python3
"""A measured lower bound on the time of bench_frontends.py's saliency_grid case, beside
ours and PyTorch's (channels-last) times measured in the same process.

    python benchmarks/bound_grid_sample.py --threads 2 [--rounds 3] [--reps 9] \
        [--allocator retain|system] [--out benchmarks/results]

The case: softmax(logits 31×31) → `ops.saliency_grid` (pad 30, FWHM 13) → `ops.grid_sample`
of 16 images 800×800×3 (NHWC f32, 123 MB) to 224×224. Its inputs and the jitted forward and
forward+backward (to the logits) are bench_frontends.py's own (`saliency_grid_case()`, same
seeds); the grid alone is computed here with the same three lines as that case's forward
(softmax, `ops.saliency_grid`), checked by sampling it and comparing with the case's output.

Bound: a bilinear sample reads four corners (two pixels of 12 bytes in each of two rows).
From the grid, with the library's convention (align corners, border clamp: position
`(g + 1) / 2 * (n - 1)` in f32, as resize_jax/ops/grid_sample.py and its native kernel
compute it), NumPy marks every 64-byte line of the image buffer (its actual address modulo
64 included) that holds a byte of a corner the result depends on, and counts the distinct
lines over the 16 images: a pixel may straddle two lines, a line shared by many samples
counts once. Forward: corners with a non-zero bilinear weight. Forward+backward: corners with
a non-zero weight or a non-zero derivative of a weight (the gradient to the grid needs both
x-corners of both rows for every point inside the image); one pass can produce the samples
and both slopes (the native kernel does), so the same lines once are its bound too. Every
such line has to reach the core at least once per call, so

    bound = lines × 64 B / (the highest read bandwidth measured in this process).

Bandwidth: per round, the shortest of max(`--reps`, 15) timed reads of a whole array (the
shortest: other load on the machine only lowers a measured rate, and the bound needs the
highest), on the same pinned CPUs. Over the case's own 123 MB input buffer: XLA (jitted
per-image `jnp.sum`), torch (`torch.sum`, `--threads` threads) and torch summing one float of
every 64-byte line (every line fetched, 1/16 of the adds); over a 512 MiB array: the same two
torch reads, and NumPy (one `sum` per thread, in threads). Sequential streaming with hardware
prefetch is the most favourable access pattern, so its rate is an upper bound on the rate of
scattered line reads, and the bound a lower bound on any implementation; the overall bound
uses the highest rate of all rounds. Caveat: lscpu reports a 300 MiB L3 on this VM (shared
with other guests), larger than the 123 MB input, so between calls part of the input can stay
in L3; the 123 MB figures are measured in the same state (the same buffer, read repeatedly)
and the highest figure is used, so the bound stays a lower bound either way. Not counted
(they would only raise the bound): the grid's computation, reading the grid, writing the
output.

Times (per round, median and shortest of `--reps` calls after `--warmup`; per measure, ours
then torch's, in blocks as bench_frontends does, so that each runtime's worker threads have
gone idle while the other's run):
  forward      ours: the case's jitted forward (grid + sampling), as bench_frontends times it;
               torch: reference_torch.py's `sample` (its saliency grid + `F.grid_sample`,
               bilinear, border, align_corners=True) under no_grad, same logits and images
               (the images shared with JAX through DLPack as a channels-last NCHW view).
  fwd+bwd      the same, then the gradient of the sum to the logits.
  sampling     the sampling alone on the precomputed grid: `ops.grid_sample` jitted, and
               `F.grid_sample` on the same grid.
Derived: bound ms, torch / bound (the largest speed-up over torch any implementation could
reach here), ours / bound.

`--threads N` pins the process to N CPUs before JAX starts (XLA's pool and torch's threads
both N); `--allocator` as in bench_frontends.py (default: keep freed memory). Writes
`<out>/bound_grid_sample.md` and prints it.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

LINE = 64  # bytes of a cache line
BIG_MIB = 512  # the DRAM-sized streaming array


def _parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--threads", type=int, default=None, help="pin to N CPUs")
    p.add_argument("--rounds", type=int, default=3, help="rounds (medians over rounds)")
    p.add_argument("--reps", type=int, default=9, help="timed calls per measure and round")
    p.add_argument("--warmup", type=int, default=2, help="untimed calls before timing")
    p.add_argument("--allocator", choices=("retain", "system"), default="retain")
    p.add_argument("--out", default="benchmarks/results", help="directory for the table")
    return p.parse_args(argv)


ARGS = _parse_args() if __name__ == "__main__" else None
if ARGS is not None and ARGS.threads:
    # Before JAX starts: XLA sizes its CPU thread pool from the affinity mask.
    os.sched_setaffinity(0, sorted(os.sched_getaffinity(0))[: ARGS.threads])
if ARGS is not None and ARGS.allocator == "retain":
    # Before the first computation, as in bench_frontends.py.
    from resize_jax import cpu_memory

    cpu_memory.retain_freed_memory()

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

sys.path.insert(0, str(Path(__file__).parent))
import bench_frontends as common  # noqa: E402
import reference_torch  # noqa: E402

from resize_jax import ops  # noqa: E402

PAD, FWHM = 30, 13.0  # bench_frontends' saliency_grid case


def case_grid(logits, out_hw):
    """The grid of the case's forward (the same lines as bench_frontends.saliency_grid_case)."""
    batch = logits.shape[0]
    saliency = jax.nn.softmax(logits.reshape(batch, -1), axis=-1).reshape(logits.shape)
    return ops.saliency_grid(saliency, out_hw, pad=PAD, fwhm=FWHM)


def taps(coord, n):
    """i0, (w0, w1), (d0, d1) per point, in f32 as grid_sample's border mode computes them."""
    last = np.float32(n - 1)
    raw = (coord.astype(np.float32) + np.float32(1)) * np.float32(0.5 * (n - 1))
    pos = np.clip(raw, np.float32(0), last)
    i0 = np.minimum(np.floor(pos), last - 1)
    frac = pos - i0
    inside = (raw >= 0) & (raw <= last)
    return i0.astype(np.int64), (1 - frac, frac), (inside, inside)


def touched_lines(grid, shape, address):
    """Distinct 64-byte lines of the NHWC f32 image buffer at `address` that the corners touch.

    Returns {"all": every corner, "forward": non-zero weight, "fwd+bwd": non-zero weight or
    weight derivative}, each a count of lines over the whole batch.
    """
    batch, height, width, channels = shape
    pixel = channels * 4
    offset = address % LINE
    n_lines = (offset + batch * height * width * pixel + LINE - 1) // LINE
    x0, wx, dx = taps(grid[..., 0], width)
    y0, wy, dy = taps(grid[..., 1], height)
    image_base = (np.arange(batch) * height * width)[:, None, None]
    counts = {}
    for kind in ("all", "forward", "fwd+bwd"):
        marked = np.zeros(n_lines, bool)
        for a in (0, 1):
            for b in (0, 1):
                if kind == "all":
                    need = np.ones(x0.shape, bool)
                else:
                    need = (wy[a] != 0) & (wx[b] != 0)
                    if kind == "fwd+bwd":
                        need |= ((wy[a] != 0) & dx[b]) | (dy[a] & (wx[b] != 0))
                flat = (image_base + (y0 + a) * width + (x0 + b))[need]
                start = offset + flat * pixel
                marked[start // LINE] = True
                marked[(start + pixel - 1) // LINE] = True
        counts[kind] = int(marked.sum())
    return counts


def bandwidths(x, x_torch, big, big_torch, threads, reps, warmup):
    """GB/s of reading a whole array, per method (module docstring)."""
    per_image_sum = jax.jit(lambda a: jnp.sum(a.reshape(a.shape[0], -1), axis=1))
    per_image_sum = per_image_sum.lower(x).compile()
    # One float of every 64-byte line: the line fetch rate without the adds of a full sum.
    x_lines = x_torch.permute(0, 2, 3, 1).reshape(-1).view(-1, LINE // 4)[:, 0]
    big_lines = big_torch.view(-1, LINE // 4)[:, 0]
    halves = np.array_split(big, threads)
    pool = ThreadPoolExecutor(threads)

    def numpy_threads():
        list(pool.map(np.sum, halves))

    methods = {
        "xla sum, case input (123 MB)": (lambda: jax.block_until_ready(per_image_sum(x)), x),
        "torch sum, case input": (lambda: torch.sum(x_torch), x),
        "torch sum of one float per line, case input": (lambda: torch.sum(x_lines), x),
        f"torch sum, {BIG_MIB} MiB": (lambda: torch.sum(big_torch), big),
        f"torch sum of one float per line, {BIG_MIB} MiB": (lambda: torch.sum(big_lines), big),
        f"numpy sum in {threads} threads, {BIG_MIB} MiB": (numpy_threads, big),
    }
    rates = {
        name: a.nbytes / min(reference_torch.call_times(fn, reps, warmup)) / 1e9
        for name, (fn, a) in methods.items()
    }
    pool.shutdown()
    return rates


def main(args):
    threads = len(os.sched_getaffinity(0))
    torch.set_num_threads(threads)
    case = common.saliency_grid_case()
    logits, x = case.state
    batch, out_hw = case.batch, case.out_hw
    infer = jax.jit(case.infer).lower(case.state).compile()
    train = jax.jit(case.train).lower(case.state).compile()
    grid = jax.block_until_ready(jax.jit(case_grid, static_argnums=1)(logits, out_hw))
    sample = jax.jit(ops.grid_sample).lower(x, grid).compile()
    # The grid is the case's: sampling it gives the case's forward (up to rounding, the
    # grid is compiled apart from the sampling here).
    check = float(jnp.max(jnp.abs(sample(x, grid) - infer(case.state))))
    print(f"max |sampling the grid - the case's forward|: {check:.2e}", file=sys.stderr)
    if not check < 1e-3:
        raise SystemExit(f"the replicated grid differs from the case's (max |Δ| {check})")

    lines = touched_lines(np.asarray(grid), x.shape, x.unsafe_buffer_pointer())

    # Torch on the same memory: NHWC buffer → NCHW channels-last view (no copy).
    x_torch = torch.from_dlpack(x).permute(0, 3, 1, 2)
    assert x_torch.is_contiguous(memory_format=torch.channels_last)
    assert x_torch.data_ptr() == x.unsafe_buffer_pointer()
    logits_torch = torch.from_dlpack(logits).clone().unsqueeze(1).requires_grad_(True)
    grid_torch = torch.from_dlpack(grid)

    def torch_forward():
        with torch.no_grad():
            return reference_torch.sample(x_torch, logits_torch, out_hw, PAD, FWHM)

    def torch_train():
        reference_torch.sample(x_torch, logits_torch, out_hw, PAD, FWHM).sum().backward()

    def torch_sampling():
        with torch.no_grad():
            return F.grid_sample(
                x_torch, grid_torch, mode="bilinear", padding_mode="border", align_corners=True
            )

    diff = float(
        (torch_forward().permute(0, 2, 3, 1) - torch.from_dlpack(infer(case.state))).abs().max()
    )
    print(f"max |ours - torch| forward: {diff:.2e}", file=sys.stderr)

    big = np.full(BIG_MIB * 2**20 // 4, 1.0, np.float32)
    big_torch = torch.from_numpy(big)

    timed = {
        "forward": (lambda: jax.block_until_ready(infer(case.state)), torch_forward),
        "train": (lambda: jax.block_until_ready(train(case.state)), torch_train),
        "sampling": (lambda: jax.block_until_ready(sample(x, grid)), torch_sampling),
    }
    rounds = []
    for r in range(args.rounds):
        # Cheap (~10-70 ms a call): more calls, for the highest rate.
        bw = bandwidths(x, x_torch, big, big_torch, threads, max(args.reps, 15), args.warmup)
        times = {}
        for measure, (ours_fn, torch_fn) in timed.items():
            times[f"ours_{measure}"] = reference_torch.call_times(ours_fn, args.reps, args.warmup)
            times[f"torch_{measure}"] = reference_torch.call_times(torch_fn, args.reps, args.warmup)
        best = max(bw.values())
        row = {
            "bandwidth": bw,
            "best_gb_s": best,
            "bound_forward_ms": lines["forward"] * LINE / best / 1e6,
            "bound_train_ms": lines["fwd+bwd"] * LINE / best / 1e6,
            **{f"{k}_ms": statistics.median(t) * 1e3 for k, t in times.items()},
            **{f"{k}_best_ms": min(t) * 1e3 for k, t in times.items()},
        }
        rounds.append(row)
        print(
            f"round {r + 1}/{args.rounds}: {best:.1f} GB/s, bound {row['bound_forward_ms']:.2f} "
            f"ms; forward ours {row['ours_forward_ms']:.2f}, torch {row['torch_forward_ms']:.2f}"
            " ms",
            file=sys.stderr,
            flush=True,
        )

    meta = {
        "threads": threads,
        "jax": jax.__version__,
        "torch": torch.__version__,
        "rounds": args.rounds,
        "reps": args.reps,
        "allocator": args.allocator,
        "command": " ".join([Path(sys.argv[0]).as_posix(), *sys.argv[1:]]),
        "shape": tuple(x.shape),
        "batch": batch,
        "out_hw": out_hw,
        "address_mod_64": x.unsafe_buffer_pointer() % LINE,
    }
    table = format_table(rounds, lines, meta)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "bound_grid_sample.md").write_text(table + "\n")
    print(table)


def _l3_text():
    try:
        size = Path("/sys/devices/system/cpu/cpu0/cache/index3/size").read_text().strip()
    except OSError:
        return "L3 size unknown"
    return f"L3 {size} (sysfs)"


def format_table(rounds, lines, meta):
    batch, height, width, channels = meta["shape"]
    input_bytes = batch * height * width * channels * 4
    total_lines = input_bytes / LINE

    def pct(n):
        return f"{n:,} lines ({n * LINE / 1e6:.1f} MB, {100 * n / total_lines:.1f}% of the input)"

    out = [
        f"`{meta['command']}`",
        "",
        f"{meta['threads']} threads, jax {meta['jax']}, torch {meta['torch']}, {_l3_text()}; "
        f"{meta['rounds']} rounds × {meta['reps']} reps (medians), allocator "
        f"{meta['allocator']}. Input {batch}×{height}×{width}×{channels} f32 "
        f"({input_bytes / 1e6:.1f} MB, address ≡ {meta['address_mod_64']} mod 64) → "
        f"{meta['out_hw'][0]}×{meta['out_hw'][1]}.",
        "",
        f"- lines of all four corners of every point: {pct(lines['all'])}",
        f"- forward (non-zero weight): {pct(lines['forward'])}",
        f"- fwd+bwd (non-zero weight or slope): {pct(lines['fwd+bwd'])}",
        "",
    ]
    n = len(rounds)
    header = "| measure | " + " | ".join(f"round {i + 1}" for i in range(n)) + " | median |"
    out += [header, "|---|" + "---:|" * (n + 1)]

    def add(label, values, spec=".2f"):
        cells = [format(v, spec) for v in values]
        out.append(f"| {label} | " + " | ".join(cells) + f" | {statistics.median(values):{spec}} |")

    for name in rounds[0]["bandwidth"]:
        add(f"read GB/s: {name}", [r["bandwidth"][name] for r in rounds], ".1f")
    add("**read GB/s used (highest)**", [r["best_gb_s"] for r in rounds], ".1f")
    labels = {"forward": "forward", "train": "fwd+bwd", "sampling": "sampling only"}
    for kind, label in labels.items():
        # The sampling alone reads the forward's lines.
        bound = [r[f"bound_{'train' if kind == 'train' else 'forward'}_ms"] for r in rounds]
        ours = [r[f"ours_{kind}_ms"] for r in rounds]
        ref = [r[f"torch_{kind}_ms"] for r in rounds]
        if kind != "sampling":
            add(f"**{label} bound ms**", bound)
        add(f"{label} ours ms (shortest)", [r[f"ours_{kind}_best_ms"] for r in rounds])
        add(f"{label} ours ms", ours)
        add(
            f"{label} torch channels-last ms (shortest)",
            [r[f"torch_{kind}_best_ms"] for r in rounds],
        )
        add(f"{label} torch channels-last ms", ref)
        add(f"**{label} torch / bound**", [t / b for t, b in zip(ref, bound, strict=True)])
        add(f"{label} ours / bound", [o / b for o, b in zip(ours, bound, strict=True)])
        add(f"{label} torch / ours", [t / o for t, o in zip(ref, ours, strict=True)])
    best = max(r["best_gb_s"] for r in rounds)
    out.append("")
    for kind, label in (("forward", "forward"), ("train", "fwd+bwd")):
        bound = lines["forward" if kind == "forward" else "fwd+bwd"] * LINE / best / 1e6
        ref = statistics.median(r[f"torch_{kind}_ms"] for r in rounds)
        ref_best = min(r[f"torch_{kind}_best_ms"] for r in rounds)
        ours = statistics.median(r[f"ours_{kind}_ms"] for r in rounds)
        out.append(
            f"Overall {label} bound at the highest rate of all rounds ({best:.1f} GB/s): "
            f"{bound:.2f} ms; the most any implementation could gain over torch: "
            f"{ref / bound:.2f}× its median ({ref:.2f} ms), {ref_best / bound:.2f}× its "
            f"shortest call ({ref_best:.2f} ms); ours (median {ours:.2f} ms) is "
            f"{ours / bound:.2f}× the bound."
        )
    return "\n".join(out)


if __name__ == "__main__":
    main(ARGS)
