"""The optional parts of the install: which extra brings which modules.

`import resize_jax` (ops, frontends, models, tasks) needs only jax, flax, optax, chex and
numpy. The input pipelines, training and the tools need the `train` extra, the figures the
`viz` extra; importing them without it raises an ImportError that says what to install.
"""

from __future__ import annotations

import importlib.util

EXTRAS = {
    "train": (
        "tensorflow",
        "tensorflow_datasets",
        "orbax.checkpoint",  # Also a dependency of flax; listed for what train/ imports.
        "ml_collections",
        "clu",
        "absl",
        "PIL",
    ),
    "viz": ("matplotlib", "PIL"),
}


def _installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:  # The parent package of a dotted name is missing.
        return False


def require(extra: str, part: str) -> None:
    """Raises ImportError naming `pip install 'resize_jax[extra]'` when a module of `extra`
    is missing; `part` names what needs it ("resize_jax.train"). Imports nothing."""
    if extra not in EXTRAS:
        raise ValueError(f"`extra` must be one of {sorted(EXTRAS)}, got {extra!r}.")
    missing = [m for m in EXTRAS[extra] if not _installed(m)]
    if missing:
        raise ImportError(
            f"{part} needs {', '.join(missing)}, which the core install does not bring: "
            f"pip install 'resize_jax[{extra}]'."
        )
