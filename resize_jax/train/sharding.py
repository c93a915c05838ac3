"""Devices, hosts and the data mesh: batches sharded over `data`, parameters replicated."""

from __future__ import annotations

import jax
import numpy as np
from absl import logging
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P


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
