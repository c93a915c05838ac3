"""The quiet terminal: what is kept, what `--verbosity` restores, and the ETA format."""

import logging as std_logging
import os

import pytest

from resize_jax import console
from resize_jax.train.writer import format_duration


def _record(level, path):
    return std_logging.LogRecord("absl", level, path, 1, "message", None, None)


def test_library_info_lines_are_dropped_warnings_and_own_lines_kept():
    package = os.path.join("site-packages", "resize_jax", "train", "loop.py")
    orbax = os.path.join("site-packages", "orbax", "checkpoint", "manager.py")
    assert console._keep(_record(std_logging.INFO, "/x/" + package))
    assert console._keep(_record(std_logging.INFO, "/repo/train.py"))
    assert not console._keep(_record(std_logging.INFO, "/x/" + orbax))
    assert console._keep(_record(std_logging.WARNING, "/x/" + orbax))


@pytest.mark.parametrize(
    ("message", "kept"),
    [
        ("`FeatureConnector.dtype` is deprecated. Please change your code", False),
        ("Variant folder /d/small_details/tiny/1.0.0 has no dataset_info.json", False),
        ("Dataset small_details is not found in data_dir /d", True),
    ],
)
def test_tfds_warnings_that_ask_nothing_of_the_user_are_dropped(message, kept):
    path = os.path.join("/x", "site-packages", "tensorflow_datasets", "core", "feature.py")
    record = std_logging.LogRecord("absl", std_logging.WARNING, path, 1, message, None, None)
    assert console._keep(record) is kept
    # The same words from anywhere else, or as an error, are kept.
    elsewhere = std_logging.LogRecord(
        "absl", std_logging.WARNING, "/x/a.py", 1, message, None, None
    )
    assert console._keep(elsewhere)
    record.levelno = std_logging.ERROR
    assert console._keep(record)


@pytest.mark.parametrize(
    ("argv", "verbose"),
    [
        (["train.py", "--config", "c.py"], False),
        (["train.py", "--verbosity=1"], True),
        (["train.py", "--verbosity", "2"], True),
        (["train.py", "-v", "0"], False),
        (["train.py", "--verbosity=x"], False),
    ],
)
def test_verbosity_is_read_from_the_command_line(argv, verbose):
    assert console.verbose_requested(argv) is verbose


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0, "0:00:00"),
        (245.4, "0:04:05"),
        (86_399, "23:59:59"),
        (3 * 86_400 + 4 * 3600, "3d 4:00:00"),
    ],
)
def test_eta_shows_days_past_24_hours(seconds, text):
    assert format_duration(seconds) == text
