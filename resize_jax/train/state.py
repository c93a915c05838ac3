"""The train state: one pytree holding everything a step changes."""

from __future__ import annotations

from typing import Any

import flax.struct
import jax


@flax.struct.dataclass
class TrainState:
    """step: i32[]; params and batch_stats: the model's collections; opt_state: optax state.

    No RNG key is stored: each step's key is `fold_in(key(config.seed), step)`, so a resumed
    run draws exactly the keys an uninterrupted run would.
    """

    step: jax.Array
    params: Any
    batch_stats: Any
    opt_state: Any

    @property
    def variables(self) -> dict[str, Any]:
        """The model's variables for `apply`."""
        if self.batch_stats:
            return {"params": self.params, "batch_stats": self.batch_stats}
        return {"params": self.params}
