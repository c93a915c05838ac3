"""Name → front-end class registry, so configs can pick a front-end by string; with the
names and the order runs are shown in (`describe_frontend`, `frontend_rank`)."""

from __future__ import annotations

from collections.abc import Callable

import flax.linen as nn

_FRONTENDS: dict[str, type[nn.Module]] = {}
# `config.frontend.name` of a run without a front-end: the backbone sees the full-resolution
# input (the upper bound).
NO_FRONTEND = "none"
NO_FRONTEND_LABEL = "full resolution (no front-end)"


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


def describe_frontend(section) -> str:
    """A short name of a run's front-end from its config section: "fixed bilinear
    (antialiased)", "learned resizer", "full resolution (no front-end)"."""
    name = section.name
    if name == NO_FRONTEND:
        return NO_FRONTEND_LABEL
    return frontend_class(name).describe(section) if name in _FRONTENDS else name


def frontend_rank(name: str) -> int:
    """The position of front-end `name` in tables: the registered names in order (fixed
    first), then unknown ones, then no front-end."""
    names = frontend_names()
    if name == NO_FRONTEND:
        return len(names) + 1
    return names.index(name) if name in names else len(names)


def get_frontend(name: str, **kwargs) -> nn.Module:
    """Builds the front-end registered as `name` with `kwargs` (e.g. `output_shape=(224, 224)`).

    Raises:
      ValueError: if `name` is unknown; the message lists the known names.
    """
    return frontend_class(name)(**kwargs)
