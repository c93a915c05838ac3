"""A tiny in-memory classification source with the `resize_jax.data` interface.

The loop tests use it instead of TFDS so they run in seconds; the configs' own runlocal tests
use the real generated datasets. Class k brightens the red channel by 0.2·k, so a few steps
of training visibly learn something.
"""

from __future__ import annotations

import signal

import jax
import numpy as np

from resize_jax import data

NUM_CLASSES, NUM_TRAIN, NUM_EVAL = 4, 256, 40


def _examples(count, seed, size):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, NUM_CLASSES, count).astype(np.int32)
    images = rng.random((count, *size, 3)).astype(np.float32) * 0.2
    images[..., 0] += 0.2 * labels[:, None, None]
    return images, labels


def get_info(config):
    return data.DatasetInfo(
        task="classification",
        num_classes=NUM_CLASSES,
        num_train=NUM_TRAIN,
        num_eval=NUM_EVAL,
        image_shape=(*config.image_size, 3),
        ignore_label=None,
    )


def train_iterator(config, *, batch_size, seed, process_index=None, process_count=None):
    index = jax.process_index() if process_index is None else process_index
    count = jax.process_count() if process_count is None else process_count
    images, labels = _examples(NUM_TRAIN, 0, tuple(config.image_size))
    rng = np.random.default_rng(seed)
    step = 0
    while True:
        order = rng.permutation(NUM_TRAIN)
        for start in range(0, NUM_TRAIN - batch_size * count + 1, batch_size * count):
            ids = order[start + index * batch_size : start + (index + 1) * batch_size]
            batch = {"image": images[ids].copy(), "label": labels[ids]}
            step += 1
            if step == config.get("fake_nan_at_batch", -1):
                batch["image"][0, 0, 0, 0] = np.nan
            if step == config.get("fake_sigterm_at_batch", -1):
                signal.raise_signal(signal.SIGTERM)  # To this thread: handled at once.
            yield batch


def eval_iterator(config, *, batch_size, process_index=None, process_count=None):
    index = jax.process_index() if process_index is None else process_index
    count = jax.process_count() if process_count is None else process_count
    images, labels = _examples(NUM_EVAL, 1, tuple(config.image_size))
    shard = np.array_split(np.arange(NUM_EVAL), count)[index]
    num_batches = -(-int(np.ceil(NUM_EVAL / count)) // batch_size)
    for b in range(num_batches):
        if b + 1 == config.get("fake_sigterm_at_eval_batch", -1):
            signal.raise_signal(signal.SIGTERM)  # To this thread: handled at once.
        ids = shard[b * batch_size : (b + 1) * batch_size]
        batch = {
            "image": np.zeros((batch_size, *images.shape[1:]), np.float32),
            "label": np.zeros((batch_size,), np.int32),
            "mask": np.zeros((batch_size,), np.float32),
        }
        batch["image"][: len(ids)], batch["label"][: len(ids)] = images[ids], labels[ids]
        batch["mask"][: len(ids)] = 1.0
        yield batch


def install(monkeypatch=None):
    """Points `resize_jax.data`'s entry points at this module (monkeypatch, or for good)."""
    for name in ("get_info", "train_iterator", "eval_iterator"):
        if monkeypatch is not None:
            monkeypatch.setattr(data, name, globals()[name])
        else:
            setattr(data, name, globals()[name])


def tiny_config(frontend="learned", **overrides):
    """configs/default.py shrunk to a few fast steps on 32×32 fake images → 16×16."""
    from resize_jax.train import default_config

    config = default_config.get_config(f"frontend={frontend}")
    config.data.image_size = (32, 32)
    config.data.fake_nan_at_batch = -1
    config.data.fake_sigterm_at_batch = -1
    config.frontend.output_shape = (16, 16)
    config.model.widths = (8, 16)
    config.batch_size = 16
    config.eval_batch_size = 16
    config.num_train_steps = 8
    config.log_every_steps = 1
    config.eval_every_steps = 0
    config.checkpoint_every_steps = 4
    config.optimizer.warmup_steps = 2
    for key, value in overrides.items():
        target = config
        *parents, leaf = key.split(".")
        for p in parents:
            target = target[p]
        target[leaf] = value
    return config
