"""The explorer app: pick or start a run, watch its curves and its embedding form, steer β_Aug.

`create_app(runs="runs")` builds one page (one per browser session). `apps/explorer_app.py` is the `panel serve`
entry point and `python -m explorer` serves it on 127.0.0.1.
"""

from __future__ import annotations

import ipaddress
import time
import traceback
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import holoviews as hv
import numpy as np
import pandas as pd
import panel as pn
import param

from core.errors import RunError, UserError
from core.rundir import Run

from . import images, launcher, viewdata, views
from .curves import READ_CACHE, Chunk, CurveStore, read_chunk, read_chunk_kept
from .clickable import ClickableHTML
from .doc_batch import batched_changes
from .export_panel import ExportPanel
from .projection import KINDS, shared_service
from .runs import RunInfo, RunsFolder

POLL_MS = 1000
NEIGHBOURS = 16  # a single selected image shows this many nearest images
PAGE = 100  # images a page of the selection grid shows
STOP_CONFIRM_S = 5.0  # "Stop run" asks for a second click within this many seconds
# While the page follows a training run, the map worker rests after each map three times as long as the map took:
# it computes at most a quarter of the time (docs/explorer.md, "Watching costs the run little"). The snapshot views
# (slider, confusion, gallery, selection) move on with the map, not with every snapshot written, and a live run's
# curves are drawn again only after a rest: each redraw costs the server and the browser CPU that the run needs.
FOLLOW_REST = 3.0
LIVE_CURVES_S, LIVE_CURVES_REST = 5.0, 20.0  # and at least 20 times as long as the last redraw took
SIDEBAR_WIDTH = 330
# More unread metrics than this are read and parsed on a thread (the 84 MB of a 200,000-record run took a minute and
# held up every session of the server when read on its event loop); smaller increments are read on the loop.
BACKGROUND_BYTES = 1 << 20
_READER = ThreadPoolExecutor(max_workers=2, thread_name_prefix="metrics-reader")


@dataclass
class MetricsJob:
    """A read of metrics.jsonl on the reader thread, for one view and one run."""

    future: Future
    nbytes: int


def _message(kind: str, text: str) -> str:
    return f"**{kind}:** {text}" if text else ""


