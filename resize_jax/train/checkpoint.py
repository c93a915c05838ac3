"""Orbax checkpoints with integrity checks: periodic async saves, keep-N, verified resume,
quarantine of corrupt steps, partial init.

Resume order (the first that applies wins):
  1. the workdir's own newest checkpoint that passes its checks (a restarted or preempted
     run continues). A step whose files differ from its checksum manifest, that orbax
     cannot read, or that holds non-finite values is moved to `workdir/quarantine/` with a
     warning naming the step, and the previous step is tried, and so on;
  2. `config.init_from`: another run's workdir; only the top-level parts named in
     `config.init_parts` (e.g. "backbone", "frontend") are loaded, the rest stay fresh and
     the step and optimizer state start from scratch (two-stage training, resizer transfer);
  3. scratch.

Integrity: after each save has been committed, a manifest `checkpoints/<step>/sha256.json`
records every file's size and SHA-256; a restore verifies it first. Orbax's own atomic
commit (a temporary directory renamed when complete) protects against a save cut short, but
nothing in orbax detects bytes changed after the commit (a bad disk, a partial copy, a
stray write), so the manifest is ours. A state with a non-finite value is never saved.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time

import jax
import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp
from absl import logging

from resize_jax.train.optim import path_of
from resize_jax.train.state import TrainState

CHECKPOINT_DIR = "checkpoints"
QUARANTINE_DIR = "quarantine"
MANIFEST = "sha256.json"


def make_manager(workdir: str, *, max_to_keep: int = 3) -> ocp.CheckpointManager:
    """Async-saving orbax manager under `workdir/checkpoints` (no integrity checks: the loop
    uses `CheckpointStore`). Leftover temporary directories of a killed save are removed."""
    options = ocp.CheckpointManagerOptions(
        max_to_keep=max_to_keep,
        create=True,
        enable_async_checkpointing=True,
        cleanup_tmp_directories=True,
    )
    return ocp.CheckpointManager(
        os.path.join(os.path.abspath(workdir), CHECKPOINT_DIR), options=options
    )


def step_directory(checkpoint_dir: str, step: int) -> str:
    # The managers here use orbax's default step names: the bare step number.
    return os.path.join(str(checkpoint_dir), str(int(step)))


def _file_digests(step_dir: str) -> dict[str, list]:
    digests = {}
    for root, _, files in os.walk(step_dir):
        for name in sorted(files):
            path = os.path.join(root, name)
            relative = os.path.relpath(path, step_dir)
            if relative == MANIFEST:
                continue
            digest = hashlib.sha256()
            with open(path, "rb") as f:
                for block in iter(lambda: f.read(1 << 20), b""):
                    digest.update(block)
            digests[relative] = [os.path.getsize(path), digest.hexdigest()]
    return digests


def write_manifest(step_dir: str) -> None:
    """Records the size and SHA-256 of every file of a committed step (atomically)."""
    manifest = {"files": _file_digests(step_dir)}
    temporary = os.path.join(step_dir, MANIFEST + ".tmp")
    with open(temporary, "w") as f:
        json.dump(manifest, f, indent=1, sort_keys=True)
    os.replace(temporary, os.path.join(step_dir, MANIFEST))


def verify_step(step_dir: str) -> str | None:
    """None if the step's files match its manifest, else what is wrong (a sentence).

    A step without a manifest (saved by a run killed between orbax's commit and the
    manifest, or by an older version) passes with a warning: its files cannot be checked.
    """
    path = os.path.join(step_dir, MANIFEST)
    if not os.path.exists(path):
        logging.warning(
            "Checkpoint %s has no %s; its files cannot be verified.", step_dir, MANIFEST
        )
        return None
    try:
        with open(path) as f:
            expected = json.load(f)["files"]
    except (OSError, ValueError, KeyError, TypeError) as error:
        return f"its manifest {MANIFEST} is unreadable ({error})"
    actual = _file_digests(step_dir)
    missing = sorted(set(expected) - set(actual))
    if missing:
        return f"{len(missing)} file(s) are missing, e.g. {missing[0]}"
    changed = sorted(name for name in expected if list(expected[name]) != actual[name])
    if changed:
        return f"{len(changed)} file(s) differ from their checksum, e.g. {changed[0]}"
    return None


@jax.jit
def _finite_flags(leaves):
    return jnp.stack([jnp.all(jnp.isfinite(x)) for x in leaves])


def nonfinite_paths(tree) -> list[str]:
    """The '/'-joined paths of the floating-point leaves of `tree` holding a NaN or an inf."""
    pairs = [
        (path_of(path), leaf)
        for path, leaf in jax.tree_util.tree_leaves_with_path(tree)
        if hasattr(leaf, "dtype") and jnp.issubdtype(leaf.dtype, jnp.inexact)
    ]
    if not pairs:
        return []
    flags = np.asarray(jax.device_get(_finite_flags([leaf for _, leaf in pairs])))
    return [name for (name, _), ok in zip(pairs, flags, strict=True) if not ok]


def _describe(paths: list[str]) -> str:
    shown = ", ".join(paths[:3])
    return shown + (f" and {len(paths) - 3} more" if len(paths) > 3 else "")


class CheckpointStore:
    """The loop's checkpoints: an orbax `CheckpointManager` plus integrity checks.

    - `save` refuses a state with a non-finite value (FloatingPointError naming the step
      and the first leaves), then saves asynchronously; the manifest of each save is
      written once orbax has committed it.
    - `restore_latest` verifies, restores and checks finiteness, quarantining each bad
      step with a warning naming it, newest first.
    - `close` completes the save in flight and writes its manifest: call it on every exit
      path (the loop uses `try/finally`).
    """

    def __init__(self, workdir: str, *, max_to_keep: int | None = 3):
        self.workdir = os.path.abspath(workdir)
        self._max_to_keep = max_to_keep
        self._manager = make_manager(self.workdir, max_to_keep=max_to_keep)
        self._pending: list[int] = []

    @property
    def directory(self) -> str:
        return os.path.join(self.workdir, CHECKPOINT_DIR)

    def all_steps(self) -> list[int]:
        return sorted(self._manager.all_steps())

    def latest_step(self) -> int | None:
        return self._manager.latest_step()

    def reached_preemption(self, step: int) -> bool:
        """JAX's preemption service (multi-host runs where it is enabled) asks to stop."""
        return self._manager.reached_preemption(step)

    def save(self, state: TrainState, *, force: bool = False) -> bool:
        """Saves `state` at its own step (asynchronously) if every value is finite."""
        step = int(jax.device_get(state.step))
        bad = nonfinite_paths(state)
        if bad:
            raise FloatingPointError(
                f"Non-finite values at step {step} in {_describe(bad)}; training stopped "
                f"and step {step} not saved. {self.last_good_description()}"
            )
        self._commit_pending()
        saved = self._manager.save(step, args=ocp.args.StandardSave(state), force=force)
        if saved:
            self._pending.append(step)
        return saved

    def last_good_description(self) -> str:
        """A sentence naming the newest committed checkpoint (or saying there is none)."""
        steps = self.all_steps()
        if not steps:
            return "No checkpoint has been saved in this workdir."
        return f"The newest checkpoint, step {steps[-1]} in {self.directory}, is intact."

    def _commit_pending(self) -> None:
        # Orbax commits a save in the background; its files are final once
        # `wait_until_finished` returns, and only then can they be hashed.
        if not self._pending:
            return
        self._manager.wait_until_finished()
        if jax.process_index() == 0:
            for step in self._pending:
                step_dir = step_directory(self.directory, step)
                if os.path.isdir(step_dir):  # Not already rotated out by max_to_keep.
                    write_manifest(step_dir)
        self._pending = []

    def restore_latest(self, abstract_state: TrainState) -> TrainState | None:
        """The newest checkpoint that passes every check, as `abstract_state`'s structure
        and shardings, or None when there is none. Bad steps are quarantined.

        Raises:
          ValueError: when an intact checkpoint does not fit `abstract_state` (a different
            model): that is not corruption, and nothing is quarantined.
        """
        steps = sorted(self._manager.all_steps(), reverse=True)
        for step in steps:
            step_dir = step_directory(self.directory, step)
            problem = verify_step(step_dir)
            state = None
            if problem is None:
                self._check_fits(step, abstract_state)
                try:
                    state = self._manager.restore(
                        step, args=ocp.args.StandardRestore(abstract_state)
                    )
                except Exception as error:  # Orbax raises many kinds of errors for a bad file.
                    problem = f"orbax cannot read it ({type(error).__name__}: {error})"
            if problem is None:
                bad = nonfinite_paths(state)
                if bad:
                    problem = f"it holds non-finite values in {_describe(bad)}"
            if problem is not None:
                moved = self._quarantine(step)
                logging.warning(
                    "Checkpoint at step %d in %s is corrupt: %s. Moved it to %s; falling back "
                    "to the previous one.",
                    step,
                    self.directory,
                    problem,
                    moved,
                )
                continue
            if step != steps[0]:
                logging.warning(
                    "Resumed from step %d: the newer step(s) %s were corrupt and quarantined.",
                    step,
                    [s for s in steps if s > step],
                )
            logging.info("Resumed from %s at step %d.", self.directory, step)
            return state
        return None

    def _check_fits(self, step: int, abstract_state: TrainState) -> None:
        try:
            metadata = self._manager.item_metadata(step)
        except Exception:  # Unreadable metadata: the restore reports it as corruption.
            return
        if metadata is None:
            return
        # The model's collections only: their paths are plain dict keys in both trees (the
        # optimizer state's namedtuples are stored under other names).
        saved, wanted = {}, {}
        for collection in ("params", "batch_stats"):
            for p, m in _leaves_with_path(dict(metadata).get(collection) or {}):
                saved[f"{collection}/{path_of(p)}"] = tuple(m.shape)
            for p, x in jax.tree_util.tree_leaves_with_path(getattr(abstract_state, collection)):
                wanted[f"{collection}/{path_of(p)}"] = tuple(np.shape(x))
        differ = sorted(p for p in wanted.keys() | saved.keys() if wanted.get(p) != saved.get(p))
        if differ:
            raise ValueError(
                f"The intact checkpoint at step {step} in {self.directory} does not fit this "
                f"config's model (parameters that differ: {_describe(differ)}). Train in a "
                "new workdir, or load parts of this one with `config.init_from`."
            )

    def _quarantine(self, step: int) -> str:
        """Moves a bad step out of orbax's sight, so a re-save of the step is not skipped."""
        self._manager.wait_until_finished()
        source = step_directory(self.directory, step)
        target = os.path.join(
            self.workdir, QUARANTINE_DIR, f"step_{step}_{time.strftime('%Y%m%dT%H%M%S')}"
        )
        if jax.process_index() == 0:
            os.makedirs(os.path.dirname(target), exist_ok=True)
            suffix = 0
            unique = target
            while os.path.exists(unique):
                suffix += 1
                unique = f"{target}_{suffix}"
            target = unique
            shutil.move(source, target)
        if jax.process_count() > 1:
            from jax.experimental import multihost_utils

            multihost_utils.sync_global_devices(f"quarantine_{step}")
        # A failed restore can leave orbax's manager with a half-configured item handler
        # (the next restore then asks for `Composite` args): start a fresh one.
        self._manager.close()
        self._manager = make_manager(self.workdir, max_to_keep=self._max_to_keep)
        return target

    def close(self) -> None:
        """Completes the save in flight (and its manifest), then releases orbax's threads."""
        try:
            self._commit_pending()
        finally:
            self._manager.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _leaves_with_path(metadata):
    is_leaf = lambda x: hasattr(x, "shape") and not isinstance(x, dict)
    return jax.tree_util.tree_leaves_with_path(metadata, is_leaf=is_leaf)


def restore_latest(manager: ocp.CheckpointManager, abstract_state: TrainState) -> TrainState | None:
    """The newest checkpoint of `manager`'s workdir that passes every check (see
    `CheckpointStore.restore_latest`), or None."""
    workdir = os.path.dirname(str(manager.directory))
    with CheckpointStore(workdir, max_to_keep=None) as store:
        return store.restore_latest(abstract_state)
