"""The Compare tab: a sortable table of the runs of the runs folder, their curves over each other, the settings that
differ, and archive / delete for the chosen rows. The numbers come from `explorer.compare` (no UI there)."""

from __future__ import annotations

import html
import time
import traceback
from pathlib import Path

import holoviews as hv
import pandas as pd
import panel as pn

from core.errors import UserError

from . import compare, views
from .runs import RunInfo, RunsFolder

DELETE_CONFIRM_S = 5.0  # "Delete" asks for a second click within this many seconds
CHART_HEIGHT = 220
X_LABELS = {"step": "step", "time": "training time (s)", "epoch": "epoch"}


def overlay_map(pipe: hv.streams.Pipe, rules: hv.streams.Pipe, title: str, xlabel: str, colours: dict[str, str],
                height: int = CHART_HEIGHT):
    """One metric of several runs: a line per run in the run's colour (legend: run names), and each run's setting
    changes (β_Aug) as dashed vertical rules in its colour, with run, setting and value in the hover."""

    def lines(data):
        return hv.NdOverlay({run: hv.Curve(d, "x", "value", label=run).opts(color=colours.get(run, "#444"))
                             for run, d in data.groupby("run", sort=False)}, kdims="run")

    def markers(data):  # a run with a single point (one evaluation so far) draws no line: give it a dot
        return hv.NdOverlay({run: hv.Scatter(d if len(d) <= views.FEW_POINTS else d.iloc[:0], "x", "value", label=run)
                             .opts(color=colours.get(run, "#444")) for run, d in data.groupby("run", sort=False)},
                            kdims="run")

    def rule_lines(data):  # one VLines per run, also without changes, so that the overlay keeps its members
        return hv.NdOverlay({run: hv.VLines(data[data["run"] == run], "x", ["run", "setting", "value"])
                             .opts(color=colour) for run, colour in colours.items()}, kdims="run")

    curves = hv.DynamicMap(lines, streams=[pipe]).opts(
        hv.opts.Curve(framewise=True, tools=["hover"], responsive=True, height=height, xlabel=xlabel, ylabel="",
                      line_width=1.5),
        hv.opts.NdOverlay(legend_position="right", framewise=True, responsive=True, height=height))
    dots = hv.DynamicMap(markers, streams=[pipe]).opts(hv.opts.Scatter(size=6, framewise=True))
    rule = hv.DynamicMap(rule_lines, streams=[rules]).opts(
        hv.opts.VLines(line_dash="dashed", line_width=1.5, tools=["hover"]))
    return (curves * dots * rule).opts(hv.opts.Overlay(title=title, responsive=True, height=height,
                                                       legend_position="right"))


