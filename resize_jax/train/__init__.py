"""Training: train state, sharded steps, optimizers, checkpoints, metrics, the loop."""

from resize_jax.extras import require

require("train", "resize_jax.train")

from resize_jax.train.loop import (
    TrainResult,
    evaluate,
    init_training,
    jit_train_step,
    train_and_evaluate,
)
from resize_jax.train.state import TrainState

__all__ = [
    "TrainResult",
    "TrainState",
    "evaluate",
    "init_training",
    "jit_train_step",
    "train_and_evaluate",
]
