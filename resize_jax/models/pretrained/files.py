"""Reading weight files into `{name: np.ndarray}`, whatever framework wrote them.

  .pth / .pt / .bin   PyTorch state dicts (torchvision, timm), with `torch` if installed,
                      always `weights_only=True`: no pickled code is ever run.
  .safetensors        with the `safetensors` package (its NumPy API; no torch needed).
  .npz                NumPy archives, `allow_pickle=False`.
  .weights.h5 / .keras  Keras 3 weight files (with h5py; `.keras` is a zip holding one).

Keras 3 files name their layers by class and order of appearance ("conv2d_5",
"batch_normalization_12"), not by the model's own layer names; their tensors come back as
"layers/<that name>/vars/<index>", and `keras_layers_by_class` orders them for a mapping.
"""

from __future__ import annotations

import io
import os
import re
import zipfile

import numpy as np

TORCH_SUFFIXES = (".pth", ".pt", ".bin")
KERAS_SUFFIXES = (".h5", ".keras")
SUFFIXES = (*TORCH_SUFFIXES, ".safetensors", ".npz", *KERAS_SUFFIXES)


def read_tensors(path: str) -> dict[str, np.ndarray]:
    """All tensors of the weight file at `path`, by name, as NumPy arrays.

    Raises:
      ValueError: naming `path`, if it does not exist, has an unknown suffix, is truncated
        or corrupt, or holds something other than named tensors (e.g. a pickled model).
      ImportError: naming `path` and the package to install (`torch`, `safetensors`,
        `h5py`) when the file's format needs one that is missing.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise ValueError(f"Weights file `path`={path!r} does not exist.")
    lower = path.lower()
    if lower.endswith(TORCH_SUFFIXES):
        tensors = _read_torch(path)
    elif lower.endswith(".safetensors"):
        tensors = _read_safetensors(path)
    elif lower.endswith(".npz"):
        tensors = _read_npz(path)
    elif lower.endswith(KERAS_SUFFIXES):
        tensors = _read_keras(path)
    else:
        raise ValueError(
            f"Weights file `path`={path!r} has an unknown suffix; expected one of {SUFFIXES}."
        )
    if not tensors:
        raise ValueError(f"Weights file {path!r} holds no tensors.")
    return tensors


def _missing(package: str, path: str, why: str) -> ImportError:
    return ImportError(
        f"Reading {path!r} ({why}) needs the `{package}` package: `pip install {package}`."
    )


def _read_torch(path: str) -> dict[str, np.ndarray]:
    try:
        import torch
    except ImportError as error:
        raise _missing("torch", path, "a PyTorch state dict") from error
    import pickle

    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        raise ValueError(
            f"{path!r} is not a plain PyTorch state dict: it pickles objects that "
            "`torch.load(weights_only=True)` refuses to run (arbitrary code is never "
            "unpickled). Save `model.state_dict()` instead of the model."
        ) from error
    except (RuntimeError, EOFError, OSError) as error:
        raise ValueError(
            f"{path!r} cannot be read as a PyTorch file (truncated or corrupt?): {error}"
        ) from error
    state = _unwrap_state_dict(obj, path)
    out = {}
    for name, value in state.items():
        if not isinstance(value, torch.Tensor):
            raise ValueError(
                f"{path!r} is not a state dict of tensors: entry {name!r} is a "
                f"{type(value).__name__}."
            )
        value = value.detach().cpu()
        if value.is_floating_point() and value.dtype != torch.float64:
            value = value.float()  # bfloat16/float16 have no exact NumPy twin everywhere.
        out[name] = value.numpy()
    return out


def _unwrap_state_dict(obj, path: str) -> dict:
    """The tensor dict inside training checkpoints ({"state_dict": ...}, {"model": ...}), with
    DataParallel's "module." prefix removed."""
    if not isinstance(obj, dict):
        raise ValueError(
            f"{path!r} holds a {type(obj).__name__}, not a state dict (a dict of tensors by name)."
        )
    for key in ("state_dict", "model", "model_state_dict"):
        # A training checkpoint: the weights sit under one key, beside optimizer state etc.
        if isinstance(obj.get(key), dict) and not any(hasattr(v, "shape") for v in obj.values()):
            obj = obj[key]
            break
    if obj and all(str(k).startswith("module.") for k in obj):
        obj = {k[len("module.") :]: v for k, v in obj.items()}
    return obj


def _read_safetensors(path: str) -> dict[str, np.ndarray]:
    try:
        from safetensors.numpy import load_file
    except ImportError as error:
        raise _missing("safetensors", path, "a safetensors file") from error
    try:
        return dict(load_file(path))
    except Exception as error:  # safetensors raises its own error types for a bad header.
        raise ValueError(
            f"{path!r} cannot be read as a safetensors file (truncated or corrupt?): {error}"
        ) from error


def _read_npz(path: str) -> dict[str, np.ndarray]:
    try:
        with np.load(path, allow_pickle=False) as archive:
            return {name: archive[name] for name in archive.files}
    except (ValueError, OSError, zipfile.BadZipFile, EOFError) as error:
        raise ValueError(
            f"{path!r} cannot be read as a NumPy .npz archive (truncated, corrupt or "
            f"pickled?): {error}"
        ) from error


def _read_keras(path: str) -> dict[str, np.ndarray]:
    try:
        import h5py
    except ImportError as error:
        raise _missing("h5py", path, "a Keras weights file") from error
    try:
        if path.lower().endswith(".keras"):
            with zipfile.ZipFile(path) as archive:
                source = io.BytesIO(archive.read("model.weights.h5"))
        else:
            source = path
        with h5py.File(source, "r") as f:
            if "layers" not in f:
                raise ValueError(
                    f"{path!r} is not a Keras 3 weights file (no 'layers' group; found "
                    f"{sorted(f)[:5]}). Load the model in Keras 3 and save it with "
                    "`model.save_weights('x.weights.h5')`."
                )
            out = {}

            def visit(name, obj):
                if isinstance(obj, h5py.Dataset):
                    out[f"layers/{name}"] = np.asarray(obj)

            f["layers"].visititems(visit)
            return out
    except (OSError, KeyError, zipfile.BadZipFile) as error:
        raise ValueError(
            f"{path!r} cannot be read as a Keras weights file (truncated or corrupt?): {error}"
        ) from error


_KERAS_NAME = re.compile(r"layers/(?P<layer>(?P<cls>[a-z0-9_]+?)(?:_(?P<index>\d+))?)/vars/\d+")


def keras_layers_by_class(tensors: dict[str, np.ndarray]) -> dict[str, list[str]]:
    """{"conv2d": ["conv2d", "conv2d_1", ...], ...}: each class's layers of a Keras 3 file in
    the order the model lists them (the index Keras gives each name)."""
    layers: dict[str, dict[int, str]] = {}
    for name in tensors:
        match = _KERAS_NAME.fullmatch(name)
        if match is None:
            continue
        index = int(match["index"] or 0)
        layers.setdefault(match["cls"], {})[index] = match["layer"]
    return {cls: [found[i] for i in sorted(found)] for cls, found in layers.items()}
