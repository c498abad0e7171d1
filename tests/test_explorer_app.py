"""The app's logic without a browser: what each view of a RunView / ExplorerApp is given for a known run."""

import json
import threading
import time

import holoviews as hv
import numpy as np
import pytest

from conftest import copy_run
from core import Run
from explorer.app import ExplorerApp, RunView
from explorer.projection import ProjectionService


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, digits_run_template):
    return copy_run(digits_run_template, tmp_path_factory.mktemp("runs") / "r1")  # DIGITS_RUN, finished


@pytest.fixture(scope="module")
def service():
    svc = ProjectionService(processes=False)
    yield svc
    svc.shutdown()


def wait_for_map(view, timeout=120):
    deadline = time.time() + timeout
    while time.time() < deadline:
        view.refresh()
        if view.shown_key is not None and view.map_job is None:
            return
        time.sleep(0.2)
    raise AssertionError("no map")


def test_run_view_of_a_finished_run(run_dir, service):
    view = RunView(service)
    view.set_run(str(run_dir))
    assert "r1" in view.status_md.object and "finished" in view.status_md.object
    assert view.beta.disabled and view.stop_btn.disabled  # nothing to steer
    # curves: one plot per group that has data, each pipe holding the run's records
    titles = [t for t, _ in view.groups]
    assert titles[0].startswith("Wasserstein") and any(t.startswith("Accuracy") for t in titles)
    w = view.curve_pipes[titles[0]].data
    assert set(w.metric) == {"W curve (−L^C)", "E[C(z̃)] − E[C(z)]"} and w.x.max() == 60
    acc = view.curve_pipes[next(t for t in titles if t.startswith("Accuracy"))].data
    assert sorted(acc[acc.metric == "ACC"].x.tolist()) == [20.0, 40.0, 60.0]
    assert acc[acc.metric == "ACC"].value.tolist() == pytest.approx(
        [r["acc"] for r in Run(run_dir).metrics() if "acc" in r])
    # snapshots: the slider offers every step, the latest is shown; confusion and gallery drawn from it
    assert view.snap_slider.options == [1, 20, 40, 60] and view.snap_slider.value == 60
    assert view.snapshot.step == 60
    assert view.confusion_pane.object is not None
    # the gallery: one row per cluster with its size; an empty cluster says so instead of showing others' images
    sizes = np.bincount(view.snapshot.pred.astype(int), minlength=10)
    gallery = view.gallery_pane.object
    assert gallery.count('class="gallery-row"') == 10
    assert gallery.count("<img") == (sizes > 0).sum() and gallery.count(">empty<") == (sizes == 0).sum()
    import re

    assert sorted(int(n) for n in re.findall(r"\((\d+)\)</span>", gallery)) == sorted(sizes.tolist())
    heatmap = view.confusion_pane.object[()].get(0)  # the caption says what the matrix counts
    assert hv.Store.lookup_options("bokeh", heatmap, "plot").kwargs["title"].startswith(
        "Confusion matrix of the 500-image probe")
    # another snapshot updates the same plot in place (the browser keeps its figure) with that snapshot's matrix
    plot = view.confusion_pane.object
    view.snap_slider.value = 20
    assert view.snapshot.step == 20 and view.confusion_pane.object is plot
    from explorer import viewdata

    conf = viewdata.confusion_view(view.snapshot, view.probe, view.cluster_names)
    cells = {(r.cluster, r["class"]): r["count"] for _, r in plot[()].get(0).dframe().iterrows()}
    assert cells == {(conf.cluster_names[j], conf.class_names[i]): int(conf.matrix[i, j])
                     for i in range(conf.matrix.shape[0]) for j in range(conf.matrix.shape[1])}
    view.snap_slider.value = 60
    view.follow.value = True
    # the map arrives from the (thread) service and fills the scatter with one row per probe image
    wait_for_map(view)
    frame = view.scatter_pipe.data
    assert len(frame) == 500 and set(frame.columns) >= {"x", "y", "cluster", "label", "confidence", "row"}
    assert "thumb" not in frame.columns  # each map update carries no images: the tooltip's formatter holds them
    assert len(view.thumbs) == 500 and all(t.startswith("data:image/png") for t in view.thumbs)
    from bokeh.models import HoverTool

    hover = [t for t in hv.render(view.scatter_maps["cluster"]).tools if isinstance(t, HoverTool)][0]
    assert "@{row}{thumb}" in hover.tooltips
    assert hover.formatters["@{row}"].args["thumbs"].data["thumb"] == view.thumbs
    assert "t-SNE of Z at step 60" in view.map_status.object
    # the legend beside the map: every cluster in order with its probe count, an empty one said to be empty
    legend = view.legend.object
    assert [f"c{c} " in legend for c in range(10)] == [True] * 10
    assert legend.index("c0 ") < legend.index("c1 ") < legend.index("c9 ")
    assert legend.count("(empty)") == (sizes == 0).sum() and not view.spinner.visible  # the idle spinner is hidden
    # a selection lists those images
    view._on_select(list(range(12)))
    assert view.selection_pane.object.count("<img") == 12 and "12 selected images" in view.selection_pane.object
    # going back in time: the slider loads that snapshot and asks for its map, warm-started from the cached one
    view.follow.value = False
    view.snap_slider.value = 20
    assert view.snapshot.step == 20
    # while step 20's map computes, the last map stays on screen with a note saying which step is coming
    assert view.map_job is not None and "computing the t-SNE map of Z at step 20" in view.map_status.object
    assert len(view.scatter_pipe.data) == 500 and view.scatter_pane.object is view.scatter_maps["cluster"]
    wait_for_map(view)
    assert view.shown_key[3] == 20 and service.get((str(run_dir), "Z", "t-SNE", 20)) is not None
    # another space and colouring
    view.space.value = "Z_c"
    wait_for_map(view)
    assert view.shown_key[1] == "Z_c"
    view.colour.value = "confidence"
    assert view.scatter_pane.object is view.scatter_maps["confidence"]


