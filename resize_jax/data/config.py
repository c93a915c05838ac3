"""The data config (`default_config`) and its resolution against the dataset's defaults."""

from __future__ import annotations

import dataclasses
import math
import numbers

import ml_collections
from ml_collections import config_dict

from resize_jax.data import base, registry
from resize_jax.ops.checks import (
    check_choice,
    check_int,
    check_number,
    check_positive_int,
    check_size_pair,
)


def default_config() -> ml_collections.ConfigDict:
    """The data config with its defaults. Fields left None take the dataset's default.

    Fields:
      name: the dataset: a TFDS name ("imagenet2012", "cats_vs_dogs", "caltech_birds2011",
        "oxford_iiit_pet", or any other in `tfds.list_builders()`), a generated set
        ("small_details", "small_objects", "synthetic_ava", optionally with a builder
        config: "small_details/tiny"; "synthetic_gaze" is regression), or the user's own
        data: "folder" (classification, `root/<split>/<label>/<image>`),
        "segmentation_folder" (`root/<split>/images/<name>.png` +
        `root/<split>/masks/<name>.png`), "ava" (`ratings_file` + `image_dir`) or "csv"
        (regression: `root/<split>.csv` with rows `image,x,y`, see `resize_jax.data.csv`).
      data_dir: TFDS data directory (default: $TFDS_DATA_DIR or ~/tensorflow_datasets).
        Published TFDS sets must be prepared there; generated sets are built there on first
        use.
      root: the folder of a "folder", "segmentation_folder" or "csv" dataset.
      ratings_file: the AVA ratings file (lines: index, image id, 10 rating counts for
        scores 1..10, 2 semantic tag ids, challenge id).
      image_dir: the directory of the AVA images, `<image id>.jpg`.
      train_split, eval_split: TFDS split specs ("train", "train[:90%]", "train+test[:50]").
        Folders use their split directory names; AVA's ratings file is one split, "train".
      image_size: (H, W) of the delivered high-resolution images (default: 128×128 for
        the generated sets, at which they are made; 224×224 otherwise).
      value_range: (low, high) of the delivered pixel values.
      augment: train-time augmentation, as suits the dataset: a random resized crop and a
        horizontal flip for natural images; a horizontal flip only for the generated sets
        (a crop could cut small_details' marker away, and would rescale small_objects'
        objects and synthetic_ava's blur, which is its label); none for regression sets
        ("csv", "synthetic_gaze"), whose targets a flip or crop would change.
      crop_area_range: area fraction of the random resized crop (default (0.08, 1.0), as
        for ImageNet; (0.5, 1.0) for "folder", so that a crop keeps most of the image).
      crop_aspect_range: aspect ratio (w/h) range of the random resized crop.
      eval_crop_fraction: the central crop kept at eval (and train without augmentation),
        as a fraction of the largest box of the target aspect (default 0.875 for
        ImageNet-style TFDS sets; 1.0, no margin cut off, for folders and for generated,
        segmentation and AVA sets).
      shuffle_buffer: train shuffle buffer, in examples, per process.
      cache: cache the encoded examples of this process's shard in memory after the first
        pass (for datasets that fit in memory).
      one_hot: classification labels as one-hot f32[b, K] instead of int32[b].
      task: "classification", "segmentation", "image_quality" or "regression" (default:
        the dataset's).
      image_key, label_key: TFDS feature names (default: the dataset's, usually "image"
        and "label").
      num_classes: number of classes of a segmentation source (background included); a
        segmentation_folder infers it from its masks when None.
      ignore_label: segmentation: the mask value of void pixels, delivered unchanged.
    """
    c = ml_collections.ConfigDict()
    c.name = "small_details"
    c.data_dir = config_dict.placeholder(str)
    c.root = config_dict.placeholder(str)
    c.ratings_file = config_dict.placeholder(str)
    c.image_dir = config_dict.placeholder(str)
    c.train_split = config_dict.placeholder(str)
    c.eval_split = config_dict.placeholder(str)
    c.image_size = config_dict.placeholder(tuple)
    c.value_range = (0.0, 1.0)
    c.augment = True
    c.crop_area_range = config_dict.placeholder(tuple)
    c.crop_aspect_range = (3 / 4, 4 / 3)
    c.eval_crop_fraction = config_dict.placeholder(float)
    c.shuffle_buffer = 10_000
    c.cache = False
    c.one_hot = False
    c.task = config_dict.placeholder(str)
    c.image_key = config_dict.placeholder(str)
    c.label_key = config_dict.placeholder(str)
    c.num_classes = config_dict.placeholder(int)
    c.ignore_label = 255
    return c


