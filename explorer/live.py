"""What every live dashboard in a notebook shares: a view refreshed by a daemon thread from files that training
writes (in this kernel's background or in another process), shown as one ipywidget, waited on from a cell.

`explorer.watch` (one run) and `explorer.watch_session` (a β_Aug tuning session) are `LiveDashboard`s around the
app's own views, so the notebook and the app show the same thing.
"""

from __future__ import annotations

import functools
import math
import threading
import time
from pathlib import Path

import panel as pn

from core.errors import UserError

DEFAULT_INTERVAL = 1.0  # seconds between refreshes while the run is live or a map is being computed
IDLE_FACTOR = 5  # something that ended is still looked at now and then (it may be resumed), just less often


class DashboardError(UserError):
    """A mistake in what a dashboard was asked to do. Jupyter shows its one-line message, not a traceback, since
    bad input is not a bug."""

    def _render_traceback_(self) -> list[str]:  # IPython's hook for custom exception display
        return [f"{type(self).__name__}: {self}"]


def check_interval(interval) -> float:
    try:
        interval = float(interval)
    except (TypeError, ValueError):
        raise DashboardError(f"interval must be a number of seconds, got {interval!r}") from None
    if not math.isfinite(interval) or interval <= 0:
        raise DashboardError(f"interval must be a positive number of seconds, got {interval}")
    return interval


def typed_path(text, what: str, missing: str) -> Path:
    """A folder typed into a notebook: DashboardError when it is empty or does not exist."""
    text = str(text).strip()
    if not text:
        raise DashboardError(f"the {what} is empty")
    path = Path(text).expanduser()
    if not path.exists():
        raise DashboardError(f"{missing} at {path}")
    return path


def _locked(fn):
    @functools.wraps(fn)
    def method(self, *args, **kwargs):
        with self._lock:
            return fn(self, *args, **kwargs)

    return method


class LockedView:
    """Mixin for a view that a refresh thread and widget callbacks (the kernel's main thread) both touch: each
    method named in a class's `locked_methods` holds the view's one re-entrant lock. Create `self._lock` and
    `self._wake` before the view's own `__init__` runs."""

    locked_methods: tuple[str, ...] = ()

    def __init_subclass__(cls, **kw):
        super().__init_subclass__(**kw)
        for name in cls.__dict__.get("locked_methods", ()):
            setattr(cls, name, _locked(getattr(cls, name)))

    def _init_lock(self, wake: threading.Event | None) -> None:
        self._lock = threading.RLock()
        self._wake = wake or threading.Event()

    def _wake_when_done(self, future) -> None:
        """Wake the refresh thread as soon as a map computed elsewhere is ready."""
        future.add_done_callback(lambda f: self._wake.set())


def in_ipython() -> bool:
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    return get_ipython() is not None


_extension_loaded = False


def load_extension() -> None:
    """Panel's and HoloViews' JavaScript, once per kernel: the widget's views need Panel's models in the page."""
    global _extension_loaded
    if not _extension_loaded and in_ipython():
        pn.extension()
        _extension_loaded = True


class LiveDashboard(pn.viewable.Viewer):
    """A view (`self.view`, with `refresh()`, `panel()` and a lock) kept in step by a daemon thread.

    Subclasses build `self.view` with `self._wake`, then call `_start_refreshing(name)`, and say when they are
    `busy()` (refresh often) and `settled()` (what `wait` waits for)."""

    def __init__(self, interval: float = DEFAULT_INTERVAL, **params):
        super().__init__(**params)
        self.interval = check_interval(interval)
        self._wake = threading.Event()
        self._closed = threading.Event()
        self._thread: threading.Thread | None = None
        self._panel = None
        self._widget = None

    # -- refreshing ----------------------------------------------------------------------------------------
    def _start_refreshing(self, name: str) -> None:
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)
        self._thread.start()

    def busy(self) -> bool:
        raise NotImplementedError

    def settled(self) -> bool:
        raise NotImplementedError

    def refresh(self) -> None:
        """Read what is new now (the refresh thread does this by itself)."""
        self.view.refresh()

    def _loop(self) -> None:
        while not self._closed.is_set():
            self._wake.clear()
            try:
                self.view.refresh()
                busy = self.busy()
            except Exception:  # the view reports on itself; this thread must never die
                busy = True
            self._wake.wait(self.interval if busy else self.interval * IDLE_FACTOR)

    def _wait_settled(self, timeout: float | None, still: callable, give_up: callable = lambda: False) -> None:
        """Block until `settled()` (or `give_up()`); DashboardError(`still()`) after `timeout` seconds."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            self.refresh()
            if self.settled() or give_up():
                return
            if deadline is not None and time.monotonic() > deadline:
                raise DashboardError(f"{still()} after {timeout:g} s")
            time.sleep(min(0.2, self.interval))

    def close(self) -> None:
        """Stop refreshing (what it watches goes on; the widget keeps what it shows). The widget is not closed
        here: jupyter_bokeh's close() fails when called twice, and ipywidgets calls it again when the widget is
        collected."""
        self._closed.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    # -- display ---------------------------------------------------------------------------------------------
    def _layout(self) -> pn.viewable.Viewable:
        return self.view.panel()

    def __panel__(self) -> pn.viewable.Viewable:
        """The views as a Panel layout (built once): `pn.panel(dash)`, `pn.serve(dash)`, `dash.servable()`."""
        if self._panel is None:
            self._panel = self._layout()
        return self._panel

    @property
    def panel(self) -> pn.viewable.Viewable:
        return self.__panel__()

    @property
    def widget(self):
        """The views as one ipywidget (jupyter_bokeh's BokehModel), built once and kept in step."""
        if self._widget is None:
            load_extension()
            with self.view._lock:
                self._widget = pn.ipywidget(self.__panel__())
        return self._widget

    def _repr_mimebundle_(self, include=None, exclude=None):
        bundle = self.widget._repr_mimebundle_(include=include, exclude=exclude)
        if isinstance(bundle, dict):
            bundle["text/plain"] = repr(self)  # what a frontend without widgets (or nbconvert to text) shows
        return bundle