def test_beta_slider_writes_the_runs_control_file(run_dir, service):
    view = RunView(service)
    view.set_run(str(run_dir))
    view.info.state = "running"  # pretend it is live: the slider sends, the trainer would apply
    view._on_beta(type("E", (), {"new": 3.5})())
    assert Run(run_dir).control()["beta_aug"] == 3.5
    assert "3.5" in view.alert.object


def test_app_lists_runs_and_handles_a_bad_folder(run_dir, service, tmp_path):
    app = ExplorerApp(run_dir.parent, service=service)
    assert list(app.run_select.options.values()) == [str(run_dir)]
    assert app.view_a.run_path == str(run_dir)
    for outside in ("/etc", "/", "../..", str(tmp_path)):  # folders the page must not open, nor start runs in
        app.runs_input.value = outside
        app._open_folder()
        assert app.folder_msg.visible and "outside" in app.folder_msg.object, outside
        assert list(app.run_select.options.values()) == [str(run_dir)] and app.folder.root == run_dir.parent
    app.runs_input.value = str(run_dir.parent / "nowhere")
    app._open_folder()
    assert app.folder_msg.visible and "does not exist" in app.folder_msg.object
    assert app.run_select.options == {} and app.view_a.run_path is None
    app.runs_input.value = "bad\x00path"
    app._open_folder()
    assert "control characters" in app.folder_msg.object
    app.f_dataset.value = str(tmp_path / "no-data")  # inside the data root (the runs root's parent): checked
    app._on_start(None)
    assert app.f_msg.alert_type == "danger" and "does not exist" in app.f_msg.object
    for field in (app.f_dataset, app.f_data_path):  # data outside the data root is refused before anything starts
        app.f_dataset.value, app.f_data_path.value = "fashion-mnist", ""
        field.value = "/etc/passwd"
        app._on_start(None)
        assert app.f_msg.alert_type == "danger" and "/etc/passwd is outside" in app.f_msg.object
    app.tuning.f_dataset.value = "/etc/passwd"
    app.tuning._on_start(None)
    assert "/etc/passwd is outside" in app.tuning.f_msg.object
    assert sorted(p.name for p in run_dir.parent.iterdir()) == ["r1"]  # nothing was created


