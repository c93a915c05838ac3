"""A quiet terminal for the command-line entry points (`train.py`, `resize_jax.tools.*`).

By default a command prints its own lines (progress, results), every warning (but two of
TFDS's that ask nothing of the user) and every error; the libraries' INFO chatter (orbax's
checkpoint lines, clu's metric and parameter lines, TFDS and its progress bars) and
TensorFlow's C++ start-up banners are hidden.
`--verbosity=1` (absl's flag) shows everything. Library code never calls this: only
`main()` functions do.
"""

from __future__ import annotations

import contextlib
import logging as std_logging
import os
import sys

from absl import logging

_OWN_PACKAGE = os.sep + "resize_jax" + os.sep
_ENTRY_POINT = "train.py"


def verbose_requested(argv: list[str] | None = None) -> bool:
    """Whether the command line asks for `--verbosity` (or `-v`) of 1 or more."""
    argv = sys.argv if argv is None else argv
    for i, arg in enumerate(argv):
        for name in ("--verbosity", "-v"):
            value = None
            if arg.startswith(name + "="):
                value = arg.split("=", 1)[1]
            elif arg == name and i + 1 < len(argv):
                value = argv[i + 1]
            if value is not None:
                with contextlib.suppress(ValueError):
                    return int(value) >= 1
    return False


@contextlib.contextmanager
def _stderr_to_devnull():
    # TensorFlow's C++ logs ("oneDNN custom operations are on", CPU feature notes) go to file
    # descriptor 2 before absl's C++ logging is initialised, and TF_CPP_MIN_LOG_LEVEL no
    # longer hides them, so the descriptor itself is pointed elsewhere during the import.
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def import_tensorflow_quietly(argv: list[str] | None = None) -> None:
    """Imports TensorFlow without its start-up banners (unless `--verbosity` >= 1).

    Call it first thing in an entry point, before anything imports TensorFlow. Errors raised
    by the import still surface as Python exceptions.
    """
    if verbose_requested(argv) or "tensorflow" in sys.modules:
        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    with _stderr_to_devnull():
        import tensorflow  # noqa: F401


# TFDS warnings that fire in normal use and ask nothing of our users: its own partial
# decoding reads the deprecated `FeatureConnector.dtype` (twice per process), and preparing a
# generated dataset for the first time notes that its fresh folder has no dataset_info.json.
_TFDS_NOISE = (".dtype` is deprecated", "has no dataset_info.json")
_TFDS_PACKAGE = os.sep + "tensorflow_datasets" + os.sep


def _is_tfds_noise(record: std_logging.LogRecord) -> bool:
    if _TFDS_PACKAGE not in (record.pathname or ""):
        return False
    message = record.getMessage()
    return any(part in message for part in _TFDS_NOISE)


def _keep(record: std_logging.LogRecord) -> bool:
    if record.levelno >= std_logging.WARNING:
        return record.levelno >= std_logging.ERROR or not _is_tfds_noise(record)
    path = record.pathname or ""
    return _OWN_PACKAGE in path or os.path.basename(path) == _ENTRY_POINT


def quiet_logging(verbosity: int | None = None) -> None:
    """Shows INFO lines of resize_jax only (plus every warning), unless `verbosity` >= 1.

    Args:
      verbosity: absl's scale (0 info, 1 debug); None reads absl's `--verbosity` flag, so
        call it from `main()` after absl has parsed the flags.
    """
    if verbosity is None:
        verbosity = logging.get_verbosity()
    if verbosity >= 1:
        logging.set_verbosity(logging.DEBUG)
        return
    logging.set_verbosity(logging.INFO)
    import tensorflow_datasets as tfds

    tfds.disable_progress_bar()  # Building a generated dataset: one bar per split otherwise.
    # Libraries log through absl's logger (orbax, clu) or Python's own loggers (JAX's backend
    # notes), and reach absl's handler or, outside an absl app, whatever handlers the root
    # logger has: the filter goes on all of them.
    targets = [logging.get_absl_logger(), logging.get_absl_handler()]
    targets += std_logging.getLogger().handlers
    for target in targets:
        if _keep not in target.filters:
            target.addFilter(_keep)


def add_verbosity_argument(parser) -> None:
    """Adds `--verbosity` to an argparse command (absl commands have it already)."""
    parser.add_argument(
        "--verbosity",
        type=int,
        default=0,
        help="0: this command's lines and warnings; 1: every library's log lines too",
    )
