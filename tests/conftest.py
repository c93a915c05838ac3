"""Test set-up: fake 8 CPU devices (before JAX initialises), keep TensorFlow off accelerators,
and share one persistent compilation cache between the tests: many tests compile the same
small train steps, and recompiling each would dominate the suite's time."""

import os
import pathlib
import tempfile

os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=8")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("JAX_PLATFORMS", "cpu")

import jax

_CACHE = pathlib.Path(tempfile.gettempdir()) / f"resize_jax_test_cache_{os.getuid()}"
jax.config.update("jax_compilation_cache_dir", str(_CACHE))
jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
