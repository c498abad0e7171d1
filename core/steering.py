"""Steering a running trainer: live setting changes (β_Aug) and stop requests, from the API (any thread), from
control.json (other processes) and, under torchrun, agreed by every rank.

One rule for every path: a request is taken at the next logged step (every `log_every` steps) and applies from
the step after it, on every rank. The API queues its request until then; control.json is polled then; under
torchrun rank 0's requests are broadcast then. So a change asked for during a logging window applies at the same
step whichever way it came, in one process or several.
"""

from __future__ import annotations

import threading

from . import distributed
from .control import ControlChannel
from .errors import ConfigError
from .settings import check_value, field_of


def check_live(method_class, name: str, value) -> float:
    """A live setting's new value, checked against its declaration; ConfigError naming what is wrong."""
    if name not in method_class.live_settings:
        changeable = ", ".join(method_class.live_settings) or "nothing"
        raise ConfigError(f"{name} cannot be changed while training a {method_class.name.upper()} run "
                          f"(changeable: {changeable})")
    try:
        value = float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{name.replace('_', '-')} must be a number, got {value!r}") from None
    check_value(field_of(method_class.Settings, name), value, allow_none=False)
    return value


class Steering:
    """Pending changes and the stop request of one trainer, with the lock that lets any thread add to them."""

    def __init__(self, method_class, control: ControlChannel | None, dist=distributed.SINGLE):
        self.method_class = method_class
        self.control = control  # None on ranks other than 0: rank 0 reads the file for all
        self.dist = dist
        self._lock = threading.Lock()
        self._pending: dict[str, tuple[float, str]] = {}
        self._stop_reason: str | None = None
        self._agreed_stop = False

    def request(self, name: str, value, source: str = "api") -> float:
        value = check_live(self.method_class, name, value)
        with self._lock:
            self._pending[name] = (value, source)
        return value

    def request_stop(self, reason: str = "stopped by request") -> None:
        with self._lock:
            if self._stop_reason is None:
                self._stop_reason = reason

    @property
    def stop_reason(self) -> str | None:
        return self._stop_reason

    @property
    def stop_requested(self) -> bool:
        return self._stop_reason is not None

    @property
    def stopping(self) -> bool:
        """Whether the loop ends now: at once in one process; under torchrun only once the ranks agreed."""
        return self._agreed_stop if self.dist.active else self._stop_reason is not None

    def poll_control(self) -> list[str]:
        """Take a new request from control.json, if any; returns what was wrong with it (to be reported)."""
        if self.control is None:
            return []
        request, error = self.control.poll()
        if error:
            return [error]
        if request is None:
            return []
        problems = []
        for name in self.method_class.live_settings:
            if request.get(name) is not None:
                try:
                    self.request(name, request[name], source="control")
                except ConfigError as e:
                    problems.append(f"control.json: {e}: ignored")
        stop = request.get("stop")
        if stop is True:
            self.request_stop("stopped from control.json")
        elif stop not in (None, False):
            problems.append(f"control.json: stop must be true or false, got {stop!r}: ignored")
        return problems

    def settle(self) -> dict[str, tuple[float, str]]:
        """The changes to apply from the next step (taken out of the queue), agreed by every rank."""
        with self._lock:
            mine = {"pending": dict(self._pending), "stop": self._stop_reason}
            self._pending = {}
        agreed = distributed.broadcast_object(mine, self.dist)
        if agreed["stop"] is not None:
            self._stop_reason = agreed["stop"]
            self._agreed_stop = True
        return agreed["pending"]