@dataclasses.dataclass(frozen=True)
class Options:
    """Resolved preprocessing settings (see `default_config` for each); what
    `resize_jax.data.preprocess` reads."""

    task: str
    image_size: tuple[int, int]
    value_range: tuple[float, float]
    augment: str  # "crop_flip", "flip" or "none"
    crop_area_range: tuple[float, float]
    crop_aspect_range: tuple[float, float]
    eval_crop_fraction: float
    num_classes: int
    one_hot: bool
    ignore_label: int


@dataclasses.dataclass(frozen=True)
class Resolved(Options):
    """The config with every default filled in and every value checked: the preprocessing
    `Options` (with `num_classes` None where the dataset's count applies) and the source."""

    num_classes: int | None
    name: str
    spec: registry.Spec
    data_dir: str | None
    root: str | None
    ratings_file: str | None
    image_dir: str | None
    train_split: str
    eval_split: str
    shuffle_buffer: int
    cache: bool
    image_key: str
    label_key: str

    def options(self, num_classes: int, **changes) -> Options:
        """The preprocessing options for a source of `num_classes` classes, with `changes`."""
        values = {f.name: getattr(self, f.name) for f in dataclasses.fields(Options)}
        return Options(**{**values, "num_classes": num_classes, **changes})


_DEFAULTS = default_config()


def _get(config, key, default=None):
    """config's `key`; where unset (None), `default_config()`'s, then `default` (the
    dataset's own, for fields whose default depends on the dataset)."""
    value = config.get(key, None) if hasattr(config, "get") else getattr(config, key, None)
    if value is None:
        value = _DEFAULTS.get(key)
    return default if value is None else value


def _float_pair(value, name: str, *, low=-math.inf, high=math.inf) -> tuple[float, float]:
    ok = (
        isinstance(value, tuple | list)
        and len(value) == 2
        and all(isinstance(v, numbers.Real) and not isinstance(v, bool) for v in value)
    )
    if not ok or not (low <= value[0] < value[1] <= high):
        raise ValueError(
            f"`{name}` must be a pair (low, high) of numbers with {low} <= low < high <= "
            f"{high}, got {value!r}."
        )
    return float(value[0]), float(value[1])


def _str(value, name: str) -> str:
    if not isinstance(value, str) or not value:
        raise ValueError(f"`{name}` must be a non-empty string, got {value!r}.")
    return value


def resolve(config) -> Resolved:
    """Fills the dataset's defaults into `config` and checks every field.

    Raises:
      ValueError: naming the field, what it got and what was expected.
    """
    # No default for the dataset itself: a config that names none is an error.
    name = config.get("name", None) if hasattr(config, "get") else getattr(config, "name", None)
    spec = registry.get_spec(name)
    augment = _get(config, "augment")
    if not isinstance(augment, bool):
        raise ValueError(f"`augment` must be True or False, got {augment!r}.")
    task = check_choice(_get(config, "task", spec.task), "task", base.TASKS)
    fraction = _get(config, "eval_crop_fraction", spec.eval_crop_fraction)
    fraction = check_number(fraction, "eval_crop_fraction", low=0, high=1, low_open=True)
    shuffle_buffer = check_positive_int(_get(config, "shuffle_buffer"), "shuffle_buffer")
    num_classes = _get(config, "num_classes", spec.num_classes)
    if num_classes is not None:  # None: the dataset's.
        num_classes = check_positive_int(num_classes, "num_classes")
    ignore_label = _get(config, "ignore_label")
    check_int(ignore_label, "ignore_label")
    if task == "segmentation" and not 0 <= ignore_label <= 255:
        raise ValueError(
            f"`ignore_label` must be in [0, 255] (masks are 8-bit), got {ignore_label!r}."
        )
    return Resolved(
        name=name,
        spec=spec,
        data_dir=_get(config, "data_dir"),
        root=_get(config, "root"),
        ratings_file=_get(config, "ratings_file"),
        image_dir=_get(config, "image_dir"),
        train_split=_str(_get(config, "train_split", spec.train_split), "train_split"),
        eval_split=_str(_get(config, "eval_split", spec.eval_split), "eval_split"),
        image_size=check_size_pair(_get(config, "image_size", spec.image_size), "image_size"),
        value_range=_float_pair(_get(config, "value_range"), "value_range"),
        augment=spec.augment if augment else "none",
        crop_area_range=_float_pair(
            _get(config, "crop_area_range", spec.crop_area_range),
            "crop_area_range",
            low=0.0,
            high=1.0,
        ),
        crop_aspect_range=_float_pair(
            _get(config, "crop_aspect_range"), "crop_aspect_range", low=0.0
        ),
        eval_crop_fraction=float(fraction),
        shuffle_buffer=shuffle_buffer,
        cache=bool(_get(config, "cache")),
        one_hot=bool(_get(config, "one_hot")),
        task=task,
        image_key=_str(_get(config, "image_key", spec.image_key), "image_key"),
        label_key=_str(_get(config, "label_key", spec.label_key), "label_key"),
        num_classes=num_classes,
        ignore_label=ignore_label,
    )
