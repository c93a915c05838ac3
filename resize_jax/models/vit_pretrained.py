"""ViT weights from timm and big_vision files: name mapping, layout conversion, resampling.

  model, variables = vit_pretrained.load("vit_b16", "vit_base_patch16_224.safetensors",
                                         source="timm", image_size=(384, 384))
  logits, _ = model.apply(variables, (images - 0.5) / 0.5)   # timm's augreg ViTs: mean=std=0.5

timm (`.safetensors`, `.pth`/`.bin`, or an `.npz` of its state dict) names its tensors
`patch_embed.proj.weight`, `blocks.{i}.attn.qkv.weight` (q, k and v fused), ... in PyTorch's
layouts; big_vision (`.npz`, big_vision's own or the older vit_jax layout, blocks scanned or
not) uses the names of this ViT already. Position embeddings are resampled at load time to
`image_size` (`resize_jax.ops.resample_posemb`, the interpolation of timm's
`resample_abs_pos_embed`), and the patch kernel to a different `patch_size` (FlexiViT's
pseudo-inverse resize). Every tensor is accounted for: a missing, unexpected or mis-shaped one
raises ValueError listing them by name.
"""

from __future__ import annotations

import math
import os
import re

import jax
import jax.numpy as jnp
import numpy as np
from absl import logging
from flax.traverse_util import flatten_dict, unflatten_dict

from resize_jax.models.registry import get_model
from resize_jax.ops.checks import check_size_pair
from resize_jax.ops.resample_embeddings import (
    posemb_grid_shape,
    resample_patch_kernel,
    resample_posemb,
)

SOURCES = ("timm", "big_vision")
_TOP_LEVEL = ("embedding", "cls", "pos_embedding", "Transformer", "head")
# resize_jax name → timm's model of the same architecture (for documentation and fixtures).
TIMM_MODELS = {
    "vit_ti16": "vit_tiny_patch16_224",
    "vit_s16": "vit_small_patch16_224",
    "vit_b16": "vit_base_patch16_224",
    "vit_l16": "vit_large_patch16_224",
}


