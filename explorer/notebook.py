"""Live dashboards in Jupyter: `watch(trainer_or_run_dir)` shows a run's curves, its t-SNE/UMAP map of Z, Z_c or
Z_s, its confusion matrix and a β_Aug slider under a cell, while the run trains in the background.

    from core import Trainer, TrainConfig
    from explorer import watch

    dash = watch(Trainer(TrainConfig(dataset="digits", run_dir="runs/nb")))   # starts training; returns at once
    dash                        # the dashboard, as an ipywidget (also works for a run another process writes)
    dash.beta_aug = 3.0         # steer the running trainer (the slider does the same)
    dash.stop()                 # or the "Stop run" button
    dash.wait()                 # block until the run has ended and its last map is shown; returns the summary

The views are the explorer app's own (`explorer.app.RunView`), turned into one ipywidget by `pn.ipywidget`
(jupyter_bokeh), so the notebook and the app show the same thing. A daemon thread refreshes them from the run
directory, the same way for a Trainer in this kernel and for a run another process writes, so the kernel stays free
and the dashboard keeps moving even while a cell blocks (`dash.wait()`, `trainer.join()`).
"""

from __future__ import annotations

import math
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd

from core.errors import ConfigError, UserError
from core.rundir import Run

from . import launcher, viewdata
from .app import RunView
from .live import DEFAULT_INTERVAL, DashboardError, LiveDashboard, LockedView, typed_path
from .projection import KINDS, ProjectionService, shared_service
from .runs import read_run_info

__all__ = ["watch", "Dashboard", "DashboardError"]


