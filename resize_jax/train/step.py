"""Pure train and eval steps; `jax.jit` with shardings is applied by the loop."""

from __future__ import annotations

from collections.abc import Sequence

import flax
import flax.linen as nn
import jax
import jax.numpy as jnp
import optax

from resize_jax.tasks import Task
from resize_jax.train.optim import is_frozen, path_of
from resize_jax.train.state import TrainState


def _keep_frozen_stats(old, new, frozen: Sequence[str]):
    # Frozen parts keep their BatchNorm statistics too, so they stay bit-identical.
    if not frozen:
        return new
    return jax.tree_util.tree_map_with_path(
        lambda kp, o, n: o if is_frozen(path_of(kp), frozen) else n, old, new
    )


def _sown(new_vars) -> dict[str, jax.Array]:
    """Scalars modules report with `self.sow("metrics", name, value)`, keyed by module path
    and name: {"frontend/zoom_spread": ...} (logged as "train/frontend/zoom_spread")."""
    sown = flax.traverse_util.flatten_dict(dict(new_vars.get("metrics", {})), sep="/")
    return {name: jnp.mean(jnp.asarray(value)) for name, value in sown.items()}


def make_train_step(
    model: nn.Module,
    task: Task,
    tx: optax.GradientTransformation,
    schedule: optax.Schedule,
    *,
    seed: int,
    prng_impl: str,
    frozen: Sequence[str] = (),
    accumulation_steps: int = 1,
):
    """Returns `train_step(state, batch) -> (state, metrics)`.

    batch: {"image": f[B, H, W, C], "label": ...}. Metrics are scalars: the task's training
    metrics, what the model's modules sow into "metrics" (e.g. "frontend/zoom_spread"), loss,
    learning rate and the global norms of gradients, updates and params
    (the host checks loss and grad norm for non-finite values). The model (a
    `FrontEndModel`) gets the step (`step=`, e.g. for blur pretraining) and one key for each
    RNG stream it declares (`model.rng_streams`), all derived from `seed` and the step.
    """
    base_key = jax.random.key(seed, impl=prng_impl)
    streams = tuple(model.rng_streams)

    def train_step(state: TrainState, batch):
        rng = jax.random.fold_in(base_key, state.step)
        # The first stream ("dropout") takes the step's key itself, the k-th its fold_in k.
        rngs = {s: rng if k == 0 else jax.random.fold_in(rng, k) for k, s in enumerate(streams)}

        def loss_fn(params):
            variables = {"params": params}
            if state.batch_stats:
                variables["batch_stats"] = state.batch_stats
            (outputs, aux), new_vars = model.apply(
                variables,
                batch["image"],
                train=True,
                step=state.step,
                mutable=["batch_stats", "metrics"],
                rngs=rngs,
            )
            loss, metrics = task.loss(outputs, aux, batch)
            return loss, ({**metrics, **_sown(new_vars)}, new_vars.get("batch_stats", {}))

        (loss, (metrics, batch_stats)), grads = jax.value_and_grad(loss_fn, has_aux=True)(
            state.params
        )
        updates, opt_state = tx.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        new_state = state.replace(
            step=state.step + 1,
            params=params,
            batch_stats=_keep_frozen_stats(state.batch_stats, batch_stats, frozen),
            opt_state=opt_state,
        )
        metrics = {
            **metrics,
            "loss": loss,
            # With accumulation the schedule counts optimizer steps, not micro-steps.
            "learning_rate": schedule(state.step // accumulation_steps),
            "grad_norm": optax.tree.norm(grads),
            "update_norm": optax.tree.norm(updates),
            "param_norm": optax.tree.norm(params),
        }
        return new_state, jax.tree.map(lambda m: jnp.asarray(m, jnp.float32), metrics)

    return train_step


def make_eval_step(model: nn.Module, task: Task):
    """Returns `eval_step(state, batch) -> statistics` (the task's per-batch statistics)."""

    def eval_step(state: TrainState, batch):
        outputs, aux = model.apply(state.variables, batch["image"], train=False)
        return task.eval_statistics(outputs, aux, batch)

    return eval_step