def test_following_a_training_run_rests_the_map_worker_between_maps(digits_run_template, service, tmp_path,
                                                                     monkeypatch):
    run = copy_run(digits_run_template, tmp_path / "live")
    latest = run / "snapshots" / "step_00000060.npz"
    latest.rename(tmp_path / "held.npz")  # the run has reached step 40
    view = RunView(service)
    view.set_run(str(run))
    monkeypatch.setattr(view, "_following_training", lambda: True)  # as if it were still training
    wait_for_map(view)
    assert view.shown_key[3] == 40 and view._next_follow_map > time.monotonic() - 60
    view._next_follow_map = time.monotonic() + 3600  # the worker rests (as long as the last map took)
    (tmp_path / "held.npz").rename(latest)  # a new snapshot arrives
    view.refresh()
    # shown later with its map, not now: the snapshot views, the slider and the map stay together at step 40
    assert view.snapshot.step == 40 and view.map_job is None and view.shown_key[3] == 40
    assert 60 not in view.snap_slider.options and view.snap_slider.value == 40
    view._next_follow_map = 0.0  # the rest is over: the newer snapshot and its map come at the next tick
    wait_for_map(view)
    assert view.shown_key[1:] == ("Z", "t-SNE", 60) and view.snapshot.step == 60 and view.snap_slider.value == 60
    # the run ends while a map is held: the held map comes at once (the last snapshot's map is never lost)
    (run / "snapshots" / "step_00000060.npz").rename(tmp_path / "held.npz")
    view2 = RunView(ProjectionService(processes=False))  # a fresh cache: the map of step 60 is not known yet
    view2.set_run(str(run))
    monkeypatch.setattr(view2, "_following_training", lambda: True)
    wait_for_map(view2)
    view2._next_follow_map = time.monotonic() + 3600
    (tmp_path / "held.npz").rename(latest)
    view2.refresh()
    assert view2.shown_key[3] == 40 and view2.snapshot.step == 40
    monkeypatch.setattr(view2, "_following_training", lambda: False)  # it finished
    wait_for_map(view2)
    assert view2.shown_key[3] == 60 and view2.snapshot.step == 60
    view._next_follow_map = time.monotonic() + 3600
    view.space.value = "Z_c"  # what the person asks for is not held back
    wait_for_map(view)
    assert view.shown_key[1:] == ("Z_c", "t-SNE", 60)


def test_a_live_runs_curves_are_drawn_again_after_a_rest_and_a_persons_change_at_once(run_dir, service):
    import dataclasses

    from explorer.app import LIVE_CURVES_S

    view = RunView(service)
    view.set_run(str(run_dir))
    assert view.groups and view.curve_pipes  # drawn at once when the run is opened
    sends = []
    for pipe in view.curve_pipes.values():
        pipe.add_subscriber(lambda **kw: sends.append(1))
    view.info = dataclasses.replace(view.info, state="running")  # as if it were still training
    view._curves_dirty, view._next_curves = True, time.monotonic() + 3600  # new records while the curves rest
    view._redraw_curves()
    assert sends == [] and view._curves_dirty  # kept for later, not lost
    view._next_curves = 0.0  # the rest is over
    before = time.monotonic()
    view._redraw_curves()
    assert len(sends) == len(view.curve_pipes) and not view._curves_dirty
    assert view._next_curves >= before + LIVE_CURVES_S  # the next redraw rests again
    sends.clear()
    view.smoothing.value = 0.3  # what the person changes is drawn at once, rest or not
    assert len(sends) == len(view.curve_pipes)
    view.info = dataclasses.replace(view.info, state="finished")  # a finished run's records are drawn at once
    sends.clear()
    view._curves_dirty, view._next_curves = True, time.monotonic() + 3600
    view._redraw_curves()
    assert len(sends) == len(view.curve_pipes)


def test_a_damaged_snapshot_falls_back_to_the_last_good_one_and_a_damaged_status_to_the_summary(
        digits_run_template, service, tmp_path):
    from explorer.runs import read_run_info

    run = copy_run(digits_run_template, tmp_path / "damaged")
    (run / "snapshots" / "step_00000060.npz").write_bytes(b"PK\x03\x04 not a whole zip")
    (run / "status.json").write_bytes(bytes(range(256)))  # binary garbage; summary.json is good
    info = read_run_info(run)
    assert info.state == "finished" and info.step == 60
    view = RunView(service)
    view.set_run(str(run))
    assert view.snapshot is not None and view.snapshot.step == 40  # not an empty map with a spinner
    assert view.alert.visible and "step 60" in view.alert.object and "showing step 40" in view.alert.object
    wait_for_map(view)
    assert view.shown_key[3] == 40
    (run / "status.json").write_text("[1, 2, 3]")  # valid JSON of the wrong shape
    assert read_run_info(run).state == "finished"


