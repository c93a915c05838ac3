"""benchmarks/bench_scaling.py: the mean-pool floor is one block mean, the cells build the
front-ends at the asked sizes, and the floor table pairs rounds."""

import importlib.util
import pathlib

import jax
import numpy as np
import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location(
    "bench_scaling", ROOT / "benchmarks" / "bench_scaling.py"
)
bench_scaling = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bench_scaling)


def test_mean_pool_is_the_block_mean():
    x = np.random.default_rng(0).normal(size=(2, 35, 35, 3)).astype(np.float32)
    # The centred 32×32 that whole 8×8 blocks cover.
    expected = x[:, 1:33, 1:33].reshape(2, 4, 8, 4, 8, 3).mean(axis=(2, 4))
    np.testing.assert_allclose(bench_scaling.mean_pool(x, 4), expected, atol=1e-6)


@pytest.mark.parametrize("kind", ["mean_pool", "antialiased", "saliency", "saliency_224"])
def test_cells_build_at_their_sizes(kind):
    fn, state = bench_scaling.build(kind, 2, 64, 16)
    assert jax.eval_shape(fn, state).shape == (2, 16, 16, 3)
    with pytest.raises(ValueError, match="unknown kind 'bicubic'"):
        bench_scaling.build("bicubic", 1, 64, 16)


def test_floor_table_pairs_rounds():
    def row(kind, rounds):
        return {"table": "floor", "kind": kind, "batch": 4, "in": 1792, "out": 224,
                "ms": float(np.median(rounds)), "rounds_ms": rounds,
                "reference_ms": float("nan")}  # fmt: skip

    rows = [
        row("saliency", [30.0, 40.0, 60.0]),
        row("saliency_224", [40.0, 20.0, 90.0]),
        row("antialiased", [100.0, 100.0, 100.0]),
        row("mean_pool", [20.0, 10.0, 30.0]),
    ]
    meta = {"backend": "cpu", "threads": 2, "jax": "x", "matmul_gflop_per_s": 1.0,
            "rounds": 3, "reps": 2, "reference_setting": "channels_last"}  # fmt: skip
    table = bench_scaling.format_tables(rows, meta)
    # Median over median (40 / 20), and the spread of the per-round ratios (1.5, 4, 2).
    assert "| 1792² | 40.0 (30.0–60.0) | 100.0 (100.0–100.0) | 20.0 (10.0–30.0) | 2.00 " in table
    # The 224² copy's row: median 40 over 20, per-round ratios 2, 2, 3.
    assert "(1.50–4.00) | 40.0 (20.0–90.0) | 2.00 (2.00–3.00) | – | – | – |" in table
