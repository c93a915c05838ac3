"""Sources backed by lists of image files (folders, AVA), and the scan for unreadable files.

Unreadable images are **skipped, with a logged count**: when a source is created, every
listed file is opened with Pillow (header parse plus `verify()`, which for PNG also checks
every chunk's CRC, without decoding the pixels), and every JPEG is decoded once by
TensorFlow's own decoder, the one the pipeline uses (at 1/8 scale: libjpeg still reads
every compressed block, where a truncated or corrupt body fails, but skips most of the
inverse transform; Pillow's `verify()` does not look at a JPEG's body at all). Files that
fail, dangling symlinks and symlink loops included, are dropped before any split size is
computed, a warning gives their number and the first few paths, and every count the
pipeline reports (`get_info`, the eval masks) is over the readable files only, so eval
still counts each remaining example exactly once. Why skip rather than fail: folders
assembled from the web routinely hold a few broken files (TFDS's own cats_vs_dogs drops
1,738), and a run should not die on them; the warning keeps it visible.
"""

from __future__ import annotations

import concurrent.futures
import logging
import os
from collections.abc import Sequence

import numpy as np
import tensorflow as tf
from PIL import Image

from resize_jax.data import base

_log = logging.getLogger(__name__)


def _header(path: str) -> tuple[int, int, str, str] | None:
    """(height, width, PIL mode, format) of the image at `path`, or None if unreadable."""
    try:
        with Image.open(path) as image:
            size, mode, kind = image.size, image.mode, image.format
            image.verify()
        return size[1], size[0], mode, kind
    except Exception:  # Any failure means "unreadable": PIL raises many types.
        return None


def _jpeg_decodes(paths: Sequence[str]) -> list[bool]:
    """Whether TensorFlow's JPEG decoder reads each file, in one parallel tf.data pass."""
    if not paths:
        return []
    indexed = tf.data.Dataset.zip(
        tf.data.Dataset.range(len(paths)), tf.data.Dataset.from_tensor_slices(list(paths))
    )
    decoded = indexed.map(
        lambda i, p: (i, tf.shape(tf.io.decode_jpeg(tf.io.read_file(p), ratio=8))),
        num_parallel_calls=tf.data.AUTOTUNE,
        deterministic=False,
    ).ignore_errors()
    ok = {int(i) for i, _ in decoded.as_numpy_iterator()}
    return [k in ok for k in range(len(paths))]


def parallel_map(fn, items: Sequence) -> list:
    """`[fn(x) for x in items]` on a thread pool (file reads release the GIL)."""
    if not items:
        return []
    with concurrent.futures.ThreadPoolExecutor(min(32, (os.cpu_count() or 1) * 4)) as pool:
        return list(pool.map(fn, items, chunksize=64))


def image_headers(paths: Sequence[str]) -> list[tuple[int, int, str] | None]:
    """(height, width, PIL mode) of each image, None where unreadable (see the module
    docstring: headers for every file, a TensorFlow decode for JPEGs)."""
    headers = parallel_map(_header, paths)
    jpegs = [i for i, h in enumerate(headers) if h is not None and h[3] == "JPEG"]
    for i, ok in zip(jpegs, _jpeg_decodes([paths[i] for i in jpegs]), strict=True):
        if not ok:
            headers[i] = None
    return [None if h is None else h[:3] for h in headers]


def log_skipped(skipped: Sequence[str], where: str) -> None:
    """Warns once about unreadable files that a source leaves out."""
    if skipped:
        shown = ", ".join(skipped[:5]) + (", ..." if len(skipped) > 5 else "")
        _log.warning(
            "Skipped %d unreadable image file(s) in %s (left out of every split and count): %s",
            len(skipped),
            where,
            shown,
        )


class ListSource(base.Source):
    """A source whose splits are lists of (image path, label) held in memory.

    Subclasses set `task`, `num_classes` and call `__init__` with, per split name, the image
    paths and their labels: int class ids, mask paths (segmentation), f32[10] rating
    counts (image quality) or f32[D] targets (regression).
    """

    def __init__(self, examples: dict[str, tuple[list[str], Sequence]]):
        self._examples = examples
        self._splits = base.split_dict({name: len(paths) for name, (paths, _) in examples.items()})

    @property
    def splits(self):
        return self._splits

    def targets(self, spec):
        rows = []
        for name, start, stop in base.shard_ranges(self._splits, spec, 0, 1):
            rows.extend(self._examples[name][1][start:stop])
        return np.asarray(rows, np.float64).reshape(len(rows), -1)

    def read(self, spec, index, count, *, shuffle_files, seed):
        paths, labels = [], []
        for name, start, stop in base.shard_ranges(self._splits, spec, index, count):
            split_paths, split_labels = self._examples[name]
            paths.extend(split_paths[start:stop])
            labels.extend(split_labels[start:stop])
        if self.task == "image_quality":
            label_tensor = np.asarray(labels, np.float32).reshape(-1, base.AVA_BINS)
        elif self.task == "regression":
            label_tensor = np.asarray(labels, np.float32).reshape(-1, self.num_classes)
        elif self.task == "segmentation":
            label_tensor = np.asarray(labels, dtype=object).astype(str)
        else:
            label_tensor = np.asarray(labels, np.int64)
        ds = tf.data.Dataset.from_tensor_slices((np.asarray(paths, str), label_tensor))
        if shuffle_files and len(paths) > 1:
            ds = ds.shuffle(len(paths), seed=seed, reshuffle_each_iteration=True)
        segmentation = self.task == "segmentation"

        def load(path, label):
            return {
                "image": tf.io.read_file(path),
                "label": tf.io.read_file(label) if segmentation else label,
            }

        return ds.map(load, num_parallel_calls=tf.data.AUTOTUNE)
