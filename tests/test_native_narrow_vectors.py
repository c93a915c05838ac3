"""The native kernels at vector widths other than this machine's. They compile for every x86-64
level (SSE2 to AVX-512), and the numerical tests of the convolutions, the learned resizer's
head and conv_padded layers, and grid_sample run again in a subprocess against a build whose
`-march=native` is replaced by an older level (AVX2 on an AVX-512 machine, SSE4.2
otherwise). The kernels' register blocks and vector widths differ by width
(ops/native/vector_width.h), so this machine's own build checks one of them only."""

from __future__ import annotations

import os
import pathlib
import platform
import subprocess
import sys

import jax
import pytest

from resize_jax.ops import native
from tests import native_build

ROOT = pathlib.Path(__file__).resolve().parents[1]
COMPILER = native_build.compiler()

pytestmark = pytest.mark.skipif(
    COMPILER is None or platform.machine() not in ("x86_64", "AMD64"),
    reason="needs a C++ compiler targeting x86-64",
)

# The numerical tests only: values and derivatives against XLA or float64 oracles, with
# shapes that leave remainders after every register block.
SELECTION = {
    "tests/test_conv_native.py": "oracle or match_xla or equals_xla or fused or vectors",
    "tests/test_conv_head.py": "matches or match or take_one_native_pass",
    "tests/test_conv_padded.py": "matches or compositions",
    "tests/test_grid_sample_native.py": "match_xla or non_finite",
}


@pytest.mark.parametrize("level", ["x86-64", "x86-64-v2", "x86-64-v3", "x86-64-v4"])
def test_the_kernels_compile_for_every_x86_64_level(level):
    flags = [f for f in native._FLAGS if f not in ("-march=native", "-shared", "-fPIC")]
    inputs = [f"-I{jax.ffi.include_dir()}", f"-I{native._HERE}", *map(str, native.SOURCES)]
    result = subprocess.run(
        [COMPILER, *flags, f"-march={level}", "-fsyntax-only", *inputs],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-4000:]


def test_numerical_tests_pass_with_narrower_vectors(tmp_path):
    narrower = "x86-64-v3" if "__AVX512F__" in native_build.native_macros() else "x86-64-v2"
    wrapper = tmp_path / "cxx"
    wrapper.write_text(
        "#!/bin/sh\n"
        'for a in "$@"; do\n'
        f'  [ "$a" = -march=native ] && a=-march={narrower}\n'
        '  set -- "$@" "$a"; shift\n'
        "done\n"
        f'exec "{COMPILER}" "$@"\n'
    )
    wrapper.chmod(0o755)
    cache = tmp_path / "cache"
    failures = []
    for path, keywords in SELECTION.items():
        result = subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", path, "-k", keywords],
            cwd=ROOT,
            env={**os.environ, "CXX": str(wrapper), "RESIZE_JAX_CACHE": str(cache)},
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
        if result.returncode != 0 or " passed" not in result.stdout:
            output = result.stdout[-3000:] + result.stderr[-2000:]
            failures.append(f"{path} -k '{keywords}':\n{output}")
    # One library, built for the narrower level, served every run.
    assert len(list(cache.glob("native_kernels-*.so"))) == 1
    assert not failures, f"with -march={narrower}:\n" + "\n".join(failures)
