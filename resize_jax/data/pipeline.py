"""The tf.data plumbing shared by every source: per-process shards, train and eval iterators.

Train: shard → (cache) → shuffle → repeat → map(decode + augment) → batch(drop_remainder)
→ prefetch, deterministic for a given seed (stateless random ops seeded by the example's
position in the stream, fixed shuffle seeds, `deterministic` tf.data options).

Eval: shard → map(decode + central view) → pad → batch → prefetch. Every batch is full;
padding examples carry mask 0. Every process yields the same number of batches,
ceil(largest shard / batch size), so collectives in a multi-host eval step never wait for a
process that has run out; the masks of all processes sum to the split size exactly.
"""

from __future__ import annotations

import functools
import math
import os
from collections.abc import Iterator

import jax
import numpy as np
import tensorflow as tf
import tensorflow_datasets as tfds

from resize_jax.data import base, preprocess
from resize_jax.data.config import Resolved, resolve
from resize_jax.ops.checks import check_int, check_positive_int


def _fingerprint(r: Resolved) -> tuple:
    """Modification times of a file source's directories (and ratings file), so the cached
    scan is redone when files are added, removed or renamed there."""
    paths = []
    root = os.path.expanduser(r.root or "")
    if r.spec.kind in ("folder", "segmentation_folder") and os.path.isdir(root):
        for top, dirs, _ in os.walk(root):
            paths.append(top)
            if top.count(os.sep) - root.rstrip(os.sep).count(os.sep) >= 2:
                dirs.clear()  # root/<split>/<label or images|masks>: deep enough
    elif r.spec.kind == "ava":
        paths = [p for p in (r.ratings_file, r.image_dir) if p and os.path.exists(p)]
    elif r.spec.kind == "csv" and os.path.isdir(root):
        names = sorted(f for f in os.listdir(root) if f.endswith(".csv"))
        paths = [root] + [os.path.join(root, f) for f in names]
    return tuple((p, os.stat(p).st_mtime_ns) for p in paths)


@functools.lru_cache(maxsize=16)
def _make_source(r: Resolved, fingerprint: tuple) -> base.Source:
    # Cached so get_info, train_iterator and eval_iterator scan a folder (or open a TFDS
    # builder) once per process, unless the fingerprint says the files changed.
    del fingerprint  # Only part of the cache key.
    base.hide_accelerators_from_tf()
    kind = r.spec.kind
    if kind in ("tfds", "generated"):
        from resize_jax.data.tfds_source import TfdsSource

        return TfdsSource(
            r.name,
            data_dir=r.data_dir,
            task=r.task,
            image_key=r.image_key,
            label_key=r.label_key,
            generated=kind == "generated",
            num_classes=r.num_classes,
            ignore_label=r.ignore_label,
            class_names=r.spec.class_names,
        )
    if kind == "folder":
        from resize_jax.data.folders import ImageFolderSource

        return ImageFolderSource(r.root)
    if kind == "segmentation_folder":
        from resize_jax.data.folders import SegmentationFolderSource

        return SegmentationFolderSource(
            r.root, num_classes=r.num_classes, ignore_label=r.ignore_label
        )
    if kind == "csv":
        from resize_jax.data.csv_targets import CsvSource

        return CsvSource(r.root)
    from resize_jax.data.ava import AvaSource

    return AvaSource(r.ratings_file, r.image_dir)


def _source(config) -> tuple[Resolved, base.Source]:
    r = resolve(config)
    source = _make_source(r, _fingerprint(r))
    if source.task != r.task:
        raise ValueError(
            f"`task`={r.task!r} does not match dataset {r.name!r}, which is {source.task!r}."
        )
    if r.num_classes is not None and r.num_classes != source.num_classes:
        raise ValueError(
            f"`num_classes`={r.num_classes} does not match dataset {r.name!r}, which has "
            f"{source.num_classes} classes; leave it None."
        )
    return r, source


def _split_size(source: base.Source, spec: str, name: str) -> int:
    return sum(base.shard_sizes(source.splits, spec, 1, name=name))


@functools.lru_cache(maxsize=16)
def _target_statistics(source: base.Source, spec: str) -> tuple[tuple, tuple]:
    # Cached with the source: a TFDS source reads every train record once for them.
    targets = source.targets(spec)
    if not len(targets):
        raise ValueError(f"`train_split`={spec!r} holds no example to take target statistics.")
    return tuple(targets.mean(0).tolist()), tuple(targets.std(0).tolist())


def get_info(config) -> base.DatasetInfo:
    """Task, classes, split sizes and delivered image shape of the configured dataset; for
    regression also the train split's target mean and standard deviation."""
    r, source = _source(config)
    stats = (None, None)
    if r.task == "regression":
        stats = _target_statistics(source, r.train_split)
    return base.DatasetInfo(
        task=r.task,
        num_classes=source.num_classes,
        num_train=_split_size(source, r.train_split, "train_split"),
        num_eval=_split_size(source, r.eval_split, "eval_split"),
        image_shape=(*r.image_size, 3),
        ignore_label=source.ignore_label if r.task == "segmentation" else None,
        class_names=source.class_names,
        target_mean=stats[0],
        target_std=stats[1],
    )