def read_tensors(path: str) -> dict[str, np.ndarray]:
    """`{name: array}` from .npz, .safetensors (the `safetensors` package) or .pth/.pt/.bin
    (`torch`, `weights_only=True`)."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise ValueError(f"Weights file `path`={path!r} does not exist.")
    lower = path.lower()
    if lower.endswith(".npz"):
        with np.load(path, allow_pickle=False) as archive:
            return {k: archive[k] for k in archive.files}
    if lower.endswith(".safetensors"):
        try:
            from safetensors.numpy import load_file
        except ImportError as error:
            raise ImportError(f"Reading {path!r} needs `pip install safetensors`.") from error
        return dict(load_file(path))
    if lower.endswith((".pth", ".pt", ".bin")):
        try:
            import torch
        except ImportError as error:
            raise ImportError(f"Reading {path!r} needs `pip install torch`.") from error
        state = torch.load(path, map_location="cpu", weights_only=True)
        state = state.get("state_dict", state) if isinstance(state, dict) else state
        return {
            k: v.float().numpy() if v.is_floating_point() else v.numpy() for k, v in state.items()
        }
    raise ValueError(
        f"Weights file `path`={path!r}: expected .npz, .safetensors, .pth, .pt or .bin."
    )


def _take(tensors: dict[str, np.ndarray], name: str, used: set[str], where: str) -> np.ndarray:
    if name not in tensors:
        raise ValueError(f"{where} has no tensor {name!r}.")
    used.add(name)
    return np.asarray(tensors[name], np.float32)


def _check_all_used(tensors, used: set[str], where: str, ignore=()) -> None:
    unexpected = sorted(k for k in tensors if k not in used and k not in ignore)
    if unexpected:
        raise ValueError(
            f"{where} has tensors this ViT has no place for: {unexpected[:12]}"
            f"{' ...' if len(unexpected) > 12 else ''} (a different architecture?)."
        )


def from_timm(tensors: dict[str, np.ndarray], *, num_heads: int, where: str = "weights"):
    """timm's `VisionTransformer` state dict (class token, no registers, no layer scale) →
    this ViT's params (NumPy). `num_heads` splits the fused q/k/v projections."""
    used: set[str] = set()

    def take(name):
        return _take(tensors, name, used, where)

    depth = 0
    while f"blocks.{depth}.norm1.weight" in tensors:
        depth += 1
    if depth == 0:
        raise ValueError(f"{where} has no `blocks.0.*` tensors: not a timm ViT state dict.")
    hidden = take("cls_token").shape[-1]
    if hidden % num_heads:
        raise ValueError(f"`num_heads`={num_heads} does not divide the width {hidden} of {where}.")
    head_dim = hidden // num_heads

    def norm(prefix):
        return {"scale": take(f"{prefix}.weight"), "bias": take(f"{prefix}.bias")}

    def dense(prefix):
        return {"kernel": take(f"{prefix}.weight").T, "bias": take(f"{prefix}.bias")}

    blocks = {}
    for i in range(depth):
        p = f"blocks.{i}"
        qkv_w, qkv_b = take(f"{p}.attn.qkv.weight"), take(f"{p}.attn.qkv.bias")
        attention = {}
        for j, part in enumerate(("query", "key", "value")):
            w = qkv_w[j * hidden : (j + 1) * hidden]  # [out = H * hd, in = D]
            attention[part] = {
                "kernel": w.T.reshape(hidden, num_heads, head_dim),
                "bias": qkv_b[j * hidden : (j + 1) * hidden].reshape(num_heads, head_dim),
            }
        attention["out"] = {
            "kernel": take(f"{p}.attn.proj.weight").T.reshape(num_heads, head_dim, hidden),
            "bias": take(f"{p}.attn.proj.bias"),
        }
        blocks[f"encoderblock_{i}"] = {
            "LayerNorm_0": norm(f"{p}.norm1"),
            "MultiHeadDotProductAttention_0": attention,
            "LayerNorm_1": norm(f"{p}.norm2"),
            "MlpBlock_0": {"Dense_0": dense(f"{p}.mlp.fc1"), "Dense_1": dense(f"{p}.mlp.fc2")},
        }
    params = {
        "embedding": {
            "kernel": take("patch_embed.proj.weight").transpose(2, 3, 1, 0),
            "bias": take("patch_embed.proj.bias"),
        },
        "cls": take("cls_token"),
        "pos_embedding": take("pos_embed"),
        "Transformer": {**blocks, "encoder_norm": norm("norm")},
    }
    if "head.weight" in tensors:
        params["head"] = dense("head")
    _check_all_used(tensors, used, where)
    return params


def from_big_vision(tensors: dict[str, np.ndarray], *, classifier: str = "token", where="weights"):
    """big_vision / vit_jax `.npz` (keys "Transformer/encoderblock_0/...", optionally under
    "params/", blocks optionally scanned as "Transformer/encoderblock/..." with a leading depth
    axis) → this ViT's params. big_vision's grid-only position embeddings get a zero row for
    the class token (big_vision adds none to it, which is the same)."""
    flat = {}
    for key, value in tensors.items():
        key = key.removeprefix("params/")
        key = key.replace("Transformer/posembed_input/pos_embedding", "pos_embedding")
        key = re.sub(r"MlpBlock_\d+", "MlpBlock_0", key)  # vit_jax: MlpBlock_3.
        flat[tuple(key.split("/"))] = np.asarray(value, np.float32)
    scanned = {p: v for p, v in flat.items() if p[:2] == ("Transformer", "encoderblock")}
    for path, value in scanned.items():
        del flat[path]
        for i in range(value.shape[0]):
            flat[("Transformer", f"encoderblock_{i}", *path[2:])] = value[i]
    unsupported = sorted("/".join(p) for p in flat if p[0] not in _TOP_LEVEL)
    if unsupported:
        raise ValueError(f"{where} has tensors this ViT has no place for: {unsupported[:12]}.")
    params = unflatten_dict(flat)
    if classifier == "token" and "cls" in params and "pos_embedding" in params:
        posemb = params["pos_embedding"]
        if math.isqrt(posemb.shape[1]) ** 2 == posemb.shape[1]:
            zero = np.zeros((1, 1, posemb.shape[-1]), np.float32)
            params["pos_embedding"] = np.concatenate([zero, posemb], axis=1)
    return params


