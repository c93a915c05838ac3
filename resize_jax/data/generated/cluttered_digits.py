"""`cluttered_digits`: real handwritten digits, small, at a random place among digit fragments.

Built offline from real images that ship inside scikit-learn (nothing is downloaded):
the 1797 scans of handwritten digits of `sklearn.datasets.load_digits` (8×8, 17 grey
levels, from the UCI optical recognition set) and the two photographs of
`sklearn.datasets.load_sample_images` (china.jpg, flower.jpg, 427×640).

Construction (a 128×128 greyscale image stored as RGB with three equal channels; every
random choice comes from a generator seeded by `(split, index)`, so any example can be
regenerated alone and two builds are identical):

- Background: a random 128×128 crop of one of the two photographs, in grey, randomly
  flipped, its contrast squeezed into [0, 0.25] (real texture, darker than the ink).
- Clutter: 14 fragments of other digit scans (random 4×4 to 5×5 pieces of an 8×8 scan, so
  never a whole digit), each enlarged 2× to 8–10 px, at random places: the same strokes,
  the same grey levels, the same texture as the digit that matters.
- The digit: one whole scan, enlarged 2× (bilinear) to 16×16 px, i.e. 1/8 of the image
  side, at a random place that no fragment overlaps. Its class (0–9) is the label.
- Ink is composited by maximum over the background, then pixel noise (σ = 0.02).

Train and test use disjoint scans: the test images show digits written by hands the
training images never show (scans 0–1399 for train, 1400–1796 for test; fragments too).

Why a fixed 32×32 resize loses the label: the digit becomes 4×4 px, half the resolution of
its 8×8 scan, and bilinear without antialiasing reads only one pixel pair in four. A
front-end that zooms 2× on the digit reads it at the scan's own resolution.
"""

from __future__ import annotations

import functools

import numpy as np

from resize_jax.data.generated import render
from resize_jax.data.generated.builder import GeneratedBuilder, default_and_tiny

CLASS_NAMES = tuple(str(d) for d in range(10))
NUM_TRAIN_SCANS = 1400  # scans [0, 1400) for train, [1400, 1797) for test
DIGIT_SIDE = 16  # px of the decisive digit (an 8×8 scan enlarged 2×)
NUM_FRAGMENTS = 14
BACKGROUND_MAX = 0.25
_SEED = 20261130


@functools.cache
def _scans() -> tuple[np.ndarray, np.ndarray]:
    """The digit scans f32[1797, 8, 8] in [0, 1] and their labels int[1797]."""
    try:
        from sklearn.datasets import load_digits
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise ImportError(
            "`cluttered_digits` is built from scikit-learn's bundled images: "
            "pip install scikit-learn (or resize_jax[train])."
        ) from e
    digits = load_digits()
    return (digits.images / 16.0).astype(np.float32), digits.target.astype(np.int64)


@functools.cache
def _photos() -> tuple[np.ndarray, ...]:
    """scikit-learn's sample photographs in grey, f32[427, 640] in [0, 1] each."""
    from sklearn.datasets import load_sample_images

    weights = np.array([0.299, 0.587, 0.114], np.float32)
    return tuple((img.astype(np.float32) / 255.0) @ weights for img in load_sample_images().images)


def _enlarge(patch: np.ndarray, factor: int = 2) -> np.ndarray:
    """Bilinear enlargement f32[h, w] → f32[factor·h, factor·w] (half-pixel centres)."""
    h, w = patch.shape
    return render.upsample_matrix(h, factor * h) @ patch @ render.upsample_matrix(w, factor * w).T


def _paste_max(canvas: np.ndarray, patch: np.ndarray, top: int, left: int) -> None:
    h, w = patch.shape
    region = canvas[top : top + h, left : left + w]
    np.maximum(region, patch, out=region)


def make_example(seed: tuple[int, ...], size: int = 128) -> dict[str, np.ndarray | int]:
    """Generates one example from `seed` = (dataset seed, split seed, index).

    The split seed picks the pool of scans (0: train scans, otherwise test scans).

    Returns:
      dict with "image": uint8[size, size, 3], "label": int in [0, 10), "digit": f32[4] the
      decisive digit's box (ymin, xmin, ymax, xmax) as fractions of the image size.
    """
    if size < 4 * DIGIT_SIDE:
        raise ValueError(f"`size` must be at least {4 * DIGIT_SIDE}, got {size}.")
    scans, labels = _scans()
    pool = np.arange(NUM_TRAIN_SCANS) if seed[1] == 0 else np.arange(NUM_TRAIN_SCANS, len(scans))
    rng = np.random.default_rng(seed)

    photos = _photos()
    photo = photos[int(rng.integers(0, len(photos)))]
    top, left = (
        int(rng.integers(0, photo.shape[0] - size + 1)),
        int(rng.integers(0, photo.shape[1] - size + 1)),
    )
    background = photo[top : top + size, left : left + size]
    if rng.random() < 0.5:
        background = background[:, ::-1]
    low, high = float(background.min()), float(background.max())
    canvas = (background - low) / max(high - low, 1e-6) * BACKGROUND_MAX

    index = int(rng.choice(pool))
    label = int(labels[index])
    digit = np.clip(_enlarge(scans[index]), 0.0, 1.0)
    d_top, d_left = (int(v) for v in rng.integers(1, size - DIGIT_SIDE, size=2))
    for _ in range(NUM_FRAGMENTS):
        scan = scans[int(rng.choice(pool))]
        h, w = (int(v) for v in rng.integers(4, 6, size=2))
        y, x = int(rng.integers(0, 9 - h)), int(rng.integers(0, 9 - w))
        fragment = np.clip(_enlarge(scan[y : y + h, x : x + w]), 0.0, 1.0)
        fh, fw = fragment.shape
        # Rejection: fragments may touch each other but never the digit (1 px gap).
        for _ in range(100):
            f_top = int(rng.integers(0, size - fh + 1))
            f_left = int(rng.integers(0, size - fw + 1))
            if (
                f_top + fh < d_top - 1
                or d_top + DIGIT_SIDE + 1 < f_top
                or f_left + fw < d_left - 1
                or d_left + DIGIT_SIDE + 1 < f_left
            ):
                _paste_max(canvas, fragment, f_top, f_left)
                break
    _paste_max(canvas, digit, d_top, d_left)
    canvas = canvas + rng.normal(0.0, 0.02, size=canvas.shape).astype(np.float32)
    box = np.array([d_top, d_left, d_top + DIGIT_SIDE, d_left + DIGIT_SIDE], np.float32) / size
    return {
        "image": render.to_uint8(np.repeat(canvas[..., None], 3, axis=-1)),
        "label": label,
        "digit": box,
    }


class ClutteredDigits(GeneratedBuilder):
    """Classification of a small real handwritten digit among fragments of other digits."""

    BUILDER_CONFIGS = default_and_tiny((6000, 1000), (48, 24))
    SEED = _SEED
    SUPERVISED_KEYS = ("image", "label")
    CLASS_NAMES = CLASS_NAMES
    BOX_KEYS = ("digit",)
    generate = staticmethod(make_example)
