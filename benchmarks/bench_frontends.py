#!/usr/bin/env python3
"""Front-end throughput: img/s for inference and a train step, GFLOP/s, matmul rate, memory.

    python benchmarks/bench_frontends.py [--cases learned,saliency_grid,saliency,fixed] \
        [--rounds 3] [--reps 5] [--threads 2] [--allocator retain|system] \
        [--reference-settings channels_last,contiguous,channels_last+compile]

Cases (the papers' shapes):
  learned        LearnedResizer 448→224, batch 8: inference, and a train step (forward,
                 backward, SGD update, BatchNorm statistics) on mean(out²), like the reference.
  saliency_grid  softmax(logits 31×31) → saliency_grid (pad 30, FWHM 13) → grid_sample of
                 800×800 images to 224×224, batch 16: forward, and forward+backward to the
                 logits (the reference's measurement).
  saliency       the whole SaliencySampler (its default SaliencyCNN included, on its default
                 64×64 copy), batch 16, 800→224: inference and an SGD train step.
  fixed          FixedResizer bilinear 448→224, batch 8: forward, and forward+backward to
                 the images (it has no parameters).

The PyTorch reference is `benchmarks/reference_torch.py` (the same cases written in PyTorch);
it runs when torch is importable (`pip install -e '.[bench]'`), `--reference none` turns it
off. Each case is compiled once; then, per round, ours is timed (`--reps` calls after
`--warmup` calls, median) and right after it the reference in one subprocess per setting
(`--reference-settings`: memory format channels_last or contiguous, `+compile` for
`torch.compile`), with the same batch, sizes, thread count and CPUs. Figures are medians over
rounds, so both sides see the same machine load. Each measure is compared with the fastest
reference setting (highest median img/s), and the table names it. The f32 matmul rate (2048²
products) is measured in every round too.

FLOPs: XLA's cost analysis of the timed computation (a multiply-add counts 2, convolution
padding is not counted), i.e. what actually runs. GFLOP/s = that count / the median time.
Memory: ours is XLA's buffer assignment of the timed computation (arguments + outputs +
temporaries, minus donated/aliased buffers), available on every backend; the reference's is
its process's maximum-RSS growth (reference_torch.py's docstring). `--threads N` pins this
process (and the reference) to N CPUs; by default all CPUs this process may use.

Allocator: by default (`--allocator retain`) both sides keep freed memory in the process
instead of page-faulting each step's buffers back (`resize_jax.cpu_memory`; the reference
gets the same glibc settings through `GLIBC_TUNABLES`); `--allocator system` keeps glibc's
defaults on both sides.

Writes `<out>/bench_frontends.json` and `<out>/bench_frontends.md` and prints the table.
Runs unchanged on GPU/TPU (the reference then still runs on the CPU).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

# The reference's settings: memory format, optionally `+compile` (torch.compile, inductor).
DEFAULT_SETTINGS = ("channels_last", "contiguous", "channels_last+compile")
REFERENCE_SCRIPT = Path(__file__).with_name("reference_torch.py")


def _parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--cases",
        default="learned,saliency_grid,saliency,fixed",
        help="comma-separated cases to time",
    )
    p.add_argument(
        "--reference",
        default="auto",
        help="path of the PyTorch reference script; 'auto': benchmarks/reference_torch.py "
        "when torch is importable by --reference-python; 'none': no reference",
    )
    p.add_argument(
        "--reference-settings",
        default=",".join(DEFAULT_SETTINGS),
        help="comma-separated PyTorch settings of the reference (see reference_torch.py)",
    )
    p.add_argument(
        "--reference-python", default=sys.executable, help="Python that runs the reference"
    )
    p.add_argument("--rounds", type=int, default=3, help="rounds, ours then the reference")
    p.add_argument("--reps", type=int, default=5, help="timed calls per round (median)")
    p.add_argument("--warmup", type=int, default=2, help="untimed calls before timing")
    p.add_argument("--threads", type=int, default=None, help="pin both sides to N CPUs")
    p.add_argument(
        "--allocator",
        choices=("retain", "system"),
        default="retain",
        help="'retain' (default): both sides keep freed memory instead of page-faulting it "
        "back at every step (resize_jax.cpu_memory here, the same glibc settings through "
        "GLIBC_TUNABLES in the reference's processes); 'system': glibc's defaults on both sides",
    )
    p.add_argument("--out", default="benchmarks/results", help="directory for the results")
    return p.parse_args(argv)


ARGS = _parse_args() if __name__ == "__main__" else None
if ARGS is not None and ARGS.threads:
    # Before JAX starts: XLA sizes its CPU thread pool from the affinity mask.
    os.sched_setaffinity(0, sorted(os.sched_getaffinity(0))[: ARGS.threads])
if ARGS is not None and ARGS.allocator == "retain":
    # Before the first computation: a thread that has allocated keeps its arena.
    from resize_jax import cpu_memory

    cpu_memory.retain_freed_memory()

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import optax  # noqa: E402

from resize_jax import ops  # noqa: E402
from resize_jax.frontends import FixedResizer, LearnedResizer  # noqa: E402
from resize_jax.frontends.saliency import SaliencySampler  # noqa: E402
from resize_jax.models.accounting import cost_analysis_flops, peak_bytes  # noqa: E402
from resize_jax.ops import native  # noqa: E402

# The reference's arguments per case (same batch, sizes, grid as ours).
REFERENCE_ARGS = {
    "learned": ["learned", "--batch", "8", "--size", "448", "--out", "224"],
    "saliency_grid": ["saliency_grid", "--batch", "16", "--size", "800", "--out", "224"],
    "saliency": ["saliency", "--batch", "16", "--size", "800", "--out", "224"],
    "fixed": ["fixed", "--batch", "8", "--size", "448", "--out", "224"],
}


class Case:
    """A compiled pair of computations: `infer(state)` and `train(state) -> state`."""

    def __init__(self, name, batch, in_hw, out_hw, infer, train, state, labels, stateful):
        self.name, self.batch, self.in_hw, self.out_hw = name, batch, in_hw, out_hw
        self.infer, self.train, self.state = infer, train, state
        self.infer_label, self.train_label = labels
        self.stateful = stateful  # `train` returns the next state (a train loop).


def _images(batch, hw, seed=0):
    return jax.random.normal(jax.random.key(seed), (batch, *hw, 3), jnp.float32)


def _model_case(name, model, batch, in_hw, out_hw, train_kwargs=None):
    x = _images(batch, in_hw)
    variables = model.init(jax.random.key(1), x)
    params = variables["params"]
    extra = {k: v for k, v in variables.items() if k != "params"}
    tx = optax.sgd(1e-3)
    mutable = list(extra)

    def infer(state):
        params, extra, _, x = state
        return model.apply({"params": params, **extra}, x)[0]

    def train(state):
        params, extra, opt_state, x = state

        def loss_fn(p):
            (out, _), new = model.apply(
                {"params": p, **extra}, x, train=True, mutable=mutable, **(train_kwargs or {})
            )
            return jnp.mean(jnp.square(out)), new

        grads, new = jax.grad(loss_fn, has_aux=True)(params)
        updates, opt_state = tx.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), {**extra, **new}, opt_state, x

    # The images travel as an argument: as a closure constant XLA would fold the work on them.
    state = (params, extra, tx.init(params), x)
    labels = ("inference", "train step")
    return Case(name, batch, in_hw, out_hw, infer, train, state, labels, stateful=True)


def learned_case():
    return _model_case("learned", LearnedResizer((224, 224)), 8, (448, 448), (224, 224))


def saliency_case():
    return _model_case("saliency", SaliencySampler((224, 224)), 16, (800, 800), (224, 224))


def saliency_grid_case():
    batch, in_hw, out_hw, cells = 16, (800, 800), (224, 224), 31
    x = _images(batch, in_hw)
    logits = jax.random.normal(jax.random.key(2), (batch, cells, cells), jnp.float32)

    def forward(state):
        logits, x = state
        saliency = jax.nn.softmax(logits.reshape(batch, -1), axis=-1).reshape(logits.shape)
        grid = ops.saliency_grid(saliency, out_hw, pad=30, fwhm=13.0)
        return ops.grid_sample(x, grid)

    def train(state):
        # The reference's measurement: forward, then backward of the sum to the logits.
        logits, x = state
        return jax.grad(lambda lg: jnp.sum(forward((lg, x))))(logits)

    labels = ("forward", "fwd+bwd")
    return Case("saliency_grid", batch, in_hw, out_hw, forward, train, (logits, x), labels, False)


def fixed_case():
    batch, in_hw, out_hw = 8, (448, 448), (224, 224)
    model = FixedResizer(out_hw)
    x = _images(batch, in_hw)

    def forward(images):
        return model.apply({}, images)[0]

    def train(images):
        return jax.grad(lambda im: jnp.mean(jnp.square(forward(im))))(images)

    labels = ("forward", "fwd+bwd")
    return Case("fixed", batch, in_hw, out_hw, forward, train, x, labels, stateful=False)


CASES = {
    "learned": learned_case,
    "saliency_grid": saliency_grid_case,
    "saliency": saliency_case,
    "fixed": fixed_case,
}


def _compiled(fn, state, donate=False):
    # A train step donates its state, as the training loop does (resize_jax/train/loop.py):
    # otherwise XLA copies every input it returns unchanged, the images included (123 MB a
    # step for the saliency case), and counts that copy in the peak memory.
    compiled = jax.jit(fn, donate_argnums=(0,) if donate else ()).lower(state).compile()
    # FLOPs of the same math traced without the native kernels: XLA's cost analysis counts
    # nothing inside a custom call.
    with native.disabled():
        lowered = jax.jit(lambda s: fn(s)).lower(state)
    flops = cost_analysis_flops(lowered.compile().cost_analysis())
    peak = peak_bytes(compiled)
    return compiled, flops, float("nan") if peak is None else peak


def _time(compiled, state, reps, warmup, threads_state):
    """Median seconds per call; `threads_state`: feed each output back in (a train loop)."""
    for _ in range(warmup):
        out = jax.block_until_ready(compiled(state))
        state = out if threads_state else state
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        out = jax.block_until_ready(compiled(state))
        times.append(time.perf_counter() - start)
        state = out if threads_state else state
    return statistics.median(times), state


def matmul_gflops(reps=5, n=2048):
    a = jax.random.normal(jax.random.key(3), (n, n), jnp.float32)
    compiled = jax.jit(lambda a: a @ a).lower(a).compile()
    seconds, _ = _time(compiled, a, reps, 2, threads_state=False)
    return 2 * n**3 / seconds / 1e9


def resolve_reference(reference: str, python: str) -> str | None:
    """The reference script's path, or None ('none', or 'auto' without torch)."""
    if reference == "none":
        return None
    if reference != "auto":
        return reference
    found = subprocess.run(
        [python, "-c", "import importlib.util as u; print(u.find_spec('torch') is not None)"],
        capture_output=True,
        text=True,
        check=False,
    )
    return str(REFERENCE_SCRIPT) if found.stdout.strip() == "True" else None


