"""How the native kernels enter a jitted computation: chosen per platform at lowering, kept
split over the batch under sharding, and batched under `jax.vmap`.

A custom call (`jax.ffi.ffi_call`) is opaque to the SPMD partitioner, has no batching rule
beyond a per-element loop, and exists only on CPU. These wrappers give it all three.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax import lax
from jax.experimental.custom_partitioning import custom_partitioning
from jax.sharding import NamedSharding, PartitionSpec

# Sharding: an opaque custom call makes the SPMD partitioner gather the whole batch onto every
# device. These rules keep the batch split as it comes, with the spatial and channel axes
# replicated (a convolution's halo, a sample's arbitrary position, need whole images).


def _batch_axes(shape) -> str | tuple[str, ...] | None:
    spec = shape.sharding.spec
    return spec[0] if len(spec) else None


def batch_partitioned(fn, sharding_rule: str, num_batched: int):
    """fn(*args) with its first `num_batched` arguments and its result (an array or a tuple
    of arrays) split over the batch axis and the remaining arguments replicated."""
    wrapped = custom_partitioning(fn)

    def like_result(sharding, result_shape):
        if isinstance(result_shape, (tuple, list)):
            return tuple(sharding for _ in result_shape)
        return sharding

    def partition(mesh, arg_shapes, result_shape):
        # Any batched operand may carry the split (propagation can leave one replicated).
        axes = next((a for a in map(_batch_axes, arg_shapes[:num_batched]) if a), None)
        batch = NamedSharding(mesh, PartitionSpec(axes))
        replicated = NamedSharding(mesh, PartitionSpec())
        shardings = (batch,) * num_batched + (replicated,) * (len(arg_shapes) - num_batched)
        return mesh, fn, like_result(batch, result_shape), shardings

    def infer(mesh, arg_shapes, result_shape):
        batch = NamedSharding(mesh, PartitionSpec(_batch_axes(arg_shapes[0])))
        return like_result(batch, result_shape)

    wrapped.def_partition(
        partition=partition, infer_sharding_from_operands=infer, sharding_rule=sharding_rule
    )
    return wrapped


def map_when_vmapped(fn, fold: int = 0):
    """fn under `jax.vmap` (custom_partitioning has no batching rule): one call with the
    vmapped axis folded into the batch when exactly the first `fold` arguments are vmapped
    (fn's results, one array or a tuple, then all have that batch axis first), else one call
    per element (`lax.map`)."""
    wrapped = jax.custom_batching.custom_vmap(fn)

    def unfold(out, inner_batch):
        return jax.tree.map(lambda o: o.reshape(-1, inner_batch, *o.shape[1:]), out)

    @wrapped.def_vmap
    def _rule(axis_size, in_batched, *args):
        if fold and all(in_batched[:fold]) and not any(in_batched[fold:]):
            folded = [a.reshape(-1, *a.shape[2:]) for a in args[:fold]]
            out = unfold(wrapped(*folded, *args[fold:]), args[0].shape[1])
        else:

            def one(i):
                return wrapped(*(a[i] if b else a for a, b in zip(args, in_batched, strict=True)))

            out = lax.map(one, jnp.arange(axis_size))
        return out, jax.tree.map(lambda _: True, out)

    return wrapped


def on_cpu(native_fn, xla_fn, *args):
    # Chosen when the computation is lowered: the same jitted function runs the XLA
    # version when it is compiled for a GPU or TPU.
    return lax.platform_dependent(*args, cpu=native_fn, default=xla_fn)


def placed_on_cpu() -> bool:
    """Whether computations traced now default to a CPU (the default device, else the default
    backend). Elsewhere the native kernels are not even looked up: a GPU or TPU host has no
    use for them, nor for the C++ compiler that builds them."""
    device = jax.config.jax_default_device
    if device is not None:
        return getattr(device, "platform", device) == "cpu"
    return jax.default_backend() == "cpu"
