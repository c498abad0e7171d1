"""The β_Aug tuning tab: a session's t-SNE maps side by side (the DCCS paper's Fig. 8), the overlap score against
β_Aug with the recommendation marked, and buttons for a person to overrule the automatic call.

Sessions live in the runs folder (`core.tuning`); this view reads their `session.json`, starts new ones as a
separate process (`python -m core tune`), and writes a person's marks back through `TuningSession.mark`.
"""

from __future__ import annotations

import time
from pathlib import Path

import holoviews as hv
import numpy as np
import pandas as pd
import panel as pn
import param

from core.errors import RunError, UserError
from core.rundir import Run
from core.tuning import SESSION_FILE, TuningSession, find_sessions, parse_values

from . import launcher, viewdata, views
from .projection import shared_service

MAP_SIZE = 250


def session_frame(session: TuningSession) -> pd.DataFrame:
    """One row per value: state, score, verdict (and who made it), ACC/NMI (evaluation only)."""
    rows = []
    for v in session.values:
        e = session.entry(v)
        mark = session.data["marks"].get(f"beta-{v:g}")
        ev = e.get("evaluation") or {}
        rows.append({"beta_aug": v, "state": e["state"], "score": e.get("score"),
                     "verdict": session.verdict(v), "by": "person" if mark else ("score" if e.get("score") is not None
                                                                                  else None),
                     "acc": ev.get("acc"), "nmi": ev.get("nmi")})
    return pd.DataFrame(rows)


def plain_text(text: str) -> str:
    """A run's overlap summary as plain Markdown lines (not a code block): each line kept, nothing interpreted."""
    import html

    return "  \n".join(html.escape(line).replace("*", "&#42;").replace("_", "&#95;") for line in text.splitlines())


def score_plot(frame: pd.DataFrame, threshold: float, recommended: float | None, height: int = 260,
               values=None):
    """Overlap score against β_Aug: the threshold as a dashed line, the recommended value as a green band, a
    person's verdicts as larger markers. The x axis spans the session's `values`, scored or not yet."""
    scored = frame.dropna(subset=["score"])
    curve = hv.Curve(scored, "beta_aug", "score").opts(color="#555")
    colour = np.where(scored["verdict"] == "overlap", "#d62728", "#2ca02c") if len(scored) else []
    pts = hv.Scatter(scored.assign(colour=colour), "beta_aug", ["score", "colour", "verdict", "by"]).opts(
        color="colour", size=9, tools=["hover"])
    person = scored[scored["by"] == "person"]
    marks = hv.Scatter(person, "beta_aug", "score").opts(marker="square", size=15, fill_alpha=0, line_color="black")
    overlay = curve * pts * marks * hv.HLine(threshold).opts(color="#999", line_dash="dashed")
    if recommended is not None:
        overlay = overlay * hv.VLine(recommended).opts(color="#2ca02c", line_width=3, alpha=0.5)
    values = sorted(float(v) for v in (values if values is not None else frame["beta_aug"]))
    if values:
        pad = max(0.05 * (values[-1] - values[0]), 0.25)
        overlay = overlay.redim.range(beta_aug=(values[0] - pad, values[-1] + pad))
    return overlay.opts(hv.opts.Overlay(height=height, responsive=True, xlabel="β_Aug", padding=(0.04, 0),
                                        ylabel="overlap score (0 = separated)", title="Overlap against β_Aug",
                                        ylim=(0, max(0.2, float(scored["score"].max()) * 1.15 if len(scored) else 1))))


def small_map(y: np.ndarray, pred: np.ndarray, k: int, title: str, highlight: bool) -> hv.Points:
    frame = pd.DataFrame({"x": y[:, 0], "y": y[:, 1], "cluster": [f"c{c}" for c in pred]})
    cmap = views.category_cmap([f"c{c}" for c in range(k)])
    return hv.Points(frame, ["x", "y"], ["cluster"]).opts(
        color="cluster", cmap=cmap, size=2, width=MAP_SIZE, height=MAP_SIZE, xaxis=None, yaxis=None,
        show_legend=False, title=title, toolbar=None, backend_opts={"plot.border_fill_color":
                                                                   "#fff3c4" if highlight else "white"})


