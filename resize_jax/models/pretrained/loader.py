"""`load(name, path, source=...)`: a resize_jax backbone computing what the source framework
computes with the same weights file."""

from __future__ import annotations

import dataclasses
import functools
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from absl import logging

from resize_jax.models import vit_pretrained
from resize_jax.models.pretrained import names
from resize_jax.models.pretrained.assign import KERAS, TORCH, Convention, Conversion, assign
from resize_jax.models.pretrained.files import keras_layers_by_class, read_tensors
from resize_jax.models.registry import get_model

SOURCES = ("torchvision", "timm", "keras", "big_vision")

# ImageNet statistics; inputs in [0, 1], normalised per channel. torchvision and timm's
# models below use them, and so does Keras's DenseNet (`preprocess_input`'s "torch" mode).
_IMAGENET = {"mean": (0.485, 0.456, 0.406), "std": (0.229, 0.224, 0.225), "value_range": (0.0, 1.0)}

# PyTorch's BatchNorm: epsilon 1e-5, momentum 0.1 (0.9 in Flax's convention); Keras's
# DenseNet: epsilon 1.001e-5, momentum 0.99 (the same in both conventions).
_TORCH_BN = {"bn_epsilon": 1e-5, "bn_momentum": 0.9}
_KERAS_BN = {"bn_epsilon": 1.001e-5, "bn_momentum": 0.99}


@dataclasses.dataclass(frozen=True)
class Recipe:
    """How one (source, model) pair maps onto a resize_jax backbone."""

    mapping: names.Mapping | None
    convention: Convention
    fields: dict[str, Any]
    preprocessing: dict[str, tuple[float, ...]] = dataclasses.field(
        default_factory=lambda: _IMAGENET
    )
    # Models whose tensors do not map layer by layer (ViTs: fused q/k/v, resampled position
    # embeddings) bring their own importer instead of a mapping:
    # `importer(tensors, model, target_params, where=...) -> (params, fresh module paths)`.
    importer: Any = None


_RECIPES: dict[tuple[str, str], Recipe] = {
    ("torchvision", "resnet18"): Recipe(names.torchvision_resnet, TORCH, _TORCH_BN),
    ("torchvision", "resnet50"): Recipe(names.torchvision_resnet, TORCH, _TORCH_BN),
    ("torchvision", "densenet121"): Recipe(names.torchvision_densenet, TORCH, _TORCH_BN),
    ("torchvision", "mobilenet_v2"): Recipe(names.torchvision_mobilenet_v2, TORCH, _TORCH_BN),
    ("torchvision", "efficientnet_b0"): Recipe(names.torchvision_efficientnet, TORCH, _TORCH_BN),
    # timm's ResNets keep torchvision's names.
    ("timm", "resnet18"): Recipe(names.torchvision_resnet, TORCH, _TORCH_BN),
    ("timm", "resnet50"): Recipe(names.torchvision_resnet, TORCH, _TORCH_BN),
    ("timm", "efficientnet_b0"): Recipe(names.timm_efficientnet, TORCH, _TORCH_BN),
    ("keras", "densenet121"): Recipe(names.keras_densenet, KERAS, _KERAS_BN),
}
# timm's and big_vision's ViTs take pixels in [-1, 1]; big_vision's compute the tanh GELU.
_VIT_INPUT = {"mean": (0.5, 0.5, 0.5), "std": (0.5, 0.5, 0.5), "value_range": (0.0, 1.0)}
for _name in vit_pretrained.TIMM_MODELS:
    for _source, _fields in (("timm", {}), ("big_vision", {"gelu_approximate": True})):
        _RECIPES[(_source, _name)] = Recipe(
            None,
            TORCH,
            _fields,
            _VIT_INPUT,
            importer=functools.partial(vit_pretrained.import_params, source=_source),
        )


def supported() -> list[tuple[str, str]]:
    """The (source, model name) pairs `load` accepts."""
    return sorted(_RECIPES)


def recipe(source: str, name: str) -> Recipe:
    """The recipe for `name`'s weights from `source` (ValueError listing what exists)."""
    if source not in SOURCES:
        raise ValueError(f"`source` must be one of {list(SOURCES)}, got {source!r}.")
    if (source, name) not in _RECIPES:
        known = sorted(n for s, n in _RECIPES if s == source)
        raise ValueError(
            f"No {source} weights mapping for model `name`={name!r}; {source} models: {known}."
        )
    return _RECIPES[(source, name)]