class NotebookRunView(LockedView, RunView):
    """The app's RunView with two changes for a notebook.

    With a Trainer of this kernel, β_Aug and Stop go to the trainer directly (`set_beta_aug`, `stop`), so they need
    no file round trip; otherwise they go through the run's control.json as in the app. And every entry point
    (the periodic refresh, widget callbacks from the browser, calls from cells) holds one lock, because the refresh
    runs in a background thread while widget callbacks run in the kernel's main thread.
    """

    background_reads = False  # refresh runs on the dashboard's own thread already

    locked_methods = ("refresh", "set_run", "_on_beta", "_on_stop", "_draw_curves", "_want_map", "_show_scatter",
                      "_on_snapshot_slider", "_follow_latest", "_on_select", "names_changed", "select_rows")

    def __init__(self, service=None, trainer=None, wake: threading.Event | None = None, **params):
        self._init_lock(wake)
        self.trainer = trainer
        super().__init__(service, **params)

    # -- steering ------------------------------------------------------------------------------------------
    def has_beta_aug(self) -> bool:
        if self.trainer is not None:
            return "beta_aug" in self.trainer.method.live_settings
        return super().has_beta_aug()

    def steer_beta_aug(self, value: float) -> None:
        """Send a new β_Aug to the running trainer; DashboardError (with the reason) when that cannot be done."""
        with self._lock:
            try:
                value = float(value)
            except (TypeError, ValueError):
                raise DashboardError(f"β_Aug must be a number, got {value!r}") from None
            if not math.isfinite(value) or value < 0:
                raise DashboardError(f"β_Aug must be a finite number ≥ 0, got {value}")
            if not self.has_beta_aug():
                raise DashboardError(f"{Path(self.run_path).name} is a {self._method().upper()} run: it has no "
                                     "β_Aug to steer")
            if self.trainer is not None:
                if not self.trainer.running:
                    raise DashboardError("the trainer is not running: β_Aug can only be changed while it trains")
                try:
                    self.trainer.set_beta_aug(value)
                except ConfigError as e:
                    raise DashboardError(str(e)) from None
                where = "the trainer applies it from the step after its next record"
            else:
                state = read_run_info(Path(self.run_path)).state
                if state != "running" or self.run is None:
                    raise DashboardError(f"the run is {state}: β_Aug can only be changed while it trains")
                try:
                    self.run.set_beta_aug(value)
                except ConfigError as e:
                    raise DashboardError(str(e)) from None
                except OSError as e:
                    raise DashboardError(f"could not write control.json: {e}") from None
                where = "the run applies it from the step after its next record"
            self._sent_beta(value)
            if value > self.beta.end:
                self.beta.end = float(np.ceil(value))
            self.beta.value = value  # shows what was sent; the records confirm it once the trainer has applied it
            self._alert(f"β_Aug → {value:g}: sent; {where}", "info")
            self._wake.set()

    def request_stop(self) -> None:
        """Stop the run after its current step, with a checkpoint."""
        with self._lock:
            if self.trainer is not None:
                if not self.trainer.running:
                    raise DashboardError("the trainer is not running: there is nothing to stop")
                self.trainer.stop("stopped from the notebook")
            else:
                state = read_run_info(Path(self.run_path))
                if not state.live:  # a stop request left in control.json would stop the run when resumed
                    raise DashboardError(f"the run is {state.state}: there is nothing to stop")
                try:
                    launcher.stop(self.run_path)
                except (OSError, RunError) as e:
                    raise DashboardError(f"could not stop the run: {e}") from None
            self._alert("stop requested: the run saves a checkpoint and stops", "info")
            self._wake.set()

    def _on_beta(self, event):
        try:
            self.steer_beta_aug(event.new)
        except DashboardError as e:
            self._alert(str(e), "warning")

    def _on_stop(self, event):
        if not self.confirm_stop():  # the button asks for a second click, as in the app
            return
        try:
            self.request_stop()
        except DashboardError as e:
            self._alert(str(e), "danger")

    def _method(self) -> str:
        if self.trainer is not None:
            return self.trainer.config.method
        return (self.run.config.get("settings", {}).get("method", "") if self.run is not None else "") or "?"

    # -- views ---------------------------------------------------------------------------------------------
    def _show_status(self):
        super()._show_status()
        if self.trainer is not None:  # the thread knows better than status.json whether it still trains
            self.beta.disabled = not self.trainer.running
            self.stop_btn.disabled = not self.trainer.running
        if not self.has_beta_aug():
            self.beta.visible = False

    def _want_map(self):
        job = self.map_job
        if job is not None and not job.future.done():
            # One map at a time: when it arrives, _poll_map asks again for whatever is shown by then. (The app
            # cancels the queued map instead, and a cancelled future makes the service's callback print a
            # traceback, which would land in the notebook's output.)
            return
        super()._want_map()
        if self.map_job is not None:
            self._wake_when_done(self.map_job.future)
            self._wake.set()