def convert(tensors: dict[str, np.ndarray], source: str, model, *, where: str) -> dict:
    """The file's tensors as this ViT's params (NumPy), by `source`'s names and layouts."""
    if source == "timm":
        return from_timm(tensors, num_heads=model.num_heads, where=where)
    if source == "big_vision":
        return from_big_vision(tensors, classifier=model.classifier, where=where)
    raise ValueError(f"`source` must be one of {list(SOURCES)}, got {source!r}.")


def import_params(
    tensors: dict[str, np.ndarray], model, target_params: dict, *, source: str, where: str
) -> tuple[dict, list[str]]:
    """The file's tensors fitted to `target_params` (a ViT's params: arrays or
    ShapeDtypeStructs, e.g. inside a training state): position embeddings resampled to the
    target's grid (`model.posemb_grid`, else square), the patch kernel to the target's patch
    size; a head of another size (or none in the file) is the target's own (returned in
    `fresh`). Returns (params as NumPy, fresh module paths).

    Raises:
      ValueError: naming tensors that are missing, unexpected or mis-shaped.
    """
    params = convert(tensors, source, model, where=where)
    kernel = target_params["embedding"]["kernel"].shape
    if params["embedding"]["kernel"].shape[:2] != tuple(kernel[:2]):
        params["embedding"]["kernel"] = np.asarray(
            resample_patch_kernel(jnp.asarray(params["embedding"]["kernel"]), tuple(kernel[:2]))
        )
    prefix = model.num_prefix_tokens
    file_rows = params["pos_embedding"].shape[1] - prefix
    target_rows = target_params["pos_embedding"].shape[1] - prefix
    if file_rows != target_rows:
        grid = (
            tuple(model.posemb_grid)
            if model.posemb_grid is not None
            else posemb_grid_shape(target_rows, "the model's pos_embedding")
        )
        params["pos_embedding"] = np.asarray(
            resample_posemb(
                jnp.asarray(params["pos_embedding"]),
                grid,
                old_grid=posemb_grid_shape(file_rows, f"{where}: pos_embedding"),
                num_prefix_tokens=prefix,
            )
        )
    fresh = []
    head = target_params.get("head")
    if head is not None and (
        "head" not in params or params["head"]["kernel"].shape != tuple(head["kernel"].shape)
    ):
        params["head"] = jax.tree.map(np.asarray, dict(head))
        fresh.append("head")
    want = {p: tuple(v.shape) for p, v in flatten_dict(dict(target_params)).items()}
    _compare(want, params, model, where)
    return params, fresh