def preprocessing(source: str, name: str) -> dict[str, tuple[float, ...]]:
    """The input normalisation the source's weights expect: {"mean", "std", "value_range"};
    the network sees `(x - mean) / std` for pixels x scaled to `value_range`."""
    return dict(recipe(source, name).preprocessing)


def model_fields(source: str, name: str) -> dict[str, Any]:
    """The backbone fields (BatchNorm epsilon and momentum) that compute as `source` does."""
    return dict(recipe(source, name).fields)


def _torchvision_densenet_legacy(tensors):
    # torchvision's released DenseNet files spell "norm.1" where the module says "norm1";
    # torchvision renames them on load with this same pattern.
    import re

    pattern = re.compile(
        r"^(.*denselayer\d+\.(?:norm|relu|conv))\.((?:[12])\.(?:weight|bias|running_mean|"
        r"running_var|num_batches_tracked))$"
    )
    out = {}
    for key, value in tensors.items():
        match = pattern.match(key)
        out[match[1] + match[2] if match else key] = value
    return out


_KERAS_VARIABLES = {
    "conv2d": ("kernel", "bias"),
    "batch_normalization": ("gamma", "beta", "moving_mean", "moving_variance"),
    "dense": ("kernel", "bias"),
}


def _keras_by_layer_name(tensors, expected: list[tuple[str, str]], where: str):
    """Keras 3 files' "layers/conv2d_5/vars/0" → "conv3_block1_1_conv/kernel", pairing each
    class's layers in order with the model's own layer order."""
    by_class = keras_layers_by_class(tensors)
    expected_by_class: dict[str, list[str]] = {}
    for layer, cls in expected:
        expected_by_class.setdefault(cls, []).append(layer)
    counts = {c: len(v) for c, v in by_class.items() if c in _KERAS_VARIABLES}
    want = {c: len(v) for c, v in expected_by_class.items()}
    if "dense" not in counts:
        want.pop("dense", None)  # A file saved with include_top=False.
    if counts != want:
        raise ValueError(
            f"{where} does not match the model: its weighted Keras layers by class are "
            f"{counts}, the model expects {want}. Is it the right architecture?"
        )
    renamed, out = {}, {}
    for cls, layers in by_class.items():
        if cls not in _KERAS_VARIABLES:
            continue
        for file_layer, layer in zip(layers, expected_by_class.get(cls, []), strict=False):
            renamed[file_layer] = layer
    for key, value in tensors.items():
        parts = key.split("/")  # ["layers", "conv2d_5", "vars", "0"]
        if len(parts) == 4 and parts[1] in renamed and parts[3].isdigit():
            variables = _KERAS_VARIABLES[_keras_class(parts[1])]
            if int(parts[3]) < len(variables):
                out[f"{renamed[parts[1]]}/{variables[int(parts[3])]}"] = value
                continue
        out[key] = value  # Unmatched: reported as unexpected.
    return out


def _keras_class(layer: str) -> str:
    head, _, tail = layer.rpartition("_")
    return head if tail.isdigit() and head else layer


def read_source(path: str, source: str, name: str, model: nn.Module | None = None):
    """The file's tensors under the names the recipe's mapping uses."""
    tensors = read_tensors(path)
    if source == "torchvision" and name.startswith("densenet"):
        tensors = _torchvision_densenet_legacy(tensors)
    if source == "keras":
        block_sizes = getattr(model, "block_sizes", (6, 12, 24, 16))
        tensors = _keras_by_layer_name(
            tensors, names.keras_densenet_layers(tuple(block_sizes)), f"Weights file {path!r}"
        )
    return tensors


def file_num_classes(tensors, rec: Recipe) -> int | None:
    """The number of classes of the file's classifier, or None if it has none."""
    layer = rec.mapping("head")
    kernel = tensors.get(
        f"{layer}{rec.convention.separator}{rec.convention.leaf_name('kernel', False)}"
    )
    if kernel is None or np.ndim(kernel) != 2:
        return None
    return int(kernel.shape[0] if rec.convention.layout == "torch" else kernel.shape[1])


def abstract_variables(model: nn.Module, channels: int = 3) -> dict:
    """The model's variables as ShapeDtypeStructs (nothing computed)."""
    size = max(64, getattr(model, "min_input_size", 32))
    images = jax.ShapeDtypeStruct((1, size, size, channels), jnp.float32)
    return jax.eval_shape(lambda x: model.init(jax.random.key(0), x), images)


