"""Fills a resize_jax backbone's variables from another framework's named tensors, strictly.

Every variable of the target is filled and every source tensor is used exactly once: a
missing, unexpected or mis-shaped tensor is a ValueError that lists the names.
"""

from __future__ import annotations

import dataclasses

import numpy as np
from flax.traverse_util import flatten_dict, unflatten_dict

from resize_jax.models.pretrained.names import Mapping

# The variable names of one layer, in resize_jax and in the source framework's convention.
_TORCH_LEAVES = {
    "kernel": "weight",
    "bias": "bias",
    "scale": "weight",
    "mean": "running_mean",
    "var": "running_var",
}
_BN_TORCH_EXTRA = ("num_batches_tracked",)  # A counter, not a weight: read and dropped.
_KERAS_BN_LEAVES = {
    "scale": "gamma",
    "bias": "beta",
    "mean": "moving_mean",
    "var": "moving_variance",
}


@dataclasses.dataclass(frozen=True)
class Convention:
    """How a framework names and lays out a layer's tensors.

    separator: between a layer's name and its tensor's name ("." for PyTorch, "/" Keras).
    layout: "torch" (conv OIHW, dense [out, in]) or "keras" (conv HWIO, dense [in, out]).
    """

    separator: str
    layout: str

    def leaf_name(self, leaf: str, is_norm: bool) -> str:
        if self.layout == "keras":
            return _KERAS_BN_LEAVES[leaf] if is_norm else leaf
        return _TORCH_LEAVES[leaf]

    def extra_names(self, is_norm: bool) -> tuple[str, ...]:
        return _BN_TORCH_EXTRA if is_norm and self.layout == "torch" else ()

    def to_flax(self, array: np.ndarray, target_ndim: int) -> np.ndarray:
        """A source tensor in the layout of a flax variable with `target_ndim` dimensions."""
        if self.layout == "keras":
            return array
        if array.ndim == 4 and target_ndim == 4:  # Conv: OIHW → HWIO.
            return array.transpose(2, 3, 1, 0)
        if array.ndim == 4 and target_ndim == 2 and array.shape[2:] == (1, 1):
            return array[:, :, 0, 0].T  # A 1×1 conv (squeeze-excitation) as a Dense layer.
        if array.ndim == 2 and target_ndim == 2:  # Linear: [out, in] → [in, out].
            return array.T
        return array


TORCH = Convention(".", "torch")
KERAS = Convention("/", "keras")


@dataclasses.dataclass
class Conversion:
    """The result of `assign`: the variables, and what was left out on purpose.

    variables: {"params": ..., "batch_stats": ...} as NumPy arrays.
    fresh: resize_jax module paths kept from `init` (the head, when its size differs).
    dropped: source tensor names read and not used on purpose (layers past a trunk, the
      old head).
    """

    variables: dict
    fresh: list[str]
    dropped: list[str]


def assign(
    tensors: dict[str, np.ndarray],
    target: dict,
    mapping: Mapping,
    convention: Convention,
    *,
    where: str,
    fresh: tuple[str, ...] = (),
    droppable: tuple[str, ...] = (),
) -> Conversion:
    """Fills `target` ({"params", "batch_stats"} of arrays or ShapeDtypeStructs) from `tensors`.

    Args:
      tensors: source name → array.
      target: the initialised (or abstract) variables of the resize_jax model.
      mapping: resize_jax module path → source layer name.
      convention: the source framework's naming and layout.
      where: names the file in errors.
      fresh: resize_jax module paths left as in `target` (their source tensors are dropped).
      droppable: source layer names whose tensors may stay unused (layers past a trunk).

    Returns:
      A `Conversion`; variables keep `target`'s dtypes.

    Raises:
      ValueError: listing every missing, mis-shaped and unexpected tensor.
    """
    flat = {}
    for collection in ("params", "batch_stats"):
        for path, value in flatten_dict(target.get(collection, {})).items():
            flat[(collection, *path)] = value
    modules: dict[str, dict[str, tuple]] = {}
    for path in flat:
        module = "/".join(path[1:-1])
        modules.setdefault(module, {})[path[-1]] = path
    missing, misshaped, unmapped = [], [], []
    used: set[str] = set()
    out = {}
    for module, leaves in sorted(modules.items()):
        layer = mapping(module)
        if layer is None:
            unmapped.append(module)
            continue
        is_norm = "mean" in leaves
        names = [
            f"{layer}{convention.separator}{convention.leaf_name(leaf, is_norm)}" for leaf in leaves
        ]
        extras = [f"{layer}{convention.separator}{e}" for e in convention.extra_names(is_norm)]
        if module in fresh:
            used.update(n for n in [*names, *extras] if n in tensors)
            out.update({path: np.asarray(flat[path]) for path in leaves.values()})
            continue
        used.update(e for e in extras if e in tensors)
        for path, name in zip(leaves.values(), names, strict=True):
            want = tuple(flat[path].shape)
            if name not in tensors:
                missing.append(f"{name} (for {'/'.join(path)}, shape {want})")
                continue
            used.add(name)
            array = convention.to_flax(np.asarray(tensors[name]), len(want))
            if tuple(array.shape) != want:
                misshaped.append(
                    f"{name}: {tuple(np.shape(tensors[name]))}, expected {want} after layout "
                    f"conversion, for {'/'.join(path)}"
                )
                continue
            out[path] = array.astype(flat[path].dtype)
    dropped = sorted(
        n
        for n in tensors
        if n not in used and n.rsplit(convention.separator, 1)[0] in set(droppable)
    )
    unexpected = sorted(set(tensors) - used - set(dropped))
    if unmapped or missing or misshaped or unexpected:
        problems = []
        if unmapped:
            problems.append(f"layers without a source name: {unmapped}")
        if missing:
            problems.append(f"{len(missing)} missing: {_short(missing)}")
        if misshaped:
            problems.append(f"{len(misshaped)} mis-shaped: {_short(misshaped)}")
        if unexpected:
            problems.append(f"{len(unexpected)} unexpected (unused): {_short(unexpected)}")
        raise ValueError(
            f"{where} does not match the model: " + "; ".join(problems) + ". Is it the right "
            "architecture and source framework?"
        )
    variables = {
        c: unflatten_dict({p[1:]: v for p, v in out.items() if p[0] == c})
        for c in ("params", "batch_stats")
    }
    return Conversion(variables=variables, fresh=sorted(fresh), dropped=dropped)


def _short(names: list[str], limit: int = 12) -> str:
    shown = ", ".join(names[:limit])
    return shown + (f", ... ({len(names) - limit} more)" if len(names) > limit else "")