def test_exports_of_a_selection_a_cluster_and_every_image(run_dir, service, tmp_path):
    import io
    import zipfile

    import pandas as pd
    from PIL import Image

    run = copy_run(run_dir, tmp_path / "exported")
    view = RunView(service)
    view.set_run(str(run))
    ex, snap, probe = view.export, view.snapshot, Run(run).probe()
    assert ex.sel_csv.disabled and ex.sel_zip.disabled  # nothing selected yet
    view._on_select([7, 0, 5])
    assert not ex.sel_csv.disabled and ex.sel_csv.label == "Selection (3) → CSV"
    table = pd.read_csv(ex._selection_csv())
    rows = sorted([7, 0, 5], key=lambda r: -float(snap.confidence[r]))  # the grid's order: most confident first
    assert list(table.columns) == ["index", "name", "cluster", "cluster_name", "confidence", "label"]
    assert table["index"].tolist() == probe.indices[rows].tolist()
    assert table["name"].tolist() == probe.indices[rows].tolist()  # digits has no file names: the index
    assert table.cluster.tolist() == snap.pred[rows].tolist()
    assert table.label.astype(str).tolist() == [probe.class_names[probe.labels[r]] for r in rows]
    assert table.confidence.tolist() == pytest.approx(snap.confidence[rows].astype(float), abs=1e-5)
    with zipfile.ZipFile(ex._selection_zip()) as z:
        pngs = sorted(n for n in z.namelist() if n.endswith(".png"))
        assert len(pngs) == 3 and "images.csv" in z.namelist()
        for r in rows:  # each image comes back pixel for pixel, in its cluster's folder
            name = f"c{snap.pred[r]}/{probe.indices[r]:06d}.png"
            assert np.array_equal(np.asarray(Image.open(io.BytesIO(z.read(name)))), probe.images[r][0])
    c = int(snap.pred[0])
    ex.cluster.value = c
    members = pd.read_csv(ex._cluster_csv())
    assert len(members) == int((snap.pred == c).sum()) and set(members.cluster) == {c}
    assert ex.cluster_csv.filename == f"exported-step60-c{c}.csv"
    # every image of the data set, from the latest checkpoint, on a worker thread
    assert not ex.all_btn.disabled
    ex.start_every_image()
    assert ex.all_btn.disabled  # one at a time
    ex.wait_every_image()
    assert ex.all_csv.visible and "1,797 images clustered" in ex.msg.object
    everything = pd.read_csv(ex._all_csv())
    assert len(everything) == 1797 and everything["index"].tolist() == list(range(1797))
    assert everything.cluster.tolist() == Run(run).predict()["cluster"].tolist()


def test_a_named_cluster_is_shown_everywhere_saved_and_exported(run_dir, service, tmp_path):
    import pandas as pd

    from core.errors import ConfigError

    run = copy_run(run_dir, tmp_path / "named")
    view = RunView(service)
    view.set_run(str(run))
    wait_for_map(view)
    ex, c = view.export, int(view.snapshot.pred[0])
    ex.cluster.value = c
    ex.name_input.value = "  round   things "
    ex.save_name()
    shown = f"c{c} · round things"
    assert Run(run).cluster_names() == {c: "round things"} and "now called" in ex.msg.object
    assert shown in view.gallery_pane.object  # gallery row
    assert shown in set(view.scatter_pipe.data.cluster)  # map legend and tooltips
    assert shown in set(view.confusion_pane.object[()].get(0).data["cluster"])  # confusion axis
    view._on_select([0])
    assert shown in view.selection_pane.object
    assert pd.read_csv(ex._selection_csv()).cluster_name.tolist() == ["round things"]
    assert any(shown in label for label in ex.cluster.options)
    again = RunView(service)  # another page reads the names from the run folder
    again.set_run(str(run))
    assert again.cluster_names == {c: "round things"}
    ex.name_input.value = "x" * 41  # too long: refused, nothing changed
    ex.save_name()
    assert ex.msg.alert_type == "danger" and Run(run).cluster_names() == {c: "round things"}
    with pytest.raises(ConfigError, match="control characters"):
        Run(run).name_cluster(c, "a\x07b")
    with pytest.raises(ConfigError, match="no cluster 99"):
        Run(run).name_cluster(99, "nope")
    ex.name_input.value = ""  # an empty name removes it
    ex.save_name()
    assert Run(run).cluster_names() == {} and shown not in view.gallery_pane.object


