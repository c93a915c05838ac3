"""SIGTERM/SIGINT as a request to stop: the loop saves at the current step and exits cleanly.

The handlers stay installed for the whole run, the final evaluation and save included, so a
preemption notice never kills a run between its last step and its last checkpoint. A second
SIGINT (Ctrl-C pressed again) raises KeyboardInterrupt at once; the loop's `finally` still
completes the save in flight.

On multi-host TPU pods JAX's preemption service (`CheckpointManager.reached_preemption`)
also signals a stop; it needs `jax.distributed` with the service enabled, so the signal
handlers here are what single-process runs (and CPU/GPU clusters that send SIGTERM) rely on,
and the service is consulted in addition where it runs.
"""

from __future__ import annotations

import signal
import threading

import jax
import numpy as np
from absl import logging
from jax.experimental import multihost_utils

SIGNALS = (signal.SIGTERM, signal.SIGINT)


class StopRequest:
    """Context manager: while active, SIGTERM and SIGINT set `requested` instead of killing
    the process. `agreed(step, every)` makes every process stop at the same step."""

    def __init__(self):
        self.requested = False
        self.signal_name = ""
        self._previous: dict[int, object] = {}
        # `CheckpointManager.reached_preemption(step)`, set once the checkpoints are open.
        self.preemption_service = None

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            for signum in SIGNALS:
                self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def _handle(self, signum, frame):
        del frame  # Unused.
        name = signal.Signals(signum).name
        if self.requested and signum == signal.SIGINT:
            raise KeyboardInterrupt
        logging.warning("%s received: saving a checkpoint at the current step, then exiting.", name)
        self.requested = True
        self.signal_name = name

    def __exit__(self, *exc):
        for signum, previous in self._previous.items():
            signal.signal(signum, previous)
        self._previous = {}

    def agreed(self, step: int, every: int) -> bool:
        """All processes must stop at the same step: agree through a collective."""
        if jax.process_count() == 1:
            return self.requested
        if self.preemption_service is not None and self.preemption_service(step):
            return True
        if step % every:
            return False
        flags = multihost_utils.process_allgather(np.asarray(self.requested))
        return bool(np.any(flags))

    def interrupts_eval(self) -> bool:
        """True when an evaluation may stop between batches: one process only (with several,
        every process must run the same collectives to the end)."""
        return self.requested and jax.process_count() == 1
