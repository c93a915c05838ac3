"""Keep freed host memory in the process, so a CPU step does not page-fault its buffers back.

XLA:CPU allocates a computation's temporaries and outputs at every execution and frees them
afterwards. glibc's allocator returns large blocks to the kernel (blocks above 32 MiB are
`mmap`ed and unmapped, the top of the heap is trimmed, and each thread's arena releases its
free pages), so the next step touches fresh pages and the kernel zero-fills each 4 KiB page
on first touch. In the learned resizer's train step (batch 8, 448² → 224², 2 CPU threads)
that was about 139,000 page faults (545 MiB) per step and a quarter of the process's CPU
time spent in the kernel; with `retain_freed_memory()` none in most steps, and the step
about a fifth faster (docs/performance.md). (An occasional step still faults its buffers in
again: glibc gives memory back in ways these options do not cover.)

`retain_freed_memory()` sets three glibc options (`mallopt`): every block comes from the heap
(`M_MMAP_MAX` 0), up to 2 GiB of free memory at the top of the heap stays mapped
(`M_TRIM_THRESHOLD`), and all threads share the main arena (`M_ARENA_MAX` 1). The cost: the
process's resident memory stays at its peak (the trade GPU caching allocators make), and
threads that allocate concurrently share one lock, which input pipelines with many threads
may feel. Call it once, first thing: a thread that has already allocated keeps its arena.
It is the same as starting the process with `GLIBC_TUNABLES` set to `GLIBC_TUNABLES` below
(for a process that is not Python, e.g. a benchmark's reference in another framework).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import platform

# glibc's malloc.h.
_M_TRIM_THRESHOLD = -1
_M_MMAP_MAX = -4
_M_ARENA_MAX = -8
# mallopt takes an int.
_TRIM_THRESHOLD = 2**31 - 1
# The same settings for a process's environment, read by glibc when the process starts.
GLIBC_TUNABLES = ":".join(
    (
        "glibc.malloc.arena_max=1",
        "glibc.malloc.mmap_max=0",
        f"glibc.malloc.trim_threshold={_TRIM_THRESHOLD}",
    )
)


@functools.cache
def retain_freed_memory() -> bool:
    """Sets glibc's allocator to keep freed memory (module docstring). Returns whether it
    did: False, and nothing changed, where the C library is not glibc (macOS, musl)."""
    if platform.libc_ver()[0] != "glibc":
        return False
    libc = ctypes.CDLL(ctypes.util.find_library("c"))
    options = (
        (_M_ARENA_MAX, 1),
        (_M_MMAP_MAX, 0),
        (_M_TRIM_THRESHOLD, _TRIM_THRESHOLD),
    )
    # mallopt returns 1 on success, 0 on error.
    return all(libc.mallopt(option, value) == 1 for option, value in options)


__all__ = ["GLIBC_TUNABLES", "retain_freed_memory"]
