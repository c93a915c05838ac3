"""Devices, hosts and the data mesh: batches sharded over `data`; the train state replicated
or, with `config.sharding = "fsdp"`, its large arrays split over `data` too.

FSDP (fully sharded data parallelism) follows big_vision's `fsdp` rule
(`big_vision/sharding.py`): every array of the train state (parameters, optimizer moments,
BatchNorm statistics) of at least `config.fsdp_min_size_mb` MiB is split along its largest
dimension that the number of devices divides; smaller arrays, and arrays with no such
dimension, stay replicated. Placement is declared with `NamedSharding`s as `jit`'s
`out_shardings` (initialisation) and `in_shardings`/`out_shardings` (steps); XLA inserts the
all-gathers of the parameters and the reduce-scatters of the gradients. The rule depends only on
shapes, so a parameter and its Adam moments are split alike. Checkpoints store global arrays,
so a run saved under one setting restores under the other, on any device count.
"""

from __future__ import annotations

import math

import jax
import numpy as np
from absl import logging
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from resize_jax.ops.checks import check_number


def maybe_initialize_distributed(config) -> None:
    """Calls `jax.distributed.initialize` when `config.distributed.enabled` (multi-host).

    With no coordinator given, JAX auto-detects the cluster (TPU pods, SLURM, ...); local
    multi-process runs pass `coordinator_address`, `num_processes` and `process_id`.
    `cpu_collectives` ("gloo") lets CPU-only processes run collectives together.
    """
    dist = config.get("distributed")
    if not dist or not dist.get("enabled", False):
        return
    if jax.distributed.is_initialized():
        return
    if dist.get("cpu_collectives"):
        jax.config.update("jax_cpu_collectives_implementation", dist.cpu_collectives)
    # Unset fields (None) are left to JAX's cluster auto-detection.
    kwargs = {
        k: dist[k]
        for k in ("coordinator_address", "num_processes", "process_id")
        if dist.get(k) is not None
    }
    jax.distributed.initialize(**kwargs)
    logging.info(
        "jax.distributed: process %d of %d, %d local / %d global devices.",
        jax.process_index(),
        jax.process_count(),
        jax.local_device_count(),
        jax.device_count(),
    )


def make_mesh(num_devices: int = -1) -> Mesh:
    """A 1-D mesh with axis "data" over all devices, or over the first `num_devices`.

    Using a subset is for single-process experiments (e.g. comparing 1 and 8 devices).
    """
    devices = jax.devices()
    if num_devices not in (-1, None):
        if jax.process_count() > 1 and num_devices != len(devices):
            raise ValueError(
                f"`num_devices`={num_devices} must be -1 in multi-process runs "
                f"({len(devices)} devices over {jax.process_count()} processes)."
            )
        if not 1 <= num_devices <= len(devices):
            raise ValueError(
                f"`num_devices` must be -1 or in [1, {len(devices)}], got {num_devices}."
            )
        devices = devices[:num_devices]
    return Mesh(np.asarray(devices), ("data",))


def data_sharding(mesh: Mesh) -> NamedSharding:
    """Leading (batch) axis split over "data"."""
    return NamedSharding(mesh, P("data"))


def replicated(mesh: Mesh) -> NamedSharding:
    return NamedSharding(mesh, P())


def global_batch(batch: dict[str, np.ndarray], mesh: Mesh) -> dict[str, jax.Array]:
    """This process's slice of a batch → global arrays sharded over "data"."""
    sharding = data_sharding(mesh)
    return {
        k: jax.make_array_from_process_local_data(sharding, np.asarray(v)) for k, v in batch.items()
    }


SHARDINGS = ("replicated", "fsdp")


def check_sharding_config(config) -> None:
    """Raises ValueError naming the field for a bad `config.sharding` / `fsdp_min_size_mb`."""
    name = config.sharding
    if name not in SHARDINGS:
        raise ValueError(f"`config.sharding` must be one of {list(SHARDINGS)}, got {name!r}.")
    check_number(config.fsdp_min_size_mb, "config.fsdp_min_size_mb", low=0)


def fsdp_spec(shape, dtype, num_shards: int, min_size_bytes: float, name: str = "") -> P:
    """big_vision's `fsdp` rule for one array: `P(...)` with "data" on its largest dimension
    divisible by `num_shards`, or `P()` (replicated) when the array is smaller than
    `min_size_bytes` or no dimension divides (logged at debug level, naming `name`)."""
    shape = tuple(int(d) for d in shape)
    if num_shards <= 1 or math.prod(shape) * np.dtype(dtype).itemsize < min_size_bytes:
        return P()
    # Largest dimension first; among equal sizes the later one, as big_vision's argsort does.
    for axis in sorted(range(len(shape)), key=lambda i: (shape[i], i), reverse=True):
        if shape[axis] % num_shards == 0:
            return P(*([None] * axis), "data")
    logging.debug(
        "fsdp: %s %s stays replicated: no dimension is divisible by the %d devices of `data`.",
        name or "array",
        shape,
        num_shards,
    )
    return P()


def state_sharding(abstract_state, mesh: Mesh, config):
    """`NamedSharding`s for every leaf of `abstract_state` (arrays or ShapeDtypeStructs) under
    `config.sharding`: all replicated, or split by `fsdp_spec`."""
    check_sharding_config(config)
    if config.sharding == "replicated":
        return jax.tree.map(lambda _: replicated(mesh), abstract_state)
    min_bytes = float(config.fsdp_min_size_mb) * 2**20
    num_shards = mesh.shape["data"]

    def leaf_sharding(path, leaf):
        spec = fsdp_spec(leaf.shape, leaf.dtype, num_shards, min_bytes, jax.tree_util.keystr(path))
        return NamedSharding(mesh, spec)

    return jax.tree_util.tree_map_with_path(leaf_sharding, abstract_state)


def bytes_per_device(tree) -> int:
    """Bytes one device holds of `tree`'s arrays (or ShapeDtypeStructs with a sharding): each
    leaf's shard shape × item size, so a replicated array counts whole, a split one 1/N."""
    total = 0
    for leaf in jax.tree.leaves(tree):
        shard = leaf.sharding.shard_shape(tuple(leaf.shape))
        total += math.prod(shard) * np.dtype(leaf.dtype).itemsize
    return total
