"""Where a front-end's train step spends its time, operation by operation (CPU).

    python benchmarks/profile_train_step.py [--threads 2] [--frontend learned|saliency]
        [--batch 8] [--size 448] [--out SIDE] [--top 15] [--allocator retain|system]
        [--inference]

Traces `--steps` jitted train steps (forward, backward, BatchNorm update; no optimizer), or
with `--inference` forward passes in evaluation mode, of the `LearnedResizer` (default) or
the `SaliencySampler` at `--size`² → `--out`² (default `--size` / 2) with `jax.profiler`,
sums the time of every compiled operation over the steps, and prints the totals per kind
(the native kernels, XLA's reductions, XLA's other fusions), the wall time of an untraced
call beside them (what is not in any operation: dispatch and the gaps between operations)
and the `--top` operations with the shape each one writes, read from the compiled HLO. A
custom call is opaque to XLA's cost model, so this is the way to see the native kernels
beside the fusions around them.
"""

from __future__ import annotations

import argparse
import collections
import glob
import gzip
import json
import os
import re
import statistics
import tempfile
import time

PARSER = argparse.ArgumentParser(description=__doc__.splitlines()[0])
PARSER.add_argument("--threads", type=int, default=None, help="pin to this many CPUs")
PARSER.add_argument("--frontend", choices=("learned", "saliency"), default="learned")
PARSER.add_argument("--batch", type=int, default=8)
PARSER.add_argument("--size", type=int, default=448, help="input side")
PARSER.add_argument("--out", type=int, default=None, help="output side (default: half)")
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

from resize_jax import LearnedResizer, SaliencySampler  # noqa: E402


def kind(name: str) -> str:
    if name.startswith("ffi_call"):
        return "native kernels"
    if name.startswith("ynn_fusion"):
        return "XLA reductions (YNNPACK)"
    return "XLA fusions and copies"


def build(frontend: str, batch: int, size: int, out: int, inference: bool):
    """(jitted step, its arguments): the front-end's inference, or its gradient with respect to
    its parameters (a mean-square loss on its output) with the BatchNorm update."""
    model = (LearnedResizer if frontend == "learned" else SaliencySampler)(output_shape=(out, out))
    images = jax.random.uniform(jax.random.key(0), (batch, size, size, 3))
    variables = model.init(jax.random.key(1), images[:1])
    state = {k: v for k, v in variables.items() if k != "params"}

    def loss(params, state, images):
        (out, _), updates = model.apply(
            {"params": params, **state}, images, train=True, mutable=list(state)
        )
        return jnp.mean(out**2), updates

    if inference:
        step = jax.jit(lambda variables, images: model.apply(variables, images)[0])
        return step, (variables, images)
    return jax.jit(jax.grad(loss, has_aux=True)), (variables["params"], state, images)


def _launches_and_ends(events, instructions):
    """{operation: (its events, its "end: <operation>" events)}, each in time order."""
    found = collections.defaultdict(lambda: ([], []))
    for event in events:
        name = event.get("name", "")
        if event.get("ph") != "X":
            continue
        if name in instructions:
            found[name][0].append(event)
        elif name.startswith("end: ") and name[5:] in instructions:
            found[name[5:]][1].append(event)
    for launches, ends in found.values():
        launches.sort(key=lambda e: e["ts"])
        ends.sort(key=lambda e: e["ts"])
    return found


def main() -> None:
    out = ARGS.out or ARGS.size // 2
    step, args = build(ARGS.frontend, ARGS.batch, ARGS.size, out, ARGS.inference)
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
    for name, (launches, ends) in _launches_and_ends(events, instructions).items():
        for i, launch in enumerate(launches):
            finish = launch["ts"] + launch["dur"]
            if i < len(ends):
                # XLA runs some operations (its convolutions) asynchronously: the event named
                # after the operation is its launch, an "end: <name>" event its completion.
                finish = max(finish, ends[i]["ts"] + ends[i]["dur"])
            per_op[name] += (finish - launch["ts"]) / 1e3 / ARGS.steps
    total = sum(per_op.values())
    per_kind = collections.Counter()
    for name, ms in per_op.items():
        per_kind[kind(name)] += ms
    walls = []
    for _ in range(max(ARGS.steps, 5)):
        start = time.perf_counter()
        jax.block_until_ready(step(*args))
        walls.append(time.perf_counter() - start)
    measure = "inference" if ARGS.inference else "train step"
    name = "LearnedResizer" if ARGS.frontend == "learned" else "SaliencySampler"
    print(
        f"{name} {measure}, batch {ARGS.batch}, {ARGS.size}² → {out}², "
        f"{jax.devices()[0].platform}; mean over {ARGS.steps} traced steps: {total:.0f} ms "
        f"in compiled operations; untraced wall time {1e3 * statistics.median(walls):.0f} ms "
        "(median).\n"
    )
    print("| kind | ms/step | share |\n|---|---:|---:|")
    for name, ms in per_kind.most_common():
        print(f"| {name} | {ms:.0f} | {ms / total:.0%} |")
    print("\n| operation | writes | ms/step |\n|---|---|---:|")
    for name, ms in per_op.most_common(ARGS.top):
        print(f"| {name} | {instructions[name]} | {ms:.1f} |")


if __name__ == "__main__":
    main()
