"""Refuses a train step that cannot fit in device memory, before it runs.

XLA's buffer assignment knows the step's peak memory once it is compiled; running it anyway
would fail with an out-of-memory error deep inside the runtime (or make the host swap), so
the loop compiles ahead, compares, and names the config fields that set the size.
"""

from __future__ import annotations

import os

import jax

from resize_jax.models.accounting import peak_bytes


def device_memory_bytes(device=None) -> int | None:
    """The memory one device may use: the runtime's limit on accelerators; on CPU, the
    host's physical memory shared by the process's devices. None when unknown."""
    device = device or jax.local_devices()[0]
    stats = device.memory_stats() if hasattr(device, "memory_stats") else None
    if stats and stats.get("bytes_limit"):
        return int(stats["bytes_limit"])
    if device.platform == "cpu":
        try:
            total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
        except (ValueError, OSError, AttributeError):
            return None
        return int(total // max(jax.local_device_count(), 1))
    return None


def compile_checked(jitted, args, config):
    """`jitted.lower(*args).compile()`, refused when its peak memory exceeds the device's.

    Raises:
      ValueError: naming the memory needed and available and the fields that set it.
    """
    compiled = jitted.lower(*args).compile()
    needed = peak_bytes(compiled)
    available = device_memory_bytes()
    if needed is not None and available is not None and needed > available:
        frontend = config.get("frontend", {})
        sizes = f"`config.batch_size`={config.batch_size}"
        if frontend and frontend.get("output_shape") is not None:
            sizes += f", `config.frontend.output_shape`={tuple(frontend.output_shape)}"
        image_size = config.data.get("image_size")
        if image_size is not None:
            sizes += f", `config.data.image_size`={tuple(image_size)}"
        raise ValueError(
            f"One train step needs {needed / 2**30:.1f} GiB per device, more than the "
            f"{available / 2**30:.1f} GiB a device has; reduce {sizes}."
        )
    return compiled