class ComparePanel:
    """The Compare tab of the explorer (`ExplorerApp.compare_tab`). `refresh(infos)` is called by the app's tick
    while the tab is shown, with every run of the folder (archived ones included)."""

    def __init__(self, root: str | Path, on_change=None):
        self.root = Path(root).expanduser()
        self.on_change = on_change  # called after archive / delete (the app rescans its run list)
        self.show_archived = pn.widgets.Checkbox(label="show archived runs", css_classes=["show-archived"])
        self.table = pn.widgets.Tabulator(pd.DataFrame(columns=compare.COLUMNS), selectable="checkbox",
                                          show_index=False, disabled=True, hidden_columns=["path", "archived"],
                                          layout="fit_data_table", css_classes=["compare-table"],
                                          sizing_mode="stretch_width", max_height=360,
                                          formatters={c: {"type": "money", "precision": 3} for c in (
                                              *compare.EVAL_COLUMNS.values(), "Wasserstein")} | {
                                              "wall time (s)": {"type": "money", "precision": 1, "thousand": ","},
                                              "β_Aug": {"type": "money", "precision": 2}})
        self.archive_btn = pn.widgets.Button(label="Archive", css_classes=["archive-btn"], width=110)
        self.unarchive_btn = pn.widgets.Button(label="Unarchive", css_classes=["unarchive-btn"], width=110,
                                               visible=False)
        self.delete_btn = pn.widgets.Button(label="Delete", color="danger", css_classes=["delete-btn"], width=190)
        self.message = pn.pane.Alert("", alert_type="info", visible=False, css_classes=["compare-alert"],
                                     sizing_mode="stretch_width")
        self.x_axis = pn.widgets.RadioButtonGroup(options={"step": "step", "time (s)": "time", "epoch": "epoch"},
                                                  value="step", css_classes=["compare-x-axis"])
        self.diffs = pn.pane.DataFrame(pd.DataFrame(), css_classes=["compare-diffs"], sizing_mode="fixed",
                                       max_height=260, justify="left")
        self.diff_note = pn.pane.Markdown("", css_classes=["compare-diff-note"])
        self.charts = pn.Column(sizing_mode="stretch_width", css_classes=["compare-charts"])
        self.chart_note = pn.pane.Markdown("", css_classes=["compare-chart-note"])
        self.legend = pn.pane.HTML("", css_classes=["compare-legend"])  # the runs drawn, in their colours
        self.tracks: dict[str, compare.RunTrack] = {}  # one CurveStore per run, read incrementally
        self.infos: list[RunInfo] = []
        self.chosen: list[str] = []  # the chosen runs' paths, in the order they were chosen
        self._chose_default = False
        self._colours: dict[str, str] = {}  # a fixed colour per run (by path) for this page
        self._palette = views.palette(10)
        self.pipes: dict[str, hv.streams.Pipe] = {}
        self.metrics: list[tuple[str, str]] = []  # (record key, label) of each chart, in order
        self.rule_pipe: hv.streams.Pipe | None = None
        self._layout = None  # what the charts were built for: (runs, x, lines per metric)
        self._diffs_for = None  # the runs (and names) the differences were computed for
        self._updating_table = False
        self._delete_armed_at: float | None = None
        self._delete_armed_for: list[str] = []
        # the table joins the page with its first rows: Panel's Tabulator drops rows sent while the browser builds
        # it (a table first shown with its tab), which on a busy CPU left the table empty for good
        self.table_slot = pn.Column(sizing_mode="stretch_width")
        self.table.param.watch(self._on_selection, "selection")
        self.show_archived.param.watch(lambda e: self._on_show_archived(), "value")
        self.x_axis.param.watch(lambda e: self._draw(force=True), "value")
        self.archive_btn.on_click(lambda e: self._archive(True))
        self.unarchive_btn.on_click(lambda e: self._archive(False))
        self.delete_btn.on_click(self._on_delete)

    def set_root(self, root: str | Path):
        self.root = Path(root).expanduser()
        self.tracks, self.chosen, self._chose_default, self._layout, self._diffs_for = {}, [], False, None, None
        self.infos = []

    # -- refresh --------------------------------------------------------------------------------------------
    def refresh(self, infos: list[RunInfo] | None = None):
        """Read what is new in every listed run (only the new bytes of each metrics.jsonl) and update the table,
        the differences and the charts."""
        try:
            self._refresh(infos)
        except Exception as e:  # never let one run's damage break the page
            self._say(f"{type(e).__name__}: {e}", "danger")
            traceback.print_exc()

    def _refresh(self, infos):
        if infos is None:
            infos, message = RunsFolder(self.root).scan(archived=True)
            if message:
                self._say(message, "warning")
        self.infos = [i for i in infos if self.show_archived.value or not i.archived]
        paths = [str(i.path) for i in self.infos]
        changed = set()
        for p in [str(i.path) for i in self.infos if i.state != "broken"]:  # a broken run has its state line only
            track = self.tracks.get(p)
            if track is None:
                track = self.tracks[p] = compare.RunTrack(p)
            try:
                if track.update(background=True):
                    changed.add(p)
            except Exception as e:
                self._say(f"{Path(p).name}: {type(e).__name__}: {e}", "danger")
        for gone in set(self.tracks) - {str(i.path) for i in infos}:
            del self.tracks[gone]
        self.chosen = [p for p in self.chosen if p in paths]
        if not self._chose_default and paths:
            self.chosen, self._chose_default = paths[:2], True  # the newest two
        reading = [Path(p).name for p in paths if p in self.tracks and self.tracks[p].reading]
        self.chart_note.object = f"reading metrics of {', '.join(reading)}…" if reading else ""
        self._update_table()
        self._disarm_after_timeout()
        self._draw(force=bool(changed & set(self.chosen)) or None)

    def _update_table(self):
        try:
            # a run without a track (a broken one) gets an empty one: its row never reads its metrics from the start
            tracks = {str(i.path): self.tracks.get(str(i.path)) or compare.RunTrack(i.path) for i in self.infos}
            frame = compare.run_table([i.path for i in self.infos], {str(i.path): i for i in self.infos}, tracks)
            selection = [int(k) for k in frame.index[frame["path"].isin(self.chosen)]]
            self._updating_table = True
            if not frame.equals(self.table.value):
                self.table.value = frame
            if sorted(self.table.selection) != selection:
                self.table.selection = selection
        finally:
            self._updating_table = False
            # the table joins once its rows are complete (no run's metrics still being read in the background)
            if not self.table_slot.objects and not any(t.reading for t in self.tracks.values()):
                self.table_slot.objects = [self.table]

    def _on_selection(self, event):
        if self._updating_table:
            return
        frame = self.table.value
        picked = [frame["path"].iloc[i] for i in event.new if 0 <= i < len(frame)]
        self.chosen = [p for p in self.chosen if p in picked] + [p for p in picked if p not in self.chosen]
        self._chose_default = True
        self._draw(force=True)

    def _on_show_archived(self):
        self.unarchive_btn.visible = self.show_archived.value
        self.refresh()

    def choose(self, paths):
        """Choose these runs (as ticking their rows does)."""
        self.chosen = [str(p) for p in paths]
        self._chose_default = True
        self._update_table()
        self._draw(force=True)

    # -- drawing --------------------------------------------------------------------------------------------
    def colour(self, path: str) -> str:
        if path not in self._colours:
            self._colours[path] = self._palette[len(self._colours) % len(self._palette)]
        return self._colours[path]

    def names(self, paths) -> list[str]:
        by_path = {str(i.path): i.name for i in self.infos}
        return [by_path.get(p, Path(p).name) for p in paths]

    def _draw(self, force: bool | None = False):
        """Update the differences and the charts; `force` None: only if the chart layout changed."""
        chosen = [p for p in self.chosen if p in self.tracks]
        x = self.x_axis.value
        if force is None and self._layout is not None and self._layout[:2] == (tuple(chosen), x):
            return  # nothing new in the chosen runs: nothing to compute
        names = self.names(chosen)
        if (tuple(chosen), tuple(names)) != self._diffs_for:  # config.json never changes: read once per choice
            self._diffs_for = (tuple(chosen), tuple(names))
            self._draw_diffs(chosen, names)
        tracks = [self.tracks[p] for p in chosen]
        metrics = compare.metric_order(tracks)
        frames = {key: compare.overlay_frame(tracks, names, key, x) for key, _ in metrics}
        rules = compare.overlay_rules(tracks, names, x)
        layout = (tuple(chosen), x, tuple((key, tuple(frames[key]["run"].unique())) for key, _ in metrics))
        if layout != self._layout:
            # another set of lines: new charts (an overlay keeps the lines it was first drawn with)
            self._layout, self.metrics = layout, metrics
            colours = {n: self.colour(p) for p, n in zip(chosen, names)}
            self.pipes = {key: hv.streams.Pipe(data=frames[key]) for key, _ in metrics}
            self.rule_pipe = hv.streams.Pipe(data=rules)
            self.charts.objects = [
                pn.pane.HoloViews(overlay_map(self.pipes[key], self.rule_pipe, label, X_LABELS[x], colours),
                                  linked_axes=False, sizing_mode="stretch_width", css_classes=["compare-chart"])
                for key, label in metrics]
            self.legend.object = " ".join(
                f'<span class="legend-run" style="margin-right:12px"><span style="display:inline-block;width:18px;'
                f'height:3px;vertical-align:middle;background:{colours[n]}"></span> {html.escape(n)}</span>'
                for n in names) + (' <span style="color:#777">· dashed: β_Aug changed (hover for the value)</span>'
                                   if len(rules) else "")
            if not chosen:
                self.charts.objects = [pn.pane.Markdown("Tick runs in the table to see their curves together.")]
            return
        if force is None:
            return
        for key, _ in metrics:
            if not frames[key].equals(self.pipes[key].data):
                self.pipes[key].send(frames[key])
        if not rules.equals(self.rule_pipe.data):
            self.rule_pipe.send(rules)

    def _draw_diffs(self, chosen, names):
        if len(chosen) < 2:
            self.diffs.object = pd.DataFrame()
            self.diff_note.object = "Choose two or more runs to see the settings that differ."
            return
        diffs = compare.setting_differences(chosen, names)
        self.diffs.object = diffs
        self.diff_note.object = (f"**{len(diffs)} setting(s) differ** between the {len(chosen)} chosen runs"
                                 if len(diffs) else f"The {len(chosen)} chosen runs have the same settings.")

    # -- archive and delete ---------------------------------------------------------------------------------
    def _say(self, text: str, kind: str = "info"):
        self.message.param.update(object=text, alert_type=kind, visible=bool(text))

    def _archive(self, hide: bool):
        if not self.chosen:
            self._say("tick the runs to " + ("archive" if hide else "unarchive") + " first", "warning")
            return
        done, failed = [], []
        for p in list(self.chosen):
            try:
                (compare.archive if hide else compare.unarchive)(p, self.root)
                done.append(Path(p).name)
            except (UserError, OSError) as e:
                failed.append(str(e))
        if hide and not self.show_archived.value:
            self.chosen = [p for p in self.chosen if Path(p).name not in done]
        verb = "archived" if hide else "unarchived"
        text = f"{verb} {', '.join(done)}" if done else ""
        if hide and done:
            text += " (hidden from the lists, kept on disk; “show archived runs” lists them)"
        self._say("; ".join([t for t in [text, *failed] if t]), "danger" if failed else "success")
        self._changed()

    def confirm_delete(self) -> bool:
        """The first click arms "Delete" ("Click again to delete N runs"); a second click within DELETE_CONFIRM_S
        seconds, for the same runs, deletes. True when the chosen runs should be deleted now."""
        now = time.monotonic()
        if (self._delete_armed_at is not None and now - self._delete_armed_at <= DELETE_CONFIRM_S
                and self._delete_armed_for == self.chosen):
            self._disarm()
            return True
        self._delete_armed_at, self._delete_armed_for = now, list(self.chosen)
        n = len(self.chosen)
        self.delete_btn.param.update(label=f"Click again to delete {n} run{'s' if n != 1 else ''}", color="warning")
        return False

    def _disarm(self):
        self._delete_armed_at, self._delete_armed_for = None, []
        self.delete_btn.param.update(label="Delete", color="danger")

    def _disarm_after_timeout(self):
        if self._delete_armed_at is not None and time.monotonic() - self._delete_armed_at > DELETE_CONFIRM_S:
            self._disarm()

    def _on_delete(self, event=None):
        if not self.chosen:
            self._say("tick the runs to delete first", "warning")
            return
        if not self.confirm_delete():
            return
        moved, refused = compare.delete_runs(self.chosen, self.root)
        parts = []
        if moved:
            parts.append(f"moved {len(moved)} run(s) to {self.root.name}/{compare.TRASH}: "
                         + ", ".join(m.name for m in moved))
        parts += refused
        self.chosen = [p for p in self.chosen if Path(p).exists()]
        self._say("; ".join(parts), "danger" if refused else "success")
        self._changed()

    def _changed(self):
        if self.on_change is not None:
            self.on_change()
        self.refresh()

    # -- layout ---------------------------------------------------------------------------------------------
    def panel(self) -> pn.viewable.Viewable:
        actions = pn.Row(self.archive_btn, self.unarchive_btn, self.delete_btn, self.show_archived, align="center")
        return pn.Column(
            pn.pane.Markdown("Tick runs to draw their curves together; click a column's title to sort."),
            self.table_slot, actions, self.message, self.diff_note, self.diffs,
            pn.Row(pn.pane.Markdown("x"), self.x_axis), self.legend, self.chart_note, self.charts,
            sizing_mode="stretch_width", css_classes=["compare-tab"])