def load(
    name: str,
    path: str,
    *,
    source: str,
    num_classes: int | None = None,
    image_size: tuple[int, int] | None = None,
    seed: int = 0,
    **model_fields,
):
    """A ViT `name` ("vit_ti16" | "vit_s16" | "vit_b16" | "vit_l16") with the weights in `path`.

    Args:
      name: the architecture; `model_fields` may override its fields (`hidden_size`, ...).
      path: .safetensors, .pth/.pt/.bin or .npz.
      source: "timm" or "big_vision": whose names and layouts the file uses.
      num_classes: the head's size; None: the file's. A different size (or a file without a
        head) gets a fresh zero-initialised head, logged as a warning; `seed` is unused then
        (zeros, as the ViT initialises its head), kept for the common loader signature.
      image_size: (H, W) the model will see; the position embeddings are resampled to its
        grid now. None: the file's grid (other sizes are then resampled on the fly).
      model_fields: other ViT fields (`dtype`, `patch_size`, `classifier`, ...). A `patch_size`
        other than the file's resamples the patch kernel now (FlexiViT). big_vision files
        default to its tanh GELU (`gelu_approximate=True`).

    Returns:
      (model, {"params": ...}) with the model's `posemb_grid` set to the stored grid.

    Raises:
      ValueError: unknown name or source, an unreadable file, a tensor missing, unexpected
        or of the wrong shape (named), a non-square grid in the file without `posemb_grid`,
        or an `image_size` not divisible by the patch size.
    """
    del seed  # Unused (module docstring).
    if name not in TIMM_MODELS:
        raise ValueError(f"`name` must be one of {sorted(TIMM_MODELS)}, got {name!r}.")
    if source not in SOURCES:
        raise ValueError(f"`source` must be one of {list(SOURCES)}, got {source!r}.")
    where = f"Weights file {os.fspath(path)!r} ({source})"
    tensors = read_tensors(path)
    if source == "big_vision":
        model_fields.setdefault("gelu_approximate", True)
    probe = get_model(name, num_classes=1, **model_fields)
    params = convert(tensors, source, probe, where=where)

    file_classes = params["head"]["kernel"].shape[-1] if "head" in params else None
    classes = num_classes or file_classes
    if classes is None:
        raise ValueError(f"{where} has no classifier head: pass `num_classes`.")
    if classes != file_classes:
        logging.warning(
            "%s: head of %s classes replaced by a fresh one of %d.", where, file_classes, classes
        )
        width = params["cls"].shape[-1] if "cls" in params else params["embedding"]["bias"].shape[0]
        params["head"] = {
            "kernel": np.zeros((width, classes), np.float32),
            "bias": np.zeros((classes,), np.float32),
        }

    patch_size = probe.patch_size
    stored_patch = params["embedding"]["kernel"].shape[0]
    if stored_patch != patch_size and probe.patch_embedding_size is None:
        params["embedding"]["kernel"] = np.asarray(
            resample_patch_kernel(jnp.asarray(params["embedding"]["kernel"]), (patch_size,) * 2)
        )
        stored_patch = patch_size
    prefix = probe.num_prefix_tokens
    num_grid = params["pos_embedding"].shape[1] - prefix
    file_grid = (
        tuple(model_fields.pop("posemb_grid"))
        if model_fields.get("posemb_grid") is not None
        else posemb_grid_shape(num_grid, f"{where}: pos_embedding")
    )
    grid = file_grid
    if image_size is not None:
        height, width = check_size_pair(image_size, "image_size")
        if height % patch_size or width % patch_size:
            raise ValueError(
                f"`image_size`={(height, width)} must be a multiple of the patch size {patch_size}."
            )
        grid = (height // patch_size, width // patch_size)
        params["pos_embedding"] = np.asarray(
            resample_posemb(
                jnp.asarray(params["pos_embedding"]),
                grid,
                old_grid=file_grid,
                num_prefix_tokens=prefix,
            )
        )
    model = get_model(name, num_classes=classes, **model_fields, posemb_grid=grid)
    _check_shapes(model, params, grid, patch_size, where)
    return model, {"params": jax.tree.map(jnp.asarray, params)}


def _check_shapes(model, params, grid, patch_size, where) -> None:
    sample = jax.ShapeDtypeStruct((1, grid[0] * patch_size, grid[1] * patch_size, 3), jnp.float32)
    expected = jax.eval_shape(model.init, jax.random.key(0), sample)["params"]
    want = {p: tuple(v.shape) for p, v in flatten_dict(expected).items()}
    if model.patch_embedding_size is not None:
        size = model.patch_embedding_size
        want[("embedding", "kernel")] = (size, size, *want[("embedding", "kernel")][2:])
    _compare(want, params, model, where)


def _compare(want: dict, params: dict, model, where: str) -> None:
    got = {p: tuple(np.shape(v)) for p, v in flatten_dict(params).items()}
    missing = sorted("/".join(p) for p in want if p not in got)
    extra = sorted("/".join(p) for p in got if p not in want)
    wrong = sorted(
        f"{'/'.join(p)}: file {got[p]}, model {want[p]}"
        for p in want
        if p in got and got[p] != want[p]
    )
    if missing or extra or wrong:
        raise ValueError(
            f"{where} does not fit {type(model).__name__}"
            f"(hidden_size={model.hidden_size}, depth={model.depth}): missing {missing[:8]}, "
            f"unexpected {extra[:8]}, mis-shaped {wrong[:8]}."
        )
