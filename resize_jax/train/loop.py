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
from typing import Any

import jax
import numpy as np
from absl import logging
from clu import parameter_overview

from resize_jax import data
from resize_jax.models import count_params
from resize_jax.train import (
    build,
    checkpoint,
    config_check,
    images,
    init_from,
    memory_check,
    optim,
    sharding,
    signals,
    workdir_guard,
)
from resize_jax.train import workdir as run_files
from resize_jax.train.state import TrainState
from resize_jax.train.step import make_eval_step, make_train_step
from resize_jax.train.writer import Progress, make_writer


@dataclasses.dataclass
class TrainResult:
    """What a run returns: the final state, the last evaluation, and why it stopped."""

    state: TrainState
    eval_metrics: dict[str, float]
    preempted: bool = False


def _check_finite(step: int, metrics: dict[str, Any], last_saved: str) -> None:
    for name in ("loss", "grad_norm"):
        value = float(metrics[name])
        if not math.isfinite(value):
            raise FloatingPointError(
                f"Non-finite {name} ({value}) at step {step}; training stopped. {last_saved}"
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


def evaluate(eval_step, state, task, config, mesh, stop=None) -> dict[str, float] | None:
    """Runs the whole eval split once (each example counted exactly once via the mask).
    Returns None when `stop()` turns true between batches (a stop request)."""
    total = None
    per_process = config.eval_batch_size // jax.process_count()
    for batch in data.eval_iterator(config.data, batch_size=per_process):
        if stop is not None and stop():
            logging.warning("Evaluation interrupted by a stop request; its metrics are dropped.")
            return None
        stats = eval_step(state, sharding.global_batch(batch, mesh))
        total = task.accumulate(total, jax.device_get(stats))
    if total is None:
        raise ValueError(f"`config.data.eval_split`={config.data.eval_split!r} yielded no batch.")
    return task.finalize(total)


def _describe_run(config, info, state, start: int, workdir: str) -> str:
    """One line saying what the run trains, on what, and where it writes."""
    size = "×".join(str(v) for v in info.image_shape[:2])
    frontend = config.frontend.name
    if frontend != "none":
        size += f" → {frontend} → " + "×".join(str(v) for v in config.frontend.output_shape)
    classes = f", {info.num_classes} classes" if info.task == "classification" else ""
    resumed = f", resuming at step {start}" if start else ""
    params = count_params(state.variables)["trainable"]
    return (
        f"{config.data.name}: {info.num_train} train / {info.num_eval} eval images{classes}; "
        f"{size} → {config.model.name} ({params:,} parameters); "
        f"{config.num_train_steps} steps of {config.batch_size} on {jax.device_count()} "
        f"device(s){resumed}; workdir {workdir}"
    )


def _picture_writer(config, model, writer):
    """`write(state, step)`: TensorBoard pictures of the front-end on the first
    `config.eval_images` eval images (`resize_jax.train.images`); a no-op when that is 0."""
    count = int(config.get("eval_images", 4))
    if count <= 0 or jax.process_count() > 1:
        # Several processes would each need the same global batch: pictures are a
        # single-process convenience.
        return lambda state, step: None
    batch = next(iter(data.eval_iterator(config.data, batch_size=count)))
    sample = np.asarray(batch["image"][: int(batch["mask"].sum())])
    apply_fn = jax.jit(functools.partial(model.apply, train=False))
    value_range = tuple(config.data.get("value_range", (0.0, 1.0)))
    has_frontend = getattr(model, "frontend", None) is not None

    def write(state, step):
        pictures = images.frontend_pictures(
            apply_fn, state.variables, sample, value_range, has_frontend=has_frontend
        )
        writer.write_images(step, {f"eval_images/{k}": v for k, v in pictures.items()})

    return write


def train_and_evaluate(config, workdir: str) -> TrainResult:
    """Trains `config.num_train_steps` steps with periodic eval/checkpoints; resumes if it can.

    Before anything is written to `workdir`, the config passes `config_check`. Then the
    workdir is locked, the model is built (its modules check their fields), a resumed run's
    config is compared with the saved one, the step is compiled, and only then is
    `config.json` rewritten. SIGTERM/SIGINT stop the run cleanly until it returns
    (docs/reliability.md).
    """
    workdir = workdir_guard.check_workdir(workdir)
    config_check.check_config(config)
    sharding.maybe_initialize_distributed(config)
    mesh = sharding.make_mesh(config.get("num_devices", -1))
    info = data.get_info(config.data)
    build.validate_config(config, info, mesh.size)
    # Locked before compiling, so a second run on the workdir fails at once.
    with workdir_guard.locked(workdir), signals.StopRequest() as stop:
        per_process_batch = config.batch_size // jax.process_count()
        train_batches = data.train_iterator(
            config.data, batch_size=per_process_batch, seed=config.seed
        )
        first = next(train_batches)
        sample = np.zeros((1, *first["image"].shape[1:]), first["image"].dtype)
        with config_check.naming_fields(config):
            model = build.build_model(config, info)
            task = build.build_task(config, model, info)
        # What the run records in config.json: the config plus what the task took from the
        # dataset (regression targets' statistics), so a resume compares like with like.
        recorded = build.recorded_config(config, task)
        store = checkpoint.CheckpointStore(workdir, max_to_keep=config.get("keep_checkpoints", 3))
        stop.preemption_service = store.reached_preemption
        try:
            workdir_guard.check_resume(recorded, workdir, has_checkpoint=bool(store.all_steps()))
            with config_check.naming_fields(config):
                state, tx, schedule = init_training(config, model, sample, mesh)
                train_step = memory_check.compile_checked(
                    jit_train_step(
                        config,
                        model,
                        task,
                        tx,
                        schedule,
                        mesh,
                        jax.tree.map(lambda x: x.sharding, state),
                    ),
                    (state, sharding.global_batch(first, mesh)),
                    config,
                )
            restored = store.restore_latest(state)
            workdir_guard.write_config(recorded, workdir)
            if jax.process_index() == 0:
                run_files.write_dataset_info(workdir, info)
            # Pretrained files and other runs' parts apply only when there is nothing to resume.
            state = restored if restored is not None else init_from.initialize(config, state, model)
            if jax.process_index() == 0:
                start = int(jax.device_get(state.step))
                logging.info("%s", _describe_run(config, info, state, start, workdir))
            return _train(
                config,
                workdir,
                state,
                model=model,
                task=task,
                mesh=mesh,
                train_step=train_step,
                batches=itertools.chain([first], train_batches),
                store=store,
                stop=stop,
            )
        finally:
            # Every exit path (an exception, a NaN, KeyboardInterrupt) completes the save
            # in flight; a process killed outright leaves a temporary directory that the
            # next run's manager removes.
            store.close()


def _train(
    config, workdir, state, *, model, task, mesh, train_step, batches, store, stop
) -> TrainResult:
    """The loop proper, from `state`'s step: `batches` is the whole deterministic stream
    from step 1; `store` holds the checkpoints, `stop` the stop request."""
    num_steps = int(config.num_train_steps)
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
    eval_step = jax.jit(
        make_eval_step(model, task),
        in_shardings=(state_sharding, batch_sharding),
        out_shardings=replicated,
    )
    run_eval = functools.partial(evaluate, eval_step, task=task, config=config, mesh=mesh)
    write_pictures = _picture_writer(config, model, writer)

    # Resuming replays the deterministic stream: skip what the first `start` steps consumed.
    batches = itertools.islice(batches, start, None)
    progress = Progress(num_steps, config.batch_size, start)
    history: list[dict[str, jax.Array]] = []
    eval_metrics: dict[str, float] = {}
    eval_step = None  # The step `eval_metrics` were measured at.
    preempted = False
    last_saved = start
    log_every = int(config.log_every_steps)
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
            _check_finite(step - len(fetched) + 1 + offset, metrics, store.last_good_description())
        means = {f"train/{k}": float(np.mean([m[k] for m in fetched])) for k in fetched[0]}
        speed = progress(step, means["train/loss"])
        writer.write_scalars(step, {**means, **{f"train/{k}": v for k, v in speed.items()}})
        history = []

    for step in range(start + 1, num_steps + 1):
        state, metrics = train_step(state, sharding.global_batch(next(batches), mesh))
        history.append(metrics)
        save_now = bool(save_every) and step % save_every == 0
        if step % log_every == 0 or step == num_steps or save_now:
            flush_train_metrics(step)
        if eval_every and step % eval_every == 0 and step != num_steps:
            eval_metrics = run_eval(state) or {}
            eval_step = step
            writer.write_scalars(step, {f"eval/{k}": v for k, v in eval_metrics.items()})
            write_pictures(state, step)
        if save_now:
            store.save(state)
            last_saved = step
        if stop.agreed(step, check_every):
            flush_train_metrics(step)
            if last_saved != step:
                store.save(state, force=True)
            preempted = True
            break
    if not preempted:
        final_step = int(jax.device_get(state.step))
        # Saved before the final evaluation (which overlaps the asynchronous write), so a
        # stop request during the evaluation loses nothing.
        if last_saved != final_step:
            store.save(state, force=True)
        final = run_eval(state, stop=stop.interrupts_eval)
        if final is None:
            preempted = True
        else:
            eval_metrics, eval_step = final, final_step
            writer.write_scalars(final_step, {f"eval/{k}": v for k, v in eval_metrics.items()})
            write_pictures(state, final_step)
    writer.flush()
    end_step = int(jax.device_get(state.step))
    scores = ", ".join(f"{k} {v:.4g}" for k, v in eval_metrics.items())
    if not eval_metrics:
        logging.info(
            "%s at step %d; not evaluated.", "Stopped" if preempted else "Finished", end_step
        )
    elif eval_step == end_step:
        logging.info("Finished at step %d; eval: %s", end_step, scores)
    else:
        # Stopped early: the last evaluation is older than the state; say so.
        logging.info("Stopped at step %d; last eval (step %d): %s", end_step, eval_step, scores)
    return TrainResult(state=state, eval_metrics=eval_metrics, preempted=preempted)
