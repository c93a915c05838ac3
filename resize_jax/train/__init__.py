"""Training: train state, sharded steps, optimizers, checkpoints, metrics, the loop."""

from resize_jax.train.loop import TrainResult, evaluate, train_and_evaluate
from resize_jax.train.state import TrainState

__all__ = ["TrainResult", "TrainState", "evaluate", "train_and_evaluate"]
