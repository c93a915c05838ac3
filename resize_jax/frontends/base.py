"""The front-end protocol: what every front-end provides, and what the rest of the library
may rely on. `tests/test_frontend_protocol.py` checks it for every registered front-end.

A front-end is a `flax.linen` module with:

- a field `output_shape: tuple[int, int]` and the fields `dtype` (computation) and
  `param_dtype`;
- `__call__(images, *, train=False, step=None) -> (resized, aux)`: images f[B, H, W, C] →
  resized f[B, out_h, out_w, C]; `step` is the training step (an int32 scalar, or None
  outside training) for front-ends whose training follows a schedule; `aux` is a dict of
  inspectable intermediates for people and figures (`"saliency"`, `"grid"`, `"skip"`),
  never read by other layers;
- `rng_streams`: the names of the RNG streams `__call__` draws from in training (e.g.
  `("blur",)`); the train step provides every stream the model declares;
- `label` (and `describe(config_section)` where the config adds to it): the front-end's name
  in tables and figures, in the order of `registry.frontend_rank`;
- `to_input(dense, aux, input_shape)`: maps dense outputs computed on the resized image
  (f[B, h, w, K], any h, w) back to the input image's pixel grid (f32[B, H, W, K]), given
  the `aux` of the same call. Dense tasks (segmentation) call it instead of reading `aux`.

Scalars worth logging in training (a temperature, the saliency's entropy) are reported with
`self.sow("metrics", name, value)`; the train step collects them and the loop logs them as
`train/frontend/<name>`.

Adding a front-end: one module deriving from `FrontEnd` and one `@register_frontend` line.

Renamed fields keep their old name for one release: the old name stays a field (default
None, not part of config sections) listed in `renamed_fields`, and
`resolve_renamed_fields(self)` at the start of `__post_init__` moves its value to the new
name with a DeprecationWarning, so old configs and checkpoints' configs still load.
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

import flax.linen as nn
import jax
import jax.numpy as jnp

from resize_jax import ops
from resize_jax.ops.checks import check_images, check_size_pair, renamed


def resize_to_input(dense: jax.Array, input_shape: tuple[int, int]) -> jax.Array:
    """dense: f[B, h, w, K] → f32[B, H, W, K] by a bilinear resize (half-pixel centres: the
    inverse geometry of a resize); unchanged when (h, w) is already `input_shape`."""
    check_images(dense, "dense")
    input_shape = check_size_pair(input_shape, "input_shape")
    dense = dense.astype(jnp.float32)
    if tuple(dense.shape[1:3]) == input_shape:
        return dense
    return ops.resize(dense, input_shape, method="bilinear", antialias=False)


def resolve_renamed_fields(module: nn.Module) -> None:
    """Moves the value of each deprecated field name in `module.renamed_fields` (old → new)
    to the new field, with a DeprecationWarning; ValueError if both are given and differ."""
    fields = {f.name: f for f in dataclasses.fields(module)}
    for old, new in module.renamed_fields.items():
        value = renamed(
            getattr(module, new),
            new,
            fields[new].default,
            getattr(module, old),
            old,
            stacklevel=6,
        )
        keep_checked(module, **{new: value, old: None})


def keep_checked(module: nn.Module, **values) -> None:
    """Stores checked, normalised field values (e.g. `output_shape` as a tuple of ints) from
    `__post_init__`, so that `__call__` uses them without checking again."""
    for name, value in values.items():
        object.__setattr__(module, name, value)  # Before the module is frozen.


class FrontEnd(nn.Module):
    """Base class of the front-ends (see the module docstring for the protocol).

    Its defaults suit a front-end that resizes the whole image geometrically (fixed and
    learned resizers): no RNG stream, and dense outputs go back by a resize.
    """

    rng_streams: ClassVar[tuple[str, ...]] = ()
    # What people call it in tables and figures ("learned resizer"); see `describe`.
    label: ClassVar[str] = ""
    # Old field name → new one, for fields renamed within the last release.
    renamed_fields: ClassVar[dict[str, str]] = {}

    @classmethod
    def describe(cls, section) -> str:
        """A short name of a run's front-end from its config section (`config.frontend`)."""
        del section  # The class's label says it all; a fixed resizer adds its kernel.
        return cls.label

    @nn.nowrap
    def to_input(
        self, dense: jax.Array, aux: dict[str, Any], input_shape: tuple[int, int]
    ) -> jax.Array:
        """dense: f[B, h, w, K] on the resized image → f32[B, H, W, K] on the input's grid."""
        del aux  # A whole-image resize is undone by a resize.
        return resize_to_input(dense, input_shape)
