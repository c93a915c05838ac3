"""`synthetic_gaze`: a gaze point on a screen that only two small eyes in the image tell.

Construction (a 128×128 RGB image; every random choice comes from a generator seeded by
`(split, index)`, so any example can be regenerated alone and two builds are identical):

- Background: a smooth random colour field (a random 3×3 grid per channel, bilinearly
  upsampled) plus 5–8 distractors at random places: discs and rectangles of random colours
  (radius or half-side 4–14 px) and 4–8 small dark dots (radius 1–2 px, pupil-sized).
- A face: a skin-coloured ellipse of half-width a ∈ [13, 20] px (half-height 1.25a) at a
  random place, wholly inside the image, with a mouth (a dark bar) and two eyes at
  (±0.42a, −0.22a) from its centre. An eye is a white ellipse of half-axes (0.26a, 0.2a),
  3.4–5.2 px wide, holding a dark pupil of radius 0.09a + 0.3 px (1.5–2.1 px).
- The gaze: (g_x, g_y) ~ Uniform[−1, 1]² moves both pupils by g times the room they have
  inside the eye (its half-axis minus the pupil's radius and 0.3 px), along x and y.
- The target, "gaze": the point looked at on a screen below the camera, in centimetres
  (GazeCapture's convention: x to the right of the camera, y negative below it):
  `x = 8 g_x`, `y = −9 − 6 g_y`, so x ∈ [−8, 8] cm and y ∈ [−15, −3] cm.
- Every shape is antialiased (4×4 supersampling); pixel noise σ = 0.02 on top.

Why a 128→32 resize loses most of it: the pupils move by at most 1.2–3 px at full
resolution, a third to three quarters of a pixel at 32×32, where a whole eye covers about
one pixel and the dark distractor dots look alike. An antialiased (area) resize averages each
eye into that pixel, so only the pixel's faint shading carries the offset; a plain bilinear
resize reads 2 of every 4 pixels and keeps a pupil's edge only where a sample falls on it
(docs/gaze.md has the measured errors). A front-end that magnifies the two eyes (the
saliency sampler, as in Recasens et al.'s gaze experiments) reads the pupils' offsets
directly. The face's position and size are random, so no fixed crop does that.

Extra features for figures and tests: "gaze_direction" (g_x, g_y), "eyes" f32[2, 2], the
centres (x, y) of the left and right eye in the grid convention of `resize_jax.ops` ([-1, 1],
±1 at the centres of the border pixels), and "face" the face's bounding box.
`export_csv` writes a split as PNG images plus a `<split>.csv` for the `name="csv"` reader.
"""

from __future__ import annotations

import os

import numpy as np
import tensorflow_datasets as tfds
from PIL import Image

from resize_jax.data.generated import render
from resize_jax.data.generated.builder import SPLIT_SEEDS, GeneratedBuilder, default_and_tiny

SCREEN_X_CM = 8.0  # x = SCREEN_X_CM · g_x
SCREEN_Y_CM = (-9.0, 6.0)  # y = SCREEN_Y_CM[0] − SCREEN_Y_CM[1] · g_y
_SEED = 20250610


def gaze_to_screen(direction: np.ndarray) -> np.ndarray:
    """(g_x, g_y) in [-1, 1]² → the gaze point (x, y) on the screen in cm: f32[..., 2]."""
    direction = np.asarray(direction, np.float32)
    x = SCREEN_X_CM * direction[..., 0]
    y = SCREEN_Y_CM[0] - SCREEN_Y_CM[1] * direction[..., 1]
    return np.stack([x, y], axis=-1).astype(np.float32)


def _paint(image: np.ndarray, inside, box, colour) -> None:
    """Blends `colour` into `image` where `inside(y, x)` holds, antialiased, within `box`
    = (top, left, bottom, right) in pixels (clipped to the image)."""
    size_h, size_w = image.shape[:2]
    top, left = max(int(np.floor(box[0])), 0), max(int(np.floor(box[1])), 0)
    bottom, right = min(int(np.ceil(box[2])), size_h), min(int(np.ceil(box[3])), size_w)
    if bottom <= top or right <= left:
        return
    cover = render.coverage(inside, (top, left, bottom - top, right - left))[..., None]
    window = image[top:bottom, left:right]
    window[:] = window * (1 - cover) + np.asarray(colour, np.float32) * cover


def _ellipse(cy: float, cx: float, ry: float, rx: float):
    return lambda y, x: ((y - cy) / ry) ** 2 + ((x - cx) / rx) ** 2 <= 1.0


def _rectangle(cy: float, cx: float, half_h: float, half_w: float):
    return lambda y, x: (np.abs(y - cy) <= half_h) & (np.abs(x - cx) <= half_w)


def _distractors(rng: np.random.Generator, image: np.ndarray) -> None:
    size = image.shape[0]
    for _ in range(int(rng.integers(5, 9))):
        colour = rng.uniform(0.0, 1.0, size=3)
        cy, cx = rng.uniform(0, size, size=2)
        r = rng.uniform(4, 14)
        if rng.random() < 0.5:
            inside = _ellipse(cy, cx, r, r)
        else:
            h = rng.uniform(4, 14)
            inside = _rectangle(cy, cx, h, r)
            r = max(r, h)
        _paint(image, inside, (cy - r - 1, cx - r - 1, cy + r + 1, cx + r + 1), colour)
    for _ in range(int(rng.integers(4, 9))):
        cy, cx = rng.uniform(2, size - 2, size=2)
        r = rng.uniform(1.0, 2.0)
        dark = rng.uniform(0.0, 0.2, size=3)
        _paint(image, _ellipse(cy, cx, r, r), (cy - 3, cx - 3, cy + 3, cx + 3), dark)


