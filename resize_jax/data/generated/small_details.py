"""`small_details`: classification decided by one-pixel dots that a 4× bilinear resize skips.

Construction (a 128×128 RGB image; every random choice comes from a generator seeded by
`(split, index)`, so any example can be regenerated alone and two builds are identical):

- Background: a smooth grey field (a random 4×4 grid, bilinearly upsampled, around a random
  grey level in [0.35, 0.6]) plus pixel noise (σ = 0.02).
- Four square patches of 14–20 px at random, non-overlapping places. One is the *marker*:
  red, (0.8, 0.1, 0.1) ± 0.02. Three are *distractors*: green, blue or teal (no strong red).
- In every patch, one-pixel *dots* on a lattice of period 4 px along both axes (one pixel in
  sixteen), at a random phase, all of one colour: white, black, yellow or cyan. The colour
  of the marker's dots is the label (4 classes); the distractors' dot colours are drawn
  independently of it.

Why a 32×32 bilinear resize loses the label: without antialiasing, a 128→32 bilinear resize
reads only pixels 4o+1 and 4o+2 along each axis (the mean of each 2×2 pair), so it sees the
dots of a period-4 lattice only when the lattice's phase puts them on those pixels along
both axes, one image in four, and then at a quarter of their contrast. In the other three
images the marker is a plain red blob: the evidence is gone, whatever the classifier.

Why a learned front-end can keep it: the marker is an easy-to-find red blob at 32×32 (what
a saliency sampler needs in order to zoom on it), and any low-pass filter spreads the dots
into a colour tint of the whole marker (1/16 of the dot colour), which survives the resize:
the learned resizer's 7×7 filters learn such a filter, and a zoom of 2× or more samples the
dots directly. An *antialiased* resize (area average) keeps that tint too, faintly: compare
it as a baseline as well.

Augmentation must keep the label: flips and 90° rotations do; a random crop may cut the
marker away, so the pipeline's default augmentation for this set is a horizontal flip only.

Measured separation (benchmarks/small_details_separability.py, a 3-layer CNN) is quoted in
the README's `## Data` section.
"""

from __future__ import annotations

import numpy as np

from resize_jax.data.generated import render
from resize_jax.data.generated.builder import SPLIT_SEEDS, GeneratedBuilder, default_and_tiny

CLASS_NAMES = ("white", "black", "yellow", "cyan")
# The dot colours, one per class: all far from the red marker and from each other.
_DOT_COLOURS = np.array(((1, 1, 1), (0, 0, 0), (1, 1, 0), (0, 1, 1)), np.float32)
# Distractor patch colours (green, blue, teal): no strong red, so only the marker is red.
_DISTRACTOR_COLOURS = np.array(((0.1, 0.55, 0.1), (0.1, 0.15, 0.65), (0.1, 0.5, 0.5)), np.float32)
_PERIOD = 4
_MARKER_COLOUR = np.array((0.8, 0.1, 0.1), np.float32)
_NUM_PATCHES = 4  # one marker + three distractors
_SEED = 20250607


def make_example(seed: tuple[int, ...], size: int = 128) -> dict[str, np.ndarray | int]:
    """Generates one example from `seed` (an entropy tuple; same seed → same example).

    Returns:
      dict with "image": uint8[size, size, 3], "label": int in [0, 4), "marker": f32[4] the
      marker's box (ymin, xmin, ymax, xmax) as fractions of the image size.
    """
    rng = np.random.default_rng(seed)
    grey = np.float32(rng.uniform(0.35, 0.6)) + render.smooth_field(rng, size, 4, 0.08)
    image = np.repeat(grey[..., None], 3, axis=-1)
    label = int(rng.integers(0, len(CLASS_NAMES)))
    boxes = render.place_boxes(rng, size, lambda: int(rng.integers(14, 21)), _NUM_PATCHES)
    if len(boxes) < _NUM_PATCHES:
        raise ValueError(f"`size`={size} has no room for {_NUM_PATCHES} patches; use 128 or more.")
    for i, (top, left, side) in enumerate(boxes):
        if i == 0:  # the marker: red, its shade jittered a little
            colour = _MARKER_COLOUR + rng.uniform(-0.02, 0.02, size=3).astype(np.float32)
            dot = label
        else:
            colour = _DISTRACTOR_COLOURS[int(rng.integers(0, len(_DISTRACTOR_COLOURS)))]
            colour = colour + rng.uniform(-0.05, 0.05, size=3).astype(np.float32)
            dot = int(rng.integers(0, len(CLASS_NAMES)))
        image[top : top + side, left : left + side] = colour
        # The dots: one pixel every 4 px along both axes, at a random phase.
        a, b = (int(v) for v in rng.integers(0, _PERIOD, size=2))
        image[top + a : top + side : _PERIOD, left + b : left + side : _PERIOD] = _DOT_COLOURS[dot]
    image += rng.normal(0.0, 0.02, size=image.shape).astype(np.float32)
    top, left, side = boxes[0]
    marker = np.array([top, left, top + side, left + side], np.float32) / size
    return {
        "image": render.to_uint8(image),
        "label": label,
        "marker": marker,
    }


def split_example(split: str, index: int, size: int = 128) -> dict[str, np.ndarray | int]:
    """Example `index` of `split` ("train" or "test"), exactly as the TFDS builder writes it,
    without building the dataset (figures and benchmarks read examples this way)."""
    if split not in SPLIT_SEEDS:
        raise ValueError(f"`split` must be one of {sorted(SPLIT_SEEDS)}, got {split!r}.")
    return make_example((_SEED, SPLIT_SEEDS[split], index), size)


class SmallDetails(GeneratedBuilder):
    """Locally generated classification set: the class is the colour of dots on a red marker."""

    BUILDER_CONFIGS = default_and_tiny((4000, 1000), (48, 24))
    SEED = _SEED
    SUPERVISED_KEYS = ("image", "label")
    CLASS_NAMES = CLASS_NAMES
    BOX_KEYS = ("marker",)
    generate = staticmethod(make_example)
