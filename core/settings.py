"""Declared settings: one dataclass field per setting, with its help, choices, bounds and group in the field's
metadata, so that its check, its command-line flag and its documentation come from one place.

    @dataclass
    class MySettings:
        width: int = setting(64, "channels of the first layer", low=1, group="My method")
        gain: float = setting(1.0, "weight of the gain loss", low=0, live=True)

`check_settings(obj)` checks every field of such a dataclass; `DefaultsTable` holds the defaults of the settings
left at None, per data set, each with where it comes from.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from dataclasses import dataclass, field
from typing import Any, Mapping

from .errors import ConfigError


def setting(default, help: str, *, choices=None, low=None, high=None, low_open: bool = False,
            high_open: bool = False, group: str | None = None, live: bool = False, why: str = "",
            label: str | None = None):
    """A dataclass field for one setting.

    `low`/`high` bound numbers (closed unless `low_open`/`high_open`); floats must also be finite. `live` marks a
    setting that may change while training (β_Aug). `why` is added to the error message; `label` names the
    setting in messages when its flag would not say enough."""
    meta = {"help": help, "choices": tuple(choices) if choices else None, "low": low, "high": high,
            "low_open": low_open, "high_open": high_open, "group": group, "live": live, "why": why, "label": label}
    return field(default=default, metadata=meta)


def flag(name: str) -> str:
    return name.replace("_", "-")


def base_type(tp) -> type:
    """int, float, bool or str for an annotation such as 'float | None'."""
    if isinstance(tp, str):
        tp = eval(tp, vars(typing), {})  # annotations are strings (from __future__ import annotations)
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        tp = next(a for a in typing.get_args(tp) if a is not type(None))
    return tp


def _number(x) -> str:
    if isinstance(x, float) and x.is_integer() and abs(x) < 1e16:
        return str(int(x))
    return f"{x:g}" if isinstance(x, float) else str(x)


def bounds_text(meta: Mapping[str, Any], tp: type) -> str:
    """'at least 1', 'a finite number ≥ 0', 'positive', 'in [0, 1)', ... for an error message."""
    low, high = meta.get("low"), meta.get("high")
    if low is not None and high is not None:
        if meta["low_open"] and meta["high_open"]:
            return f"lie strictly between {_number(low)} and {_number(high)}"
        return (f"lie in {'(' if meta['low_open'] else '['}{_number(low)}, {_number(high)}"
                f"{')' if meta['high_open'] else ']'}")
    if low is not None:
        if meta["low_open"]:
            return "be positive" if low == 0 else f"be more than {_number(low)}"
        return f"be at least {_number(low)}" if tp is int else f"be a finite number ≥ {_number(low)}"
    if high is not None:
        return f"be at most {_number(high)}"
    return "be a finite number" if tp is float else ""


def check_value(f: dataclasses.Field, value, *, allow_none: bool | None = None) -> None:
    """ConfigError unless `value` suits field `f` (its type, choices and bounds). None passes where the field's
    default is None (a setting resolved later), unless `allow_none` says otherwise."""
    meta = f.metadata
    name = meta.get("label") or flag(f.name)
    why = f" ({meta['why']})" if meta.get("why") else ""
    if value is None:
        if allow_none if allow_none is not None else f.default is None:
            return
        raise ConfigError(f"{name} must be set")
    tp = base_type(f.type)
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{name} must be true or false, got {value!r}")
        return
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{name} must be text, got {value!r}")
    elif tp in (int, float):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{name} must be a number, got {value!r}")
        if tp is int and not (isinstance(value, int) or (math.isfinite(value) and value == int(value))):
            raise ConfigError(f"{name} must be a whole number, got {value!r}")
        if not math.isfinite(value):
            raise ConfigError(f"{name} must {bounds_text(meta, tp) or 'be a finite number'}, got {value}{why}")
        low, high = meta.get("low"), meta.get("high")
        bad_low = low is not None and (value <= low if meta["low_open"] else value < low)
        bad_high = high is not None and (value >= high if meta["high_open"] else value > high)
        if bad_low or bad_high:
            raise ConfigError(f"{name} must {bounds_text(meta, tp)}, got {_number(value)}{why}")
    choices = meta.get("choices")
    if choices and value not in choices:
        raise ConfigError(f"{name} must be one of {', '.join(map(str, choices))}, got {value!r}")


def normalise(f: dataclasses.Field, value):
    """Whole floats given for int settings become ints (2.0 → 2), ints given for floats become floats."""
    tp = base_type(f.type)
    if value is None or isinstance(value, bool):
        return value
    if tp is int and isinstance(value, float) and math.isfinite(value) and value == int(value):
        return int(value)
    if tp is float and isinstance(value, int):
        return float(value)
    return value


def check_settings(obj, *, resolved: bool = False) -> None:
    """Check every field of a settings dataclass; with `resolved`, no setting may be left at None."""
    for f in dataclasses.fields(obj):
        if f.metadata.get("help") is None:
            continue
        check_value(f, getattr(obj, f.name), allow_none=None if not resolved else False)


def live_names(settings_class) -> tuple[str, ...]:
    """The settings of a settings dataclass that may change while training."""
    return tuple(f.name for f in dataclasses.fields(settings_class) if f.metadata.get("live"))


def field_of(settings_class, name: str) -> dataclasses.Field:
    for f in dataclasses.fields(settings_class):
        if f.name == name:
            return f
    raise KeyError(name)


@dataclass(frozen=True)
class Defaults:
    """Default values of settings left at None, and where they come from (a paper's section, a measurement)."""

    values: Mapping[str, Any]
    source: str


@dataclass(frozen=True)
class DefaultsTable:
    """Defaults for every data set (`common`), overridden per named data set, or else per kind of images
    (`generic["grey"]`, `generic["colour"]`)."""

    common: Defaults = Defaults({}, "")
    datasets: Mapping[str, Defaults] = field(default_factory=dict)
    generic: Mapping[str, Defaults] = field(default_factory=dict)

    def specific(self, dataset: str, channels: int) -> Defaults:
        kind = "colour" if channels == 3 else "grey"
        return self.datasets.get(dataset.lower()) or self.generic.get(kind) or Defaults({}, "")

    def lookup(self, dataset: str, channels: int) -> dict:
        return {**self.common.values, **self.specific(dataset, channels).values}

    def sources(self, dataset: str, channels: int) -> dict[str, str]:
        """Setting name → where its default comes from, for this data set."""
        out = {name: self.common.source for name in self.common.values}
        own = self.specific(dataset, channels)
        out.update({name: own.source for name in own.values})
        return out


__all__ = ["setting", "flag", "base_type", "check_value", "check_settings", "normalise", "live_names", "field_of",
           "Defaults", "DefaultsTable"]
