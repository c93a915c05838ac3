"""`synthetic_ava`: AVA-format image quality whose rating histograms follow the image's blur.

Construction (a 128×128 RGB image and its ratings; every random choice from a generator
seeded by `(split, index)`, so two builds are identical):

- A sharp scene: a smooth random colour background and 6–12 random rectangles and discs
  of random colours with hard edges.
- A Gaussian blur of random σ ∈ [0, 3] px (σ = 0: none), then pixel noise (σ = 0.01).
- Ratings: 60–200 simulated raters each give the score
  `clip(round(N(μ, 1.4)), 1, 10)` with `μ = 7.5 − 1.5 σ`: sharp images average about 7.5,
  the blurriest about 3. The counts of scores 1..10 form the AVA rating histogram.
- AVA's other fields are filled in the same format: an image id, two semantic tag ids
  (0–66) and a challenge id (1–1400), random.

So quality is a measurable property of the image: the variance of its Laplacian falls
with σ and the mean score falls with it (tested). `export_ava` writes a split as an AVA
ratings file plus `<image id>.jpg` images, for the `name="ava"` reader.
"""

from __future__ import annotations

import os

import numpy as np
import tensorflow_datasets as tfds
from PIL import Image

from resize_jax.data import ava
from resize_jax.data.generated import render
from resize_jax.data.generated.builder import SPLIT_SEEDS, GeneratedBuilder, default_and_tiny

MAX_SIGMA = 3.0
_SEED = 20250609


def mean_score(sigma: float) -> float:
    """The mean rating of an image blurred by `sigma` px."""
    return 7.5 - 1.5 * sigma


def _scene(rng: np.random.Generator, size: int) -> np.ndarray:
    base = rng.uniform(0.2, 0.8, size=3).astype(np.float32)
    image = np.stack([base[c] + render.smooth_field(rng, size, 3, 0.15) for c in range(3)], -1)
    y, x = np.mgrid[0:size, 0:size] + 0.5
    for _ in range(int(rng.integers(6, 13))):
        colour = rng.uniform(0.0, 1.0, size=3).astype(np.float32)
        cy, cx = rng.uniform(0, size, size=2)
        if rng.random() < 0.5:
            hh, hw = rng.uniform(4, size / 5, size=2)
            inside = (np.abs(y - cy) <= hh) & (np.abs(x - cx) <= hw)
        else:
            inside = (y - cy) ** 2 + (x - cx) ** 2 <= rng.uniform(4, size / 6) ** 2
        image[inside] = colour
    return image


def make_example(seed: tuple[int, ...], index: int, size: int = 128) -> dict:
    """Generates example `index` from `seed` (same seed → same example).

    Returns:
      {"image": uint8[size, size, 3], "rating_counts": int32[10], "tags": int32[2],
       "challenge": int, "image_id": str, "blur_sigma": float}.
    """
    rng = np.random.default_rng(seed)
    image = _scene(rng, size)
    sigma = float(rng.uniform(0.0, MAX_SIGMA))
    image = render.gaussian_blur(image, sigma)
    image += rng.normal(0.0, 0.01, size=image.shape).astype(np.float32)
    raters = int(rng.integers(60, 201))
    scores = np.clip(np.round(rng.normal(mean_score(sigma), 1.4, size=raters)), 1, 10)
    counts = np.bincount(scores.astype(int) - 1, minlength=10).astype(np.int32)
    return {
        "image": render.to_uint8(image),
        "rating_counts": counts,
        "tags": rng.integers(0, 67, size=2).astype(np.int32),
        "challenge": int(rng.integers(1, 1401)),
        "image_id": f"{seed[1]}{index:06d}",
        "blur_sigma": np.float32(sigma),
    }


def export_ava(directory: str, split: str = "test", count: int = 100, size: int = 128) -> str:
    """Writes `count` examples of `split` as an AVA ratings file + image directory.

    Creates `directory/AVA.txt` and `directory/images/<image id>.jpg` (JPEG quality 95),
    readable with `name="ava"`, `ratings_file=directory/AVA.txt`,
    `image_dir=directory/images`. Returns the ratings file's path.
    """
    image_dir = os.path.join(directory, "images")
    os.makedirs(image_dir, exist_ok=True)
    ratings = []
    for index in range(count):
        ex = make_example((_SEED, SPLIT_SEEDS[split], index), index, size)
        Image.fromarray(ex["image"]).save(
            os.path.join(image_dir, f"{ex['image_id']}.jpg"), quality=95
        )
        ratings.append(
            ava.Rating(
                index + 1,
                ex["image_id"],
                tuple(int(c) for c in ex["rating_counts"]),
                (int(ex["tags"][0]), int(ex["tags"][1])),
                ex["challenge"],
            )
        )
    path = os.path.join(directory, "AVA.txt")
    ava.write_ratings(path, ratings)
    return path


class SyntheticAva(GeneratedBuilder):
    """Locally generated AVA-format image-quality set; ratings fall with blur."""

    BUILDER_CONFIGS = default_and_tiny((2000, 500), (24, 12))
    SEED = _SEED

    def features(self, size: int) -> dict:
        return {
            "image": tfds.features.Image(shape=(size, size, 3)),
            "rating_counts": tfds.features.Tensor(shape=(10,), dtype=np.int32),
            "tags": tfds.features.Tensor(shape=(2,), dtype=np.int32),
            "challenge": tfds.features.Scalar(dtype=np.int32),
            "image_id": tfds.features.Text(),
            "blur_sigma": tfds.features.Scalar(dtype=np.float32),
        }

    def make_example(self, seed: tuple[int, ...], index: int, size: int) -> dict:
        return make_example(seed, index, size)
