"""Datasets read through TFDS by name: published ones (prepared beforehand) and generated ones.

Nothing is ever downloaded. A published dataset that is not prepared in `data_dir` raises a
ValueError that says how to prepare it and where; a generated dataset (`generated/`) is built
in `data_dir` on first use, deterministically.
"""

from __future__ import annotations

import os

import numpy as np
import tensorflow as tf
import tensorflow_datasets as tfds

from resize_jax.data import base


def default_data_dir(data_dir: str | None) -> str:
    """`data_dir`, or TFDS's default (`$TFDS_DATA_DIR` or ~/tensorflow_datasets)."""
    if data_dir:
        return os.path.expanduser(data_dir)
    return os.path.expanduser(os.environ.get("TFDS_DATA_DIR", "~/tensorflow_datasets"))


def _not_prepared_message(builder: tfds.core.DatasetBuilder, name: str, data_dir: str) -> str:
    prepared = os.path.relpath(builder.data_dir, data_dir)
    head = (
        f"TFDS dataset {name!r} is not prepared in `data_dir`={data_dir!r} (expected "
        f"{builder.data_dir}), and resize_jax never downloads data."
    )
    if builder.MANUAL_DOWNLOAD_INSTRUCTIONS:
        manual_dir = os.path.join(data_dir, "downloads", "manual")
        instructions = " ".join(str(builder.MANUAL_DOWNLOAD_INSTRUCTIONS).split())
        return (
            f"{head} It needs a manual download: put its source files in {manual_dir} "
            f"(TFDS's instructions: {instructions}), then run `tfds build {name} "
            f"--data_dir={data_dir}`, which needs no network then; or copy a prepared "
            f"{prepared} directory into {data_dir}."
        )
    return (
        f"{head} Prepare it where its source can be downloaded, `tfds build {name} "
        f"--data_dir={data_dir}`, and copy the prepared {prepared} directory into {data_dir} "
        f"here (or point `data_dir` at a directory that holds it)."
    )


class TfdsSource(base.Source):
    """A TFDS dataset: classification (`label_key` a ClassLabel), segmentation (`label_key`
    an encoded mask image), image quality (`label_key` the 10 rating counts) or regression
    (`label_key` a float Tensor f[D])."""

    def __init__(
        self,
        name: str,
        *,
        data_dir: str | None,
        task: str,
        image_key: str,
        label_key: str,
        generated: bool,
        num_classes: int | None = None,
        ignore_label: int = 255,
        class_names: tuple[str, ...] | None = None,
    ):
        if generated:
            import resize_jax.data.generated  # noqa: F401  (registers the builders with TFDS)
        self.name = name
        self.data_dir = default_data_dir(data_dir)
        self.task = task
        self.image_key, self.label_key = image_key, label_key
        self._builder = tfds.builder(name, data_dir=self.data_dir)
        if not self._builder.is_prepared():
            if not generated:
                raise ValueError(_not_prepared_message(self._builder, name, self.data_dir))
            self._builder.download_and_prepare(
                download_config=tfds.download.DownloadConfig(try_download_gcs=False)
            )
        features = self._builder.info.features
        for key, field in ((image_key, "image_key"), (label_key, "label_key")):
            if key not in features:
                raise ValueError(
                    f"`{field}`={key!r} is not a feature of TFDS dataset {name!r}; its "
                    f"features are {sorted(features)}."
                )
        label = features[label_key]
        expected = {
            "classification": (tfds.features.ClassLabel, "a ClassLabel"),
            "segmentation": (tfds.features.Image, "an Image (the mask)"),
            "image_quality": (tfds.features.Tensor, "a Tensor of 10 rating counts"),
            "regression": (tfds.features.Tensor, "a float Tensor of D targets, shape (D,)"),
        }[task]
        if not isinstance(label, expected[0]) or (
            (task == "image_quality" and tuple(label.shape) != (base.AVA_BINS,))
            or (
                task == "regression"
                and (
                    len(label.shape) != 1
                    or not label.shape[0]
                    or not np.issubdtype(label.np_dtype, np.floating)
                )
            )
        ):
            raise ValueError(
                f"`label_key`={label_key!r} of TFDS dataset {name!r} is {label!r}, but task "
                f"{task!r} needs {expected[1]}: set `task` and `label_key` to match the data."
            )
        self.class_names = None
        if task == "classification":
            self.num_classes = label.num_classes
            self.class_names = tuple(label.names)
        elif task == "segmentation":
            if num_classes is None:
                raise ValueError(
                    f"`num_classes` must be set for segmentation from TFDS dataset {name!r} "
                    f"(the number of label values, background included), got None."
                )
            self.num_classes = num_classes
            self.ignore_label = ignore_label
            self.class_names = class_names
        elif task == "regression":
            self.num_classes = int(label.shape[0])
            self.class_names = class_names
        else:
            self.num_classes = base.AVA_BINS

    @property
    def splits(self) -> tfds.core.SplitDict:
        return self._builder.info.splits

    def read(self, spec, index, count, *, shuffle_files, seed):
        base.shard_ranges(self.splits, spec, index, count, name="split")  # validates `spec`
        # Read only the two features used; keep images (and masks) encoded, to be decoded
        # after the optional cache, so a cache holds compact bytes.
        skip = {self.image_key: tfds.decode.SkipDecoding()}
        if self.task == "segmentation":
            skip[self.label_key] = tfds.decode.SkipDecoding()
        decoders = tfds.decode.PartialDecoding(
            {self.image_key: True, self.label_key: True}, decoders=skip
        )
        options = tf.data.Options()
        options.deterministic = True
        ds = self._builder.as_dataset(
            split=tfds.even_splits(spec, count)[index],
            shuffle_files=shuffle_files,
            decoders=decoders,
            read_config=tfds.ReadConfig(shuffle_seed=seed, try_autocache=False, options=options),
        )
        image_key, label_key = self.image_key, self.label_key
        return ds.map(lambda ex: {"image": ex[image_key], "label": ex[label_key]})
