"""resize_jax.cpu_memory: after `retain_freed_memory()`, a repeated train step page-faults no
memory back (in fresh processes: the setting is process-wide)."""

from __future__ import annotations

import json
import platform
import subprocess
import sys

import pytest

_PROBE = """
import json, resource, sys
from resize_jax import cpu_memory

applied = cpu_memory.retain_freed_memory() if sys.argv[1] == "retain" else None
assert applied is None or cpu_memory.retain_freed_memory() == applied  # idempotent
import jax, jax.numpy as jnp
from resize_jax import LearnedResizer

# A train step whose temporaries XLA allocates and frees at every execution: 3 × 448² × 16
# floats, 37 MiB each, above the 32 MiB beyond which glibc always maps a block and unmaps it
# when freed (smaller ones it may come to keep by itself, after the first few).
model = LearnedResizer(output_shape=(224, 224))
images = jnp.ones((3, 448, 448, 3))
variables = model.init(jax.random.key(0), images)

def loss(params):
    (out, _), _ = model.apply(
        {**variables, "params": params}, images, train=True, mutable=["batch_stats"]
    )
    return jnp.mean(out**2)

step = jax.jit(jax.grad(loss))
jax.block_until_ready(step(variables["params"]))
# The fewest faults of a few steps: the heap may still grow during the first ones, until its
# free blocks fit the step's buffers.
faults = []
for _ in range(4):
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    jax.block_until_ready(step(variables["params"]))
    faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
print(json.dumps({"applied": applied, "faults": min(faults)}))
"""


def _probe(mode: str) -> dict:
    done = subprocess.run(
        [sys.executable, "-c", _PROBE, mode], capture_output=True, text=True, check=True
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="glibc's allocator only")
def test_freed_memory_is_reused_without_page_faults():
    system = _probe("system")
    retained = _probe("retain")
    assert retained["applied"] is True
    # glibc's defaults hand the temporaries back to the kernel: ~135 MiB of 4 KiB pages.
    assert system["faults"] > 10000, system
    assert retained["faults"] < 500, retained


def test_elsewhere_it_changes_nothing(monkeypatch):
    from resize_jax import cpu_memory

    cpu_memory.retain_freed_memory.cache_clear()
    monkeypatch.setattr(cpu_memory.platform, "libc_ver", lambda: ("", ""))
    try:
        assert cpu_memory.retain_freed_memory() is False
    finally:
        cpu_memory.retain_freed_memory.cache_clear()