def test_stop_asks_for_a_second_click(run_dir, service, monkeypatch):
    from explorer import app as app_module

    stops = []
    monkeypatch.setattr(app_module.launcher, "stop", lambda path: stops.append(path))
    view = RunView(service)
    view.set_run(str(run_dir))
    view._on_stop(None)
    assert stops == [] and view.stop_btn.label == "Click again to stop"
    view._on_stop(None)
    assert stops == [str(run_dir)] and view.stop_btn.label == "Stop run"
    monkeypatch.setattr(app_module, "STOP_CONFIRM_S", 0.05)
    view._on_stop(None)
    time.sleep(0.1)
    view.refresh()  # the question lapses: the button says "Stop run" again, and one click only arms it
    assert view.stop_btn.label == "Stop run"
    view._on_stop(None)
    assert stops == [str(run_dir)]


def test_switching_runs_resets_the_snapshot_slider_and_says_when_there_is_no_snapshot(run_dir, service, tmp_path):
    import shutil

    bare = copy_run(run_dir, tmp_path / "no-snapshots")
    shutil.rmtree(bare / "snapshots")
    view = RunView(service)
    view.set_run(str(run_dir))
    assert view.snap_slider.options == [1, 20, 40, 60]
    view.set_run(str(bare))
    assert view.snap_slider.options == [0] and view.snap_slider.disabled and view.snapshot is None
    assert "no snapshot" in view.map_status.object
def test_a_long_runs_metrics_are_read_off_the_calling_thread(digits_run_template, service, tmp_path, monkeypatch):
    import explorer.app as app_module
    from explorer.curves import MAX_POINTS

    run = copy_run(digits_run_template, tmp_path / "long")
    # about 5 MB of records shaped as the run's own (every key the engine writes), with one spike
    train = [r for r in Run(run).metrics() if r.get("kind") == "train"]
    n = 12_000
    with open(run / "metrics.jsonl", "w") as f:
        for step in range(1, n + 1):
            rec = dict(train[step % len(train)], step=step, epoch=step / 56, time=0.3 * step)
            rec["wasserstein"] = 50.0 if step == 7_777 else 1.0 / step
            f.write(json.dumps(rec) + "\n")
    size = (run / "metrics.jsonl").stat().st_size
    assert size > 4_000_000
    readers = []

    def slow(real):
        def read(tail, *args):  # a slow disk: the parse must not hold up the caller
            readers.append(threading.current_thread())
            if len(readers) == 1:
                time.sleep(1.5)
            return real(tail, *args)
        return read

    for name in ("read_chunk", "read_chunk_kept"):
        monkeypatch.setattr(app_module, name, slow(getattr(app_module, name)))
    view = RunView(service)
    t0 = time.monotonic()
    view.set_run(str(run))
    assert time.monotonic() - t0 < 1.0  # returned while the reader thread reads
    assert view.curves.n == 0 and view.curve_box.objects == []
    assert view.curve_note.object == f"reading metrics ({size / 1e6:,.0f} MB)…"
    deadline = time.monotonic() + 60
    while view.curves.n == 0 and time.monotonic() < deadline:
        time.sleep(0.2)
        view.refresh()  # one read at a time: a tick while it reads starts no second one
    assert readers and readers[0] is not threading.current_thread() and len(readers) == 1
    assert view.curves.n == n and view.curve_note.object == ""
    w = view.curve_pipes[view.groups[0][0]].data
    line = w[w.metric == "W curve (−L^C)"]
    assert len(line) <= MAX_POINTS and line.x.max() == n
    view.smoothing.value = 0.0
    line = view.curve_pipes[view.groups[0][0]].data
    assert line[line.metric == "W curve (−L^C)"].value.max() == 50.0  # the spike survives downsampling
    # a small increment is read at once, on the calling thread
    with open(run / "metrics.jsonl", "a") as f:
        f.write(json.dumps(dict(train[0], step=n + 1)) + "\n")
    view.refresh()
    assert view.curves.n == n + 1 and readers[-1] is threading.current_thread()
    # another page of the server opening the run takes the parsed columns: its curves at once, no second parse
    reads = len(readers)
    other = RunView(service)
    other.set_run(str(run))
    assert other.curves.n == n + 1 and other.curve_note.object == "" and len(readers) == reads + 1  # the 1 record
    for k in view.curves.columns.keys():
        np.testing.assert_array_equal(other.curves.column(k), view.curves.column(k))
    assert other.curve_box.objects  # drawn in set_run itself


