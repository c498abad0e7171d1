"""The notebook dashboard of a β_Aug tuning session (`explorer.watch_session`) through its ipywidget and its Python
API: it trains the session in the kernel's background, the β_Aug slider moves through the session's values and
changes what the widget shows, the mark buttons save a person's call, and Stop stops a session (in this kernel or
another process) so that it can be continued."""

import json
import subprocess
import sys
import time

import pytest

from core import Run, TrainConfig
from core.tuning import STOP_FILE, TuningSession
from explorer import DashboardError, watch_session
from explorer.projection import ProjectionService

from conftest import REPO
from test_notebook_widget import bokeh_model, capture_patches, click, from_browser, wait_until

SMALL = dict(dataset="digits", probe_size=300, eval_every=0, batch_size=32, log_every=5, threads=1, progress=False)


@pytest.fixture(scope="module")
def service():
    svc = ProjectionService(processes=False)
    yield svc
    svc.shutdown()


@pytest.mark.slow
def test_a_session_trains_in_the_background_and_the_slider_and_marks_work_through_the_widget(tmp_path, service):
    session = TuningSession.create(tmp_path / "tune", TrainConfig(steps=30, **SMALL), [1, 3], mode="branch",
                                   warmup_steps=10, parallel=2)
    dash = watch_session(session, service=service, interval=0.2)  # starts the session; returns at once
    try:
        assert dash._runner.is_alive()
        wait_until(lambda: dash.state == "running", timeout=60, what="the session running")
        widget = dash.widget
        sent = capture_patches(widget)
        assert dash.shown["selected"] == 1.0 and "**β_Aug 1**" in dash.shown["detail"]

        # the slider (a DiscreteSlider: the browser sends the index of the value) moves to β_Aug 3
        inner = [m for m in widget._model.document.models
                 if type(m).__name__ == "Slider" and "session-beta" in (m.css_classes or [])]
        assert len(inner) == 1
        inner = inner[0]
        for attr in ("value", "value_throttled"):
            from_browser(widget, {"kind": "ModelChanged", "model": {"id": inner.id}, "attr": attr, "new": 1})
        assert dash.beta_aug == 3.0 and dash.shown["selected"] == 3.0
        assert "**β_Aug 3**" in dash.shown["detail"]
        assert [t.endswith("◀") for t in dash.shown["map_titles"]] == [False, True]
        assert sent, "the widget sent the change to the browser"

        rec = dash.wait(timeout=400)
        shown = dash.shown
        assert shown["state"] == "finished" and rec is not None and rec["by"] == "score"
        scored = [v for v, s in shown["scores"].items() if s is not None]
        assert 1.0 in scored and shown["maps"] == scored and not shown["computing"]
        assert shown["recommendation"] == rec["value"] and not shown["stop_enabled"]

        # the Python API moves the slider too; the mark buttons act on the selected value and are saved
        dash.beta_aug = 1.0
        assert [t.endswith("◀") for t in dash.shown["map_titles"]] == [True, False]
        click(widget, bokeh_model(widget, "mark-overlap"))
        saved = TuningSession(tmp_path / "tune")
        assert saved.data["marks"]["beta-1"]["verdict"] == "overlap" and saved.data["marks"]["beta-1"]["by"] == "person"
        assert saved.recommendation["value"] is None and dash.shown["verdicts"][1.0] == "overlap"
        assert dash.mark(None)["by"] == "score"  # back to the score's call
        assert "beta-1" not in TuningSession(tmp_path / "tune").data["marks"]
        frame = dash.scores()
        assert list(frame["beta_aug"]) == [1.0, 3.0] and frame.loc[0, "state"] == "finished"

        with pytest.raises(DashboardError, match="not a value of this session"):
            dash.beta_aug = 2.0
        with pytest.raises(DashboardError, match="verdict"):
            dash.mark("maybe")
        with pytest.raises(DashboardError, match="finished"):
            dash.start()
        with pytest.raises(DashboardError, match="nothing to stop"):
            dash.stop()
    finally:
        dash.close()


@pytest.mark.slow
def test_stop_button_stops_a_session_another_process_trains_and_it_continues(tmp_path, service):
    folder = tmp_path / "tune"
    cmd = [sys.executable, "-m", "core", "tune", "--session-dir", str(folder), "--values", "1,2", "--steps",
           "100000", "--probe-size", "300", "--eval-every", "0", "--batch-size", "32", "--threads", "1",
           "--device", "cpu", "--no-progress", "--dataset", "digits"]
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        wait_until(lambda: (folder / "session.json").is_file(), timeout=120, what="the session file")
        dash = watch_session(folder, service=service, interval=0.2)  # another process trains it: only watched
        assert dash._runner is None
        wait_until(lambda: (folder / "beta-1" / "metrics.jsonl").is_file()
                   and (folder / "beta-1" / "metrics.jsonl").stat().st_size > 0, timeout=180, what="first records")
        wait_until(lambda: dash.shown["stop_enabled"], timeout=30, what="the Stop button enabled")
        click(dash.widget, bokeh_model(dash.widget, "session-stop"))
        assert (folder / STOP_FILE).is_file() and "stop requested" in dash.shown["message"]
        out, _ = proc.communicate(timeout=180)
        assert proc.returncode == 0, out[-2000:]
        assert "stopped on request" in out
        doc = json.loads((folder / "session.json").read_text())
        assert doc["state"] == "stopped"
        assert doc["runs"]["beta-1"]["state"] == "stopped" and doc["runs"]["beta-2"]["state"] == "pending"
        wait_until(lambda: dash.shown["state"] == "stopped" and not dash.shown["stop_enabled"], timeout=30,
                   what="the dashboard showing the stop")
        stopped_at = json.loads((folder / "beta-1" / "status.json").read_text())["step"]
        assert 0 < stopped_at < 100000

        # `tune --stop` on a session that is not training is a clear error, not a traceback
        bad = subprocess.run([sys.executable, "-m", "core", "tune", "--session-dir", str(folder), "--stop"],
                             cwd=REPO, capture_output=True, text=True, timeout=120)
        assert bad.returncode != 0 and "nothing to stop" in bad.stderr and "Traceback" not in bad.stderr

        # continuing it from the dashboard resumes β_Aug 1 where it stopped; the Python stop() stops it again
        dash.start()
        wait_until(lambda: dash.state == "running", timeout=60, what="the session running again")
        wait_until(lambda: Run(folder / "beta-1").metrics()[-1]["step"] > stopped_at,  # its records, every 10 steps
                   timeout=180, what="β_Aug 1 training past its stop")
        dash.stop()
        wait_until(lambda: not dash._runner.is_alive(), timeout=180, what="the session stopping")
        assert dash.error is None and dash.state == "stopped"
        dash.close()
    finally:
        if proc.poll() is None:
            proc.kill()


def test_watch_session_refuses_what_is_not_a_session(tmp_path):
    with pytest.raises(DashboardError, match="no tuning session"):
        watch_session(tmp_path / "nowhere")
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "config.json").write_text("{}")
    with pytest.raises(DashboardError, match="not a tuning session folder"):
        watch_session(tmp_path / "run")
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "session.json").write_text("{not json")
    with pytest.raises(DashboardError, match="cannot be read"):
        watch_session(tmp_path / "bad")
    with pytest.raises(DashboardError, match="not int"):
        watch_session(3)
    with pytest.raises(DashboardError, match="empty"):
        watch_session("  ")