def import_variables(
    tensors: dict[str, np.ndarray],
    model: nn.Module,
    rec: Recipe,
    *,
    where: str,
    seed: int = 0,
    target: dict | None = None,
) -> Conversion:
    """The file's tensors as `model`'s variables. A head whose size differs from the file's
    (or that the file lacks) keeps a fresh initialisation (`target`'s own values when it is
    given, else drawn from `seed`); layers past a trunk are dropped."""
    if rec.importer is not None:
        if target is None:
            raise ValueError(f"{where}: this model's weights import into a given `target`.")
        params, fresh = rec.importer(tensors, model, target["params"], where=where)
        return Conversion({"params": params, "batch_stats": {}}, fresh, [])
    initialise_head = target is None
    target = abstract_variables(model) if target is None else target
    fresh: tuple[str, ...] = ()
    head = target["params"].get("head")
    if head is not None:
        classes = file_num_classes(tensors, rec)
        if classes != head["kernel"].shape[-1]:
            fresh = ("head",)
            if initialise_head:
                target = _with_fresh_head(target, seed)
    droppable: tuple[str, ...] = ()
    if getattr(model, "trunk", None):
        full = abstract_variables(model.clone(trunk=None, parent=None))
        inside = {"/".join(p[:-1]) for p in _module_paths(target["params"])}
        droppable = tuple(
            rec.mapping(m)
            for m in {"/".join(p[:-1]) for p in _module_paths(full["params"])} - inside
        )
    return assign(
        tensors, target, rec.mapping, rec.convention, where=where, fresh=fresh, droppable=droppable
    )


def _module_paths(tree, prefix=()):
    for key, value in tree.items():
        if hasattr(value, "items"):
            yield from _module_paths(value, (*prefix, key))
        else:
            yield (*prefix, key)


def _with_fresh_head(target: dict, seed: int) -> dict:
    kernel = target["params"]["head"]["kernel"]
    head = nn.Dense(kernel.shape[-1], param_dtype=kernel.dtype)
    fresh = head.init(jax.random.key(seed), jnp.zeros((1, kernel.shape[0]), kernel.dtype))
    params = {**target["params"], "head": jax.device_get(fresh["params"])}
    return {**target, "params": params}


def load(
    name: str,
    path: str,
    *,
    source: str,
    num_classes: int | None = None,
    seed: int = 0,
    **model_fields,
) -> tuple[nn.Module, dict]:
    """A backbone `name` with the weights in `path`, computing as `source` computes.

    Args:
      name: a registered backbone ("resnet50", ...); see `supported()`.
      path: the weights file: .pth/.pt/.bin, .safetensors, .npz, .weights.h5 or .keras.
      source: "torchvision", "timm" or "keras": whose names and conventions the file uses.
      num_classes: the head's size; None: the file's. A different size (or a file without a
        classifier) keeps a freshly initialised head (from `seed`), logged as a warning.
      model_fields: other backbone fields (`dtype`, `dropout_rate`, `trunk`, ...); the
        source's BatchNorm epsilon and momentum apply unless given here.

    Returns:
      (model, {"params", "batch_stats"}); feed it images normalised with
      `preprocessing(source, name)`, e.g. `model.apply(variables, x, train=False)`.

    Raises:
      ValueError: unknown source or model; the file is unreadable, not a state dict, or any
        tensor is missing, unexpected or mis-shaped (all listed by name).
      ImportError: naming the package a file format needs (`torch` for .pth).
    """
    rec = recipe(source, name)
    if rec.importer is not None:  # ViTs: resampling at load time (`image_size=`) and more.
        return vit_pretrained.load(
            name, path, source=source, num_classes=num_classes, seed=seed, **model_fields
        )
    where = f"Weights file {str(path)!r} ({source} {name})"
    tensors = read_source(path, source, name, model=_probe(name, model_fields))
    classes = file_num_classes(tensors, rec)
    if num_classes is None:
        if classes is None:
            raise ValueError(f"{where} has no classifier: pass `num_classes`.")
        num_classes = classes
    model = get_model(name, num_classes=num_classes, **{**rec.fields, **model_fields})
    conversion = import_variables(tensors, model, rec, where=where, seed=seed)
    if conversion.fresh:
        logging.warning(
            "%s: the head is freshly initialised (the file has %s classes, the model %d); "
            "everything else is loaded.",
            where,
            classes,
            num_classes,
        )
    if conversion.dropped:
        logging.info("%s: %d tensors past the trunk are unused.", where, len(conversion.dropped))
    return model, jax.tree.map(jnp.asarray, conversion.variables)


def _probe(name: str, fields: dict) -> nn.Module:
    return get_model(name, num_classes=1, **fields)
