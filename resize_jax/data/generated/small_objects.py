"""`small_objects`: segmentation of objects a few pixels wide, which a 4× reduction blurs away.

Construction (a 128×128 RGB image and its label map; every random choice from a generator
seeded by `(split, index)`, so two builds are identical):

- Background: three independent smooth random colour fields (a random 3×3 grid per
  channel, bilinearly upsampled, around a random colour) plus pixel noise (σ = 0.02).
- 6–12 objects at random, non-overlapping places, each of a random saturated colour drawn
  independently of its class, so only the shape tells the class:

  | id | class  | shape                                                        |
  |----|--------|--------------------------------------------------------------|
  | 0  | background |                                                          |
  | 1  | `dot`  | a filled disc of radius 1.5–3 px                             |
  | 2  | `ring` | an annulus of outer radius 3.5–5.5 px and width 1.5–2 px     |
  | 3  | `bar`  | a 7–12 × 1.5–2.5 px rectangle at a random angle              |

- Objects are drawn antialiased (4×4 supersampling). A pixel fully inside an object gets its
  class; a pixel on an object's edge (partly covered: its colour is a mix) is *void*, 255,
  the `ignore_label`, as PASCAL VOC marks object boundaries.

At 32×32 (a 4× reduction) an object covers about one pixel and its shape is gone, so the
classes are told apart only at high resolution, which is what a learned front-end or a
zoom must preserve. No augmentation but flips suits the set (rescaling would change its
object sizes), which is the pipeline's default for it.
"""

from __future__ import annotations

import numpy as np
import tensorflow_datasets as tfds

from resize_jax.data.generated import render
from resize_jax.data.generated.builder import GeneratedBuilder, default_and_tiny

CLASS_NAMES = ("background", "dot", "ring", "bar")
IGNORE_LABEL = 255
_SEED = 20250608


def _shape(rng: np.random.Generator, cls: int, cy: float, cx: float):
    """`inside(y, x)` of a random shape of class `cls` centred at (cy, cx)."""
    if cls == 1:
        r = rng.uniform(1.5, 3.0)
        return lambda y, x: (y - cy) ** 2 + (x - cx) ** 2 <= r * r
    if cls == 2:
        outer = rng.uniform(3.5, 5.5)
        inner = outer - rng.uniform(1.5, 2.0)
        return lambda y, x: (
            (inner**2 <= (y - cy) ** 2 + (x - cx) ** 2)
            & ((y - cy) ** 2 + (x - cx) ** 2 <= outer**2)
        )
    half_len, half_width = rng.uniform(3.5, 6.0), rng.uniform(0.75, 1.25)
    angle = rng.uniform(0, np.pi)
    c, s = np.cos(angle), np.sin(angle)
    return lambda y, x: (
        (np.abs((x - cx) * c + (y - cy) * s) <= half_len)
        & (np.abs(-(x - cx) * s + (y - cy) * c) <= half_width)
    )


def _saturated_colour(rng: np.random.Generator) -> np.ndarray:
    """A random bright, saturated RGB colour (a random hue at full saturation)."""
    hue = rng.uniform(0, 6)
    ramp = np.clip(np.abs((hue + np.array([0.0, 4.0, 2.0])) % 6 - 3) - 1, 0, 1)
    return (0.15 + 0.85 * ramp).astype(np.float32)


def make_example(seed: tuple[int, ...], size: int = 128) -> dict[str, np.ndarray]:
    """Generates one example from `seed` (same seed → same example).

    Returns:
      {"image": uint8[size, size, 3], "segmentation_mask": uint8[size, size, 1] with class
      ids 0..3 and 255 on object edges}.
    """
    rng = np.random.default_rng(seed)
    base = rng.uniform(0.25, 0.65, size=3).astype(np.float32)
    image = np.stack([base[c] + render.smooth_field(rng, size, 3, 0.12) for c in range(3)], -1)
    labels = np.zeros((size, size), np.uint8)
    count = int(rng.integers(6, 13))
    for top, left, side in render.place_boxes(rng, size, lambda: 14, count, gap=1):
        cls = int(rng.integers(1, len(CLASS_NAMES)))
        inside = _shape(rng, cls, top + side / 2, left + side / 2)
        cover = render.coverage(inside, (top, left, side, side))
        colour = _saturated_colour(rng)
        window = image[top : top + side, left : left + side]
        window[:] = window * (1 - cover[..., None]) + colour * cover[..., None]
        region = labels[top : top + side, left : left + side]
        region[cover >= 1.0] = cls
        region[(cover > 0.0) & (cover < 1.0)] = IGNORE_LABEL
    image += rng.normal(0.0, 0.02, size=image.shape).astype(np.float32)
    return {"image": render.to_uint8(image), "segmentation_mask": labels[..., None]}


class SmallObjects(GeneratedBuilder):
    """Locally generated segmentation set: dots, rings and bars a few pixels wide."""

    BUILDER_CONFIGS = default_and_tiny((2000, 500), (24, 12))
    SEED = _SEED
    IMAGE_KEYS = ("image", "segmentation_mask")
    SUPERVISED_KEYS = ("image", "segmentation_mask")

    def features(self, size: int) -> dict:
        return {
            "image": tfds.features.Image(shape=(size, size, 3)),
            "segmentation_mask": tfds.features.Image(shape=(size, size, 1)),
        }

    def make_example(self, seed: tuple[int, ...], index: int, size: int) -> dict:
        del index  # In the seed already.
        return make_example(seed, size)