def parse_settings(text: str) -> list[str]:
    settings = [s.strip() for s in text.split(",") if s.strip()]
    for setting in settings:
        fmt, _, extra = setting.partition("+")
        if fmt not in ("channels_last", "contiguous") or extra not in ("", "compile"):
            raise SystemExit(
                f"--reference-settings: got {setting!r}, expected channels_last or "
                "contiguous, optionally followed by +compile"
            )
    if not settings:
        raise SystemExit("--reference-settings: expected at least one setting")
    return settings


def reference_command(python, script, case_args, setting, threads, reps, warmup):
    fmt, _, extra = setting.partition("+")
    cmd = [python, script, *case_args, "--memory-format", fmt]
    cmd += ["--threads", str(threads), "--reps", str(reps), "--warmup", str(warmup)]
    return cmd + (["--compile"] if extra == "compile" else [])


def run_reference(cmd, allocator="system"):
    env = dict(os.environ)
    if allocator == "retain":
        from resize_jax import cpu_memory

        env["GLIBC_TUNABLES"] = cpu_memory.GLIBC_TUNABLES
    done = subprocess.run(cmd, capture_output=True, text=True, check=False, env=env)
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).strip().splitlines()[-1:]
        return {"error": tail[0] if tail else f"exit {done.returncode}"}
    return json.loads(done.stdout.strip().splitlines()[-1])


