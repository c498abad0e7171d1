"""The methods the engine knows, by name. `register(cls)` adds one (a `ClusteringMethod` subclass); the CLI's
flags, the config's checks, the app's start form and the trainer all read this registry."""

from __future__ import annotations

import dataclasses

from ..errors import ConfigError
from .base import ClusteringMethod

_METHODS: dict[str, type[ClusteringMethod]] = {}


def register(cls: type[ClusteringMethod]) -> type[ClusteringMethod]:
    """Make a method known to the engine (usable as a class decorator). Its settings may not reuse the name of a
    shared setting, nor of another method's setting with a different meaning (type or default)."""
    from ..config import shared_fields

    if not (isinstance(cls, type) and issubclass(cls, ClusteringMethod)):
        raise TypeError(f"register() takes a ClusteringMethod subclass, not {cls!r}")
    if not cls.name or not cls.name.replace("-", "").replace("_", "").isalnum() or cls.name != cls.name.lower():
        raise ValueError(f"{cls.__name__}.name must be a short lower-case name, got {cls.name!r}")
    if not dataclasses.is_dataclass(cls.Settings):
        raise TypeError(f"{cls.__name__}.Settings must be a dataclass")
    shared = {f.name for f in shared_fields()}
    for f in dataclasses.fields(cls.Settings):
        if f.name in shared:
            raise ValueError(f"{cls.__name__}: setting {f.name!r} is already a shared setting")
        for other in _METHODS.values():
            if other.name == cls.name:
                continue
            clash = {g.name: g for g in dataclasses.fields(other.Settings)}.get(f.name)
            if clash is not None and (str(clash.type), clash.default) != (str(f.type), f.default):
                raise ValueError(f"{cls.__name__}: setting {f.name!r} means something else for {other.name}")
    _METHODS[cls.name] = cls
    return cls


def unregister(name: str) -> None:
    """Forget a method (tests that register a toy method clean up with this)."""
    _METHODS.pop(name, None)


def get(name: str) -> type[ClusteringMethod]:
    try:
        return _METHODS[name]
    except KeyError:
        raise ConfigError(f"unknown method '{name}' (known: {', '.join(_METHODS)})") from None


def names() -> list[str]:
    return list(_METHODS)


def owners(setting_name: str) -> list[str]:
    """The methods that have a setting of this name."""
    return [m.name for m in _METHODS.values() if setting_name in {f.name for f in dataclasses.fields(m.Settings)}]


def all_method_fields() -> list[tuple[type[ClusteringMethod], dataclasses.Field]]:
    """(method, field) for every method's own settings, each name once (for the CLI's flags)."""
    seen, out = set(), []
    for m in _METHODS.values():
        for f in dataclasses.fields(m.Settings):
            if f.name not in seen:
                seen.add(f.name)
                out.append((m, f))
    return out
