"""benchmarks/bound_grid_sample.py: the cache lines a grid's bilinear corners touch."""

import importlib.util
import pathlib

import numpy as np
import pytest

pytest.importorskip("torch")

ROOT = pathlib.Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location(
    "bound_grid_sample", ROOT / "benchmarks" / "bound_grid_sample.py"
)
bound = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bound)


def test_one_line_per_row_of_sixteen_single_channel_pixels():
    # 4 rows of 16 f32 pixels: one 64-byte line per row at an aligned address.
    shape = (1, 4, 16, 1)
    xs = np.linspace(-1.0, 1.0, 16, dtype=np.float32)
    ys = np.linspace(-1.0, 1.0, 4, dtype=np.float32)
    identity = np.stack(np.meshgrid(xs, ys), axis=-1)[None]
    assert bound.touched_lines(identity, shape, 0) == {"all": 4, "forward": 4, "fwd+bwd": 4}
    # One point on the first pixel's centre: its corners span rows 0 and 1, but the row-1
    # corners have zero weight; inside the image their slope is not zero.
    corner = np.array([[[[-1.0, -1.0]]]], np.float32)
    assert bound.touched_lines(corner, shape, 0) == {"all": 2, "forward": 1, "fwd+bwd": 2}


def test_pixels_straddling_lines_count_both():
    # 3-channel pixels (12 bytes) from an address 60 bytes into a line: the first pixel's
    # bytes 60..71 lie in two lines.
    shape = (1, 2, 2, 3)
    corner = np.array([[[[-1.0, -1.0]]]], np.float32)
    counts = bound.touched_lines(corner, shape, 60)
    # Forward: pixel (0, 0) only: lines 0 and 1. All corners: pixels (0,0), (0,1), (1,0),
    # (1,1) at bytes 60..107: lines 0 and 1.
    assert counts == {"all": 2, "forward": 2, "fwd+bwd": 2}
