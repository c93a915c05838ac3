"""`train_and_evaluate(config, workdir)`: the whole training run, importable and testable.

One mesh over every device (axis "data"); batches sharded over it, parameters and optimizer
state replicated or split by FSDP (`config.sharding`, see `resize_jax.train.sharding`); each
process feeds its own slice of the data. See `configs/default.py` for
the config fields and `resize_jax.train.checkpoint` for the resume order.
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
import math
import os
import signal
import threading
from typing import Any

import jax
import numpy as np
from absl import logging
from clu import parameter_overview
from jax.experimental import multihost_utils

from resize_jax import data
from resize_jax.models import count_params
from resize_jax.train import build, checkpoint, optim, sharding
from resize_jax.train.state import TrainState
from resize_jax.train.step import make_eval_step, make_train_step
from resize_jax.train.writer import Progress, make_writer


@dataclasses.dataclass
class TrainResult:
    """What a run returns: the final state, the last evaluation, and why it stopped."""

    state: TrainState
    eval_metrics: dict[str, float]
    preempted: bool = False


class _PreemptionFlag:
    """Set by SIGTERM (preemption); the loop saves at the current step and exits cleanly."""

    def __init__(self):
        self.requested = False
        self._previous = None

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGTERM, self._handle)
        return self

    def _handle(self, signum, frame):
        del signum, frame  # Unused.
        logging.warning("SIGTERM received: saving a checkpoint at the current step, then exiting.")
        self.requested = True

    def __exit__(self, *exc):
        if self._previous is not None:
            signal.signal(signal.SIGTERM, self._previous)

    def agreed(self, step: int, every: int) -> bool:
        """All processes must stop at the same step: agree through a collective."""
        if jax.process_count() == 1:
            return self.requested
        if step % every:
            return False
        flags = multihost_utils.process_allgather(np.asarray(self.requested))
        return bool(np.any(flags))


def _check_finite(step: int, metrics: dict[str, Any]) -> None:
    for name in ("loss", "grad_norm"):
        value = float(metrics[name])
        if not math.isfinite(value):
            raise FloatingPointError(
                f"Non-finite {name} ({value}) at step {step}; training stopped. "
                "The last checkpoint saved before it is intact."
            )


def init_training(config, model, sample_images, mesh):
    """Step 0 of `config`'s run: `(state, tx, schedule)`, the optimizer and learning-rate
    schedule built from `config.optimizer` and the state (the model's initial variables and
    the optimizer's state) placed on `mesh` as `config.sharding` says (replicated, or split
    by the FSDP rule of `sharding.state_sharding`). sample_images: f[1, H, W, C]."""
    key = functools.partial(jax.random.key, impl=config.prng_impl)

    def init_variables(images):
        return model.init(
            {"params": key(config.seed), "dropout": key(config.seed + 1)}, images, train=False
        )

    abstract = jax.eval_shape(init_variables, sample_images)
    tx, schedule = optim.make_optimizer(
        config.optimizer, abstract["params"], int(config.num_train_steps)
    )

    def init(images):
        variables = init_variables(images)
        params = variables["params"]
        return TrainState(
            step=jax.numpy.zeros((), jax.numpy.int32),
            params=params,
            batch_stats=variables.get("batch_stats", {}),
            opt_state=tx.init(params),
        )

    state_sharding = sharding.state_sharding(jax.eval_shape(init, sample_images), mesh, config)
    state = jax.jit(init, out_shardings=state_sharding)(sample_images)
    return state, tx, schedule


def jit_train_step(config, model, task, tx, schedule, mesh, state_sharding=None):
    """The loop's `train_step(state, batch) -> (state, metrics)`, jitted: the batch split over
    `mesh`, the state kept in `state_sharding` (a pytree of shardings like the state's, e.g.
    `jax.tree.map(lambda x: x.sharding, state)`; None: replicated) and donated, metrics
    replicated."""
    replicated = sharding.replicated(mesh)
    if state_sharding is None:
        state_sharding = replicated
    step = make_train_step(
        model,
        task,
        tx,
        schedule,
        seed=config.seed,
        prng_impl=config.prng_impl,
        frozen=optim.parse_paths(config.optimizer.get("freeze", "")),
        accumulation_steps=int(config.optimizer.get("accumulation_steps", 1)),
    )
    return jax.jit(
        step,
        in_shardings=(state_sharding, sharding.data_sharding(mesh)),
        out_shardings=(state_sharding, replicated),
        donate_argnums=(0,),
    )


def evaluate(eval_step, state, task, config, mesh) -> dict[str, float]:
    """Runs the whole eval split once (each example counted exactly once via the mask)."""
    total = None
    per_process = config.eval_batch_size // jax.process_count()
    for batch in data.eval_iterator(config.data, batch_size=per_process):
        stats = eval_step(state, sharding.global_batch(batch, mesh))
        total = task.accumulate(total, jax.device_get(stats))
    if total is None:
        raise ValueError(f"`config.data.eval_split`={config.data.eval_split!r} yielded no batch.")
    return task.finalize(total)


def train_and_evaluate(config, workdir: str) -> TrainResult:
    """Trains `config.num_train_steps` steps with periodic eval/checkpoints; resumes if it can."""
    sharding.maybe_initialize_distributed(config)
    mesh = sharding.make_mesh(config.get("num_devices", -1))
    info = data.get_info(config.data)
    build.validate_config(config, info, mesh.size)
    if jax.process_index() == 0:
        # The run's own record of its config: `resize_jax.tools.report` and `resize_jax.tools.apply`
        # rebuild the model from it, from the workdir alone.
        os.makedirs(workdir, exist_ok=True)
        with open(os.path.join(workdir, "config.json"), "w") as f:
            f.write(config.to_json_best_effort(indent=2, sort_keys=True))
    model = build.build_model(config, info)
    task = build.build_task(config, model)
    num_steps = int(config.num_train_steps)
    per_process_batch = config.batch_size // jax.process_count()

    train_batches = data.train_iterator(config.data, batch_size=per_process_batch, seed=config.seed)
    first = next(train_batches)
    sample = np.zeros((1, *first["image"].shape[1:]), first["image"].dtype)
    state, tx, schedule = init_training(config, model, sample, mesh)

    manager = checkpoint.make_manager(workdir, max_to_keep=config.get("keep_checkpoints", 3))
    restored = checkpoint.restore_latest(manager, state) if manager.all_steps() else None
    if restored is not None:
        state = restored
    elif config.get("init_from"):
        state = checkpoint.load_parts(config.init_from, config.init_parts, state)
    start = int(jax.device_get(state.step))

    writer = make_writer(workdir)
    if jax.process_index() == 0:
        parameter_overview.log_parameter_overview(state.params)
    writer.write_scalars(
        start, {f"params/{k}": v for k, v in count_params(state.variables).items()}
    )

    replicated = sharding.replicated(mesh)
    batch_sharding = sharding.data_sharding(mesh)
    state_sharding = jax.tree.map(lambda x: x.sharding, state)
    train_step = jit_train_step(config, model, task, tx, schedule, mesh, state_sharding)
    eval_step = jax.jit(
        make_eval_step(model, task),
        in_shardings=(state_sharding, batch_sharding),
        out_shardings=replicated,
    )
    run_eval = functools.partial(evaluate, eval_step, task=task, config=config, mesh=mesh)

    # Resuming replays the deterministic stream: skip what the first `start` steps consumed.
    batches = itertools.islice(itertools.chain([first], train_batches), start, None)
    progress = Progress(num_steps, config.batch_size, start)
    history: list[dict[str, jax.Array]] = []
    eval_metrics: dict[str, float] = {}
    preempted = False
    last_saved = start
    log_every = max(int(config.log_every_steps), 1)
    eval_every = int(config.get("eval_every_steps", 0))
    save_every = int(config.get("checkpoint_every_steps", 0))
    check_every = int(config.get("preemption_check_every_steps", 10))

    def flush_train_metrics(step: int) -> None:
        # The host reads metrics only here, so steps are dispatched back to back; every
        # step since the last read is checked for non-finite values before any save.
        nonlocal history
        if not history:
            return
        fetched = jax.device_get(history)
        for offset, metrics in enumerate(fetched):
            _check_finite(step - len(fetched) + 1 + offset, metrics)
        means = {f"train/{k}": float(np.mean([m[k] for m in fetched])) for k in fetched[0]}
        speed = progress(step, means["train/loss"])
        writer.write_scalars(step, {**means, **{f"train/{k}": v for k, v in speed.items()}})
        history = []

    with _PreemptionFlag() as preemption:
        for step in range(start + 1, num_steps + 1):
            state, metrics = train_step(state, sharding.global_batch(next(batches), mesh))
            history.append(metrics)
            save_now = bool(save_every) and step % save_every == 0
            if step % log_every == 0 or step == num_steps or save_now:
                flush_train_metrics(step)
            if eval_every and step % eval_every == 0 and step != num_steps:
                eval_metrics = run_eval(state)
                writer.write_scalars(step, {f"eval/{k}": v for k, v in eval_metrics.items()})
            if save_now:
                checkpoint.save(manager, state)
                last_saved = step
            if preemption.agreed(step, check_every):
                flush_train_metrics(step)
                if last_saved != step:
                    checkpoint.save(manager, state, force=True)
                preempted = True
                break
    if not preempted:
        eval_metrics = run_eval(state)
        final_step = int(jax.device_get(state.step))
        writer.write_scalars(final_step, {f"eval/{k}": v for k, v in eval_metrics.items()})
        if last_saved != final_step:
            checkpoint.save(manager, state, force=True)
    manager.wait_until_finished()
    manager.close()
    writer.flush()
    logging.info("Finished at step %d; eval: %s", int(jax.device_get(state.step)), eval_metrics)
    return TrainResult(state=state, eval_metrics=eval_metrics, preempted=preempted)
