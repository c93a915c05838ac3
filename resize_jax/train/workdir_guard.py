"""A run's directory: one live run at a time (a lock), and its config record (`config.json`),
which a resumed run must match.

The lock is an advisory `fcntl.flock` on `workdir/lock`, held for the whole run by process
0. The kernel releases it when the process dies however it dies (SIGKILL included), so a
lock left by a killed run is recognised as stale and taken over, with a warning naming the
dead run. (`filelock` would take the lock too, but says nothing about who holds it.)
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
import time

import jax
from absl import logging

CONFIG_FILE = "config.json"
LOCK_FILE = "lock"

# Fields that may change between a run and its resumption without an override: they decide
# how often to log, evaluate and save, and how many devices share the work and how the train
# state is laid out on them (checkpoints hold global arrays), never the result.
BOOKKEEPING_FIELDS = (
    "log_every_steps",
    "eval_every_steps",
    "checkpoint_every_steps",
    "keep_checkpoints",
    "preemption_check_every_steps",
    "eval_batch_size",
    "num_devices",
    "sharding",
    "fsdp_min_size_mb",
    "distributed",
    "resume_changes",
    "data.data_dir",
)
# Where a fresh run's weights come from: a resumed run never reads them (its checkpoint
# wins), so a moved or renamed file does not block resuming. `weights_source` is not here:
# it also sets the backbone's BatchNorm and input normalisation.
INITIAL_WEIGHT_FIELDS = (
    "model.weights",
    "frontend.saliency_net_weights",
    "init_from",
    "init_parts",
    "init_rules",
)


def check_workdir(workdir) -> str:
    """`workdir` as a path that is a directory or does not exist yet (ValueError otherwise)."""
    if not isinstance(workdir, str | os.PathLike) or not str(workdir):
        raise ValueError(f"`workdir` must be a directory path, got {workdir!r}.")
    workdir = str(workdir)
    if os.path.exists(workdir) and not os.path.isdir(workdir):
        raise ValueError(f"`workdir`={workdir!r} exists and is not a directory.")
    return workdir


@contextlib.contextmanager
def locked(workdir: str):
    """Holds `workdir/lock` for the duration (process 0 only; the others share its run).

    Raises:
      ValueError: naming `workdir` and the live run (pid, host, start time) holding it.
    """
    if jax.process_index() != 0:
        yield
        return
    os.makedirs(workdir, exist_ok=True)
    path = os.path.join(workdir, LOCK_FILE)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise ValueError(
                f"`workdir`={workdir!r} is in use by another live run ({_holder(fd)}). Wait "
                "for it to finish, stop it, or choose another workdir."
            ) from None
        stale = _holder(fd)
        if stale:
            logging.warning(
                "`workdir`=%r: taking over the stale lock of a run that is no longer alive (%s).",
                workdir,
                stale,
            )
        record = {"pid": os.getpid(), "host": socket.gethostname(), "started": _now()}
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(record).encode(), 0)
        yield
        # Emptied on a clean exit, so the next run finds no stale record.
        os.ftruncate(fd, 0)
    finally:
        os.close(fd)  # Closing releases the lock.


def _holder(fd: int) -> str:
    text = os.pread(fd, 4096, 0).decode(errors="replace").strip()
    if not text:
        return ""
    try:
        record = json.loads(text)
        return f"pid {record['pid']} on host {record['host']}, started {record['started']}"
    except (ValueError, KeyError, TypeError):
        return f"lock record {text[:80]!r}"


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def _flatten(tree, prefix: str = "") -> dict:
    flat = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(_flatten(value, name + "."))
        else:
            flat[name] = value
    return flat


def _as_json(config) -> dict:
    return json.loads(config.to_json_best_effort(sort_keys=True))


def _is_listed(field: str, names) -> bool:
    return any(field == n or field.startswith(n + ".") for n in names)


def check_resume(config, workdir: str, *, has_checkpoint: bool) -> None:
    """Refuses to resume a workdir whose saved config differs from `config`, naming the
    differing fields, unless `config.resume_changes` lists each of them.

    Raises:
      ValueError: naming the differing fields with their saved and new values.
    """
    path = os.path.join(workdir, CONFIG_FILE)
    if not has_checkpoint or not os.path.exists(path):
        return
    try:
        with open(path) as f:
            saved = _flatten(json.load(f))
    except (OSError, ValueError) as error:
        raise ValueError(
            f"`workdir`={workdir!r} holds checkpoints but its {CONFIG_FILE} is unreadable "
            f"({error}); restore it, or train in a new workdir."
        ) from error
    new = _flatten(_as_json(config))
    allowed = [s.strip() for s in str(config.get("resume_changes", "") or "").split(",")]
    allowed = [s for s in allowed if s]
    differ = [
        field
        for field in sorted(saved.keys() | new.keys())
        if saved.get(field, "<absent>") != new.get(field, "<absent>")
        and not _is_listed(field, BOOKKEEPING_FIELDS + INITIAL_WEIGHT_FIELDS)
    ]
    refused = [field for field in differ if not _is_listed(field, allowed)]
    if refused:
        details = "; ".join(
            f"`config.{f}`: saved {saved.get(f, '<absent>')!r}, now {new.get(f, '<absent>')!r}"
            for f in refused
        )
        raise ValueError(
            f"`workdir`={workdir!r} holds checkpoints of a run with a different config: "
            f"{details}. Train in a new workdir, or allow the change explicitly with "
            f"`--config.resume_changes={','.join(refused)}`."
        )
    if differ:
        logging.warning("Resuming with changed config fields (allowed): %s", differ)


def write_config(config, workdir: str) -> None:
    """The run's own record of its config (atomically): `resize_jax.tools.report` and
    `resize_jax.tools.apply` rebuild the model from it, from the workdir alone."""
    if jax.process_index() != 0:
        return
    path = os.path.join(workdir, CONFIG_FILE)
    with open(path + ".tmp", "w") as f:
        f.write(config.to_json_best_effort(indent=2, sort_keys=True))
    os.replace(path + ".tmp", path)
