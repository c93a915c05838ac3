#!/usr/bin/env python3
"""Whole-model train step: img/s and model FLOPs utilisation (MFU) of front-end + backbone.

    python benchmarks/bench_model.py \
        --config configs/imagenet_resizer.py:backbone=resnet50,frontend=learned \
        --config.dtype=bfloat16 --config.batch_size=256 [--reps 10] [--warmup 3]

The step timed is the training loop's own (`resize_jax.train.jit_train_step`: forward, loss,
backward, optimizer update and BatchNorm statistics, the batch split over every device, the
state replicated or FSDP-split as `config.sharding` says, and donated), on synthetic data of
the config's shapes: images uniform in the config's value range, random labels. No dataset
is read, so the ImageNet configs run anywhere. Any config field can be overridden
(`--config.model.name=resnet18`).

Figures (median step time over `--reps` steps after `--warmup`):
  img/s       global batch / step time.
  model FLOPs 3 × the forward pass (XLA's cost analysis of `model.apply` at batch 1, traced
              without the native CPU kernels; the backward pass counted as twice the
              forward): the usual MFU convention, independent of how the step is compiled.
  MFU         model FLOPs/s ÷ (devices × the device's peak dense rate at the compute dtype),
              the peak from the vendor table below or `--peak_tflops`; none on CPU.
  % matmul    model FLOPs/s ÷ (devices × a square matmul's rate at the compute dtype,
              measured on one device in the same run): comparable on every backend.
  peak MiB    XLA's buffer assignment of the step on one device (arguments + outputs +
              temporaries − donated).
  state MiB   the train state (parameters, optimizer state, BatchNorm statistics) one
              device holds: all of it when replicated, about 1/devices of its large arrays
              under `--config.sharding=fsdp`.

Writes `<out>/bench_model.json` and `<out>/bench_model.md` and prints the table.
"""

from __future__ import annotations

import json
import platform
import statistics
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from absl import app, flags
from ml_collections import config_flags

from resize_jax import data, models
from resize_jax.models.accounting import peak_bytes
from resize_jax.ops.checks import check_positive_int
from resize_jax.train import build, init_training, jit_train_step, sharding

# Dense (no sparsity) peak FLOP/s per device in bf16, from the vendors' data sheets; the
# first matching substring of `device_kind` wins (so "H100 PCIe" before "H100").
PEAK_BF16_TFLOPS = (
    ("H100 PCIe", 756.0),
    ("H100", 989.4),
    ("H200", 989.4),
    ("GH200", 989.4),
    ("A100", 312.0),
    ("L40S", 362.0),
    ("L4", 121.0),
    ("TPU v4", 275.0),
    ("TPU v5 lite", 197.0),
    ("TPU v5e", 197.0),
    ("TPU v5", 459.0),  # v5p reports "TPU v5".
    ("TPU v6 lite", 918.0),
    ("TPU v6e", 918.0),
)


def spec_peak_tflops(device_kind: str, dtype) -> float | None:
    """The vendor's dense bf16 peak per device for known accelerators, else None (f32: None:
    GPUs run f32 matmuls as TF32 or not, depending on precision flags)."""
    if jnp.dtype(dtype) != jnp.bfloat16:
        return None
    for name, tflops in PEAK_BF16_TFLOPS:
        if name.lower() in device_kind.lower():
            return tflops
    return None


def _median_seconds(fn, reps: int) -> float:
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        jax.block_until_ready(fn())
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def matmul_flops_per_second(dtype, size: int, reps: int = 5) -> float:
    """A size² × size² matmul's FLOP/s at `dtype` on the default device."""
    keys = jax.random.split(jax.random.key(0))
    a, b = (jax.random.normal(k, (size, size), jnp.float32).astype(dtype) for k in keys)
    product = jax.jit(jnp.matmul)
    jax.block_until_ready(product(a, b))
    return 2 * size**3 / _median_seconds(lambda: product(a, b), reps)


def synthetic_batch(config, info, batch_size: int, seed: int = 0) -> dict[str, np.ndarray]:
    """{"image": f32[b, H, W, 3] uniform in the value range, "label": int32[b]}."""
    if info.task != "classification":
        raise ValueError(
            f"`config.task.name` must be a classification task for this benchmark, got "
            f"{config.task.name!r} (task {info.task!r})."
        )
    rng = np.random.default_rng(seed)
    low, high = config.data.get("value_range", (0.0, 1.0))
    images = rng.uniform(low, high, (batch_size, *info.image_shape)).astype(np.float32)
    labels = rng.integers(0, info.num_classes, batch_size).astype(np.int32)
    return {"image": images, "label": labels}


