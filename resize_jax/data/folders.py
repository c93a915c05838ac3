"""The user's own images: classification and segmentation folders.

Classification (`name="folder"`): `root/<split>/<label>/<image>` with PNG or JPEG images of
any size, listed as `tfds.folder_dataset.ImageFolder` lists them (labels are the sorted
label directory names of every split; the example order is ImageFolder's fixed, seeded
shuffle). A label directory without a readable image is refused: it would add a class
that has no example.

Segmentation (`name="segmentation_folder"`): `root/<split>/images/<name>.png` and
`root/<split>/masks/<name>.png`, one mask per image with the same name and the same size; a
mask is a single-channel (or palette) PNG whose values are class ids, `ignore_label` (255 by
default) marking void pixels. Masks must be 8-bit single-channel (mode "L") PNGs: a
palette PNG (as in PASCAL VOC) is refused with a message saying how to convert it, because
decoding it as grey would silently turn its class indices into luminances.

Creating a source lists the files (classification: through ImageFolder's own reader) and
opens every file's header, once per process (cached until files are added, removed or
renamed). Unreadable images (dangling symlinks and symlink loops included) are skipped
with a logged count naming them (see `files.py`); an empty or malformed folder, an empty
label directory, a missing mask and an image/mask size mismatch raise ValueError.
"""

from __future__ import annotations

import functools
import os
import random

import numpy as np
from PIL import Image

from resize_jax.data import files

_IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg")  # what ImageFolder reads


def _check_root(root: str | None, name: str) -> str:
    if not root:
        raise ValueError(f"`root` must be set for dataset {name!r} (the folder), got {root!r}.")
    root = os.path.expanduser(root)
    if not os.path.isdir(root):
        raise ValueError(f"`root`={root!r} is not a directory (dataset {name!r}).")
    if not any(os.path.isdir(os.path.join(root, d)) for d in os.listdir(root)):
        raise ValueError(
            f"`root`={root!r} is empty: it has no split directories. Expected "
            + (
                "root/<split>/<label>/<image>, e.g. root/train/cat/0001.jpg."
                if name == "folder"
                else "root/<split>/images/<name>.png and root/<split>/masks/<name>.png."
            )
        )
    return root


class ImageFolderSource(files.ListSource):
    """Classification from `root/<split>/<label>/<image>`."""

    task = "classification"

    def __init__(self, root: str | None):
        root = _check_root(root, "folder")
        listed, self.class_names = _list_image_folder(root)
        self.num_classes = len(self.class_names)
        label_ids = {name: i for i, name in enumerate(self.class_names)}
        examples = {}
        for split, pairs in listed.items():
            paths = [path for path, _ in pairs]
            sizes = files.image_headers(paths)
            files.log_skipped(
                [p for p, s in zip(paths, sizes, strict=True) if s is None], f"{root}/{split}"
            )
            keep = [i for i, s in enumerate(sizes) if s is not None]
            examples[split] = ([paths[i] for i in keep], [label_ids[pairs[i][1]] for i in keep])
            kept_labels = {pairs[i][1] for i in keep}
            empty = sorted(set(_label_dirs(os.path.join(root, split))) - kept_labels)
            if empty and keep:
                raise ValueError(
                    f"Folder split {os.path.join(root, split)!r}: label directories without "
                    f"a readable image: {empty}; "
                    "remove them or add images (every label directory is a class)."
                )
        for split in sorted(os.listdir(root)):
            split_dir = os.path.join(root, split)
            if os.path.isdir(split_dir) and not examples.get(split, ([], []))[0]:
                raise ValueError(
                    f"Folder split {split_dir!r} has no readable images in label directories. "
                    f"Expected root/<split>/<label>/<image> with {', '.join(_IMAGE_EXTENSIONS)} "
                    f"images, e.g. {os.path.join(split_dir, 'cat', '0001.jpg')}; found "
                    f"{sorted(os.listdir(split_dir))[:10]}."
                )
        super().__init__(examples)


def _label_dirs(split_dir: str) -> list[str]:
    return sorted(d for d in os.listdir(split_dir) if os.path.isdir(os.path.join(split_dir, d)))


