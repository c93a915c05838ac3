"""Draws small_details examples at full resolution next to their 32×32 bilinear versions.

    python -m resize_jax.data.generated.figure docs/small_details.png

One row per class (the first test example of each), then the first test example whose dot
lattice falls on the pixels the resize reads (one image in four). Columns: the 128×128
image; its 32×32 bilinear resize without antialiasing (the papers' default resize,
`resize_jax.ops.resize`); the marker's neighbourhood at full resolution; the same
neighbourhood in the 32×32 image.
Small images are drawn with nearest-neighbour magnification so every pixel shows.
"""

from __future__ import annotations

import argparse

import numpy as np


def lattice_seen(example: dict, size: int = 128, task_size: int = 32) -> bool:
    """Whether a bilinear resize to `task_size` reads any of the marker's dot pixels.

    Without antialiasing, output pixel o averages input pixels (o + 0.5)·s − 0.5 ± 0.5,
    s = size / task_size; for s = 4 these are pixels 4o+1 and 4o+2.
    """
    image = example["image"].astype(np.int32)
    ymin, xmin, ymax, xmax = (example["marker"] * size).round().astype(int)
    patch = image[ymin:ymax, xmin:xmax]
    marker = np.median(patch.reshape(-1, 3), axis=0)
    ys, xs = np.nonzero(np.abs(patch - marker).sum(-1) > 150)
    scale = size // task_size
    read = {int((o + 0.5) * scale - 0.5 + d) for o in range(task_size) for d in (-0.5, 0.5)}
    return any(y + ymin in read and x + xmin in read for y, x in zip(ys, xs, strict=True))


def _examples():
    """The first test example of each class, then the first whose dots bilinear reads."""
    from resize_jax.data.generated import small_details as sd

    found: dict[int, dict] = {}
    seen = None
    index = 0
    while len(found) < len(sd.CLASS_NAMES) or seen is None:
        ex = sd.split_example("test", index)
        found.setdefault(ex["label"], ex)
        if seen is None and lattice_seen(ex):
            seen = ex
        index += 1
    return [found[k] for k in sorted(found)] + [seen], sd.CLASS_NAMES


def draw(path: str, task_size: int = 32) -> None:
    """Writes the figure to `path` (PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from resize_jax.ops import resize

    examples, names = _examples()
    full = np.stack([ex["image"] for ex in examples]).astype(np.float32) / 255.0
    small = np.clip(np.asarray(resize(full, (task_size, task_size))), 0.0, 1.0)
    scale = full.shape[1] / task_size
    fig, axes = plt.subplots(len(examples), 4, figsize=(10, 2.6 * len(examples)))
    titles = (
        f"full resolution {full.shape[1]}×{full.shape[2]}",
        f"bilinear {task_size}×{task_size} (no antialias)",
        "marker, full resolution",
        f"marker, {task_size}×{task_size}",
    )
    for row, ex in enumerate(examples):
        ymin, xmin, ymax, xmax = (ex["marker"] * full.shape[1]).round().astype(int)
        pad = 4
        y0, y1 = max(ymin - pad, 0), min(ymax + pad, full.shape[1])
        x0, x1 = max(xmin - pad, 0), min(xmax + pad, full.shape[2])
        s0, s1 = int(y0 // scale), int(np.ceil(y1 / scale))
        t0, t1 = int(x0 // scale), int(np.ceil(x1 / scale))
        panels = (full[row], small[row], full[row, y0:y1, x0:x1], small[row, s0:s1, t0:t1])
        for col, (ax, panel) in enumerate(zip(axes[row], panels, strict=True)):
            ax.imshow(panel, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if row == 0:
                ax.set_title(titles[col], fontsize=9)
        label = f"class {names[ex['label']]!r}"
        if row == len(examples) - 1:
            label += "\n(1 image in 4: the resize\nreads the dots: a tint)"
        axes[row, 0].set_ylabel(label, fontsize=9)
        rect = plt.Rectangle(
            (xmin - 0.5, ymin - 0.5),
            xmax - xmin,
            ymax - ymin,
            fill=False,
            edgecolor="yellow",
            linewidth=1.0,
        )
        axes[row, 0].add_patch(rect)
    fig.suptitle(
        "small_details: the class is the colour of the 1-px dots on the red marker", fontsize=11
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("path", help="output PNG, e.g. docs/small_details.png")
    parser.add_argument(
        "--task_size", type=int, default=32, help="side of the bilinear resize shown, px"
    )
    args = parser.parse_args(argv)
    draw(args.path, args.task_size)


if __name__ == "__main__":
    main()
