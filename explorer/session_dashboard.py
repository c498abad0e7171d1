"""A β_Aug tuning session, live under a notebook cell: `watch_session(session_or_folder)` shows the app's tuning
tab for one session — each value's t-SNE map side by side, the overlap score against β_Aug with the
recommendation, the β_Aug slider over the session's values, a person's "these overlap" / "these are separated"
buttons and a Stop button — as one ipywidget, while the session trains in the background.

    from core import TrainConfig
    from core.tuning import TuningSession
    from explorer import watch_session

    s = TuningSession.create("runs/tune-digits", TrainConfig(dataset="digits", steps=300), [1, 2, 4, 16],
                             mode="branch", parallel=2)
    dash = watch_session(s)      # starts training the session in the background; returns at once
    dash                         # the dashboard
    dash.beta_aug = 4            # move the slider to a value of the session (the widget does the same)
    dash.mark("separated")       # a person's call on the selected value, saved in session.json
    dash.wait()                  # until the session has ended and every scored value's map is shown

Given a session folder (another process may train it: `python -m core tune`, the app) it watches and steers that
one — its Stop goes through the session's stop file — and trains it here only when `dash.start()` is called. The views are `explorer.tuning_view.TuningView`, refreshed by a
daemon thread, exactly as `explorer.watch` does for one run.
"""

from __future__ import annotations

import threading
from pathlib import Path

import pandas as pd
import panel as pn

from core.errors import RunError, UserError
from core.tuning import SESSION_FILE, TuningSession

from .live import DEFAULT_INTERVAL, DashboardError, LiveDashboard, LockedView, typed_path
from .projection import ProjectionService, shared_service
from .tuning_view import TuningView, session_frame

__all__ = ["watch_session", "SessionDashboard"]

ENDED = ("finished", "failed", "stopped", "interrupted")


class NotebookTuningView(LockedView, TuningView):
    """The app's tuning tab fixed on one session, with one lock around every entry point: the refresh thread and
    the widget's callbacks (kernel main thread) must not interleave."""

    locked_methods = ("open", "refresh", "_draw", "_mark", "stop_session", "_on_stop")

    def __init__(self, session_path: Path, service=None, wake: threading.Event | None = None):
        self._init_lock(wake)
        self._session_path = Path(session_path)
        super().__init__(self._session_path.parent, service)
        self.select.param.update(options={self._session_path.name: str(self._session_path)},
                                 value=str(self._session_path))

    def scan(self) -> None:  # one session only: the folder is not searched for others
        if self.session is None:
            self.open(str(self._session_path))

    def _want_map(self, value: float) -> None:
        super()._want_map(value)
        job = self.jobs.get(value)
        if job is not None:
            self._wake_when_done(job[0].future)