def test_a_read_that_ends_before_the_page_has_loaded_is_drawn_at_its_load(digits_run_template, service, tmp_path,
                                                                         monkeypatch):
    """Plots added while the browser still builds the page were seen never to appear (one page in two when two
    opened at once): a finished read waits for the page's load, where the first tick draws it."""
    import panel as pn

    from explorer.curves import READ_CACHE

    root = tmp_path / "runs"
    run = copy_run(digits_run_template, root / "long")
    train = [r for r in Run(run).metrics() if r.get("kind") == "train"]
    with open(run / "metrics.jsonl", "w") as f:
        for step in range(1, 4001):  # about 1.7 MB: read on the reader thread
            f.write(json.dumps(dict(train[step % len(train)], step=step)) + "\n")
    READ_CACHE.clear()
    loaded = {"value": False}
    monkeypatch.setattr(type(pn.state), "loaded", property(lambda self: loaded["value"]))
    monkeypatch.setattr(pn.state, "add_periodic_callback", lambda *a, **k: None)
    app = ExplorerApp(root, run=str(run), service=service)
    view = app.view_a
    job = view._metrics_job
    assert job is not None and job.future.result(60).n == 4000
    view._metrics_read(job)  # the reader thread's callback, before the page has loaded: nothing drawn yet
    assert view._metrics_job is job and view.curves.n == 0 and view.curve_box.objects == []
    loaded["value"] = True
    app.start_polling()  # Panel calls it at the page's load
    assert view._metrics_job is None and view.curves.n == 4000 and view.curve_box.objects
    assert view.curve_note.object == ""


def test_the_compare_view_reads_nothing_while_compare_is_off(digits_run_template, service, tmp_path, monkeypatch):
    import explorer.app as app_module

    root = tmp_path / "runs"
    for name in ("a", "b"):
        copy_run(digits_run_template, root / name)
    tails = []
    real_read = app_module.read_chunk
    monkeypatch.setattr(app_module, "read_chunk", lambda tail: tails.append(tail.path) or real_read(tail))
    app = ExplorerApp(root, service=service)
    app.tick()
    app.tick()
    assert app.view_a.run is not None and app.view_a.curves.n > 0
    assert app.view_b.run is None and app.view_b.curves.n == 0 and app.view_b.snapshot is None
    assert all(p.parent == root / app.view_a.run.name for p in tails)
    app.compare.value = True
    assert app.view_b.run is not None and app.view_b.curves.n > 0 and app.view_b.run_path != app.view_a.run_path
    app.compare.value = False
    assert app.view_b.run is None and app.view_b.curves.n == 0
    app.tick()
    assert app.view_b.run is None


def test_a_confusion_cell_click_selects_its_images_in_the_grid_and_on_the_map(run_dir, service):
    view = RunView(service)
    view.set_run(str(run_dir))
    wait_for_map(view)
    conf, snap = view.confusion, view.snapshot
    i, j = np.unravel_index(np.argmax(conf.matrix), conf.matrix.shape)  # the fullest cell
    view.select_cell(conf.cluster_names[j], conf.class_names[i])
    assert len(view.selected) == conf.matrix[i, j] > 0
    assert set(snap.pred[view.selected]) == {conf.clusters[j]} and set(snap.labels[view.selected]) == {i}
    assert f"{conf.matrix[i, j]} selected images" in view.selection_pane.object
    assert view.scatter_pipe.data.attrs["selected"] == view.selected  # the map highlights the same points
    assert "selected the" in view.alert.object


