"""Native CPU kernels (XLA FFI custom calls), compiled on first use.

The C++ source ships with the package and is compiled once per machine, source and jaxlib
version with the system's C++ compiler (`$CXX`, else `c++`), `-O3 -march=native`, into
`$RESIZE_JAX_CACHE` (default `~/.cache/resize_jax`). Compiling here rather than at install
time keeps the package pure Python (one wheel for every platform) and lets the compiler use
the vector width of the machine that runs it, the way `torch.utils.cpp_extension.load` does.

Without a compiler, or with `RESIZE_JAX_NATIVE=0`, `available()` is False and callers use
XLA's own operations; nothing else changes. The kernels are in `conv_kernels.cc`
(convolutions) and `grid_sample_kernels.cc` (bilinear sampling).
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import hashlib
import os
import pathlib
import platform
import shutil
import subprocess
import tempfile
import threading
import warnings

import jax

_HERE = pathlib.Path(__file__).parent
SOURCES = (_HERE / "conv_kernels.cc", _HERE / "grid_sample_kernels.cc")
HEADERS = (_HERE / "parallel_for.h",)
TARGETS = (
    "resize_jax_conv_vec_out",
    "resize_jax_conv_vec_out_bias_leaky",
    "resize_jax_conv_vec_in",
    "resize_jax_conv_weight_grad",
    "resize_jax_grid_sample",
    "resize_jax_grid_sample_slopes",
)
ENV_SWITCH = "RESIZE_JAX_NATIVE"
_FLAGS = ("-O3", "-march=native", "-std=c++17", "-shared", "-fPIC", "-Wno-return-type")


_LOCAL = threading.local()


@contextlib.contextmanager
def disabled():
    """Trace with XLA's operations only, in this thread (e.g. for XLA's FLOP count, which
    cannot see into custom calls). Applies to functions traced inside the block; jit
    caches, so wrap the function in a fresh lambda if it was traced before."""
    depth = getattr(_LOCAL, "disabled", 0)
    _LOCAL.disabled = depth + 1
    try:
        yield
    finally:
        _LOCAL.disabled = depth


def enabled_by_environment() -> bool:
    """False when `RESIZE_JAX_NATIVE` is 0/false/no/off (read at every trace)."""
    value = os.environ.get(ENV_SWITCH, "1").strip().lower()
    return value not in ("0", "false", "no", "off")


def _cache_dir() -> pathlib.Path:
    root = os.environ.get("RESIZE_JAX_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "resize_jax"
    )
    return pathlib.Path(root)


def _compiler() -> str | None:
    return shutil.which(os.environ.get("CXX", "c++"))


def _library_path(compiler: str) -> pathlib.Path:
    key = hashlib.sha256()
    for part in (
        *(path.read_bytes() for path in (*SOURCES, *HEADERS)),
        compiler.encode(),
        " ".join(_FLAGS).encode(),
    ):
        key.update(part)
    key.update(f"{jax.__version__}|{platform.machine()}|{platform.node()}".encode())
    return _cache_dir() / f"native_kernels-{key.hexdigest()[:16]}.so"


def _build(compiler: str, target: pathlib.Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    # Compile to a private name and rename: concurrent processes (pytest-xdist workers, hosts
    # sharing a home directory) never load a half-written library.
    fd, tmp = tempfile.mkstemp(suffix=".so", dir=target.parent)
    os.close(fd)
    try:
        command = [
            compiler,
            *_FLAGS,
            f"-I{jax.ffi.include_dir()}",
            f"-I{_HERE}",
            *map(str, SOURCES),
            "-o",
            tmp,
        ]
        result = subprocess.run(command, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise RuntimeError(f"`{' '.join(command)}` failed:\n{result.stderr[-4000:]}")
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


@functools.cache
def _load() -> bool:
    compiler = _compiler()
    if compiler is None:
        warnings.warn(
            "resize_jax: no C++ compiler found (set $CXX); using XLA's operations on CPU.",
            stacklevel=3,
        )
        return False
    path = _library_path(compiler)
    try:
        if not path.exists():
            _build(compiler, path)
        library = ctypes.cdll.LoadLibrary(str(path))
        for name in TARGETS:
            jax.ffi.register_ffi_target(
                name, jax.ffi.pycapsule(getattr(library, name)), platform="cpu"
            )
    except (OSError, RuntimeError, AttributeError) as error:
        warnings.warn(
            f"resize_jax: native CPU kernels unavailable ({error}); using XLA's operations.",
            stacklevel=3,
        )
        return False
    return True


def available() -> bool:
    """Whether the native CPU kernels are enabled and loaded (compiling them if needed)."""
    return not getattr(_LOCAL, "disabled", 0) and enabled_by_environment() and _load()