def _process(process_index, process_count) -> tuple[int, int]:
    index = jax.process_index() if process_index is None else process_index
    count = jax.process_count() if process_count is None else process_count
    index, count = check_int(index, "process_index"), check_int(count, "process_count")
    if not 0 <= index < count:
        raise ValueError(f"`process_index` must be in [0, process_count={count}), got {index}.")
    return int(index), int(count)


def _deterministic(ds: tf.data.Dataset) -> tf.data.Dataset:
    options = tf.data.Options()
    options.deterministic = True
    return ds.with_options(options)


def train_iterator(
    config, *, batch_size: int, seed: int, process_index=None, process_count=None
) -> Iterator[dict[str, np.ndarray]]:
    """An infinite iterator over this process's train batches (NumPy, drop_remainder).

    Args:
      config: the data config (`default_config()`).
      batch_size: the per-process batch size b.
      seed: the data seed; the same seed gives the same batches.
      process_index, process_count: this process's shard (default: JAX's).

    Yields:
      {"image": f32[b, H, W, 3] in value_range, "label": int32[b] (classification; f32[b, K]
      one-hot if `one_hot`) | int32[b, H, W] (segmentation, ignore_label where void) |
      f32[b, 10] (image quality: the normalised rating histogram) | f32[b, D] (regression
      targets)}.
    """
    r, source = _source(config)
    batch_size = check_positive_int(batch_size, "batch_size")
    check_int(seed, "seed")
    index, count = _process(process_index, process_count)
    local = base.shard_sizes(source.splits, r.train_split, count, name="train_split")[index]
    if local == 0:
        raise ValueError(
            f"`train_split`={r.train_split!r} of {r.name!r} leaves process {index} of {count} "
            f"no example."
        )
    # One 32-bit seed per (seed, process): shards differ, so their random streams should too.
    process_seed = int(np.random.SeedSequence([int(seed) % 2**63, index]).generate_state(1)[0])
    opts = r.options(source.num_classes)
    ds = source.read(r.train_split, index, count, shuffle_files=True, seed=process_seed)
    if r.cache:
        ds = ds.cache()
    ds = ds.shuffle(min(r.shuffle_buffer, local), seed=process_seed, reshuffle_each_iteration=True)
    ds = ds.repeat().enumerate()

    def train_map(position, example):
        example_seed = tf.stack([tf.constant(process_seed, tf.int64), position])
        return preprocess.preprocess(example, example_seed, opts, train=True)

    ds = ds.map(train_map, num_parallel_calls=tf.data.AUTOTUNE)
    ds = ds.batch(batch_size, drop_remainder=True).prefetch(tf.data.AUTOTUNE)
    return iter(tfds.as_numpy(_deterministic(ds)))


def eval_iterator(
    config, *, batch_size: int, process_index=None, process_count=None
) -> Iterator[dict[str, np.ndarray]]:
    """A finite iterator over this process's shard of the eval split, padded with a mask.

    Every process yields ceil(ceil(N / process_count) / batch_size) full batches; padding
    examples have mask 0, so the masks over all processes sum to N, the split size.

    Yields:
      the train batch structure (without augmentation) plus "mask": f32[b], 1 for a real
      example and 0 for padding.
    """
    r, source = _source(config)
    batch_size = check_positive_int(batch_size, "batch_size")
    index, count = _process(process_index, process_count)
    sizes = base.shard_sizes(source.splits, r.eval_split, count, name="eval_split")
    if sum(sizes) == 0:
        raise ValueError(f"`eval_split`={r.eval_split!r} of {r.name!r} is empty.")
    local, num_batches = sizes[index], math.ceil(max(sizes) / batch_size)
    opts = r.options(source.num_classes)
    ds = source.read(r.eval_split, index, count, shuffle_files=False, seed=None)
    if r.cache:
        ds = ds.cache()

    def eval_map(example):
        out = preprocess.preprocess(example, None, opts, train=False)
        return {**out, "mask": tf.constant(1.0, tf.float32)}

    ds = ds.map(eval_map, num_parallel_calls=tf.data.AUTOTUNE)
    pad = {**preprocess.padding_example(opts), "mask": tf.constant(0.0, tf.float32)}
    padding = tf.data.Dataset.from_tensors(pad).repeat(num_batches * batch_size - local)
    ds = ds.concatenate(padding).batch(batch_size, drop_remainder=True).take(num_batches)
    ds = _deterministic(ds.prefetch(tf.data.AUTOTUNE))
    return _checked(tfds.as_numpy(ds), local, num_batches, r.name)


def _checked(batches, expected: int, num_batches: int, name: str):
    """Yields `batches`, then checks the shard held exactly the examples its metadata says."""
    seen, real = 0, 0.0
    for batch in batches:
        seen += 1
        real += float(batch["mask"].sum())
        yield batch
    if seen != num_batches or real != expected:
        raise RuntimeError(
            f"Eval shard of {name!r} held {int(real)} examples in {seen} batches, but its "
            f"metadata promised {expected} in {num_batches}: the dataset changed on disk?"
        )
