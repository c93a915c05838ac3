"""Name → front-end class registry, so configs can pick a front-end by string."""

from __future__ import annotations

from collections.abc import Callable

import flax.linen as nn

_FRONTENDS: dict[str, type[nn.Module]] = {}


def register_frontend(name: str) -> Callable[[type[nn.Module]], type[nn.Module]]:
    """Class decorator: makes `get_frontend(name, ...)` build the decorated module."""

    def decorate(cls: type[nn.Module]) -> type[nn.Module]:
        if name in _FRONTENDS and _FRONTENDS[name] is not cls:
            raise ValueError(f"Front-end name {name!r} is already registered.")
        _FRONTENDS[name] = cls
        return cls

    return decorate


def frontend_names() -> list[str]:
    """The registered front-end names, sorted."""
    return sorted(_FRONTENDS)


def frontend_class(name: str) -> type[nn.Module]:
    """The class registered as `name` (ValueError listing the known names otherwise)."""
    if name not in _FRONTENDS:
        raise ValueError(f"Unknown front-end `name`={name!r}; known names: {frontend_names()}.")
    return _FRONTENDS[name]


def get_frontend(name: str, **kwargs) -> nn.Module:
    """Builds the front-end registered as `name` with `kwargs` (e.g. `output_shape=(224, 224)`).

    Raises:
      ValueError: if `name` is unknown; the message lists the known names.
    """
    return frontend_class(name)(**kwargs)
