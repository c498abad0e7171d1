"""The app's logic without a browser: what each view of a RunView / ExplorerApp is given for a known run."""

import time

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
    assert view.gallery_pane.object.count("<img") == 10
    # the map arrives from the (thread) service and fills the scatter with one row per probe image
    wait_for_map(view)
    frame = view.scatter_pipe.data
    assert len(frame) == 500 and set(frame.columns) >= {"x", "y", "cluster", "label", "confidence", "thumb"}
    assert frame.thumb.str.startswith("data:image/png").all()
    assert "t-SNE of Z at step 60" in view.map_status.object
    # a selection lists those images
    view._on_select(list(range(12)))
    assert view.selection_pane.object.count("<img") == 12 and "12 selected images" in view.selection_pane.object
    # going back in time: the slider loads that snapshot and asks for its map, warm-started from the cached one
    view.follow.value = False
    view.snap_slider.value = 20
    assert view.snapshot.step == 20
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
    assert view.snapshot.step == 60 and view.map_job is None and view.shown_key[3] == 40  # shown later, not now
    view._next_follow_map = 0.0  # the rest is over: the held map comes at the next tick
    wait_for_map(view)
    assert view.shown_key[1:] == ("Z", "t-SNE", 60)
    # the run ends while a map is held: the held map comes at once (the last snapshot's map is never lost)
    (run / "snapshots" / "step_00000060.npz").rename(tmp_path / "held.npz")
    view2 = RunView(ProjectionService(processes=False))  # a fresh cache: the map of step 60 is not known yet
    view2.set_run(str(run))
    monkeypatch.setattr(view2, "_following_training", lambda: True)
    wait_for_map(view2)
    view2._next_follow_map = time.monotonic() + 3600
    (tmp_path / "held.npz").rename(latest)
    view2.refresh()
    assert view2.shown_key[3] == 40 and view2._map_held
    monkeypatch.setattr(view2, "_following_training", lambda: False)  # it finished
    wait_for_map(view2)
    assert view2.shown_key[3] == 60
    view._next_follow_map = time.monotonic() + 3600
    view.space.value = "Z_c"  # what the person asks for is not held back
    wait_for_map(view)
    assert view.shown_key[1:] == ("Z_c", "t-SNE", 60)


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
