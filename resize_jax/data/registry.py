"""Dataset names → what kind of source they are and their defaults.

Three families of names:
- the user's own data: "folder", "segmentation_folder", "ava", "csv" (read from `root`, or
  `ratings_file` + `image_dir`);
- datasets generated locally as TFDS builders: "small_details", "cluttered_digits",
  "small_objects", "synthetic_ava", "synthetic_gaze" (a builder config may follow a slash:
  "small_details/tiny");
- any dataset TFDS knows (`tfds.list_builders()`), prepared beforehand in `data_dir`; a few
  have tuned defaults below, the others are classification on ("image", "label") with
  splits "train"/"test".

Each default applies only where the config leaves the field unset (None).
"""

from __future__ import annotations

import dataclasses
import difflib
import functools

import tensorflow_datasets as tfds


@dataclasses.dataclass(frozen=True)
class Spec:
    """Defaults of one dataset name. `kind`: "tfds", "generated", "folder",
    "segmentation_folder", "ava" or "csv"; `augment`: what `augment=True` means for it
    ("none" where every flip or crop would change the label)."""

    kind: str
    task: str = "classification"
    train_split: str = "train"
    eval_split: str = "test"
    image_size: tuple[int, int] = (224, 224)
    augment: str = "crop_flip"
    eval_crop_fraction: float = 0.875
    crop_area_range: tuple[float, float] = (0.08, 1.0)
    image_key: str = "image"
    label_key: str = "label"
    num_classes: int | None = None  # segmentation sets, whose masks do not say
    class_names: tuple[str, ...] | None = None


# Generated sets are delivered at their native size, uncropped, and augmented by flips only:
# a random resized crop can cut small_details' marker away, and rescales small_objects'
# objects and synthetic_ava's blur (its label).
_GENERATED = dict(kind="generated", image_size=(128, 128), augment="flip", eval_crop_fraction=1.0)

SPECS: dict[str, Spec] = {
    # A user's own folder: images of any size, whose point may be a small detail anywhere in
    # them. The eval view is the largest central box of the input's aspect, with no margin
    # cut off (ImageNet's 0.875 drops one eighth of each side), and a training crop keeps at
    # least half of the image, where ImageNet's crop (8-100 % of the area) routinely cuts
    # the detail away.
    "folder": Spec(kind="folder", eval_crop_fraction=1.0, crop_area_range=(0.5, 1.0)),
    # Segmentation scores every pixel, so its eval view is the whole image (no central crop).
    "segmentation_folder": Spec(
        kind="segmentation_folder", task="segmentation", eval_crop_fraction=1.0
    ),
    "ava": Spec(
        kind="ava",
        task="image_quality",
        train_split="train[:90%]",
        eval_split="train[90%:]",
        eval_crop_fraction=1.0,
    ),
    "small_details": Spec(**_GENERATED),
    # Digits: a flip would mirror them (a mirrored digit is not in the test set).
    "cluttered_digits": Spec(**{**_GENERATED, "augment": "none"}),
    "small_objects": Spec(
        **_GENERATED,
        task="segmentation",
        label_key="segmentation_mask",
        num_classes=4,
        class_names=("background", "dot", "ring", "bar"),  # generated/small_objects.py
    ),
    "synthetic_ava": Spec(**_GENERATED, task="image_quality", label_key="rating_counts"),
    # A gaze point moves with the image: a flip mirrors it, a crop or rescale moves the eyes.
    "synthetic_gaze": Spec(
        **{**_GENERATED, "augment": "none"},
        task="regression",
        label_key="gaze",
        class_names=("x", "y"),  # cm on the screen: generated/synthetic_gaze.py
    ),
    "csv": Spec(kind="csv", task="regression", augment="none", eval_crop_fraction=1.0),
    "imagenet2012": Spec(kind="tfds", eval_split="validation"),
    "cats_vs_dogs": Spec(kind="tfds", train_split="train[:90%]", eval_split="train[90%:]"),
    "caltech_birds2011": Spec(kind="tfds"),
    "oxford_iiit_pet": Spec(kind="tfds"),
}


@functools.cache
def _tfds_names() -> frozenset[str]:
    return frozenset(tfds.list_builders(with_community_datasets=False))


def known_names() -> list[str]:
    """The names with their own defaults (any other TFDS dataset name works too)."""
    return sorted(SPECS)


def get_spec(name: str) -> Spec:
    """The spec of `name` ("base/config" looks up "base").

    Raises:
      ValueError: if `name` is neither a resize_jax name nor a TFDS dataset; the message
        lists the known names and the closest TFDS names.
    """
    if not isinstance(name, str) or not name:
        raise ValueError(f"`name` must be a dataset name, got {name!r}; known: {known_names()}.")
    base_name = name.split("/")[0].split(":")[0]
    if base_name in SPECS:
        if "/" in name and SPECS[base_name].kind != "generated":
            raise ValueError(f"`name`={name!r}: only TFDS datasets take a '/config' suffix.")
        return SPECS[base_name]
    if base_name in _tfds_names():
        return Spec(kind="tfds")
    close = difflib.get_close_matches(base_name, sorted(_tfds_names() | set(SPECS)), n=5)
    raise ValueError(
        f"Unknown dataset `name`={name!r}. Known names: {known_names()}, or any of the "
        f"{len(_tfds_names())} datasets in `tfds.list_builders()` prepared in `data_dir`"
        + (f"; closest: {close}" if close else "")
        + "."
    )
