"""Where the learned resizer's train step spends its time, operation by operation (CPU).

    python benchmarks/profile_train_step.py [--threads 2] [--batch 8] [--size 448] [--top 15]
        [--allocator retain|system] [--inference]

Traces `--steps` jitted train steps (forward, backward, BatchNorm update; no optimizer), or
with `--inference` forward passes in evaluation mode, of `LearnedResizer` at `--size`² →
(`--size` / 2)² with `jax.profiler`, sums the time of every compiled operation over the
steps, and prints the totals per kind (the native convolution
kernels, XLA's reductions, XLA's other fusions) and the `--top` operations with the shape
each one writes, read from the compiled HLO. A custom call is opaque to XLA's cost model, so
this is the way to see the native kernels beside the fusions around them.
"""

from __future__ import annotations

import argparse
import collections
import glob
import gzip
import json
import os
import re
import tempfile

PARSER = argparse.ArgumentParser(description=__doc__.splitlines()[0])
PARSER.add_argument("--threads", type=int, default=None, help="pin to this many CPUs")
PARSER.add_argument("--batch", type=int, default=8)
PARSER.add_argument("--size", type=int, default=448, help="input side; the output is half")
PARSER.add_argument("--steps", type=int, default=3, help="traced train steps")
PARSER.add_argument("--top", type=int, default=15, help="operations listed")
PARSER.add_argument("--inference", action="store_true", help="the forward pass instead")
PARSER.add_argument(
    "--allocator",
    choices=("retain", "system"),
    default="retain",
    help="'retain' (default): resize_jax.cpu_memory.retain_freed_memory(); 'system': glibc's "
    "defaults, under which the operations that first touch each step's fresh buffers also "
    "carry the kernel's page-fault time",
)
ARGS = PARSER.parse_args()
if ARGS.threads:
    # Before JAX starts: XLA sizes its CPU thread pool from the affinity mask.
    os.sched_setaffinity(0, sorted(os.sched_getaffinity(0))[: ARGS.threads])
if ARGS.allocator == "retain":
    from resize_jax import cpu_memory

    cpu_memory.retain_freed_memory()

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402

from resize_jax import LearnedResizer  # noqa: E402


def kind(name: str) -> str:
    if name.startswith("ffi_call"):
        return "native convolutions"
    if name.startswith("ynn_fusion"):
        return "XLA reductions (YNNPACK)"
    return "XLA fusions and copies"


def main() -> None:
    model = LearnedResizer(output_shape=(ARGS.size // 2, ARGS.size // 2))
    images = jax.random.uniform(jax.random.key(0), (ARGS.batch, ARGS.size, ARGS.size, 3))
    variables = model.init(jax.random.key(1), images[:1])

    def loss(params, batch_stats, images):
        (out, _), updates = model.apply(
            {"params": params, "batch_stats": batch_stats},
            images,
            train=True,
            mutable=["batch_stats"],
        )
        return jnp.mean(out**2), updates

    if ARGS.inference:
        step = jax.jit(lambda variables, images: model.apply(variables, images)[0])
        args = (variables, images)
    else:
        step = jax.jit(jax.grad(loss, has_aux=True))
        args = (variables["params"], variables["batch_stats"], images)
    hlo = step.lower(*args).compile().as_text()
    for _ in range(2):
        jax.block_until_ready(step(*args))
    with tempfile.TemporaryDirectory() as trace_dir:
        with jax.profiler.trace(trace_dir, create_perfetto_trace=True):
            for _ in range(ARGS.steps):
                jax.block_until_ready(step(*args))
        (path,) = glob.glob(os.path.join(trace_dir, "**", "*.trace.json.gz"), recursive=True)
        with gzip.open(path) as f:
            trace = json.load(f)
    events = trace["traceEvents"] if isinstance(trace, dict) else trace
    # Names of the compiled computation's instructions: the events that are operations.
    # A result is one shape or, for a call with several outputs, a tuple of shapes.
    instructions = dict(re.findall(r"\n\s*(?:ROOT )?%([\w.-]+) = (\w+\[[^\]]*\]|\([^)]*\))", hlo))
    per_op = collections.Counter()
    for event in events:
        if event.get("ph") == "X" and event.get("name") in instructions:
            per_op[event["name"]] += event["dur"] / 1e3 / ARGS.steps
    total = sum(per_op.values())
    per_kind = collections.Counter()
    for name, ms in per_op.items():
        per_kind[kind(name)] += ms
    measure = "inference" if ARGS.inference else "train step"
    print(
        f"LearnedResizer {measure}, batch {ARGS.batch}, {ARGS.size}² → {ARGS.size // 2}², "
        f"{jax.devices()[0].platform}; mean over {ARGS.steps} traced steps: {total:.0f} ms "
        "in compiled operations.\n"
    )
    print("| kind | ms/step | share |\n|---|---:|---:|")
    for name, ms in per_kind.most_common():
        print(f"| {name} | {ms:.0f} | {ms / total:.0%} |")
    print("\n| operation | writes | ms/step |\n|---|---|---:|")
    for name, ms in per_op.most_common(ARGS.top):
        print(f"| {name} | {instructions[name]} | {ms:.1f} |")


if __name__ == "__main__":
    main()