def test_one_selected_image_shows_its_nearest_images_and_a_selection_its_counts(run_dir, service):
    view = RunView(service)
    view.set_run(str(run_dir))
    view._on_select([7])
    html = view.selection_pane.object
    from explorer.viewdata import nearest

    near = nearest(view.snapshot, "Z", 7)
    assert "its 16 nearest images in Z, nearest first" in html and html.count("<img") == 1 + 16
    assert len(near) == 16 and 7 not in near.tolist()
    view.space.value = "Z_c"
    view._on_select([7])
    assert "nearest images in Z_c" in view.selection_pane.object
    view._on_select(list(range(40)))  # many images: counts per cluster and label at the top, no neighbours
    html = view.selection_pane.object
    assert "by cluster: " in html and "by label: " in html and "nearest" not in html


def test_legend_gallery_and_grid_clicks_select_images_and_the_grid_pages_past_100(run_dir, service):
    """A click on a legend entry or a gallery row selects that cluster's (or class's) images; a click on an image
    of the grid shows its nearest images; a selection of more than 100 pages through the grid, 100 at a time."""
    import re

    view = RunView(service)
    view.set_run(str(run_dir))
    wait_for_map(view)
    snap = view.snapshot
    sizes = np.bincount(snap.pred, minlength=snap.z_c.shape[1])
    c = int(np.argmax(sizes))  # the largest cluster
    picks = re.findall(r'data-pick="(\d+)"', view.legend.object)
    assert picks == [str(k) for k in range(len(sizes)) if sizes[k]]  # every non-empty cluster, none empty
    view.legend.pick(str(c))  # as the browser's click message does
    assert sorted(view.selected) == np.flatnonzero(snap.pred == c).tolist()
    assert view.scatter_pipe.data.attrs["selected"] == view.selected and "selected the" in view.alert.object
    # coloured by label, the legend's entries are classes
    view.colour.value = "label"
    view.legend.pick("3")
    assert sorted(view.selected) == np.flatnonzero(snap.labels == 3).tolist()
    view.colour.value = "cluster"
    # the gallery's rows carry their cluster
    gallery_picks = re.findall(r'class="gallery-row" data-pick="(\d+)"', view.gallery_pane.object)
    assert set(gallery_picks) == {str(k) for k in range(len(sizes)) if sizes[k]}
    other = int(np.argsort(sizes)[-2])
    view.gallery_pane.pick(str(other))
    assert sorted(view.selected) == np.flatnonzero(snap.pred == other).tolist()
    # an image of the grid: its nearest images
    first = re.search(r'class="sel-cell" data-pick="(\d+)"', view.selection_pane.object).group(1)
    view.selection_pane.pick(first)
    assert view.selected == [int(first)] and "its 16 nearest images" in view.selection_pane.object
    # a selection of 250 images: pages of 100, most confident first; a new selection starts at its first page
    rows = list(range(250))
    view.select_rows(rows)
    order = np.array(rows)[np.argsort(-snap.confidence[rows], kind="stable")]
    shown = lambda: [int(r) for r in re.findall(r'class="sel-cell" data-pick="(\d+)"', view.selection_pane.object)]  # noqa: E731
    assert "images 1–100 of 250 selected images" in view.selection_pane.object and shown() == order[:100].tolist()
    assert view.sel_prev.visible and view.sel_prev.disabled and not view.sel_next.disabled
    view.page_selection(+1)
    view.page_selection(+1)
    assert "images 201–250 of 250" in view.selection_pane.object and shown() == order[200:].tolist()
    assert view.sel_next.disabled and not view.sel_prev.disabled
    view.page_selection(+1)  # past the last page: stays
    assert shown() == order[200:].tolist()
    view.page_selection(-1)
    assert shown() == order[100:200].tolist()
    view.select_rows(list(range(10)))
    assert view.sel_first == 0 and not view.sel_next.visible and "10 selected images" in view.selection_pane.object
    # keys come from the browser: anything that is not one of the page's own is ignored
    for pane in (view.legend, view.gallery_pane, view.selection_pane):
        for key in ("abc", "-1", "99999", "1.5", ""):
            pane.pick(key)
    view.colour.value = "label"
    view.legend.pick("42")
    assert view.selected == list(range(10))