def fastest_reference(per_setting: dict[str, list[dict]], kind: str) -> dict | None:
    """The setting with the highest median `{kind}_img_per_s` over rounds, with its medians."""
    best = None
    for setting, results in per_setting.items():
        ok = [r for r in results if "error" not in r]
        if not ok:
            continue
        rate = _median([r[f"{kind}_img_per_s"] for r in ok])
        if rate == rate and (best is None or rate > best["img_per_s"]):
            peak = _median([r[f"{kind}_peak_mib"] for r in ok])
            best = {"setting": setting, "img_per_s": rate, "peak_mib": peak}
    return best


def _paired_ratios(batch, our_seconds, reference_results, kind):
    """Ours over the reference, round by round (the spread of the ratio)."""
    return [
        batch / ours / ref[f"{kind}_img_per_s"] if "error" not in ref else float("nan")
        for ours, ref in zip(our_seconds, reference_results, strict=False)
    ]


def _median(values):
    values = [v for v in values if v == v]
    return statistics.median(values) if values else float("nan")


def main(args):
    threads = len(os.sched_getaffinity(0))
    reference = resolve_reference(args.reference, args.reference_python)
    settings = parse_settings(args.reference_settings)
    if reference is None:
        print("no PyTorch reference (torch not importable or --reference none)", file=sys.stderr)
    names = [n.strip() for n in args.cases.split(",") if n.strip()]
    unknown = sorted(set(names) - set(CASES))
    if unknown:
        raise SystemExit(f"--cases: unknown {unknown}, expected some of {sorted(CASES)}")
    built = {}
    for name in names:
        case = CASES[name]()
        infer, infer_flops, infer_mem = _compiled(case.infer, case.state)
        train, train_flops, train_mem = _compiled(case.train, case.state, donate=case.stateful)
        built[name] = (case, infer, infer_flops, infer_mem, train, train_flops, train_mem)

    rounds = {
        name: {"infer_s": [], "train_s": [], "reference": {s: [] for s in settings}}
        for name in names
    }
    matmul = []
    for r in range(args.rounds):
        matmul.append(matmul_gflops(args.reps))
        for name in names:
            case, infer, _, _, train, _, _ = built[name]
            infer_s, _ = _time(infer, case.state, args.reps, args.warmup, threads_state=False)
            train_s, case.state = _time(
                train, case.state, args.reps, args.warmup, threads_state=case.stateful
            )
            rounds[name]["infer_s"].append(infer_s)
            rounds[name]["train_s"].append(train_s)
            if reference and name in REFERENCE_ARGS:
                for setting in settings:
                    cmd = reference_command(
                        args.reference_python,
                        reference,
                        REFERENCE_ARGS[name],
                        setting,
                        threads,
                        args.reps,
                        args.warmup,
                    )
                    result = run_reference(cmd, args.allocator)
                    rounds[name]["reference"][setting].append(result)
                    print(
                        f"round {r + 1}/{args.rounds} {name} reference {setting}: "
                        + (
                            result["error"]
                            if "error" in result
                            else f"{result['infer_img_per_s']:.1f} / "
                            f"{result['train_img_per_s']:.1f} img/s"
                        ),
                        file=sys.stderr,
                        flush=True,
                    )
            print(
                f"round {r + 1}/{args.rounds} {name}: {case.batch / infer_s:.1f} / "
                f"{case.batch / train_s:.1f} img/s",
                file=sys.stderr,
                flush=True,
            )

    matmul_rate = _median(matmul)
    results = []
    for name in names:
        case, _, infer_flops, infer_mem, _, train_flops, train_mem = built[name]
        infer_s, train_s = _median(rounds[name]["infer_s"]), _median(rounds[name]["train_s"])
        row = {
            "case": name,
            "batch": case.batch,
            "in": list(case.in_hw),
            "out": list(case.out_hw),
            "infer_label": case.infer_label,
            "train_label": case.train_label,
            "infer_img_per_s": case.batch / infer_s,
            "train_img_per_s": case.batch / train_s,
            "infer_gflop_per_img": infer_flops / case.batch / 1e9,
            "train_gflop_per_img": train_flops / case.batch / 1e9,
            "infer_gflop_per_s": infer_flops / infer_s / 1e9,
            "train_gflop_per_s": train_flops / train_s / 1e9,
            "infer_pct_matmul": 100 * infer_flops / infer_s / 1e9 / matmul_rate,
            "train_pct_matmul": 100 * train_flops / train_s / 1e9 / matmul_rate,
            "infer_peak_mib": infer_mem / 2**20,
            "train_peak_mib": train_mem / 2**20,
            "rounds_infer_s": rounds[name]["infer_s"],
            "rounds_train_s": rounds[name]["train_s"],
        }
        per_setting = rounds[name]["reference"]
        if any(per_setting.values()):
            row["reference_rounds"] = per_setting
        for kind in ("infer", "train"):
            best = fastest_reference(per_setting, kind)
            if best is not None:
                row[f"reference_{kind}_setting"] = best["setting"]
                row[f"reference_{kind}_img_per_s"] = best["img_per_s"]
                row[f"reference_{kind}_peak_mib"] = best["peak_mib"]
                row[f"{kind}_ratio"] = row[f"{kind}_img_per_s"] / best["img_per_s"]
                row[f"rounds_{kind}_ratio"] = _paired_ratios(
                    case.batch, rounds[name][f"{kind}_s"], per_setting[best["setting"]], kind
                )
        results.append(row)

    device = jax.devices()[0]
    meta = {
        "backend": jax.default_backend(),
        "device": getattr(device, "device_kind", str(device)),
        "cpu": platform.processor() or platform.machine(),
        "threads": threads,
        "jax": jax.__version__,
        "matmul_gflop_per_s": matmul_rate,
        "matmul_rounds": matmul,
        "rounds": args.rounds,
        "reps": args.reps,
        "max_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "command": " ".join([Path(sys.argv[0]).as_posix(), *sys.argv[1:]]),
        "reference": reference,
        "reference_settings": settings,
        "allocator": args.allocator,
        # The native kernels' vector width (None off CPU or without them): 16 with AVX-512.
        "native_vector_lanes": native.vector_lanes() if jax.default_backend() == "cpu" else None,
    }
    table = format_table(results, meta)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "bench_frontends.json").write_text(
        json.dumps({"meta": meta, "results": results}, indent=1)
    )
    (out / "bench_frontends.md").write_text(table + "\n")
    print(table)


