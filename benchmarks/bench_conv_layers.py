"""The learned resizer's convolutions one by one: XLA's against resize_jax's native kernels.

For each layer at the paper's shapes (batch 8, 448→224, n = 16) it times the forward pass, the
weight gradient and the input gradient, each jitted on its own, with `ops.conv2d_same` traced
with the native kernels and without them (`resize_jax.ops.native.disabled()`); median of
`--reps` calls after two warm-up calls, GFLOP/s from the layer's multiply-adds (2 per tap,
padding included). Prints a markdown table. `--allocator` as in `bench_frontends.py`: by
default freed memory stays in the process (`resize_jax.cpu_memory`), so a layer's output
buffer is not page-faulted in again at every call.

    python benchmarks/bench_conv_layers.py [--threads 2] [--reps 7] [--allocator retain|system]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

PARSER = argparse.ArgumentParser(description=__doc__.splitlines()[0])
PARSER.add_argument("--threads", type=int, default=None, help="pin to this many CPUs")
PARSER.add_argument("--reps", type=int, default=7, help="timed calls per layer and pass")
PARSER.add_argument("--allocator", choices=("retain", "system"), default="retain")
ARGS = PARSER.parse_args()
if ARGS.threads:
    # Before JAX starts: XLA sizes its CPU thread pool from the affinity mask.
    os.sched_setaffinity(0, sorted(os.sched_getaffinity(0))[: ARGS.threads])
if ARGS.allocator == "retain":
    from resize_jax import cpu_memory

    cpu_memory.retain_freed_memory()

import jax  # noqa: E402

from resize_jax.ops import conv, native  # noqa: E402

# name: (input shape, kernel shape); the learned resizer's layers at batch 8, 448→224.
LAYERS = {
    "conv_in 7×7, 3→16, 448²": ((8, 448, 448, 3), (7, 7, 3, 16)),
    "conv_mix 1×1, 16→16, 448²": ((8, 448, 448, 16), (1, 1, 16, 16)),
    "3×3, 16→16, 224² (×3)": ((8, 224, 224, 16), (3, 3, 16, 16)),
    "conv_out 7×7, 16→3, 224²": ((8, 224, 224, 16), (7, 7, 16, 3)),
}


def median_ms(fn, *args) -> float:
    for _ in range(2):
        jax.block_until_ready(fn(*args))
    times = []
    for _ in range(ARGS.reps):
        start = time.perf_counter()
        jax.block_until_ready(fn(*args))
        times.append(time.perf_counter() - start)
    return 1e3 * statistics.median(times)


def measures(x, w, g):
    """Fresh functions each call, so each is traced under the caller's native setting."""
    return {
        "forward": (jax.jit(lambda x, w: conv.conv2d_same(x, w)), (x, w)),
        "weight gradient": (
            jax.jit(lambda x, w, g: jax.vjp(lambda k: conv.conv2d_same(x, k), w)[1](g)[0]),
            (x, w, g),
        ),
        "input gradient": (
            jax.jit(lambda x, w, g: jax.vjp(lambda i: conv.conv2d_same(i, w), x)[1](g)[0]),
            (x, w, g),
        ),
    }


def main():
    if not native.available():
        raise SystemExit("native kernels unavailable (no C++ compiler or RESIZE_JAX_NATIVE=0)")
    print(
        f"{jax.devices()[0].device_kind}, {len(os.sched_getaffinity(0))} threads, "
        f"jax {jax.__version__}; ms (GFLOP/s), median of {ARGS.reps}; allocator: "
        f"{ARGS.allocator}; native kernels: {native.vector_lanes()}-float vectors\n"
    )
    print("| layer | measure | XLA | native | speed-up |")
    print("|---|---|---:|---:|---:|")
    for name, (x_shape, w_shape) in LAYERS.items():
        keys = jax.random.split(jax.random.key(0), 3)
        x = jax.random.normal(keys[0], x_shape)
        w = jax.random.normal(keys[1], w_shape)
        g = jax.random.normal(keys[2], (*x_shape[:3], w_shape[3]))
        gflop = 2 * x_shape[0] * x_shape[1] * x_shape[2] * w.size / 1e9
        with native.disabled():
            xla = {k: median_ms(f, *a) for k, (f, a) in measures(x, w, g).items()}
        ours = {k: median_ms(f, *a) for k, (f, a) in measures(x, w, g).items()}
        for measure in xla:
            a, b = xla[measure], ours[measure]
            print(
                f"| {name} | {measure} | {a:.1f} ({gflop / a * 1e3:.0f}) | "
                f"{b:.1f} ({gflop / b * 1e3:.0f}) | {a / b:.2f}× |",
                flush=True,
            )


if __name__ == "__main__":
    main()
