"""Small NumPy drawing helpers shared by the generated datasets (no dependency but NumPy)."""

from __future__ import annotations

import concurrent.futures
import io
import os
from collections.abc import Callable, Iterator

import numpy as np
from PIL import Image


def smooth_field(rng: np.random.Generator, size: int, grid: int, amplitude: float) -> np.ndarray:
    """A smooth random field f32[size, size]: a random `grid`² array, bilinearly upsampled."""
    coarse = rng.uniform(-amplitude, amplitude, size=(grid, grid)).astype(np.float32)
    interp = upsample_matrix(grid, size)
    return interp @ coarse @ interp.T


def upsample_matrix(n: int, size: int) -> np.ndarray:
    """f32[size, n]: bilinear interpolation (half-pixel centres, clamped edges) n → size."""
    pos = np.clip((np.arange(size) + 0.5) * n / size - 0.5, 0, n - 1)
    lo = np.minimum(np.floor(pos).astype(int), max(n - 2, 0))
    frac = (pos - lo).astype(np.float32)
    matrix = np.zeros((size, n), np.float32)
    matrix[np.arange(size), lo] += 1 - frac
    matrix[np.arange(size), np.minimum(lo + 1, n - 1)] += frac
    return matrix


def coverage(
    inside: Callable[[np.ndarray, np.ndarray], np.ndarray],
    box: tuple[int, int, int, int],
    supersample: int = 4,
) -> np.ndarray:
    """Fraction f32[h, w] of each pixel of `box` = (top, left, h, w) covered by a shape.

    `inside(y, x)` says which points (pixel units, pixel centres at i + 0.5) are inside;
    it is evaluated on a `supersample`² grid per pixel.
    """
    top, left, h, w = box
    s = supersample
    y = top + (np.arange(h * s) + 0.5) / s
    x = left + (np.arange(w * s) + 0.5) / s
    hit = inside(y[:, None], x[None, :]).astype(np.float32)
    return hit.reshape(h, s, w, s).mean(axis=(1, 3))


def gaussian_blur(image: np.ndarray, sigma: float) -> np.ndarray:
    """Blurs `image` f32[H, W, C] by a Gaussian of std `sigma` px (reflected edges, kernel
    radius 3σ); returns it unchanged when sigma is 0. Shifted sums, not BLAS: a few ms, and
    unaffected by how many threads the BLAS library would spin up."""
    if sigma <= 0:
        return image
    radius = int(np.ceil(3 * sigma))
    taps = np.exp(-0.5 * (np.arange(-radius, radius + 1) / sigma) ** 2).astype(np.float32)
    taps /= taps.sum()
    for axis in (0, 1):
        pad = [(0, 0)] * image.ndim
        pad[axis] = (radius, radius)
        padded = np.pad(image, pad, mode="reflect")
        n = image.shape[axis]
        image = sum(w * np.take(padded, np.arange(k, k + n), axis=axis) for k, w in enumerate(taps))
    return image


def place_boxes(
    rng: np.random.Generator,
    size: int,
    sides: Callable[[], int],
    count: int,
    gap: int = 2,
    max_tries: int = 1000,
) -> list[tuple[int, int, int]]:
    """Up to `count` non-overlapping squares (top, left, side), `gap` px apart, inside.

    `sides()` draws a side length; placement is by rejection, so crowded images may get
    fewer boxes (never when the boxes are small against the image, as in our datasets).
    """
    boxes: list[tuple[int, int, int]] = []
    for _ in range(max_tries):
        if len(boxes) == count:
            break
        side = sides()
        top, left = (int(v) for v in rng.integers(gap, size - side - gap + 1, size=2))
        if all(
            top + side + gap <= t0
            or t0 + s + gap <= top
            or left + side + gap <= l0
            or l0 + s + gap <= left
            for t0, l0, s in boxes
        ):
            boxes.append((top, left, side))
    return boxes


def encode_png(image: np.ndarray) -> bytes:
    """uint8[H, W] or [H, W, C] → PNG bytes (Pillow, deterministic for a given zlib)."""
    buffer = io.BytesIO()
    Image.fromarray(image[..., 0] if image.shape[-1:] == (1,) else image).save(buffer, "png")
    return buffer.getvalue()


def generate(make: Callable[[int], dict], count: int, image_keys: tuple[str, ...]) -> Iterator:
    """Yields `(index, make(index))` for index < count, in order, with the `image_keys`
    arrays PNG-encoded; drawing and encoding run on a thread pool (NumPy and zlib release
    the GIL), so a build can use several cores. Order and content do not depend on the
    threads."""

    def work(index: int) -> dict:
        example = make(index)
        for key in image_keys:
            example[key] = encode_png(example[key])
        return example

    workers = min(8, os.cpu_count() or 1)
    with concurrent.futures.ThreadPoolExecutor(workers) as pool:
        for start in range(0, count, 256):  # bounded memory: one chunk in flight
            indices = range(start, min(start + 256, count))
            yield from zip(indices, pool.map(work, indices), strict=True)


def to_uint8(image: np.ndarray) -> np.ndarray:
    """f32 values in [0, 1] → uint8 (rounded, clipped)."""
    return np.clip(np.round(image * 255.0), 0, 255).astype(np.uint8)
