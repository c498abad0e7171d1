"""The "Export / name" tab of a run: downloads of the selection and of a cluster (CSV, or a zip of the images),
the cluster of every image of the data set, and a name for a cluster. What is exported is `explorer.exports`'s;
this module only offers it."""

from __future__ import annotations

import io
import threading
import traceback
from concurrent.futures import Future

import panel as pn

from core.errors import UserError
from core.rundir import CLUSTER_NAME_MAX

from . import exports, viewdata


class ExportPanel:
    """Built once per RunView; `view` gives the run, snapshot, probe, selection and cluster names it exports."""

    def __init__(self, view, sfx: str = ""):
        self.view = view
        self.sel_csv = pn.widgets.FileDownload(callback=self._selection_csv, filename="selection.csv",
                                               label="Selection → CSV", color="primary", disabled=True,
                                               css_classes=[f"export-sel-csv{sfx}"], width=200)
        self.sel_zip = pn.widgets.FileDownload(callback=self._selection_zip, filename="selection-images.zip",
                                               label="Selection → images (zip)", disabled=True,
                                               css_classes=[f"export-sel-zip{sfx}"], width=200)
        self.cluster = pn.widgets.Select(label="Cluster", options={}, css_classes=[f"export-cluster{sfx}"], width=200)
        self.cluster_csv = pn.widgets.FileDownload(callback=self._cluster_csv, filename="cluster.csv",
                                                   label="Cluster → CSV", disabled=True,
                                                   css_classes=[f"export-cluster-csv{sfx}"], width=200)
        self.name_input = pn.widgets.TextInput(label="Name of the cluster", placeholder="e.g. sneakers",
                                               max_length=CLUSTER_NAME_MAX, css_classes=[f"cluster-name{sfx}"],
                                               width=200)
        self.name_btn = pn.widgets.Button(label="Save name", disabled=True, css_classes=[f"cluster-name-btn{sfx}"],
                                          width=100, align="end")
        self.all_btn = pn.widgets.Button(label="Every image's cluster…", disabled=True,
                                         css_classes=[f"export-all{sfx}"], width=200)
        self.all_csv = pn.widgets.FileDownload(callback=self._all_csv, filename="clusters.csv",
                                               label="Download clusters.csv", color="success", visible=False,
                                               css_classes=[f"export-all-csv{sfx}"], width=200)
        self.msg = pn.pane.Alert("", alert_type="info", visible=False, css_classes=[f"export-alert{sfx}"])
        self.cluster.param.watch(lambda e: self._fill_name(), "value")
        self.name_btn.on_click(lambda e: self.save_name())
        self.all_btn.on_click(lambda e: self.start_every_image())
        self._all: Future | None = None
        self._all_table = None

    # -- state from the view ----------------------------------------------------------------------------------
    def update(self) -> None:
        """Follow the view: what can be exported now, and the clusters to choose from."""
        v = self.view
        ready = v.snapshot is not None and v.probe is not None
        self.sel_csv.disabled = self.sel_zip.disabled = not (ready and v.selected)
        n = len(v.selected)
        self.sel_csv.label = f"Selection ({n:,}) → CSV" if n else "Selection → CSV"
        self.sel_zip.label = (f"Selection ({n:,}) → images (zip)" if n <= exports.MAX_ZIP_IMAGES
                              else f"zip: at most {exports.MAX_ZIP_IMAGES:,} images")
        self.sel_zip.disabled = self.sel_zip.disabled or n > exports.MAX_ZIP_IMAGES
        if ready:
            k = v.snapshot.z_c.shape[1]
            sizes = viewdata.cluster_sizes(v.snapshot)["size"].tolist()
            options = {f"{viewdata.cluster_label(c, v.cluster_names)} ({sizes[c]:,})": c for c in range(k)}
            if options != self.cluster.options:
                value = self.cluster.value if self.cluster.value in options.values() else 0
                self.cluster.param.update(options=options, value=value)
        self.cluster_csv.disabled = not ready
        self.name_btn.disabled = v.run is None or not ready
        self.all_btn.disabled = v.run is None or not v.run.checkpoint_steps() or self._all is not None
        self._fill_name()

    def reset(self) -> None:
        self._all, self._all_table = None, None
        self.all_csv.visible = False
        self.all_btn.label = "Every image's cluster…"
        self._say("")

    def _fill_name(self) -> None:
        if self.cluster.value is not None:
            self.name_input.value = self.view.cluster_names.get(int(self.cluster.value), "")

    def _say(self, text: str, kind: str = "info") -> None:
        self.msg.param.update(object=text, alert_type=kind, visible=bool(text))

    # -- downloads (called when a button is clicked) ------------------------------------------------------------
    def _selection_table(self):
        v = self.view
        return exports.selection_table(v.snapshot, v.probe, v.selected, v.cluster_names)

    def _selection_csv(self):
        self.sel_csv.filename = f"{self.view.run.name}-step{self.view.snapshot.step}-selection.csv"
        return io.BytesIO(exports.csv_bytes(self._selection_table()))

    def _selection_zip(self):
        self.sel_zip.filename = f"{self.view.run.name}-step{self.view.snapshot.step}-selection.zip"
        try:
            return io.BytesIO(exports.images_zip(self._selection_table(), self.view.probe))
        except ValueError as e:
            self._say(str(e), "warning")
            return io.BytesIO(b"")

    def _cluster_csv(self):
        v, c = self.view, int(self.cluster.value or 0)
        self.cluster_csv.filename = f"{v.run.name}-step{v.snapshot.step}-c{c}.csv"
        return io.BytesIO(exports.csv_bytes(exports.cluster_table(v.snapshot, v.probe, c, v.cluster_names)))

    def _all_csv(self):
        return io.BytesIO(exports.csv_bytes(self._all_table))

    # -- every image: the run's checkpoint over its whole data set, on a thread ---------------------------------
    def start_every_image(self) -> None:
        run = self.view.run
        if run is None or self._all is not None:
            return
        self._all = Future()
        self.all_btn.param.update(disabled=True, label="clustering every image…")
        self._say(f"clustering every image of {run.name} with its latest checkpoint …")

        def work(future=self._all):
            try:
                future.set_result(exports.every_image_table(run))
            except Exception as e:  # reported on the page by poll()
                if not isinstance(e, UserError):
                    traceback.print_exc()
                future.set_exception(e)

        threading.Thread(target=work, name="export-every-image", daemon=True).start()

    def poll(self) -> None:
        """Called on each refresh of the view (the page's event loop): show a finished export."""
        job = self._all
        if job is None or not job.done():
            return
        self._all = None
        self.all_btn.param.update(disabled=False, label="Every image's cluster…")
        if job.exception() is not None:
            self._say(f"could not cluster every image: {job.exception()}", "danger")
            return
        self._all_table = job.result()
        step = self.view.run.checkpoint_steps()[-1] if self.view.run.checkpoint_steps() else 0
        self.all_csv.filename = f"{self.view.run.name}-step{step}-clusters.csv"
        self.all_csv.label = f"Download {len(self._all_table):,} images' clusters (CSV)"
        self.all_csv.visible = True
        self._say(f"{len(self._all_table):,} images clustered with the checkpoint of step {step:,}", "success")

    def wait_every_image(self, timeout: float = 120.0) -> None:
        """For tests and notebooks: wait for the every-image export to end, then show it."""
        if self._all is not None:
            try:
                self._all.exception(timeout=timeout)
            finally:
                self.poll()

    # -- naming ---------------------------------------------------------------------------------------------
    def save_name(self) -> None:
        v = self.view
        if v.run is None or self.cluster.value is None:
            return
        c = int(self.cluster.value)
        try:
            v.cluster_names = v.run.name_cluster(c, self.name_input.value)
        except (UserError, OSError) as e:
            self._say(f"could not name c{c}: {e}", "danger")
            return
        name = v.cluster_names.get(c)
        self._say(f"c{c} is now called “{name}”" if name else f"c{c} has no name now", "success")
        v.names_changed()

    # -- layout ---------------------------------------------------------------------------------------------
    def panel(self) -> pn.viewable.Viewable:
        return pn.Column(
            pn.pane.Markdown("**The selection** (box or lasso on the map)"), pn.Row(self.sel_csv, self.sel_zip),
            pn.pane.Markdown("**A cluster** of the probe images: its table, and its name"),
            pn.Row(self.cluster, self.cluster_csv), pn.Row(self.name_input, self.name_btn),
            pn.pane.Markdown("**Every image** of the data set, clustered by the run's latest checkpoint"),
            pn.Row(self.all_btn, self.all_csv), self.msg, sizing_mode="stretch_width")