class Dashboard(LiveDashboard):
    """One run's live views in a notebook. Display it (a bare `dash` in a cell) or use `.widget` (the ipywidget)
    inside other ipywidgets; `.panel` is the same as a Panel layout (for `pn.serve` or a Panel app).

    The refresh thread reads what is new in the run directory every `interval` seconds while the run is live or
    a map is being computed, and now and then after that (the run may be resumed)."""

    def __init__(self, source, *, interval: float = DEFAULT_INTERVAL, service: ProjectionService | None = None,
                 start: bool = True, auto_refresh: bool = True):
        super().__init__(interval)
        self.trainer, self.run_dir = _resolve(source)
        self.view = NotebookRunView(service or shared_service(), trainer=self.trainer, wake=self._wake)
        if self.trainer is not None and start and not self.trainer.started:
            self.trainer.start()
        self.view.set_run(str(self.run_dir))
        if auto_refresh:
            self._start_refreshing(f"dashboard {self.run_dir.name}")

    # -- what it is ------------------------------------------------------------------------------------------
    def __repr__(self) -> str:
        info = self.view.info
        if info is None:
            return f"Dashboard({str(self.run_dir)!r})"
        total = f"/{info.total_steps}" if info.total_steps else ""
        return f"Dashboard({str(self.run_dir)!r}: {info.state}, step {info.step}{total})"

    @property
    def run(self) -> Run | None:
        """The run directory as `core.Run` (None while a launched run has not written its config yet)."""
        return self.view.run

    @property
    def state(self) -> str:
        """starting, running, finished, stopped, interrupted, failed (as the run list of the app says)."""
        return read_run_info(self.run_dir).state

    @property
    def live(self) -> bool:
        """Whether the run is still training (or about to start)."""
        if self.trainer is not None:
            return self.trainer.running or not self.trainer.started
        return read_run_info(self.run_dir).live

    # -- steering ----------------------------------------------------------------------------------------------
    @property
    def beta_aug(self) -> float | None:
        """β_Aug in force: the trainer's own value in this kernel, else the latest record's (None for DCSM)."""
        if self.trainer is not None:
            return self.trainer.beta_aug if self.view.has_beta_aug() else None
        self.refresh()
        with self.view._lock:
            last = self.view.curves.last("beta_aug")
            if last is None and self.run is not None:
                last = self.run.config.get("settings", {}).get("beta_aug")
            return last

    @beta_aug.setter
    def beta_aug(self, value: float) -> None:
        self.view.steer_beta_aug(value)

    def stop(self, wait: bool = False, timeout: float | None = None) -> dict | None:
        """Stop the run after its current step (it writes a checkpoint); with `wait`, return its summary once it has
        stopped."""
        self.view.request_stop()
        return self.wait(timeout) if wait else None

    def show_map(self, space: str | None = None, kind: str | None = None, colour: str | None = None,
                 step: int | None = None, wait: bool = True, timeout: float = 300.0) -> dict | None:
        """Choose what the map shows, as its buttons and the snapshot slider do: `space` Z, Z_c or Z_s, `kind`
        t-SNE or UMAP, `colour` cluster, label or confidence, `step` a snapshot (None: keep following the latest).
        With `wait`, return once that map is drawn (what `shown["map"]` then says)."""
        v = self.view
        with v._lock:
            for value, allowed, what in ((space, viewdata.SPACES, "space"), (kind, KINDS, "kind"),
                                         (colour, viewdata.COLOUR_BY, "colour")):
                if value is not None and value not in allowed:
                    raise DashboardError(f"unknown map {what} {value!r}; choose one of {', '.join(allowed)}")
            if step is not None and step not in v.snap_steps:
                have = f"{v.snap_steps[0]}–{v.snap_steps[-1]}" if v.snap_steps else "none yet"
                raise DashboardError(f"no snapshot at step {step} (snapshots: {len(v.snap_steps)}, steps {have})")
            if colour == "label" and (v.probe is None or v.probe.labels is None):
                raise DashboardError("this run has no labels to colour by")
            if space is not None:
                v.space.value = space
            if kind is not None:
                v.kind.value = kind
            if colour is not None:
                v.colour.value = colour
            if step is not None:
                v.follow.value = step == v.snap_steps[-1]
                v.snap_slider.value = step
        if not wait:
            return None
        deadline = time.monotonic() + timeout
        while True:
            self.refresh()
            with v._lock:
                want = v.snapshot is not None and v.run is not None and v.shown_key == (
                    str(v.run.path), v.space.value, v.kind.value, v.snapshot.step)
                if want and v.map_job is None:
                    return self.shown["map"]
                failed = v.map_job is None and v.alert.visible and "map failed" in v.alert.object
            if failed:
                raise DashboardError(v.alert.object)
            if time.monotonic() > deadline:
                raise DashboardError(f"the map was not ready after {timeout:g} s")
            time.sleep(0.2)

    # -- refreshing ------------------------------------------------------------------------------------------
    def busy(self) -> bool:
        return self.view.info is None or self.view.info.live or self.view.map_job is not None

    def settled(self) -> bool:
        """True once the run has ended and the views show its end (last records, last snapshot and its map)."""
        with self.view._lock:
            v = self.view
            if v.info is None or v.info.live or (self.trainer is not None and self.trainer.running):
                return False
            if v.run is not None and v.run.snapshot_steps() and v.snapshot is None:
                return False
            return v.map_job is None

    def wait(self, timeout: float | None = None) -> dict | None:
        """Block until the run has ended and the dashboard shows its end; return the run's summary.

        DashboardError when the run failed or `timeout` seconds pass first. The dashboard keeps updating meanwhile
        (it refreshes in its own thread)."""
        if self.trainer is not None and not self.trainer.started:
            raise DashboardError("the trainer has not been started: call dash.trainer.start() first")
        self._wait_settled(timeout, lambda: f"{self.run_dir.name} is still {self.state}")
        info = self.view.info
        if info.state in ("failed", "broken", "interrupted"):
            raise DashboardError(f"{self.run_dir.name} {info.state}: {info.message or 'no message'}")
        return self.run.summary() if self.run is not None else None

    # -- what is shown (for assertions and for reading it in code) --------------------------------------------
    @property
    def shown(self) -> dict:
        """What the views show right now: state and progress, the curves (points per panel), β_Aug on the slider,
        the snapshot shown and its map (kind, space, step), and the message on the run if any."""
        with self.view._lock:
            v = self.view
            info = v.info
            snap = v.snapshot
            return {
                "run": self.run_dir.name,
                "state": info.state if info else "unknown",
                # status.json is rewritten every ~10 s only; the records say where the run is now
                "step": max(info.step if info else 0, int(v.curves.last("step") or 0)),
                "total_steps": info.total_steps if info else None,
                "records": v.curves.n,
                "curves": {title: len(pipe.data) for title, pipe in v.curve_pipes.items()},
                "beta_aug": v.beta.value if v.beta.visible else None,
                "snapshot_step": snap.step if snap is not None else None,
                "snapshot_acc": snap.metrics.get("acc") if snap is not None else None,
                "map": {"kind": v.shown_key[2], "space": v.shown_key[1], "step": v.shown_key[3]}
                if v.shown_key else None,
                "map_points": len(v.scatter_pipe.data) if v.scatter_pipe is not None else 0,
                "confusion": v.confusion_pane.object is not None,
                "message": v.alert.object if v.alert.visible else "",
            }

    def confusion(self) -> pd.DataFrame | None:
        """The confusion matrix the dashboard shows (classes × clusters, aligned by Hungarian matching), or None
        for a run without labels or without a snapshot yet."""
        with self.view._lock:
            if self.view.snapshot is None:
                return None
            conf = viewdata.confusion_view(self.view.snapshot, self.view.probe)
        if conf is None:
            return None
        return pd.DataFrame(conf.matrix, index=conf.class_names, columns=conf.cluster_names)

    def metrics(self) -> pd.DataFrame:
        """The training records the curves are drawn from, one row per logged step."""
        with self.view._lock:
            return self.view.curves.to_frame()


def _resolve(source) -> tuple[object | None, Path]:
    """(trainer or None, run directory) from a Trainer, a core.Run or a path; DashboardError for anything else."""
    from core.trainer import Trainer

    if isinstance(source, Trainer):
        return source, Path(source.run_dir)
    if isinstance(source, Run):
        return None, source.path
    if isinstance(source, (str, Path)):
        path = typed_path(source, "run directory", "no run directory")
        if not path.is_dir():
            raise DashboardError(f"{path} is a file, not a run directory")
        if not (path / "config.json").is_file() and not (path / "launch.json").is_file():
            raise DashboardError(f"{path} is not a run directory (no config.json): give a run's folder, such as "
                                 "runs/<name>")
        return None, path
    raise DashboardError(f"watch() takes a Trainer, a core.Run or a run directory, not {type(source).__name__}")


def watch(source, *, interval: float = DEFAULT_INTERVAL, service: ProjectionService | None = None,
          start: bool = True) -> Dashboard:
    """A live dashboard of a run: `source` is a `core.Trainer` (started here unless `start=False`; steered
    directly) or a run directory another process writes (steered through its control.json). Returns at once;
    show the result in a cell."""
    return Dashboard(source, interval=interval, service=service, start=start)