def run(config, *, reps: int, warmup: int, num_classes: int, peak_tflops=None) -> dict:
    """Compiles and times the config's train step; returns the figures (module docstring)."""
    for value, name in ((reps, "reps"), (warmup, "warmup"), (num_classes, "num_classes")):
        check_positive_int(value, name)
    if peak_tflops is not None and not peak_tflops > 0:
        raise ValueError(f"`peak_tflops` must be positive, got {peak_tflops!r}.")
    image_size = config.data.get("image_size")
    if image_size is None:
        raise ValueError(
            "`config.data.image_size` must be set to (H, W) for the synthetic images, got None "
            "(the dataset's own size is not read)."
        )
    mesh = sharding.make_mesh(config.get("num_devices", -1))
    info = data.DatasetInfo(
        task=config.task.name,
        num_classes=num_classes,
        num_train=config.batch_size,
        num_eval=config.batch_size,
        image_shape=(*image_size, 3),
        ignore_label=None,
    )
    build.validate_config(config, info, mesh.size)
    model = build.build_model(config, info)
    task = build.build_task(config, model)
    batch = sharding.global_batch(synthetic_batch(config, info, config.batch_size), mesh)

    sample = np.zeros((1, *info.image_shape), np.float32)
    state, tx, schedule = init_training(config, model, sample, mesh)
    # Per image, native kernels excluded (module docstring); before the steps donate `state`.
    forward_flops = models.flops(model.apply, state.variables, sample.shape, train=False)
    state_sharding = jax.tree.map(lambda x: x.sharding, state)
    state_bytes = sharding.bytes_per_device(state)
    train_step = jit_train_step(config, model, task, tx, schedule, mesh, state_sharding)
    compiled = train_step.lower(state, batch).compile()

    for _ in range(warmup):
        state, metrics = compiled(state, batch)
    jax.block_until_ready(metrics)
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        state, metrics = compiled(state, batch)
        jax.block_until_ready(metrics)
        times.append(time.perf_counter() - start)
    step_seconds = statistics.median(times)

    model_flops = 3 * forward_flops * config.batch_size / step_seconds
    dtype = build.compute_dtype(config)
    device = mesh.devices.flat[0]
    peak = peak_tflops or spec_peak_tflops(device.device_kind, dtype)
    matmul = matmul_flops_per_second(dtype, 2048 if device.platform == "cpu" else 8192)
    memory = peak_bytes(compiled)
    peak_mib = None if memory is None else memory / 2**20
    return {
        "frontend": config.frontend.name,
        "backbone": config.model.name,
        "input": list(info.image_shape[:2]),
        "task_size": list(config.frontend.get("output_shape", info.image_shape[:2])),
        "dtype": jnp.dtype(dtype).name,
        "batch": config.batch_size,
        "devices": mesh.size,
        "sharding": config.sharding,
        "device_kind": device.device_kind,
        "platform": device.platform,
        "step_ms": 1e3 * step_seconds,
        "step_ms_all": [1e3 * t for t in times],
        "img_per_s": config.batch_size / step_seconds,
        "forward_gflop_per_img": forward_flops / 1e9,
        "model_tflop_per_s": model_flops / 1e12,
        "peak_tflops_per_device": peak,
        "mfu_pct": None if peak is None else 100 * model_flops / (mesh.size * peak * 1e12),
        "matmul_tflop_per_s_per_device": matmul / 1e12,
        "pct_matmul": 100 * model_flops / (mesh.size * matmul),
        "peak_mib_per_device": peak_mib,
        "state_mib_per_device": state_bytes / 2**20,
        "final_loss": float(metrics["loss"]),
    }


def markdown(r: dict) -> str:
    def fmt(value, spec):
        return "–" if value is None else format(value, spec)

    head = (
        f"{r['platform']} ({r['device_kind']}) × {r['devices']}, {r['sharding']} state, "
        f"jax {jax.__version__}; "
        f"{r['dtype']}; matmul {r['matmul_tflop_per_s_per_device']:.3g} TFLOP/s per device; "
        f"median of {len(r['step_ms_all'])} steps."
    )
    rows = [
        "| model | input → task | batch | step ms | img/s | fwd GFLOP/img | model TFLOP/s "
        "| MFU | % matmul | peak MiB/device | state MiB/device |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        f"| {r['frontend']} + {r['backbone']} | {r['input'][0]}→{r['task_size'][0]} "
        f"| {r['batch']} | {r['step_ms']:.1f} | {r['img_per_s']:.1f} "
        f"| {r['forward_gflop_per_img']:.3g} | {r['model_tflop_per_s']:.3g} "
        f"| {fmt(r['mfu_pct'], '.1f')}{'' if r['mfu_pct'] is None else '%'} "
        f"| {r['pct_matmul']:.1f}% | {fmt(r['peak_mib_per_device'], '.0f')} "
        f"| {r['state_mib_per_device']:.1f} |",
    ]
    return head + "\n\n" + "\n".join(rows) + "\n"


def _define_flags() -> dict:
    # Defined when run as a script only: importing this module (tests) defines no flags.
    return {
        "config": config_flags.DEFINE_config_file("config", None, "Config file."),
        "reps": flags.DEFINE_integer("reps", 10, "Timed steps."),
        "warmup": flags.DEFINE_integer("warmup", 3, "Untimed steps after compiling."),
        "num_classes": flags.DEFINE_integer(
            "num_classes", 1000, "Classes of the synthetic labels."
        ),
        "peak_tflops": flags.DEFINE_float(
            "peak_tflops", None, "Peak dense TFLOP/s per device at the compute dtype."
        ),
        "out": flags.DEFINE_string("out", "benchmarks/results", "Directory for the results."),
    }


def write_results(result: dict, out: str) -> str:
    """Writes `<out>/bench_model.{json,md}`; returns the markdown."""
    table = markdown(result)
    directory = Path(out)
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "bench_model.json").write_text(json.dumps(result, indent=2) + "\n")
    (directory / "bench_model.md").write_text(table)
    return table


def main(argv, flag_values: dict) -> None:
    del argv  # Unused.
    config = flag_values["config"].value
    if config is None:
        raise app.UsageError("--config is required, e.g. configs/imagenet_resizer.py")
    result = run(
        config,
        reps=flag_values["reps"].value,
        warmup=flag_values["warmup"].value,
        num_classes=flag_values["num_classes"].value,
        peak_tflops=flag_values["peak_tflops"].value,
    )
    result["machine"] = platform.node()
    print(write_results(result, flag_values["out"].value))


if __name__ == "__main__":
    _FLAGS = _define_flags()
    app.run(lambda argv: main(argv, _FLAGS))
