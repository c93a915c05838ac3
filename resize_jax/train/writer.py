"""Metrics people can read and plot: TensorBoard events (clu) plus `metrics.jsonl`.

`metrics.jsonl` holds one JSON object per logged step, `{"step": 100, "train/loss": ...}`,
so a run can be plotted with three lines of pandas or read by `resize_jax.tools.report`.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Mapping
from typing import Any

import jax
import numpy as np
from absl import logging
from clu import metric_writers

METRICS_FILE = "metrics.jsonl"


class JsonLinesWriter(metric_writers.MetricWriter):
    """A clu MetricWriter appending scalars as JSON lines; other kinds are ignored."""

    def __init__(self, path: str):
        self._path = path
        os.makedirs(os.path.dirname(path) or ".", exist_ok=True)

    def write_scalars(self, step: int, scalars: Mapping[str, Any]):
        record = {"step": int(step), **{k: float(np.asarray(v)) for k, v in scalars.items()}}
        with open(self._path, "a") as f:
            f.write(json.dumps(record) + "\n")

    def write_summaries(self, step, values, metadata=None):
        del step, values, metadata  # Only scalars are kept in the JSON file.

    def write_images(self, step, images):
        del step, images

    def write_videos(self, step, videos):
        del step, videos

    def write_audios(self, step, audios, *, sample_rate):
        del step, audios, sample_rate

    def write_texts(self, step, texts):
        del step, texts

    def write_histograms(self, step, arrays, num_buckets=None):
        del step, arrays, num_buckets

    def write_hparams(self, hparams):
        del hparams

    def flush(self):
        pass

    def close(self):
        pass


def make_writer(workdir: str) -> metric_writers.MetricWriter:
    """TensorBoard + logging + metrics.jsonl on process 0; logging only elsewhere."""
    if jax.process_index() > 0:
        return metric_writers.create_default_writer(just_logging=True, asynchronous=False)
    default = metric_writers.create_default_writer(workdir, asynchronous=False)
    return metric_writers.MultiWriter(
        [default, JsonLinesWriter(os.path.join(workdir, METRICS_FILE))]
    )


def read_metrics(workdir: str) -> list[dict[str, float]]:
    """The records of a run's `metrics.jsonl` (empty if there is none)."""
    path = os.path.join(workdir, METRICS_FILE)
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def format_duration(seconds: float) -> str:
    """ "0:04:05", "23:59:59", "3d 04:00:00": hours and minutes, with days past 24 hours."""
    total = max(round(seconds), 0)
    days, rest = divmod(total, 86_400)
    clock = f"{rest // 3600}:{rest % 3600 // 60:02d}:{rest % 60:02d}"
    return f"{days}d {clock}" if days else clock


class Progress:
    """Logs `step k/N, loss, img/s, ETA` lines; img/s over the interval since the last line.

    clu's `periodic_actions.ReportProgress` reports steps/s and an ETA as platform work-unit
    notes (one INFO line, without the loss or images/s); this line carries the training loss
    and img/s, which a user watching a run wants, and is the loop's only line per interval.
    """

    def __init__(self, num_steps: int, global_batch_size: int, start_step: int):
        self._num_steps = num_steps
        self._batch = global_batch_size
        self._last_step = start_step
        self._last_time = time.perf_counter()

    def __call__(self, step: int, loss: float) -> dict[str, float]:
        now = time.perf_counter()
        steps = max(step - self._last_step, 1)
        seconds = max(now - self._last_time, 1e-9)
        images_per_second = steps * self._batch / seconds
        eta = (self._num_steps - step) * seconds / steps
        logging.info(
            "step %d/%d  loss %.4f  %.1f img/s  ETA %s",
            step,
            self._num_steps,
            loss,
            images_per_second,
            format_duration(eta),
        )
        self._last_step, self._last_time = step, now
        return {"images_per_second": images_per_second, "steps_per_second": steps / seconds}