class SessionDashboard(LiveDashboard):
    """One tuning session's live views in a notebook. Display it (a bare `dash` in a cell), or use `.widget`
    (the ipywidget) or `.panel` (a Panel layout)."""

    def __init__(self, source, *, interval: float = DEFAULT_INTERVAL, service: ProjectionService | None = None,
                 start: bool = True, auto_refresh: bool = True):
        super().__init__(interval)
        self.path = _resolve(source)
        self.error: BaseException | None = None
        self._runner: threading.Thread | None = None
        self.view = NotebookTuningView(self.path, service or shared_service(), wake=self._wake)
        if self.view.session is None:
            raise DashboardError(self.view.alert.object or f"cannot open the session in {self.path}")
        # a TuningSession object is this kernel's to train; a folder may be another process's (which may not have
        # marked it running yet), so it is only watched unless dash.start() is called
        if start and isinstance(source, TuningSession) and self.session.data.get("state") == "created":
            self.start()
        if auto_refresh:
            self._start_refreshing(f"session {self.path.name}")

    # -- the session ---------------------------------------------------------------------------------------
    @property
    def session(self) -> TuningSession:
        """The session as last read from its file."""
        return self.view.session

    @property
    def values(self) -> list[float]:
        return self.session.values

    @property
    def state(self) -> str:
        """created, running, stopped, finished, failed or interrupted (from the session file)."""
        return _read_state(self.path)

    @property
    def recommendation(self) -> dict | None:
        """The current call: value, reason, by (score or person), final."""
        with self.view._lock:
            return self.view.session.reload().recommendation

    def scores(self) -> pd.DataFrame:
        """One row per value: state, overlap score, verdict, who made it, ACC/NMI (labels: evaluation only)."""
        with self.view._lock:
            return session_frame(self.view.session.reload())

    def start(self) -> None:
        """Train the session (or continue a stopped or interrupted one) in this kernel's background; each value
        trains in its own process, so the kernel stays free."""
        if self._runner is not None and self._runner.is_alive():
            raise DashboardError("the session is already training in this kernel")
        state = self.state
        if state == "finished":
            raise DashboardError("the session has finished: there is nothing left to train")
        if state == "running" and self._runner is None:
            raise DashboardError("the session is already training (in another process?); watch it, or stop it "
                                 "first")
        self.error = None
        self._runner = threading.Thread(target=self._train, name=f"tune {self.path.name}", daemon=True)
        self._runner.start()
        self._wake_up_soon()

    def _train(self) -> None:
        try:
            TuningSession(self.path).run(progress=False)
        except BaseException as e:  # reported by wait() and on the dashboard
            self.error = e
        finally:
            self._wake.set()

    def _wake_up_soon(self) -> None:
        """The runner writes state "running" a moment after starting: look again shortly."""
        threading.Timer(0.5, self._wake.set).start()

    def stop(self) -> None:
        """Stop the session: its runs save a checkpoint and stop; `start()` (or `tune` on the folder) continues."""
        try:
            self.view.stop_session()
        except UserError as e:
            raise DashboardError(str(e)) from None
        self._wake.set()

    # -- the slider and the marks -------------------------------------------------------------------------------
    @property
    def beta_aug(self) -> float:
        """The β_Aug value the slider is on (whose details are shown and which the mark buttons apply to)."""
        return float(self.view.slider.value)

    @beta_aug.setter
    def beta_aug(self, value: float) -> None:
        try:
            value = float(value)
        except (TypeError, ValueError):
            raise DashboardError(f"β_Aug must be a number, got {value!r}") from None
        if value not in self.values:
            raise DashboardError(f"β_Aug = {value:g} is not a value of this session "
                                 f"({', '.join(f'{v:g}' for v in self.values)})")
        with self.view._lock:
            self.view.slider.value = value  # the slider's watcher redraws, as when a person drags it

    def mark(self, verdict: str | None, value: float | None = None) -> dict | None:
        """A person's call on `value` (default: the slider's): "overlap", "separated", or None to go back to the
        score. Saved in session.json; returns the new recommendation."""
        if value is not None:
            self.beta_aug = value
        if verdict not in ("overlap", "separated", None):
            raise DashboardError(f"verdict must be 'overlap', 'separated' or None, got {verdict!r}")
        with self.view._lock:
            self.view._show_alert("")
            self.view._mark(verdict)
            if self.view.alert.visible:
                raise DashboardError(self.view.alert.object)
            return self.view.session.recommendation

    def _layout(self) -> pn.viewable.Viewable:
        return self.view.panel(chooser=False)

    def __repr__(self) -> str:
        rec = self.view.session.recommendation if self.view.session else None
        call = f", recommends {rec['value']:g}" if rec and rec.get("value") is not None else ""
        return f"SessionDashboard({str(self.path)!r}: {self.state}{call})"

    # -- refreshing and waiting ------------------------------------------------------------------------------------
    def busy(self) -> bool:
        return self.state in ("created", "running") or bool(self.view.jobs)

    def settled(self) -> bool:
        """True once the session has ended and every scored value's map is shown (or has failed)."""
        with self.view._lock:
            s = self.view.session
            if _read_state(self.path) not in ENDED or (self._runner is not None and self._runner.is_alive()):
                return False
            if self.view.jobs:
                return False
            scored = [v for v in s.values if s.entry(v).get("score") is not None]
            return all(v in self.view.maps for v in scored) or self.view.alert.visible

    def wait(self, timeout: float | None = None) -> dict | None:
        """Block until the session has ended and its maps are shown; return the recommendation. DashboardError
        when training it failed or `timeout` seconds pass first (the dashboard keeps updating meanwhile)."""
        self._wait_settled(timeout, lambda: f"{self.path.name} is still {self.state}",
                           give_up=lambda: self.error is not None)
        if self.error is not None:
            raise DashboardError(f"training the session failed: {type(self.error).__name__}: {self.error}")
        return self.recommendation

    # -- what is shown -------------------------------------------------------------------------------------------
    @property
    def shown(self) -> dict:
        """What the views show now: the state, the selected value and its details, the values whose map is drawn,
        the scores and verdicts, the recommendation, and the message on the dashboard if any."""
        with self.view._lock:
            v = self.view
            s = v.session
            rec = s.recommendation
            return {
                "session": self.path.name,
                "state": s.data.get("state"),
                "selected": float(v.slider.value),
                "detail": v.detail.object,
                "maps": sorted(v.maps),
                "computing": sorted(v.jobs),
                "map_titles": [pane.name for pane in v.map_row.objects],
                "scores": {val: s.entry(val).get("score") for val in s.values},
                "verdicts": {val: s.verdict(val) for val in s.values},
                "recommendation": rec["value"] if rec else None,
                "stop_enabled": not v.btn_stop.disabled,
                "message": v.alert.object if v.alert.visible else "",
            }


def _read_state(path: Path) -> str:
    try:
        return TuningSession(path).data.get("state", "?")
    except RunError:
        return "?"


def _resolve(source) -> Path:
    """The session folder from a TuningSession or a path; DashboardError for anything else."""
    if isinstance(source, TuningSession):
        return source.path
    if isinstance(source, (str, Path)):
        path = typed_path(source, "session folder", "no tuning session")
        if path.is_file() and path.name == SESSION_FILE:
            path = path.parent
        if not (path / SESSION_FILE).is_file():
            raise DashboardError(f"{path} is not a tuning session folder (no {SESSION_FILE}): create one with "
                                 "TuningSession.create(...) or `python -m core tune`")
        try:
            TuningSession(path)
        except RunError as e:
            raise DashboardError(str(e)) from None
        return path
    raise DashboardError(f"watch_session() takes a TuningSession or a session folder, not {type(source).__name__}")


def watch_session(source, *, interval: float = DEFAULT_INTERVAL, service: ProjectionService | None = None,
                  start: bool = True) -> SessionDashboard:
    """A live dashboard of a β_Aug tuning session: `source` is a `TuningSession` or its folder. A `TuningSession`
    that has not trained yet starts training in the background (unless `start=False`); a folder is watched (another
    process may be training it; `dash.start()` trains or continues it here). Returns at once; show the result in a
    cell."""
    return SessionDashboard(source, interval=interval, service=service, start=start)