def _list_image_folder(root: str) -> tuple[dict[str, list[tuple[str, str]]], tuple[str, ...]]:
    """{split: [(path, label name)]} and the sorted label names, in ImageFolder's order.

    The same listing as `tfds.folder_dataset.ImageFolder` (sorted, then shuffled with
    `random.Random(split)`), so runs keep their example order; ImageFolder itself cannot be
    used to list, as its dataset reads every file's bytes and dies on a dangling symlink.
    """
    listed, labels = {}, set()
    for split in sorted(d for d in os.listdir(root) if os.path.isdir(os.path.join(root, d))):
        split_dir = os.path.join(root, split)
        pairs = []
        for label in _label_dirs(split_dir):
            labels.add(label)
            label_dir = os.path.join(split_dir, label)
            names = [f for f in os.listdir(label_dir) if f.lower().endswith(_IMAGE_EXTENSIONS)]
            pairs += [(os.path.join(label_dir, f), label) for f in sorted(names)]
        random.Random(split).shuffle(pairs)
        listed[split] = pairs
    return listed, tuple(sorted(labels))


class SegmentationFolderSource(files.ListSource):
    """Segmentation from `root/<split>/images/<name>.png` + `root/<split>/masks/<name>.png`."""

    task = "segmentation"

    def __init__(self, root: str | None, *, num_classes: int | None, ignore_label: int):
        root = _check_root(root, "segmentation_folder")
        self.ignore_label = ignore_label
        examples = {}
        for split in sorted(d for d in os.listdir(root) if os.path.isdir(os.path.join(root, d))):
            examples[split] = _pair_split(os.path.join(root, split))
        self.num_classes = num_classes or _infer_num_classes(examples, ignore_label)
        super().__init__(examples)


def _pair_split(split_dir: str) -> tuple[list[str], list[str]]:
    """Matched, readable (image path, mask path) lists of one split, sorted by name."""
    image_dir, mask_dir = os.path.join(split_dir, "images"), os.path.join(split_dir, "masks")
    for d in (image_dir, mask_dir):
        if not os.path.isdir(d):
            raise ValueError(
                f"Segmentation folder split {split_dir!r} has no {os.path.basename(d)}/ "
                f"directory; expected {split_dir}/images/<name>.png and "
                f"{split_dir}/masks/<name>.png (found {sorted(os.listdir(split_dir))[:10]})."
            )
    images = {os.path.splitext(f)[0]: f for f in os.listdir(image_dir) if f.endswith(".png")}
    masks = {os.path.splitext(f)[0]: f for f in os.listdir(mask_dir) if f.endswith(".png")}
    if not images:
        raise ValueError(f"Segmentation folder {image_dir!r} holds no .png image.")
    unpaired = sorted(images.keys() ^ masks.keys())
    if unpaired:
        raise ValueError(
            f"Segmentation folder {split_dir!r}: every image needs a mask of the same name and "
            f"vice versa; unpaired: {unpaired[:10]}{' ...' if len(unpaired) > 10 else ''}."
        )
    names = sorted(images)
    image_paths = [os.path.join(image_dir, images[n]) for n in names]
    mask_paths = [os.path.join(mask_dir, masks[n]) for n in names]
    image_headers = files.image_headers(image_paths)
    mask_headers = files.image_headers(mask_paths)
    keep, skipped = [], []
    for i, (isize, msize) in enumerate(zip(image_headers, mask_headers, strict=True)):
        if isize is None or msize is None:
            skipped.append(image_paths[i] if isize is None else mask_paths[i])
        elif msize[2] != "L":
            raise ValueError(
                f"Segmentation mask {mask_paths[i]} is a PIL mode {msize[2]!r} PNG; masks must "
                f"be 8-bit single-channel (mode 'L') PNGs of class ids. Convert a palette mask "
                f"(as in PASCAL VOC) keeping its indices: "
                f"Image.fromarray(np.asarray(Image.open(path))).save(path)."
            )
        elif isize[:2] != msize[:2]:
            raise ValueError(
                f"Segmentation image and mask sizes differ: {image_paths[i]} is {isize[0]}×"
                f"{isize[1]} (H×W) but {mask_paths[i]} is {msize[0]}×{msize[1]}."
            )
        else:
            keep.append(i)
    files.log_skipped(skipped, split_dir)
    return [image_paths[i] for i in keep], [mask_paths[i] for i in keep]


def _infer_num_classes(examples, ignore_label: int) -> int:
    """1 + the largest mask value other than `ignore_label`, over every split's masks."""
    paths = [p for _, masks in examples.values() for p in masks]
    return 1 + max(
        files.parallel_map(functools.partial(_largest_label, ignore=ignore_label), paths)
    )


def _largest_label(path: str, *, ignore: int) -> int:
    with Image.open(path) as mask:
        values = np.unique(np.asarray(mask))
    values = values[values != ignore]
    return int(values.max()) if values.size else 0