class RunView(param.Parameterized):
    """Everything shown for one run: status, β_Aug, curves, embedding, confusion matrix, gallery, selection."""

    run_path = param.String(default=None, allow_None=True)

    def __init__(self, service=None, compact: bool = False, name_suffix: str = "", **params):
        super().__init__(**params)
        self.service = service or shared_service()
        self.compact = compact
        sfx = name_suffix
        self.status_md = pn.pane.Markdown("Pick a run on the left, or start one.", css_classes=[f"run-status{sfx}"],
                                          sizing_mode="stretch_width")
        self.alert = pn.pane.Alert("", alert_type="warning", visible=False, css_classes=[f"run-alert{sfx}"],
                                   sizing_mode="stretch_width")
        self.beta = pn.widgets.FloatSlider(label="β_Aug (a running run applies it after its next record)", start=0.0,
                                           end=10.0, step=0.5, value=2.0, disabled=True,
                                           css_classes=[f"beta-slider{sfx}"], width=320)
        self.stop_btn = pn.widgets.Button(label="Stop run", color="danger", disabled=True,
                                          css_classes=[f"stop-btn{sfx}"], width=100)
        self.x_axis = pn.widgets.RadioButtonGroup(label="x", options={"step": "step", "time (s)": "time",
                                                                      "epoch": "epoch"}, value="step",
                                                  css_classes=[f"x-axis{sfx}"])
        self.smoothing = pn.widgets.FloatSlider(label="smoothing", start=0.0, end=0.99, step=0.01, value=0.6,
                                                css_classes=[f"smoothing{sfx}"], width=200)
        self.kind = pn.widgets.RadioButtonGroup(options=list(KINDS), value="t-SNE", css_classes=[f"proj-kind{sfx}"])
        self.space = pn.widgets.RadioButtonGroup(options=list(viewdata.SPACES), value="Z",
                                                 css_classes=[f"proj-space{sfx}"])
        self.colour = pn.widgets.RadioButtonGroup(options=list(viewdata.COLOUR_BY), value="cluster",
                                                  css_classes=[f"colour-by{sfx}"])
        self.snap_slider = pn.widgets.DiscreteSlider(label="snapshot step", options=[0], value=0, disabled=True,
                                                     css_classes=[f"snapshot-slider{sfx}"], width=320)
        self.follow = pn.widgets.Checkbox(label="follow the latest snapshot", value=True,
                                          css_classes=[f"follow{sfx}"])
        self.map_status = pn.pane.Markdown("", css_classes=[f"map-status{sfx}"], sizing_mode="stretch_width")
        self.spinner = pn.indicators.LoadingSpinner(value=False, size=20, width=20, height=20, visible=False)
        self.legend = ClickableHTML("", css_classes=[f"map-legend{sfx}"], width=170)  # a click selects an entry
        self.scatter_pane = pn.pane.HoloViews(None, css_classes=[f"scatter{sfx}"], sizing_mode="stretch_width",
                                              min_height=300, linked_axes=False)
        self.curve_box = pn.Column(sizing_mode="stretch_width", css_classes=[f"curves{sfx}"])
        self.curve_note = pn.pane.Markdown("", css_classes=[f"curve-note{sfx}"], sizing_mode="stretch_width")
        self.confusion_pane = pn.pane.HoloViews(None, sizing_mode="stretch_width", css_classes=[f"confusion{sfx}"],
                                                linked_axes=False)
        self.gallery_pane = ClickableHTML("", sizing_mode="stretch_width", css_classes=[f"gallery{sfx}"])
        self.selection_pane = ClickableHTML(views.selection_html(pd.DataFrame(), np.zeros(0), 0),
                                            sizing_mode="stretch_width", css_classes=[f"selection{sfx}"])
        self.sel_prev = pn.widgets.Button(label="◀ previous", width=100, visible=False,
                                          css_classes=[f"selection-prev{sfx}"])
        self.sel_next = pn.widgets.Button(label="next ▶", width=100, visible=False,
                                          css_classes=[f"selection-next{sfx}"])
        self.sel_prev.on_click(lambda e: self.page_selection(-1))
        self.sel_next.on_click(lambda e: self.page_selection(+1))
        self.legend.on_pick(self.select_legend_entry)
        self.gallery_pane.on_pick(self.select_gallery_row)
        self.selection_pane.on_pick(self.select_grid_image)
        self.export = ExportPanel(self, sfx)
        self.beta.param.watch(self._on_beta, "value_throttled")
        self.stop_btn.on_click(self._on_stop)
        for w in (self.x_axis, self.smoothing):
            w.param.watch(lambda e: self._draw_curves(), "value")
        for w in (self.kind, self.space):
            w.param.watch(lambda e: self._want_map(), "value")
        self.colour.param.watch(lambda e: self._show_scatter(), "value")
        self.snap_slider.param.watch(self._on_snapshot_slider, "value")
        self.follow.param.watch(lambda e: e.new and self._follow_latest(), "value")
        self._reset()

    # -- state ---------------------------------------------------------------------------------------------
    def _reset(self):
        self.run: Run | None = None
        self.info: RunInfo | None = None
        self.tail = None
        self.curves = CurveStore()  # the train records as columns, the set records (β_Aug changes) as dicts
        self._metrics_job: MetricsJob | None = None  # a large read of metrics.jsonl on the reader thread
        self.curve_note.object = ""
        self.groups: list[tuple[str, list[str]]] = []
        self.curve_pipes: dict[str, hv.streams.Pipe] = {}
        self.rule_pipe: hv.streams.Pipe | None = None
        self.snap_steps: list[int] = []
        self.snapshot = None
        self.probe = None
        self.thumbs = None
        self.scatter_pipe = None
        self.confusion_pipe: hv.streams.Pipe | None = None  # (matrix, class names, cluster names) of the shown snapshot
        self.scatter_maps: dict[str, hv.DynamicMap] = {}
        self.map_job = None
        self.shown_key = None
        self._next_follow_map = 0.0  # monotonic time before which a followed training run's next map waits
        self._map_held = False  # a map waits for the worker's rest to end
        self.selected: list[int] = []
        self.sel_first = 0  # the place in the selection of the grid page's first image
        self.confusion = None  # the confusion view shown (its cells can be clicked)
        self.cluster_names: dict[int, str] = {}  # names a person gave clusters (RUN/cluster_names.json)
        self._stop_armed_at: float | None = None
        self.panels = viewdata.panels(None)
        self._beta_seen: float | None = None  # β_Aug the run is at, by its records
        self._beta_sent: float | None = None  # a value this page sent that the run has not taken yet
        self._records_since_sent = 0
        self._curves_dirty = False
        self._next_curves = 0.0  # monotonic time before which a live run's curves are not drawn again

    # The records, as they were kept before the curve store: dicts (slow for a long run; notebooks and tests).
    @property
    def records(self) -> list[dict]:
        return self.curves.records()

    @property
    def set_records(self) -> list[dict]:
        return self.curves.set_records

    def set_run(self, path: str | None):
        if path == self.run_path and self.run is not None:
            return
        self.run_path = path
        self._reset()
        self.follow.value = True
        self.snap_slider.param.update(options=[0], value=0, disabled=True)  # the new run's steps come with it
        self.stop_btn.param.update(label="Stop run", color="danger")
        self.export.reset()
        self.curve_box.objects = []
        self.scatter_pane.object = None
        self.confusion_pane.object = None
        self.gallery_pane.object = ""
        self.selection_pane.object = views.selection_html(pd.DataFrame(), np.zeros(0), 0)
        self.map_status.object = ""
        self._alert("")
        if path:
            self.refresh()

    def _alert(self, text: str, kind: str = "warning"):
        self.alert.object = text
        self.alert.alert_type = kind
        self.alert.visible = bool(text)

    # -- periodic refresh -----------------------------------------------------------------------------------
    def refresh(self, info: RunInfo | None = None):
        """Read what is new in the run and update the views; every failure becomes a message on this run."""
        if not self.run_path:
            return
        try:
            self._refresh(info)
        except Exception as e:  # never let one run's damage break the page
            self._alert(f"{type(e).__name__}: {e}", "danger")
            traceback.print_exc()

    def _refresh(self, info: RunInfo | None):
        from .runs import read_run_info

        self.info = info or read_run_info(Path(self.run_path))
        self._show_status()
        if self.info.state == "broken":
            return  # its message is shown; nothing more can be read from it
        if self.run is None:
            if not (Path(self.run_path) / "config.json").is_file():
                return  # still starting (or failed before writing anything): the status says which
            self.run = Run(self.run_path)
            self.cluster_names = self.run.cluster_names()
            self.panels = viewdata.panels(self.run.method)
            self.tail = self.run.tail()
        self._read_metrics()
        self._redraw_curves()
        self._update_snapshots()
        self._poll_map()
        self._disarm_stop_after_timeout()
        self.export.poll()
        self.export.update()

    # -- reading metrics ----------------------------------------------------------------------------------------
    # Set False where refresh already runs on a thread of its own (the notebook dashboard).
    background_reads = True

    def _read_metrics(self):
        """Add what is new in metrics.jsonl to the curve store: a small increment at once, a large one (a long run
        just opened) on the reader thread, one read at a time per view; its curves are drawn when it is done."""
        job = self._metrics_job
        if job is not None:
            if job.future.done():
                self._take_metrics(job)
            return  # the tail is the reader's until its read is taken
        unread = self.tail.unread_bytes()
        if unread > BACKGROUND_BYTES:
            kept = READ_CACHE.take(self.tail)  # another page of this server has parsed this file already
            if kept is not None:
                self._add_chunk(kept)
                unread = self.tail.unread_bytes()
        if self.background_reads and unread > BACKGROUND_BYTES:
            self._start_metrics_job(unread)
            return
        self._add_chunk(read_chunk_kept(self.tail) if unread > BACKGROUND_BYTES else read_chunk(self.tail))

    def _start_metrics_job(self, nbytes: int):
        doc = pn.state.curdoc
        job = self._metrics_job = MetricsJob(_READER.submit(read_chunk_kept, self.tail), nbytes)
        self.curve_note.object = f"reading metrics ({nbytes / 1e6:,.0f} MB)…"
        if doc is not None and doc.session_context is not None:
            # draw as soon as it is read, on this session's document (the periodic refresh would take it too)
            job.future.add_done_callback(lambda f: self._schedule_on(doc, partial(self._metrics_read, job)))

    @staticmethod
    def _schedule_on(doc, callback):
        """Run `callback` on the event loop, holding the document's lock, with `doc` as Panel's current document
        (called from the reader thread: Bokeh's add_next_tick_callback is the thread-safe way in)."""
        from panel.io.state import set_curdoc

        try:
            with set_curdoc(doc):
                pn.state.execute(callback, schedule=True)
        except Exception:  # the session has gone meanwhile
            traceback.print_exc()

    def _metrics_read(self, job: MetricsJob):
        if job is not self._metrics_job:
            return  # another run was picked meanwhile, or the tick took it first
        if not pn.state.loaded:
            # the browser is still building the page: plots added now were seen never to appear (one page in two
            # when two opened together); the page's first tick, at load, takes the read instead
            return
        try:
            self._take_metrics(job)
            self._redraw_curves()
        except Exception as e:
            self._alert(f"{type(e).__name__}: {e}", "danger")
            traceback.print_exc()

    def _take_metrics(self, job: MetricsJob):
        self._metrics_job = None
        self.curve_note.object = ""
        self._add_chunk(job.future.result())

    def _add_chunk(self, chunk: Chunk):
        self.curves.add(chunk)
        if chunk.restarted:  # a resumed run rewrote its metrics: new plots
            self.groups, self.curve_box.objects = [], []
        if chunk.n or chunk.others or chunk.restarted:
            self._curves_dirty = True
            self._track_beta(chunk)
        if self.tail.skipped:
            self._alert(f"{self.info.name}: {self.tail.skipped} damaged line(s) in metrics.jsonl were skipped")

    def _redraw_curves(self):
        if not self._curves_dirty:
            return
        if self._run_is_live() and self.groups and time.monotonic() < self._next_curves:
            return  # a live run's new records wait a little: one redraw for several records
        t0 = time.monotonic()
        self._draw_curves()
        self._curves_dirty = False  # stays set if drawing fails, so the next tick tries again
        took = time.monotonic() - t0
        self._next_curves = t0 + took + max(LIVE_CURVES_S, LIVE_CURVES_REST * took)

    def _show_status(self):
        i = self.info
        progress = f"step {i.step:,}" + (f" of {i.total_steps:,}" if i.total_steps else "")
        if i.state == "running":  # from the training time and step of its latest record
            eta = viewdata.eta_text(self.curves.last("step") or 0, i.total_steps, self.curves.last("time"))
            progress += f" · {eta}" if eta else ""
        colour = {"running": "#2e7d32", "starting": "#f9a825", "finished": "#1565c0", "stopped": "#6d4c41",
                  "interrupted": "#6d4c41", "failed": "#c62828", "broken": "#c62828"}.get(i.state, "#555")
        badge = (f'<span class="state-badge" style="background:{colour};color:white;border-radius:4px;'
                 f'padding:1px 6px">{i.state}</span>')
        text = f"### {i.name}\n{badge} · {progress}"
        if i.method:
            text += f" · {i.method.upper()} on {Path(i.dataset).name}"
        if i.settings.get("schedule"):
            text += f" · schedule {i.settings['schedule']}"
        if i.message:
            text += f"\n\n{i.message}"
        self.status_md.object = text
        live = i.state == "running"
        self.beta.disabled = not live or not self.has_beta_aug()
        self.stop_btn.disabled = not i.live
        if i.state in ("failed", "broken"):
            self._alert(i.message or i.state, "danger")

    # -- curves ---------------------------------------------------------------------------------------------
    def _draw_curves(self):
        if not self.curves.n:
            return
        groups = self.curves.groups(self.panels)
        labels = viewdata.curve_labels(self.panels)
        x = self.x_axis.value
        xlabel = {"step": "step", "time": "training time (s)", "epoch": "epoch"}[x]
        # at most curves.MAX_POINTS points a line (the extremes of each stretch kept): a long run stays light
        frames = {title: self.curves.frame(metrics, x=x, labels=labels,
                                           smoothing=0.0 if title.startswith("Accuracy") else self.smoothing.value)
                  for title, metrics in groups}
        changes = viewdata.setting_changes(self.curves.set_records, x=x)  # β_Aug changes: a rule on every panel
        if groups != self.groups or getattr(self, "_xlabel", None) != xlabel:
            # a new set of lines: new plots (an overlay keeps the lines it was first drawn with)
            self.groups, self._xlabel = groups, xlabel
            self.curve_pipes = {title: hv.streams.Pipe(data=frames[title]) for title, _ in groups}
            self.rule_pipe = hv.streams.Pipe(data=changes)
            height = 170 if self.compact else 200
            self.curve_box.objects = [
                pn.pane.HoloViews(views.curves_map(self.curve_pipes[t], t, xlabel, height, rules=self.rule_pipe),
                                  linked_axes=False, sizing_mode="stretch_width") for t, _ in groups]
            return
        for title, _ in groups:
            self.curve_pipes[title].send(frames[title])
        if not changes.equals(self.rule_pipe.data):
            self.rule_pipe.send(changes)

    # -- β_Aug ----------------------------------------------------------------------------------------------
    def has_beta_aug(self) -> bool:
        """Whether the run has a β_Aug to steer (DCCS does; DCSM has no augmentation weight)."""
        if self.run is None:
            return True  # not known yet: a run still starting
        return "beta_aug" in self.run.live_settings

    def _track_beta(self, chunk: Chunk) -> None:
        """Show the β_Aug the run is at, whoever changed it. A value this page sent is shown until the run has
        taken it (its `set` record, or a record that it ignored the request) or two records have passed without
        it (the run takes a request at its next record)."""
        beta = chunk.columns.get("beta_aug")
        done = 0  # train records of the chunk gone through, in file order with its other records
        for before, r in [*chunk.others, (chunk.n, None)]:
            if before > done:
                if beta is not None:
                    known = np.flatnonzero(~np.isnan(beta[done:before]))
                    if len(known):
                        self._beta_seen = float(beta[done + known[-1]])
                self._records_since_sent += before - done
                done = before
            if r is None:
                break
            kind = r.get("kind")
            if kind == "set" and r.get("setting") == "beta_aug":
                self._beta_seen, self._beta_sent = float(r["value"]), None
            elif kind == "event" and r.get("event") == "control_ignored":
                self._beta_sent = None
        if self._beta_sent is not None and self._records_since_sent >= 2:
            self._beta_sent = None
        if self._beta_sent is None and self._beta_seen is not None:
            if self._beta_seen > self.beta.end:
                self.beta.end = float(np.ceil(self._beta_seen))
            self.beta.value = self._beta_seen

    def _sent_beta(self, value: float) -> None:
        if value != self._beta_seen:
            self._beta_sent, self._records_since_sent = value, 0

    def _on_beta(self, event):
        if self.run is None or self.info is None or self.info.state != "running":
            return
        try:
            self.run.set_beta_aug(float(event.new))
            self._sent_beta(float(event.new))
            self._alert(f"β_Aug → {event.new:g}: sent; the run applies it from the step after its next record",
                        "info")
        except (OSError, UserError) as e:
            self._alert(f"could not send β_Aug: {e}", "danger")

    def _on_stop(self, event):
        if not self.run_path:
            return
        if not self.confirm_stop():
            return
        try:
            launcher.stop(self.run_path)
            self._alert("stop requested: the run saves a checkpoint and stops", "info")
        except (OSError, RunError) as e:
            self._alert(f"could not stop the run: {e}", "danger")

    def confirm_stop(self) -> bool:
        """The first click arms "Stop run" (it asks for a second click); a second click within STOP_CONFIRM_S
        seconds stops. True when the run should stop now."""
        now = time.monotonic()
        if self._stop_armed_at is not None and now - self._stop_armed_at <= STOP_CONFIRM_S:
            self._stop_armed_at = None
            self.stop_btn.param.update(label="Stop run", color="danger")
            return True
        self._stop_armed_at = now
        self.stop_btn.param.update(label="Click again to stop", color="warning")
        return False

    def _disarm_stop_after_timeout(self):
        if self._stop_armed_at is not None and time.monotonic() - self._stop_armed_at > STOP_CONFIRM_S:
            self._stop_armed_at = None
            self.stop_btn.param.update(label="Stop run", color="danger")

    # -- snapshots and the map --------------------------------------------------------------------------------
    def _update_snapshots(self):
        steps = self.run.snapshot_steps()
        if not steps:
            self.snap_steps = steps
            self.map_status.object = ("no snapshot yet: the first comes with the run's first evaluation"
                                      if self._run_is_live() else "this run has no snapshot")
            return
        if steps == self.snap_steps:
            if self.snapshot is None:
                self._load_snapshot(self.snap_slider.value)
            return
        if self.snapshot is not None and self._following_training() and self._map_cycle_busy():
            return  # the newer snapshot is shown with its map, when the worker is free (slider and views too)
        self.snap_steps = steps
        value = steps[-1] if (self.follow.value or self.snap_slider.value not in steps) else self.snap_slider.value
        self.snap_slider.param.update(options=steps, value=value, disabled=len(steps) < 2)
        if self.snapshot is None or self.snapshot.step != value:
            self._load_snapshot(value)

    def _follow_latest(self):
        if self.snap_steps:
            self.snap_slider.value = self.snap_steps[-1]

    def _on_snapshot_slider(self, event):
        if self.run is None or event.new not in self.snap_steps:
            return
        if self.snap_steps and event.new != self.snap_steps[-1] and self.follow.value:
            self.follow.value = False  # the person went back in time: stop following
        if self.snapshot is None or self.snapshot.step != event.new:
            self._load_snapshot(event.new)

    def _load_snapshot(self, step: int):
        try:
            snap = self.run.snapshot(step)
        except RunError as e:
            snap = self._earlier_good_snapshot(step)
            self._alert(f"{e}" + (f"; showing step {snap.step:,}, the last good snapshot before it" if snap else ""))
            if snap is None:
                return
        if self.probe is None:
            try:
                self.probe = self.run.probe()
            except RunError as e:
                self._alert(str(e))
        self.snapshot = snap
        self._draw_snapshot_views()
        self._want_map()

    def _earlier_good_snapshot(self, step: int):
        """The latest readable snapshot before a damaged one (None when there is none)."""
        for earlier in sorted((s for s in self.snap_steps if s < step), reverse=True):
            try:
                return self.run.snapshot(earlier)
            except RunError:
                continue
        return None

    def _draw_snapshot_views(self):
        snap, probe = self.snapshot, self.probe
        conf = self.confusion = viewdata.confusion_view(snap, probe, self.cluster_names)
        height = 300 if self.compact else 360
        if conf is not None:
            data = (conf.matrix, conf.class_names, conf.cluster_names)
            if self.confusion_pipe is None:  # the first matrix builds the plot; later ones update it in place
                self.confusion_pipe = hv.streams.Pipe(data=data)
                self.confusion_pane.object = views.confusion_map(self.confusion_pipe, height, on_tap=self.select_cell)
            else:
                self.confusion_pipe.send(data)
        else:
            self.confusion_pipe = None
            self.confusion_pane.object = views.cluster_size_bars(viewdata.cluster_sizes(snap, self.cluster_names),
                                                                 height)
        if probe is not None:
            classes = viewdata.class_names_of(probe)
            matched = {}  # cluster → the class it is matched to
            if conf is not None and classes:
                matched = {c: classes[i] for i, c in enumerate(conf.clusters[:len(classes)])}
            rows, picks = [], []
            for c, idx, size in viewdata.gallery(snap, per_cluster=10):
                picks.append(int(c))
                label = (viewdata.cluster_label(c, self.cluster_names) + (f" → {matched[c]}" if c in matched else "")
                         + f" ({size:,})")
                rows.append((label, probe.images[idx]))
            self.gallery_pane.object = views.gallery_html(rows, picks=picks)
        self._draw_selection()

    def names_changed(self):
        """A cluster was (re)named: every view that shows cluster names is drawn again."""
        if self.snapshot is None:
            return
        self._draw_snapshot_views()
        self.scatter_pipe = None  # the legend's categories are fixed when the map is built: build it again
        key, self.shown_key = self.shown_key, None
        cached = self.service.get(key) if key is not None else None
        if cached is not None:
            self._show_map(key, cached)
        else:
            self._want_map()

    def _want_map(self):
        """Ask for the map of the shown snapshot (cached maps appear at once; others are computed off-thread)."""
        if self.snapshot is None or self.run is None:
            return
        key = (str(self.run.path), self.space.value, self.kind.value, self.snapshot.step)
        if key == self.shown_key:
            return
        cached = self.service.get(key)
        if cached is not None:
            self._show_map(key, cached)
            return
        newer = self.shown_key is not None and key[:3] == self.shown_key[:3] and key[3] > self.shown_key[3]
        if newer and self._following_training() and time.monotonic() < self._next_follow_map:
            self._map_held = True  # a new snapshot while the worker rests: _poll_map asks again after the rest
            return
        self._map_held = False
        if self.map_job is not None:
            if self.map_job.key == key:
                return
            self.map_job.future.cancel()  # superseded: drop it if it has not started
        x = viewdata.space(self.snapshot, self.space.value)
        self.map_job = self.service.submit(key, x)
        # an animated spinner costs the browser CPU the run needs: the note alone says a followed run's map computes
        spin = not self._following_training()
        self.spinner.param.update(value=spin, visible=spin)
        self.map_status.object = f"computing the {key[2]} map of {key[1]} at step {key[3]:,} …"

    def _map_cycle_busy(self) -> bool:
        """Whether the map of the shown snapshot is still computing, or the worker rests after it."""
        return self.map_job is not None or time.monotonic() < self._next_follow_map

    def _following_training(self) -> bool:
        return bool(self.follow.value and self._run_is_live())

    def _run_is_live(self) -> bool:
        return self.info is not None and self.info.live

    def _poll_map(self):
        job = self.map_job
        if job is None and self._map_held and (not self._following_training()
                                               or time.monotonic() >= self._next_follow_map):
            self._want_map()  # a map held back while the worker rested (or the run has ended meanwhile)
            return
        if job is None or not job.future.done():
            return
        self.map_job = None
        self.spinner.param.update(value=False, visible=False)  # shown only while a map computes
        if job.future.cancelled():
            return
        if job.future.exception() is not None:
            self._alert(f"the {job.key[2]} map failed: {job.future.exception()}", "danger")
            self.map_status.object = ""
            return
        y, secs, _ = job.future.result()
        self._next_follow_map = time.monotonic() + FOLLOW_REST * secs
        self._show_map(job.key, y, secs)
        self._want_map()  # the person may have moved on while this one was computed

    def _show_map(self, key, y, seconds: float | None = None):
        snap = self.snapshot
        if snap is None or key[3] != snap.step or len(y) != len(snap.pred):
            return
        if self.thumbs is None and self.probe is not None and len(self.probe.images) <= views.MAX_THUMBS:
            self.thumbs = images.data_uris(self.probe.images)
        frame = viewdata.embedding_frame(y, snap, self.probe, None, self.cluster_names)  # thumbnails: in the tooltip
        if self.scatter_pipe is None:
            self.scatter_pipe = hv.streams.Pipe(data=frame)
            clusters = viewdata.cluster_labels(snap.z_c.shape[1], self.cluster_names)
            labels = viewdata.class_names_of(self.probe) or ["unknown"]
            self.scatter_maps = views.scatter_maps(self.scatter_pipe, clusters, labels,
                                                   height=340 if self.compact else 420,
                                                   thumbs=self.thumbs,
                                                   size=3 if len(frame) > 10_000 else 4)
            for dm in self.scatter_maps.values():
                sel = hv.streams.Selection1D(source=dm)
                sel.add_subscriber(self._on_select)
            self._show_scatter()
        else:
            self.scatter_pipe.send(frame)
        self.shown_key = key
        took = f" in {seconds:.1f} s" if seconds is not None else " (cached)"
        self.map_status.object = f"{key[2]} of {key[1]} at step {key[3]:,}{took} · {len(frame):,} images"
        self._draw_legend()

    def _show_scatter(self):
        if self.scatter_maps:
            self.scatter_pane.object = self.scatter_maps[self.colour.value]
        self._draw_legend()

    def _draw_legend(self):
        """Beside the map, sorted, with counts: every cluster (an empty one listed as such) or every class."""
        snap = self.snapshot
        if snap is None or self.colour.value == "confidence":
            self.legend.object = ""
            return
        if self.colour.value == "cluster":
            k = snap.z_c.shape[1]
            names = viewdata.cluster_labels(k, self.cluster_names)
            counts = np.bincount(snap.pred.astype(np.int64), minlength=k)
        else:
            names = viewdata.class_names_of(self.probe) or []
            labels = snap.labels if snap.labels is not None and len(snap.labels) else None
            counts = np.bincount(labels.astype(np.int64), minlength=len(names)) if labels is not None else []
        self.legend.object = views.legend_html(names, [int(c) for c in counts])

    def select_cell(self, cluster: str, class_name: str):
        """A click on a confusion-matrix cell: its images become the selection, in the grid and on the map."""
        if self.snapshot is None or self.confusion is None:
            return
        rows = viewdata.cell_rows(self.snapshot, self.confusion, cluster, class_name)
        self.select_rows(rows, f"{class_name} in {cluster}")

    def _picked(self, key: str, size: int) -> int | None:
        """A clicked element's key as an index below `size` (keys come from the browser: anything else is
        ignored)."""
        try:
            i = int(key)
        except (TypeError, ValueError):
            return None
        return i if self.snapshot is not None and 0 <= i < size else None

    def select_legend_entry(self, key: str):
        """A click on a legend entry: that cluster's (or class's) images, whichever the map is coloured by."""
        snap = self.snapshot
        if snap is None:
            return
        if self.colour.value == "cluster" and (c := self._picked(key, snap.z_c.shape[1])) is not None:
            self.select_cluster(c)
        elif self.colour.value == "label" and snap.labels is not None:
            names = viewdata.class_names_of(self.probe) or []
            i = self._picked(key, max(len(names), int(np.max(snap.labels, initial=-1)) + 1))
            if i is not None:
                rows = np.flatnonzero(np.asarray(snap.labels) == i)
                self.select_rows(rows, f"class {names[i] if i < len(names) else i}")

    def select_gallery_row(self, key: str):
        """A click on a gallery row: its cluster's images."""
        if (c := self._picked(key, self.snapshot.z_c.shape[1] if self.snapshot is not None else 0)) is not None:
            self.select_cluster(c)

    def select_grid_image(self, key: str):
        """A click on an image of the selection grid: that image alone, with its nearest images."""
        if (row := self._picked(key, len(self.snapshot.pred) if self.snapshot is not None else 0)) is not None:
            self.select_rows([row])

    def select_cluster(self, cluster: int):
        """A cluster's probe images become the selection (a legend entry's or a gallery row's click)."""
        if self.snapshot is None:
            return
        rows = np.flatnonzero(self.snapshot.pred == cluster)
        self.select_rows(rows, f"cluster {viewdata.cluster_label(cluster, self.cluster_names)}")

    def page_selection(self, direction: int):
        """The selection grid's previous or next page of PAGE images."""
        last = max(0, (len(self.selected) - 1) // PAGE * PAGE)
        self.sel_first = min(max(0, self.sel_first + direction * PAGE), last)
        self._draw_selection()

    def select_rows(self, rows, what: str = ""):
        """Select probe rows from outside the map: the grid lists them and the map highlights them."""
        self._on_select([int(r) for r in rows])
        if what:
            self._alert(f"selected the {len(rows):,} {'image' if len(rows) == 1 else 'images'} of {what}", "info")
        if self.scatter_pipe is not None and self.scatter_pipe.data is not None:
            frame = self.scatter_pipe.data.copy()
            frame.attrs["selected"] = list(self.selected)
            self.scatter_pipe.send(frame)

    def _on_select(self, index):
        self.selected = list(index or [])
        self.sel_first = 0
        self._draw_selection()
        self.export.update()

    def _draw_selection(self):
        if self.snapshot is None or self.probe is None:
            return
        frame = viewdata.selection(self.snapshot, self.selected, self.probe, limit=PAGE, offset=self.sel_first,
                                   cluster_names=self.cluster_names)
        counts = viewdata.selection_counts(self.snapshot, self.selected, self.probe, self.cluster_names)
        text = views.selection_html(frame, self.probe.images, len(self.selected), counts=counts,
                                    first=self.sel_first)
        paged = len(self.selected) > PAGE
        self.sel_prev.visible = self.sel_next.visible = paged
        self.sel_prev.disabled = self.sel_first == 0
        self.sel_next.disabled = self.sel_first + PAGE >= len(self.selected)
        if len(self.selected) == 1:  # one image (a click on the map): its nearest images in the space mapped
            near = viewdata.nearest(self.snapshot, self.space.value, self.selected[0], k=NEIGHBOURS)
            rows = viewdata.selection(self.snapshot, near, self.probe, limit=None, cluster_names=self.cluster_names)
            rows = rows.set_index("row").loc[near].reset_index()  # nearest first, not most confident first
            text += (f'<div class="neighbours"><div style="margin:8px 0 4px">its {len(near)} nearest images in '
                     f'{self.space.value}, nearest first</div>'
                     + views.selection_html(rows, self.probe.images, len(rows), caption=False) + "</div>")
        self.selection_pane.object = text

    # -- layout ---------------------------------------------------------------------------------------------
    def panel(self) -> pn.viewable.Viewable:
        controls = pn.Row(self.beta, self.stop_btn, align="center")
        curve_controls = pn.Row(self.x_axis, self.smoothing)
        map_controls = pn.Column(pn.Row(self.kind, self.space), pn.Row(pn.pane.Markdown("colour by"), self.colour),
                                 pn.Row(self.snap_slider, self.follow), pn.Row(self.spinner, self.map_status))
        selection = pn.Column(pn.Row(self.sel_prev, self.sel_next), self.selection_pane, sizing_mode="stretch_width")
        details = pn.Tabs(("Selection", selection), ("Confusion / sizes", self.confusion_pane),
                          ("Most confident per cluster", self.gallery_pane), ("Export / name", self.export.panel()),
                          dynamic=False,
                          sizing_mode="stretch_width")
        flex = {"flex": "1 1 460px", "min-width": "0"}
        map_side = pn.Column(map_controls, pn.Row(self.scatter_pane, self.legend, sizing_mode="stretch_width"),
                             details, sizing_mode="stretch_width", styles=flex)
        curve_side = pn.Column(curve_controls, self.curve_note, self.curve_box, sizing_mode="stretch_width",
                               styles=flex)
        # side by side when there is room, stacked when not (two runs compared, a narrow window)
        body = pn.FlexBox(curve_side, map_side, flex_wrap="wrap", gap="12px", sizing_mode="stretch_width")
        return pn.Column(self.status_md, self.alert, controls, body, sizing_mode="stretch_width")


class ExplorerApp(param.Parameterized):
    """The page: a runs folder, its runs, a form to start one, and one run (or two side by side)."""

    def __init__(self, runs: str | Path = "runs", run: str | None = None, service=None, poll_ms: int = POLL_MS,
                 data_root: str | Path | None = None, **params):
        super().__init__(**params)
        self.folder = RunsFolder(runs)
        # the page opens folders below the runs root it was started with, and data below the data root only
        self.runs_root = Path(runs).expanduser().resolve()
        self.data_root = Path(data_root).expanduser().resolve() if data_root else self.runs_root.parent
        self.service = service or shared_service()
        self.poll_ms = poll_ms
        self.runs_input = pn.widgets.TextInput(label="Runs folder", value=str(runs), css_classes=["runs-input"])
        self.runs_btn = pn.widgets.Button(label="Open", css_classes=["runs-open"], width=70, align="end")
        self.folder_msg = pn.pane.Alert("", alert_type="warning", visible=False, css_classes=["folder-alert"])
        self.run_select = pn.widgets.Select(label="Run", options={}, css_classes=["run-select"])
        self.compare = pn.widgets.Checkbox(label="compare with a second run", css_classes=["compare"])
        self.run_select_b = pn.widgets.Select(label="Second run", options={}, visible=False,
                                              css_classes=["run-select-b"])
        # start-a-run form
        self.f_method = pn.widgets.Select(label="Method", options=launcher.method_names(), value="dccs",
                                          css_classes=["start-method"])
        self.f_dataset = pn.widgets.TextInput(label="Data set (name or path)", value="digits",
                                              css_classes=["start-dataset"])
        self.f_data_path = pn.widgets.TextInput(label="Data path (optional)", value="", css_classes=["start-data-path"])
        self.f_beta = pn.widgets.FloatInput(label="β_Aug (empty: the data set's default)", value=None, start=0,
                                            css_classes=["start-beta"])
        self.f_steps = pn.widgets.IntInput(label="Steps (empty: the data set's default)", value=None, start=1,
                                           css_classes=["start-steps"])
        self.f_device = pn.widgets.Select(label="Device", options=["auto", "cpu", "cuda"], value="auto",
                                          css_classes=["start-device"])
        self.f_start = pn.widgets.Button(label="Start run", color="primary", css_classes=["start-btn"])
        self.f_msg = pn.pane.Alert("", alert_type="info", visible=False, css_classes=["start-alert"])
        self.view_a = RunView(self.service)
        self.view_b = RunView(self.service, name_suffix="-b")
        self.panel_a, self.panel_b = self.view_a.panel(), self.view_b.panel()  # built once, shown or not
        self.main = pn.Row(self.panel_a, sizing_mode="stretch_width")
        from .tuning_view import TuningView

        from .compare_view import ComparePanel

        self.tuning = TuningView(self.folder.root, self.service, data_root=self.data_root)
        self.compare_tab = ComparePanel(self.folder.root, on_change=self._scan)
        self.tabs = pn.Tabs(("Runs", self.main), ("Compare", self.compare_tab.panel()),
                            ("β_Aug tuning", self.tuning.panel()), dynamic=False,
                            css_classes=["main-tabs"], sizing_mode="stretch_width")
        self.tabs.param.watch(lambda e: self._refresh_tab(), "active")
        self.runs_btn.on_click(lambda e: self._open_folder())
        self.runs_input.param.watch(lambda e: self._open_folder(), "enter_pressed")
        self.run_select.param.watch(lambda e: self.view_a.set_run(e.new), "value")
        # the second view reads a run only while compare is on (it is built, hidden, with the page)
        self.run_select_b.param.watch(lambda e: self.compare.value and self.view_b.set_run(e.new), "value")
        self.compare.param.watch(self._on_compare, "value")
        self.f_start.on_click(self._on_start)
        self._infos: dict[str, RunInfo] = {}
        self._refused: str | None = None  # the message for a folder typed into the page and refused
        self._all_infos: list[RunInfo] = []  # archived runs too (the Compare tab may show them)
        self._scan(initial_run=run)

    # -- runs folder ----------------------------------------------------------------------------------------
    def _open_folder(self):
        text = self.runs_input.value
        try:
            path = launcher.check_path(text, must_exist=False, folder=True, what="runs folder",
                                       within=self.runs_root)
        except UserError as e:
            self._refused = str(e)  # stays on the page until a folder is opened (the next scan must not wipe it)
            self._folder_alert(self._refused)
            return
        self._refused = None
        self.folder = RunsFolder(path)
        self.tuning.set_root(path)
        self.compare_tab.set_root(path)
        self.view_a.set_run(None)
        self.view_b.set_run(None)
        self._scan()

    def _folder_alert(self, text: str):
        self.folder_msg.object = text
        self.folder_msg.visible = bool(text)

    def _scan(self, initial_run: str | None = None):
        self._all_infos, message = self.folder.scan(archived=True)
        infos = [i for i in self._all_infos if not i.archived]  # archived runs: only in the Compare tab
        self._folder_alert(self._refused or message or "")
        self._infos = {str(i.path): i for i in infos}
        options = {i.label: str(i.path) for i in infos}
        for select in (self.run_select, self.run_select_b):
            current = select.value
            if initial_run and select is self.run_select:
                match = [p for p in options.values() if Path(p).name == initial_run or p == initial_run]
                current = match[0] if match else current
            value = current if current in options.values() else (next(iter(options.values())) if options else None)
            if select.options != options or select.value != value:
                select.param.update(options=options, value=value)

    def tick(self):
        """The periodic callback: new runs, new records, new snapshots, finished maps. Its changes go to the browser
        together, and Bokeh walks the document's models once for them all, and only when they changed which models
        the page holds (explorer/doc_batch.py)."""
        with batched_changes():
            self._tick()

    def _tick(self):
        try:
            self._scan()
        except Exception as e:
            self._folder_alert(f"cannot scan the runs folder: {e}")
        launcher.reap()
        self.view_a.refresh(self._infos.get(self.view_a.run_path))
        if self.compare.value:
            self.view_b.refresh(self._infos.get(self.view_b.run_path))
        self._refresh_tab()

    COMPARE_TAB, TUNING_TAB = 1, 2

    def _refresh_tab(self):
        """The Compare and tuning tabs read their runs only while they are shown."""
        if self.tabs.active == self.COMPARE_TAB:
            self.compare_tab.refresh(self._all_infos)
        elif self.tabs.active == self.TUNING_TAB:
            self.tuning.scan()
            self.tuning.refresh()

    def _on_compare(self, event):
        self.run_select_b.visible = event.new
        if event.new:
            values = list(self.run_select_b.options.values())
            if values and self.run_select_b.value == self.run_select.value and len(values) > 1:
                self.run_select_b.value = next(v for v in values if v != self.run_select.value)
            self.view_b.set_run(self.run_select_b.value)
            self.main.objects = [self.panel_a, self.panel_b]
        else:
            self.main.objects = [self.panel_a]
            self.view_b.set_run(None)  # let go of its run (and its curves)

    # -- starting a run -------------------------------------------------------------------------------------
    def _on_start(self, event):
        try:
            run_dir = launcher.launch(self.folder.root, method=self.f_method.value, dataset=self.f_dataset.value.strip(),
                                      data_path=self.f_data_path.value.strip() or None, beta_aug=self.f_beta.value,
                                      steps=self.f_steps.value, device=self.f_device.value,
                                      data_root=self.data_root)
        except UserError as e:
            self.f_msg.param.update(object=str(e), alert_type="danger", visible=True)
            return
        self.f_msg.param.update(object=f"started {run_dir.name}", alert_type="success", visible=True)
        self._scan()
        self.run_select.value = str(run_dir)

    # -- layout ---------------------------------------------------------------------------------------------
    def panel(self) -> pn.viewable.Viewable:
        start_form = pn.Card(self.f_method, self.f_dataset, self.f_data_path, self.f_beta, self.f_steps,
                             self.f_device, self.f_start, self.f_msg, title="Start a run", collapsed=False,
                             sizing_mode="stretch_width")
        sidebar = pn.Column(
            pn.pane.Markdown("## Deep clustering explorer"), pn.Row(self.runs_input, self.runs_btn), self.folder_msg,
            self.run_select, self.compare, self.run_select_b, start_form, width=SIDEBAR_WIDTH,
            styles={"border-right": "1px solid #ddd", "padding-right": "8px"})
        return pn.Row(sidebar, self.tabs, sizing_mode="stretch_width")

    def start_polling(self):
        """At page load: the periodic refresh, and one refresh now (a read that finished while the page was still
        being built is drawn at once)."""
        pn.state.add_periodic_callback(self.tick, period=self.poll_ms)
        self.tick()


def logged_in_user() -> str | None:
    """The user this session logged in as (Panel's basic auth or OAuth), or None. A guest is not logged in (the
    guest marker is a plain cookie any browser can send)."""
    try:
        user = pn.state.user
    except Exception:
        return None
    return None if user in (None, "", "guest") else user


def remote_refusal(allow_remote: bool = False) -> pn.viewable.Viewable | None:
    """A page for a browser that is not on this machine, unless the app was started with `--allow-remote` and this
    session has logged in (the app trusts only loopback otherwise; docs/explorer.md, "Safety")."""
    try:
        ip = pn.state.curdoc.session_context.request.remote_ip
    except AttributeError:
        return None
    try:
        if ip is None or ipaddress.ip_address(ip).is_loopback:
            return None
    except ValueError:
        pass  # not an address we can read: treat it as another machine
    if allow_remote and logged_in_user() is not None:
        return None
    if allow_remote:
        text = (f"This explorer serves other machines only after a login, and this session has none (your address: "
                f"{ip}). Start it with a password: `python -m explorer --allow-remote` with DCE_PASSWORD or "
                "`--password-file`, or `panel serve ... --basic-auth ... --cookie-secret ...`.")
    else:
        text = (f"This explorer only serves this machine (your address: {ip}). Start it with `--allow-remote` and a "
                "password to serve others.")
    return pn.pane.Alert(text, alert_type="danger", css_classes=["remote-refusal"])


def create_app(runs: str | Path = "runs", run: str | None = None, allow_remote: bool = False,
               poll_ms: int = POLL_MS, data_root: str | Path | None = None) -> pn.viewable.Viewable:
    """One page for one browser session."""
    # Tabulator (the Compare tab) named here: else only a server's first page gets its script, later pages stay blank
    pn.extension("tabulator", sizing_mode="stretch_width", notifications=False)
    hv.extension("bokeh", logo=False)
    refusal = remote_refusal(allow_remote)
    if refusal is not None:
        return refusal
    app = ExplorerApp(runs, run=run, poll_ms=poll_ms, data_root=data_root)
    pn.state.onload(app.start_polling)
    page = app.panel()
    page.explorer = app  # for tests and notebooks
    return page
