"""Draws cluttered_digits test examples next to their 32×32 resizes.

python -m resize_jax.data.generated.digits_figure docs/cluttered_digits.png
"""

from __future__ import annotations

import numpy as np


def draw(path: str, count: int = 6) -> None:
    """Writes a PNG of the first `count` test examples: each at 128×128 with the digit's
    box outlined, then its 32×32 antialiased and plain bilinear resizes (magnified 4×,
    nearest neighbour, so every pixel shows)."""
    from PIL import Image

    from resize_jax.data.generated import cluttered_digits as cd
    from resize_jax.data.generated import render
    from resize_jax.ops import resize

    rows = []
    for index in range(count):
        example = cd.make_example((cd._SEED, 1, index))
        image = example["image"].astype(np.float32) / 255.0
        boxed = image.copy()
        ymin, xmin, ymax, xmax = (example["digit"] * 128).round().astype(int)
        for y in (ymin - 1, ymax):
            boxed[y, xmin - 1 : xmax + 1] = (1.0, 0.2, 0.2)
        for x in (xmin - 1, xmax):
            boxed[ymin - 1 : ymax + 1, x] = (1.0, 0.2, 0.2)
        small = [np.asarray(resize(image[None], (32, 32), antialias=a))[0] for a in (True, False)]
        big = [np.repeat(np.repeat(s, 4, axis=0), 4, axis=1) for s in small]
        gap = np.ones((128, 4, 3), np.float32)
        rows.append(np.concatenate([boxed, gap, big[0], gap, big[1]], axis=1))
        rows.append(np.ones((4, rows[-1].shape[1], 3), np.float32))
    Image.fromarray(render.to_uint8(np.concatenate(rows[:-1]))).save(path)


if __name__ == "__main__":
    import sys

    draw(sys.argv[1] if len(sys.argv) > 1 else "cluttered_digits.png")
