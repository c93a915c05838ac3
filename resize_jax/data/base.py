"""What every data source provides, and how a split is cut into per-process shards.

A *source* reads raw examples `{"image": encoded bytes, "label": ...}` of one split shard;
`pipeline.py` turns them into batches. Shards follow `tfds.even_splits` exactly (the same
arithmetic as `tfds.split_for_jax_process`): each part of a split spec such as
"train[:90%]+test" is cut into `count` contiguous ranges whose sizes differ by at most one,
the first processes taking the extra examples. Sources that read file lists (folders, AVA)
apply the same TFDS instructions to their lists, so every source shards identically.
"""

from __future__ import annotations

import abc
import dataclasses
import functools
import logging

import numpy as np
import tensorflow as tf
import tensorflow_datasets as tfds

TASKS = ("classification", "segmentation", "image_quality", "regression")
AVA_BINS = 10  # AVA ratings: counts of scores 1..10

_log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class DatasetInfo:
    """What a model needs to know about the configured dataset.

    Attributes:
      task: "classification", "segmentation", "image_quality" or "regression".
      num_classes: classes (segmentation: including background; image quality: the 10
        rating bins; regression: D, the number of target values).
      num_train: examples in the train split (all processes together).
      num_eval: examples in the eval split (all processes together).
      image_shape: (H, W, C) of the delivered images.
      ignore_label: the label-map value of void pixels (segmentation), else None.
      class_names: the class names when the source has them, else None (regression: the
        names of the D target values, e.g. ("x", "y")).
      target_mean, target_std: regression: the per-dimension mean and standard deviation
        of the train split's targets (float64 sums over every example), else None.
    """

    task: str
    num_classes: int
    num_train: int
    num_eval: int
    image_shape: tuple[int, int, int]
    ignore_label: int | None
    class_names: tuple[str, ...] | None = None
    target_mean: tuple[float, ...] | None = None
    target_std: tuple[float, ...] | None = None


@functools.cache
def hide_accelerators_from_tf() -> None:
    """Keeps TensorFlow (used only for input pipelines) off GPUs and TPUs, which JAX owns.

    Must run before TensorFlow first touches a device; if it is too late, logs a warning.
    """
    for kind in ("GPU", "TPU"):
        try:
            tf.config.set_visible_devices([], kind)
        except RuntimeError:  # TF already initialised its devices.
            if tf.config.get_visible_devices(kind):
                _log.warning(
                    "TensorFlow already initialised and sees %s devices; resize_jax.data "
                    "could not hide them. Call resize_jax.data functions before other "
                    "TensorFlow code so tf.data does not reserve accelerator memory.",
                    kind,
                )


def split_dict(sizes: dict[str, int]) -> tfds.core.SplitDict:
    """A TFDS SplitDict of `{split name: number of examples}`, for list-based sources."""
    return tfds.core.SplitDict(
        [tfds.core.SplitInfo(name=n, shard_lengths=[c], num_bytes=0) for n, c in sizes.items()]
    )


def shard_ranges(
    splits: tfds.core.SplitDict, spec: str, index: int, count: int, *, name: str = "split"
) -> list[tuple[str, int, int]]:
    """The `(split name, start, stop)` ranges of shard `index` of `count` of split `spec`.

    Raises:
      ValueError: if `spec` is malformed or names an unknown split (lists the known ones).
    """
    try:
        instructions = tfds.even_splits(spec, count)[index].to_absolute(splits)
    except (ValueError, KeyError, AssertionError) as e:
        raise ValueError(
            f"`{name}`={spec!r} is not a valid split of this dataset (splits: "
            f"{sorted(splits)}; TFDS split syntax, e.g. 'train', 'train[:90%]', "
            f"'train[10:]+test'): {e}"
        ) from e
    ranges = []
    for inst in instructions:
        total = splits[inst.splitname].num_examples
        start = 0 if inst.from_ is None else inst.from_
        stop = total if inst.to is None else inst.to
        ranges.append((inst.splitname, start, stop))
    return ranges


def shard_sizes(splits: tfds.core.SplitDict, spec: str, count: int, *, name: str) -> list[int]:
    """Number of examples in each of the `count` shards of split `spec`."""
    return [
        sum(stop - start for _, start, stop in shard_ranges(splits, spec, i, count, name=name))
        for i in range(count)
    ]


class Source(abc.ABC):
    """A dataset that yields raw examples of one shard of a split.

    Raw examples are dicts of tensors: "image": the encoded image (a tf.string scalar:
    PNG/JPEG bytes), "label": int64 scalar (classification), the encoded mask (tf.string,
    segmentation), f32[10] rating counts (image quality) or f32[D] targets (regression).
    """

    task: str
    num_classes: int
    ignore_label: int | None = None
    class_names: tuple[str, ...] | None = None

    @property
    @abc.abstractmethod
    def splits(self) -> tfds.core.SplitDict:
        """The named splits and their sizes."""

    @abc.abstractmethod
    def read(
        self, spec: str, index: int, count: int, *, shuffle_files: bool, seed: int | None
    ) -> tf.data.Dataset:
        """The raw examples of shard `index` of `count` of split `spec`, in a fixed order
        (or shuffled at file level with `seed` when `shuffle_files`)."""

    def targets(self, spec: str) -> np.ndarray:
        """Regression: the f64[N, D] targets of split `spec`, in order (labels only: images
        are read as encoded bytes and dropped). Sources holding them in memory override it."""
        ds = self.read(spec, 0, 1, shuffle_files=False, seed=None).map(lambda ex: ex["label"])
        rows = [np.asarray(label, np.float64) for label in ds.as_numpy_iterator()]
        return np.stack(rows) if rows else np.zeros((0, self.num_classes))
