"""Parameter and FLOP accounting for any Flax module (front-end, backbone or both)."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp

from resize_jax.ops import native


def _size(tree) -> int:
    # The same count as clu's `parameter_overview.count_parameters` (which the training log
    # prints), written out because clu is not a core dependency. Reads only `.shape`, so it
    # works on arrays and on the ShapeDtypeStructs of `jax.eval_shape(model.init, ...)`.
    return sum(math.prod(leaf.shape) for leaf in jax.tree.leaves(tree))


def count_params(variables: Mapping[str, Any]) -> dict[str, int]:
    """Counts the scalars in each variable collection of a module.

    Args:
      variables: the full dict returned by `model.init` (or its `jax.eval_shape`), e.g.
        {"params": ..., "batch_stats": ...}.

    Returns:
      {"trainable": scalars in "params", "batch_stats": scalars in "batch_stats"}, plus an
      entry per other collection present (by its name). BatchNorm's running mean and
      variance are statistics, not trainable parameters, so they are reported apart.

    Raises:
      ValueError: if `variables` is not a mapping of collections (e.g. the "params"
        sub-dict was passed instead of the whole variables dict).
    """
    if not isinstance(variables, Mapping):
        raise ValueError(
            f"`variables` must be the dict returned by `model.init`, got "
            f"{type(variables).__name__}."
        )
    if variables and "params" not in variables and "batch_stats" not in variables:
        raise ValueError(
            "`variables` must be the whole dict returned by `model.init` (collections such as "
            f"'params', 'batch_stats'), got keys {sorted(variables)}; pass `variables`, not "
            "`variables['params']`."
        )
    counts = {
        "trainable": _size(variables.get("params", {})),
        "batch_stats": _size(variables.get("batch_stats", {})),
    }
    for name in sorted(variables):
        if name not in ("params", "batch_stats"):
            counts[name] = _size(variables[name])
    return counts


def cost_analysis_flops(analysis) -> float:
    """The "flops" entry of an XLA cost analysis: a dict, or (older JAX) a list of dicts."""
    if isinstance(analysis, Mapping):
        analysis = [analysis]
    if not analysis or not all(isinstance(a, Mapping) for a in analysis):
        raise ValueError(f"`analysis` must be a dict or a list of dicts, got {analysis!r}.")
    return float(sum(a.get("flops", 0.0) for a in analysis))


def peak_bytes(compiled) -> int | None:
    """Device memory a compiled computation needs, from XLA's buffer assignment: arguments +
    outputs + temporaries, minus the buffers donated inputs alias. None when the backend
    reports no memory analysis. `compiled`: a `jax.stages.Compiled`."""
    memory = compiled.memory_analysis()
    if memory is None:
        return None
    return int(
        memory.argument_size_in_bytes
        + memory.output_size_in_bytes
        + memory.temp_size_in_bytes
        - memory.alias_size_in_bytes
    )


def flops(
    apply_fn: Callable[..., Any],
    variables: Any,
    input_shape: Sequence[int],
    *,
    dtype: Any = jnp.float32,
    **apply_kwargs,
) -> float:
    """FLOPs of one forward pass `apply_fn(variables, x, **apply_kwargs)` for the whole batch.

    The count is XLA's cost analysis of the compiled computation: a multiply-add counts as 2
    FLOPs, elementwise ops as 1 per element, and convolution padding is not counted. It
    counts the computation as XLA would run it (traced with `resize_jax.ops.native`
    disabled: XLA cannot count inside the native kernels' custom calls), so e.g.
    `resize_jax.ops.resize`'s dense interpolation-matrix products (upscaling, irregular
    factors) are counted in full, zero weights included.
    Nothing is executed; `variables` may be the ShapeDtypeStructs from
    `jax.eval_shape(model.init, ...)`, so no weights are allocated.

    Args:
      apply_fn: usually `model.apply`.
      variables: the model's variables (arrays or ShapeDtypeStructs).
      input_shape: shape of the input batch, e.g. (1, 224, 224, 3) for FLOPs per image.
      dtype: input dtype.
      **apply_kwargs: passed on, e.g. `train=False`.

    Returns:
      FLOPs per forward pass of a batch of `input_shape[0]` examples.
    """
    shape = tuple(input_shape)
    if not shape or not all(
        isinstance(d, int) and not isinstance(d, bool) and d > 0 for d in shape
    ):
        raise ValueError(f"`input_shape` must be a tuple of positive ints, got {input_shape!r}.")
    x = jax.ShapeDtypeStruct(shape, dtype)
    forward = jax.jit(lambda v, images: apply_fn(v, images, **apply_kwargs))
    with native.disabled():
        lowered = forward.lower(variables, x)
    return cost_analysis_flops(lowered.compile().cost_analysis())