def _fmt(value, spec):
    return "–" if value is None or value != value else format(value, spec)


def format_table(results, meta):
    lines = [
        f"{meta['backend']} ({meta['device']}), {meta['threads']} threads, jax {meta['jax']}; "
        f"f32 matmul rate {meta['matmul_gflop_per_s']:.1f} GFLOP/s; medians of "
        f"{meta['rounds']} rounds × {meta['reps']} reps; "
        f"allocator: {meta.get('allocator', 'system')} (both sides)"
        + (
            f"; native kernels: {meta['native_vector_lanes']}-float vectors."
            if meta.get("native_vector_lanes")
            else "."
        ),
        "",
        "| case | batch, in→out | measure | img/s | reference img/s (fastest setting) | ratio "
        "(rounds) | GFLOP/img | GFLOP/s | % matmul | peak MiB | reference peak MiB |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in results:
        shape = f"{row['batch']}, {row['in'][0]}→{row['out'][0]}"
        for kind in ("infer", "train"):
            reference = _fmt(row.get(f"reference_{kind}_img_per_s"), ".1f")
            if f"reference_{kind}_setting" in row:
                reference += f" ({row[f'reference_{kind}_setting']})"
            ratio = _fmt(row.get(f"{kind}_ratio"), ".2f")
            spread = [r for r in row.get(f"rounds_{kind}_ratio", []) if r == r]
            if len(spread) > 1:
                ratio += f" ({min(spread):.2f}–{max(spread):.2f})"
            lines.append(
                f"| {row['case']} | {shape} | {row[kind + '_label']} | "
                f"{row[kind + '_img_per_s']:.1f} | {reference} | {ratio} | "
                f"{row[kind + '_gflop_per_img']:.3g} | {row[kind + '_gflop_per_s']:.1f} | "
                f"{row[kind + '_pct_matmul']:.0f}% | {row[kind + '_peak_mib']:.0f} | "
                f"{_fmt(row.get(f'reference_{kind}_peak_mib'), '.0f')} |"
            )
    return "\n".join(lines)


if __name__ == "__main__":
    main(ARGS)