def make_example(seed: tuple[int, ...], size: int = 128) -> dict[str, np.ndarray]:
    """Generates one example from `seed` (an entropy tuple; same seed → same example).

    Returns:
      {"image": uint8[size, size, 3], "gaze": f32[2] (cm), "gaze_direction": f32[2] in
      [-1, 1], "eyes": f32[2, 2] eye centres (x, y) in the grid convention, "face": f32[4]
      the face's box (ymin, xmin, ymax, xmax) as fractions of the image size}.
    """
    rng = np.random.default_rng(seed)
    base = rng.uniform(0.2, 0.8, size=3).astype(np.float32)
    image = np.stack([base[c] + render.smooth_field(rng, size, 3, 0.12) for c in range(3)], -1)
    _distractors(rng, image)

    a = rng.uniform(13.0, 20.0) * size / 128  # the face's half-width
    b = 1.25 * a
    cy = rng.uniform(b + 2, size - b - 2)
    cx = rng.uniform(a + 2, size - a - 2)
    skin = np.array([0.85, 0.65, 0.5], np.float32) * rng.uniform(0.6, 1.1)
    skin = np.clip(skin + rng.uniform(-0.05, 0.05, size=3), 0, 1)
    _paint(image, _ellipse(cy, cx, b, a), (cy - b - 1, cx - a - 1, cy + b + 1, cx + a + 1), skin)
    mouth_y, mouth_h, mouth_w = cy + 0.55 * a, 0.06 * a + 0.4, 0.35 * a
    _paint(
        image,
        _rectangle(mouth_y, cx, mouth_h, mouth_w),
        (mouth_y - 2, cx - mouth_w - 1, mouth_y + 2, cx + mouth_w + 1),
        skin * 0.45,
    )

    direction = rng.uniform(-1.0, 1.0, size=2).astype(np.float32)
    eye_rx, eye_ry = 0.26 * a, 0.2 * a
    pupil_r = 0.09 * a + 0.3
    room_x, room_y = eye_rx - pupil_r - 0.3, eye_ry - pupil_r - 0.3
    pupil_colour = rng.uniform(0.0, 0.15, size=3)
    eyes = []
    for side in (-1.0, 1.0):
        ey, ex = cy - 0.22 * a, cx + side * 0.42 * a
        box = (ey - eye_ry - 1, ex - eye_rx - 1, ey + eye_ry + 1, ex + eye_rx + 1)
        _paint(image, _ellipse(ey, ex, eye_ry, eye_rx), box, (0.95, 0.95, 0.93))
        py, px = ey + direction[1] * room_y, ex + direction[0] * room_x
        _paint(image, _ellipse(py, px, pupil_r, pupil_r), box, pupil_colour)
        # Pixel centres are at i + 0.5; the grid convention puts ±1 on the border centres.
        eyes.append([(ex - 0.5) / (size - 1) * 2 - 1, (ey - 0.5) / (size - 1) * 2 - 1])
    image += rng.normal(0.0, 0.02, size=image.shape).astype(np.float32)
    face = np.array([cy - b, cx - a, cy + b, cx + a], np.float32) / size
    return {
        "image": render.to_uint8(image),
        "gaze": gaze_to_screen(direction),
        "gaze_direction": direction,
        "eyes": np.asarray(eyes, np.float32),
        "face": np.clip(face, 0.0, 1.0),
    }


def export_csv(directory: str, split: str = "test", count: int = 100, size: int = 128) -> str:
    """Writes the first `count` examples of `split` as `directory/<split>/<index>.png` plus
    `directory/<split>.csv` (`image,x,y`, the gaze point in cm), readable with `name="csv"`,
    `root=directory`. Returns the CSV's path."""
    os.makedirs(os.path.join(directory, split), exist_ok=True)
    path = os.path.join(directory, f"{split}.csv")
    with open(path, "w") as f:
        f.write("image,x,y\n")
        for index in range(count):
            example = make_example((_SEED, SPLIT_SEEDS[split], index), size)
            name = f"{split}/{index:06d}.png"
            Image.fromarray(example["image"]).save(os.path.join(directory, name))
            x, y = (float(v) for v in example["gaze"])
            f.write(f"{name},{x!r},{y!r}\n")
    return path


class SyntheticGaze(GeneratedBuilder):
    """Locally generated gaze regression set: the pupils' offsets give the gaze point."""

    BUILDER_CONFIGS = default_and_tiny((4000, 1000), (48, 24))
    SEED = _SEED
    SUPERVISED_KEYS = ("image", "gaze")

    def features(self, size: int) -> dict:
        return {
            "image": tfds.features.Image(shape=(size, size, 3)),
            "gaze": tfds.features.Tensor(shape=(2,), dtype=np.float32),
            "gaze_direction": tfds.features.Tensor(shape=(2,), dtype=np.float32),
            "eyes": tfds.features.Tensor(shape=(2, 2), dtype=np.float32),
            "face": tfds.features.BBoxFeature(),
        }

    def make_example(self, seed: tuple[int, ...], index: int, size: int) -> dict:
        del index  # In the seed already.
        example = make_example(seed, size)
        example["face"] = tfds.features.BBox(*example["face"].tolist())
        return example
