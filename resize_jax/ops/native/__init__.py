"""Native CPU kernels (XLA FFI custom calls), compiled on first use.

The C++ source ships with the package and is compiled once per machine, source and jaxlib
version with the system's C++ compiler (`$CXX`, else `c++`), `-O3 -march=native`, into
`$RESIZE_JAX_CACHE` (default `~/.cache/resize_jax`). Compiling here rather than at install
time keeps the package pure Python (one wheel for every platform) and lets the compiler use
the vector width of the machine that runs it, the way `torch.utils.cpp_extension.load` does.

Without a compiler, or with `RESIZE_JAX_NATIVE=0`, `available()` is False and callers use
XLA's own operations; nothing else changes. The kernels are in `conv_kernels.cc`
(convolutions), `grid_sample_kernels.cc` (bilinear sampling) and `resize_kernels.cc` (banded
resizes and block means).
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import hashlib
import inspect
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
SOURCES = (_HERE / "conv_kernels.cc", _HERE / "grid_sample_kernels.cc", _HERE / "resize_kernels.cc")
HEADERS = (_HERE / "parallel_for.h", _HERE / "vector_width.h")
TARGETS = (
    "resize_jax_conv_vec_out",
    "resize_jax_conv_vec_out_bias_leaky",
    "resize_jax_conv_vec_out_bias_leaky_resized",
    "resize_jax_conv_vec_out_padded",
    "resize_jax_conv_head_resized",
    "resize_jax_conv_head_resized_keep_first",
    "resize_jax_conv_head_resized_grad",
    "resize_jax_conv_vec_in",
    "resize_jax_conv_weight_grad",
    "resize_jax_banded_resize",
    "resize_jax_block_mean",
    "resize_jax_grid_sample",
    "resize_jax_grid_sample_slopes",
)
ENV_SWITCH = "RESIZE_JAX_NATIVE"
_FLAGS = (
    "-O3",
    "-march=native",
    "-std=c++17",
    "-shared",
    "-fPIC",
    "-Wno-return-type",
    "-Wno-psabi",
)


_LOCAL = threading.local()


@contextlib.contextmanager
def disabled():
    """Trace with XLA's operations only, in this thread (e.g. for XLA's FLOP count, which
    cannot see into custom calls). Applies to functions traced inside the block; jit
    caches, so wrap the function in a fresh lambda if it was traced before (the package's
    own jitted helpers key their caches on this state: `jit` below)."""
    depth = getattr(_LOCAL, "disabled", 0)
    _LOCAL.disabled = depth + 1
    try:
        yield
    finally:
        _LOCAL.disabled = depth


def trace_state() -> tuple[bool, bool]:
    """What decides, at trace time, whether the native kernels may be used: (disabled in this
    thread, enabled by the environment). Cheap; never builds or loads the kernels."""
    return bool(getattr(_LOCAL, "disabled", 0)), enabled_by_environment()


def jit(fn=None, **jit_kwargs):
    """`jax.jit` whose trace cache also keys on `trace_state()`: for module-level jitted
    functions whose body may take a native kernel, so a call under `disabled()` (or with
    `RESIZE_JAX_NATIVE=0`) is traced anew instead of reusing a trace that took the kernels.
    Use as `@native.jit(static_argnames=...)`; `static_argnums` work as in `jax.jit`."""
    if fn is None:
        return functools.partial(jit, **jit_kwargs)
    names = jit_kwargs.pop("static_argnames", ())
    names = (names,) if isinstance(names, str) else tuple(names)

    def keyed(*args, _native_trace_state, **kwargs):
        del _native_trace_state
        return fn(*args, **kwargs)

    # fn's own signature plus the key, so jit maps static_argnames and static_argnums.
    signature = inspect.signature(fn)
    key = inspect.Parameter("_native_trace_state", inspect.Parameter.KEYWORD_ONLY)
    keyed.__signature__ = signature.replace(parameters=[*signature.parameters.values(), key])
    keyed = jax.jit(keyed, static_argnames=(*names, "_native_trace_state"), **jit_kwargs)

    @functools.wraps(fn)
    def call(*args, **kwargs):
        return keyed(*args, _native_trace_state=trace_state(), **kwargs)

    return call


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
def _library() -> ctypes.CDLL | None:
    """The compiled kernels with their FFI targets registered, or None (with a warning)."""
    compiler = _compiler()
    if compiler is None:
        warnings.warn(
            "resize_jax: no C++ compiler found (set $CXX); using XLA's operations on CPU.",
            stacklevel=4,
        )
        return None
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
            stacklevel=4,
        )
        return None
    return library


def _load() -> bool:
    return _library() is not None


def available() -> bool:
    """Whether the native CPU kernels are enabled and loaded (compiling them if needed)."""
    return not getattr(_LOCAL, "disabled", 0) and enabled_by_environment() and _load()


def vector_lanes() -> int | None:
    """The floats in one vector register of the compiled kernels: 16 with AVX-512, 8 with
    AVX2, 4 otherwise (`-march=native` decides); None when the kernels are unavailable. The
    figure to read beside a benchmark of them."""
    if not available():
        return None
    return int(_library().resize_jax_vector_lanes())