def launch_session(runs_root: str | Path, *, dataset: str, values: str, mode: str, parallel: int,
                   steps: int | None, device: str, data_path: str | None = None,
                   data_root: str | Path | None = None) -> Path:
    """Start `python -m core tune` in its own process session (it survives a page reload); returns the folder."""
    parse_values(values)  # a typing mistake is reported here, not in a log
    dataset, data_path = launcher.check_dataset(dataset, data_path, within=data_root)
    if int(parallel) < 1:
        raise UserError("runs at once must be at least 1")
    path = launcher.unique_folder(Path(runs_root), f"tune-{launcher.stem(dataset)}-{time.strftime('%Y%m%d-%H%M%S')}")
    args = ["tune", "--session-dir", str(path), "--dataset", dataset, "--values", values, "--mode", mode,
            "--parallel", str(int(parallel)), "--device", device, "--no-progress"]
    if steps:
        args += ["--steps", str(int(steps))]
    if data_path:
        args += ["--data-path", data_path]
    launcher.start_process(path, args, "tune.log")
    return path


class TuningView(param.Parameterized):
    """One tuning session on the page."""

    def __init__(self, runs_root: str | Path, service=None, data_root: str | Path | None = None, **params):
        super().__init__(**params)
        self.root = Path(runs_root)
        self.data_root = data_root  # data paths typed into the page must lie below it (None: anywhere)
        self.service = service or shared_service()
        self.session: TuningSession | None = None
        self.jobs: dict[float, object] = {}
        self.maps: dict[float, tuple[np.ndarray, np.ndarray, int]] = {}
        self._shown: tuple | None = None
        self.select = pn.widgets.Select(label="Tuning session", options={}, css_classes=["session-select"])
        self.slider = pn.widgets.DiscreteSlider(label="β_Aug", options=[0.0], value=0.0, disabled=True,
                                                css_classes=["session-beta"], width=320)
        self.btn_overlap = pn.widgets.Button(label="These overlap", color="danger", css_classes=["mark-overlap"],
                                             disabled=True, width=140)
        self.btn_separated = pn.widgets.Button(label="These are separated", color="success",
                                               css_classes=["mark-separated"], disabled=True, width=170)
        self.btn_clear = pn.widgets.Button(label="Use the score", css_classes=["mark-clear"], disabled=True, width=120)
        self.btn_stop = pn.widgets.Button(label="Stop session", color="warning", css_classes=["session-stop"],
                                          disabled=True, width=120)
        self.status = pn.pane.Markdown("No tuning session yet: start one below, or with `python -m core tune`.",
                                       css_classes=["session-status"], sizing_mode="stretch_width")
        self.detail = pn.pane.Markdown("", css_classes=["session-detail"], sizing_mode="stretch_width")
        self.alert = pn.pane.Alert("", alert_type="warning", visible=False, css_classes=["session-alert"])
        self.plot = pn.pane.HoloViews(None, css_classes=["session-score"], sizing_mode="stretch_width",
                                      linked_axes=False)
        self.table = pn.pane.DataFrame(None, css_classes=["session-table"], index=False, sizing_mode="stretch_width")
        # a wrapping Row, not a FlexBox: inside the app's Row(sidebar, Tabs) a FlexBox of plots drew one empty box
        self.map_row = pn.Row(css_classes=["session-maps"], sizing_mode="stretch_width", styles={"flex-wrap": "wrap"})
        # start form
        self.f_dataset = pn.widgets.TextInput(label="Data set", value="digits", css_classes=["tune-dataset"])
        self.f_values = pn.widgets.TextInput(label="β_Aug values (1,2,3 or 1:6)", value="1:6",
                                             css_classes=["tune-values"])
        self.f_mode = pn.widgets.Select(label="Mode", options={"from scratch (the paper)": "scratch",
                                                               "branch from a warm-up (faster)": "branch"},
                                        value="scratch", css_classes=["tune-mode"])
        self.f_parallel = pn.widgets.IntInput(label="Runs at once", value=1, start=1, css_classes=["tune-parallel"])
        self.f_steps = pn.widgets.IntInput(label="Steps per value (empty: default)", value=None, start=1,
                                           css_classes=["tune-steps"])
        self.f_device = pn.widgets.Select(label="Device", options=["auto", "cpu", "cuda"], value="auto")
        self.f_start = pn.widgets.Button(label="Start session", color="primary", css_classes=["tune-start"])
        self.f_msg = pn.pane.Alert("", alert_type="info", visible=False, css_classes=["tune-alert"])
        self.select.param.watch(lambda e: self.open(e.new), "value")
        self.slider.param.watch(lambda e: self._draw(), "value")
        self.btn_overlap.on_click(lambda e: self._mark("overlap"))
        self.btn_separated.on_click(lambda e: self._mark("separated"))
        self.btn_clear.on_click(lambda e: self._mark(None))
        self.btn_stop.on_click(lambda e: self._on_stop())
        self.f_start.on_click(self._on_start)
        self.scan()

    # -- sessions -----------------------------------------------------------------------------------------
    def set_root(self, root: str | Path) -> None:
        self.root = Path(root)
        self.scan()

    def scan(self) -> None:
        options = {p.name: str(p) for p in find_sessions(self.root)}
        value = self.select.value if self.select.value in options.values() else next(iter(options.values()), None)
        if self.select.options != options or self.select.value != value:
            self.select.param.update(options=options, value=value)
        if value and self.session is None:
            self.open(value)

    def open(self, path: str | None) -> None:
        self.session, self.jobs, self.maps, self._shown = None, {}, {}, None
        self.map_row.objects = []
        if not path:
            return
        self._show_alert("")
        try:
            self.session = TuningSession(path)
        except RunError as e:
            self._show_alert(str(e))
            return
        values = self.session.values
        self.slider.param.update(options=values, value=values[0], disabled=False)
        self.refresh()

    def refresh(self) -> None:
        """Re-read the session file, ask for maps of newly finished values, show whatever is ready."""
        if self.session is None:
            return
        try:
            self.session.reload()
        except RunError as e:
            self._show_alert(str(e))
            return
        for v in self.session.values:
            self._want_map(v)
        self._poll_maps()
        self._draw()

    def _want_map(self, value: float) -> None:
        entry = self.session.entry(value)
        if value in self.maps or value in self.jobs or entry.get("score") is None:
            return
        try:
            snaps = Run(self.session.run_dir(value)).snapshots()
            snap = snaps[-1].load()
        except (RunError, OSError, IndexError, ValueError) as e:
            self._show_alert(f"β_Aug {value:g}: no readable snapshot ({e})")
            return
        key = (str(self.session.run_dir(value)), "Z", "t-SNE", snap.step)
        cached = self.service.get(key)
        if cached is not None:
            self.maps[value] = (cached, snap.pred, snap.z_c.shape[1])
        else:
            self.jobs[value] = (self.service.submit(key, viewdata.space(snap, "Z")), snap)

    def _poll_maps(self) -> None:
        for value, (job, snap) in list(self.jobs.items()):
            if not job.future.done():
                continue
            del self.jobs[value]
            if job.future.cancelled() or job.future.exception() is not None:
                self._show_alert(f"the t-SNE map of β_Aug {value:g} failed: {job.future.exception()}")
                continue
            self.maps[value] = (job.future.result()[0], snap.pred, snap.z_c.shape[1])

    # -- drawing ------------------------------------------------------------------------------------------
    def _draw(self) -> None:
        s = self.session
        if s is None:
            return
        frame = session_frame(s)
        rec = s.recommendation
        selected = float(self.slider.value)
        key = (frame.to_json(), str(rec), selected, tuple(sorted(self.maps)), tuple(sorted(self.jobs)),
               s.data.get("state"), s.stop_requested)
        if key == self._shown:
            return
        self._shown = key
        state = s.data.get("state", "?")
        rec_text = (f"**recommended β_Aug: {rec['value']:g}**" if rec and rec["value"] is not None
                    else "**no recommendation**" if rec else "no recommendation yet")
        if rec:
            rec_text += f" — {rec['reason']} (by {rec['by']}{'' if rec.get('final') else ', provisional'})"
        self.status.object = (f"### {s.path.name}\n{state} · {s.data['mode']} · values "
                              f"{', '.join(f'{v:g}' for v in s.values)} · threshold {s.data['threshold']:g}\n\n"
                              + rec_text)
        self.plot.object = score_plot(frame, s.data["threshold"], rec["value"] if rec else None, values=s.values)
        shown = frame.assign(ACC_eval_only=frame["acc"], NMI_eval_only=frame["nmi"]).drop(columns=["acc", "nmi"])
        self.table.object = shown.round(4).astype(object).where(shown.notna(), "—")  # "—", not NaN, when unknown
        e = s.entry(selected)
        ev = e.get("evaluation") or {}
        score = f"{e['score']:.3f}" if e.get("score") is not None else "not scored yet"
        self.detail.object = (f"**β_Aug {selected:g}** · {e['state']} · overlap score {score} · verdict "
                              f"**{s.verdict(selected) or '—'}**"
                              + (f" · ACC {ev['acc']:.3f} (labels, evaluation only)" if "acc" in ev else "")
                              + (f"\n\n{plain_text(e['summary'])}" if e.get("summary") else ""))
        scored = e.get("score") is not None or e["state"] == "finished"
        self.btn_overlap.disabled = self.btn_separated.disabled = not scored
        self.btn_clear.disabled = f"beta-{selected:g}" not in s.data["marks"]
        self.btn_stop.disabled = state != "running" or s.stop_requested
        panes = []
        for v in s.values:
            verdict = s.verdict(v)
            title = f"β_Aug {v:g}" + (f" · {verdict}" if verdict else "") + (" ◀" if v == selected else "")
            if v in self.maps:
                y, pred, k = self.maps[v]
                obj = pn.pane.HoloViews(small_map(y, pred, k, title, v == selected), linked_axes=False,
                                        width=MAP_SIZE + 10, height=MAP_SIZE + 10, sizing_mode="fixed",
                                        name=title, css_classes=["session-map"])
            else:
                what = "computing the t-SNE map …" if v in self.jobs else e_state(s, v)
                obj = pn.pane.Markdown(f"**{title}**\n\n{what}", width=MAP_SIZE, height=MAP_SIZE, name=title,
                                       styles={"border": "1px dashed #bbb", "padding": "6px"})
            panes.append(obj)
        self.map_row.objects = panes

    def _mark(self, verdict: str | None) -> None:
        if self.session is None:
            return
        value = float(self.slider.value)
        try:
            if verdict is None:
                self.session.clear_mark(value)
            else:
                self.session.mark(value, verdict, by="person")
        except (UserError, OSError) as e:
            self._show_alert(f"could not save the mark: {e}")
            return
        self._shown = None
        self._draw()

    def stop_session(self) -> None:
        """Ask the training session to stop (it may run in another process); UserError when it is not running."""
        s = self.session
        if s is None:
            raise UserError("no tuning session is open")
        s.reload()
        if s.data.get("state") != "running":
            raise UserError(f"the session is {s.data.get('state')}: there is nothing to stop")
        s.request_stop()
        self.btn_stop.disabled = True
        self._show_alert("stop requested: the session's runs save a checkpoint and stop; running the session again "
                         "continues it")

    def _on_stop(self) -> None:
        try:
            self.stop_session()
        except (UserError, RunError, OSError) as e:
            self._show_alert(f"could not stop the session: {e}")

    def _show_alert(self, text: str) -> None:
        self.alert.object = text
        self.alert.visible = bool(text)

    def _on_start(self, event) -> None:
        try:
            path = launch_session(self.root, dataset=self.f_dataset.value.strip(), values=self.f_values.value,
                                  mode=self.f_mode.value, parallel=self.f_parallel.value or 1,
                                  steps=self.f_steps.value, device=self.f_device.value, data_root=self.data_root)
        except UserError as e:
            self.f_msg.param.update(object=str(e), alert_type="danger", visible=True)
            return
        self.f_msg.param.update(object=f"started {path.name}; its runs appear as they train", alert_type="success",
                                visible=True)
        self.scan()
        self.select.value = str(path)

    def panel(self, chooser: bool = True) -> pn.viewable.Viewable:
        """The tab. `chooser=False` leaves out the session list and the start form (one session, as in a
        notebook)."""
        form = pn.Card(self.f_dataset, self.f_values, self.f_mode, self.f_parallel, self.f_steps, self.f_device,
                       self.f_start, self.f_msg, title="Start a tuning session", collapsed=True,
                       sizing_mode="stretch_width")
        head = [self.select] if chooser else []
        tail = [form] if chooser else []
        controls = pn.Column(*head, self.slider,
                             pn.Row(self.btn_overlap, self.btn_separated, self.btn_clear), self.btn_stop,
                             self.detail, *tail, width=470)
        return pn.Column(self.alert, self.status, pn.Row(controls, pn.Column(self.plot, self.table, sizing_mode="stretch_width"),
                                                              sizing_mode="stretch_width"),
                         pn.pane.Markdown("#### t-SNE maps of z, one per β_Aug, coloured by predicted cluster"),
                         self.map_row, sizing_mode="stretch_width", css_classes=["tuning-view"])


def e_state(session: TuningSession, value: float) -> str:
    e = session.entry(value)
    return {"pending": "waiting to train", "running": "training …", "stopped": "stopped on request; running the "
            "session again continues it", "skipped": "not trained: a smaller value "
            "already overlaps", "failed": f"failed: {e.get('message', '')}"}.get(e["state"], e["state"])


__all__ = ["TuningView", "launch_session", "session_frame", "score_plot", "SESSION_FILE"]
