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
