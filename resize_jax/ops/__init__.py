"""Pure array functions (no Flax): jit-, vmap- and grad-safe, batch-first NHWC."""

from resize_jax.ops.resize import METHODS, interpolation_matrix, resize

__all__ = ["METHODS", "interpolation_matrix", "resize"]
