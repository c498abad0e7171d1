"""The notebook dashboard (`explorer.watch`) through its ipywidget and its Python API: moving the β_Aug slider or
pressing Stop in the browser reaches the trainer (in this process, or another process through control.json), and
the views follow the run."""

import json
import subprocess
import sys
import time

import pytest

from conftest import copy_run
from core import Run, TrainConfig
from core.trainer import Trainer
from explorer import DashboardError, watch
from explorer.launcher import launch, stop
from explorer.projection import ProjectionService


@pytest.fixture(scope="module")
def service():
    svc = ProjectionService(processes=False)  # maps in a thread: no worker process to start for these tests
    yield svc
    svc.shutdown()


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory, digits_run_template):
    return copy_run(digits_run_template, tmp_path_factory.mktemp("runs") / "done")  # DIGITS_RUN, finished


def wait_until(predicate, timeout=120.0, what="condition"):
    deadline = time.time() + timeout
    while not predicate():
        if time.time() > deadline:
            raise AssertionError(f"{what} not reached within {timeout} s")
        time.sleep(0.1)


def bokeh_model(widget, css_class):
    """The Bokeh model behind one of the dashboard's widgets, found in the ipywidget's document."""
    found = [m for m in widget._model.document.models if css_class in (getattr(m, "css_classes", None) or [])]
    assert len(found) == 1, (css_class, found)
    return found[0]


def from_browser(widget, content):
    """Deliver a message as the browser's jupyter_bokeh view sends it over the widget's comm."""
    widget._handle_msg({"content": {"data": {"method": "custom", "content": {"event": "jsevent", **content}}},
                        "buffers": []})


def move_slider(widget, slider, value):
    """A person dragging a slider: `value` while dragging, `value_throttled` on release."""
    for attr in ("value", "value_throttled"):
        from_browser(widget, {"kind": "ModelChanged", "model": {"id": slider.id}, "attr": attr, "new": value})


def click(widget, button):
    from_browser(widget, {"kind": "MessageSent", "msg_type": "bokeh_event",
                          "msg_data": {"type": "event", "name": "button_click",
                                       "values": {"type": "map", "entries": [["model", {"id": button.id}]]}}})


def capture_patches(widget):
    """Document patches the widget sends to the browser."""
    sent = []
    widget.send = lambda content, buffers=None: sent.append(content)
    return sent


@pytest.mark.slow
def test_browser_slider_and_stop_button_steer_a_trainer_of_this_kernel(tmp_path, service):
    trainer = Trainer(TrainConfig(dataset="digits", steps=5000, batch_size=32, log_every=2, eval_every=0,
                                  snapshot_every=20, probe_size=300, threads=1, run_dir=str(tmp_path / "r"),
                                  progress=False))
    dash = watch(trainer, service=service, interval=0.2)  # starts the trainer and returns at once
    try:
        assert trainer.running
        widget = dash.widget
        sent = capture_patches(widget)
        wait_until(lambda: dash.shown["records"] >= 2, what="first records on the dashboard")
        # the refresh thread keeps the views in step with the run, and the browser gets the changes
        before, patches = dash.shown["records"], len(sent)
        wait_until(lambda: dash.shown["records"] >= before + 3, what="new records on the dashboard")
        assert len(sent) > patches and all(m["msg"] == "patch" for m in sent)
        # a live run's curves are drawn again after a rest of a few seconds (explorer/app.py, LIVE_CURVES_S)
        drawn = lambda: dash.view.curve_pipes[next(iter(dash.view.curve_pipes))].data.x.max()  # noqa: E731
        wait_until(lambda: drawn() >= 2 * (before + 1) - 2, what="the new records in the curves")

        move_slider(widget, bokeh_model(widget, "beta-slider"), 3.5)
        assert dash.view.beta.value == 3.5 and "sent" in dash.shown["message"]
        wait_until(lambda: trainer.beta_aug == 3.5, what="β_Aug applied")
        change = Run(tmp_path / "r").metrics("set")[-1]
        assert (change["setting"], change["value"], change["previous"], change["source"]) == ("beta_aug", 3.5, 2.0,
                                                                                              "api")
        wait_until(lambda: any(r["step"] >= change["step"] for r in dash.view.records), what="records after it")
        assert dash.shown["beta_aug"] == 3.5 and dash.beta_aug == 3.5
        assert all(r["beta_aug"] == 3.5 for r in dash.view.records if r["step"] >= change["step"])

        dash.beta_aug = 1.0  # the Python API does the same
        wait_until(lambda: trainer.beta_aug == 1.0, what="β_Aug from the API applied")

        click(widget, bokeh_model(widget, "stop-btn"))  # the first click asks for a second one
        wait_until(lambda: dash.view.stop_btn.label == "Click again to stop", what="the stop button armed")
        assert trainer.running
        click(widget, bokeh_model(widget, "stop-btn"))
        summary = dash.wait(timeout=120)
        assert summary["state"] == "stopped" and summary["step"] < 5000 and not trainer.running
        assert dash.shown["state"] == "stopped" and dash.view.beta.disabled and dash.view.stop_btn.disabled
        with pytest.raises(DashboardError, match="not running"):
            dash.beta_aug = 2.0
    finally:
        trainer.stop()
        dash.close()


@pytest.mark.slow
def test_browser_slider_and_stop_button_steer_a_run_another_process_writes(tmp_path, service):
    run_dir = launch(tmp_path / "runs", dataset="digits", steps=100000, device="cpu",
                     extra_args=("--batch-size", "32", "--log-every", "2", "--eval-every", "0", "--probe-size", "300",
                                 "--threads", "1"))
    dash = watch(run_dir, service=service, interval=0.2)
    try:
        widget = dash.widget
        wait_until(lambda: dash.state == "running" and dash.shown["records"] >= 2, what="the run training")
        assert not dash.view.beta.disabled and dash.beta_aug == 2.0

        move_slider(widget, bokeh_model(widget, "beta-slider"), 3.5)
        control = Run(run_dir).control()
        assert control["beta_aug"] == 3.5 and control["seq"] == 1
        wait_until(lambda: Run(run_dir).metrics("set"), what="the trainer applying β_Aug from control.json")
        change = Run(run_dir).metrics("set")[0]
        assert (change["value"], change["previous"], change["source"]) == (3.5, 2.0, "control")
        wait_until(lambda: any(r["step"] >= change["step"] for r in dash.view.records), what="records after it")
        assert dash.shown["beta_aug"] == 3.5 and dash.beta_aug == 3.5

        click(widget, bokeh_model(widget, "stop-btn"))  # the first click asks for a second one
        wait_until(lambda: dash.view.stop_btn.label == "Click again to stop", what="the stop button armed")
        assert not Run(run_dir).control().get("stop")
        click(widget, bokeh_model(widget, "stop-btn"))
        assert Run(run_dir).control()["stop"] is True
        summary = dash.wait(timeout=120)
        assert summary["state"] == "stopped" and Run(run_dir).checkpoint_steps()[-1] == summary["step"]
        assert dash.shown["state"] == "stopped" and dash.shown["snapshot_step"] == summary["step"]
    finally:
        stop(run_dir, wait=30)
        dash.close()


def test_dashboard_of_an_ended_run_shows_its_end_and_follows_the_map_buttons(finished_run, service):
    dash = watch(str(finished_run), service=service)
    try:
        summary = dash.wait(timeout=120)
        assert summary == Run(finished_run).summary() and summary["state"] == "finished"
        shown = dash.shown
        assert shown["step"] == shown["snapshot_step"] == 60 and shown["records"] == len(Run(finished_run).metrics())
        assert shown["map"] == {"kind": "t-SNE", "space": "Z", "step": 60} and shown["map_points"] == 500
        assert shown["confusion"] and dash.confusion().to_numpy().sum() == 500
        assert dash.metrics().step.tolist() == [r["step"] for r in Run(finished_run).metrics()]
        assert dash.show_map(space="Z_s", step=20) == {"kind": "t-SNE", "space": "Z_s", "step": 20}
        assert not dash.view.follow.value and dash.view.snapshot.step == 20
        # a bare `dash` in a cell: the widget's view, with a readable text fallback
        bundle = dash._repr_mimebundle_()
        assert bundle["application/vnd.jupyter.widget-view+json"]["model_id"] == dash.widget.model_id
        assert bundle["text/plain"] == repr(dash) and "finished, step 60/60" in bundle["text/plain"]
        with pytest.raises(DashboardError, match="finished: β_Aug can only be changed while it trains"):
            dash.beta_aug = 3.0
        with pytest.raises(DashboardError, match="finished: there is nothing to stop"):
            dash.stop()
        assert "stop" not in Run(finished_run).control()  # nothing left that would stop the run when resumed
        with pytest.raises(DashboardError, match="unknown map space 'W'"):
            dash.show_map(space="W")
        with pytest.raises(DashboardError, match="no snapshot at step 7"):
            dash.show_map(step=7)
    finally:
        dash.close()


def test_bad_input_gives_a_one_line_message(tmp_path, finished_run):
    (tmp_path / "file.txt").write_text("x")
    (tmp_path / "empty").mkdir()
    cases = [(tmp_path / "missing", "no run directory at"), (tmp_path / "file.txt", "is a file"),
             (tmp_path / "empty", "is not a run directory"), ("  ", "is empty"), (42, "not int")]
    for source, message in cases:
        with pytest.raises(DashboardError, match=message) as info:
            watch(source)
        assert "\n" not in str(info.value)
        assert info.value._render_traceback_() == [f"DashboardError: {info.value}"]  # what Jupyter prints
    with pytest.raises(DashboardError, match="interval must be a positive"):
        watch(finished_run, interval=0)


def test_a_dcsm_run_has_no_beta_aug_to_steer(tmp_path, service):
    trainer = Trainer(TrainConfig(method="dcsm", dataset="digits", steps=2, backbone_width=8, repeats=1,
                                  probe_size=100, eval_every=0, threads=1, run_dir=str(tmp_path / "d"),
                                  progress=False))
    dash = watch(trainer, service=service, start=False)
    try:
        assert not trainer.running and dash.beta_aug is None and not dash.view.beta.visible
        with pytest.raises(DashboardError, match="is a DCSM run: it has no β_Aug"):
            dash.beta_aug = 1.0
        for bad in (-1, float("nan"), "x"):
            with pytest.raises(DashboardError, match="β_Aug must be"):
                dash.beta_aug = bad
        with pytest.raises(DashboardError, match="has not been started"):
            dash.wait()
    finally:
        dash.close()


KERNEL_SETUP = """
from core import TrainConfig, Trainer
from explorer import watch
from explorer.projection import ProjectionService
trainer = Trainer(TrainConfig(dataset="digits", steps=100000, batch_size=32, log_every=2, eval_every=0,
                              snapshot_every=20, probe_size=200, threads=1, run_dir=RUN_DIR, progress=False))
dash = watch(trainer, service=ProjectionService(processes=False), interval=0.3)
dash
"""


def _slider_and_button_ids(render_bundle: str) -> tuple[str, str]:
    """The ids a browser finds in the widget's first render: the β_Aug slider's and the Stop button's models."""
    ids = {}

    def walk(node):
        if isinstance(node, dict):
            classes = node.get("attributes", {}).get("css_classes") or []
            for name in ("beta-slider", "stop-btn"):
                if name in classes and "id" in node:
                    ids[name] = node["id"]
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    walk(json.loads(render_bundle))
    return ids["beta-slider"], ids["stop-btn"]


@pytest.mark.slow
def test_in_a_real_kernel_the_cell_returns_at_once_and_the_widget_talks_both_ways(tmp_path):
    """A Jupyter kernel and a client standing in for the browser: the cell returns while training goes on, the
    dashboard's updates keep arriving as widget messages while the kernel is idle, the kernel answers other cells,
    and messages from the 'browser' (slider moved, Stop pressed) reach the trainer."""
    from jupyter_client.manager import start_new_kernel

    km, kc = start_new_kernel(kernel_name="python3", cwd=str(tmp_path))
    try:
        def run(code, timeout=120):
            reply = kc.execute_interactive(code, timeout=timeout, output_hook=outputs.append)
            content = reply["content"]
            assert content["status"] == "ok", (content.get("ename"), content.get("evalue"), content, outputs[-5:])

        outputs = []
        started = time.time()
        run(f"RUN_DIR = {str(tmp_path / 'r')!r}\n" + KERNEL_SETUP)
        assert time.time() - started < 60  # returned at once (data loading and the first render included)
        opened = [m for m in outputs if m["msg_type"] == "comm_open"
                  and m["content"]["data"]["state"].get("_model_name") == "BokehModel"]
        assert len(opened) == 1
        comm_id = opened[0]["content"]["comm_id"]
        shown = [m for m in outputs if m["msg_type"] in ("display_data", "execute_result")
                 and "application/vnd.jupyter.widget-view+json" in m["content"]["data"]]
        assert shown[0]["content"]["data"]["application/vnd.jupyter.widget-view+json"]["model_id"] == comm_id
        slider_id, button_id = _slider_and_button_ids(opened[0]["content"]["data"]["state"]["render_bundle"])

        # the kernel is idle now; the dashboard's refresh thread keeps sending document patches to the browser
        patches, deadline = 0, time.time() + 60
        while patches < 20 and time.time() < deadline:
            try:
                msg = kc.get_iopub_msg(timeout=1)
            except Exception:
                continue
            content = msg["content"]
            if msg["msg_type"] == "comm_msg" and content["comm_id"] == comm_id:
                patches += content["data"].get("method") == "custom" and content["data"]["content"]["msg"] == "patch"
        assert patches >= 20
        outputs.clear()
        started = time.time()
        run("print(trainer.running, 6 * 7)")  # another cell while it trains
        assert time.time() - started < 10 and "True 42" in "".join(
            m["content"].get("text", "") for m in outputs if m["msg_type"] == "stream")

        def from_browser(content):
            kc.shell_channel.send(kc.session.msg("comm_msg", {"comm_id": comm_id, "data": {
                "method": "custom", "content": {"event": "jsevent", **content}}}))

        for attr in ("value", "value_throttled"):
            from_browser({"kind": "ModelChanged", "model": {"id": slider_id}, "attr": attr, "new": 3.5})
        # the trainer takes the value at its next step, writes the change with its next records and the dashboard
        # shows it at its next refresh: on a busy core each comes a moment after the other, so wait for all three
        run("import time\nfrom core import Run\n"
            "def seen():\n"
            "    changes = Run(RUN_DIR).metrics('set')\n"
            "    change = changes[-1] if changes else None\n"
            "    return trainer.beta_aug, change and (change['value'], change['source']), dash.view.beta.value\n"
            "t0 = time.time()\n"
            "while seen() != (3.5, (3.5, 'api'), 3.5) and time.time() - t0 < 60: time.sleep(0.1)\n"
            "assert seen() == (3.5, (3.5, 'api'), 3.5), seen()")
        def press_stop():
            from_browser({"kind": "MessageSent", "msg_type": "bokeh_event", "msg_data": {
                "type": "event", "name": "button_click",
                "values": {"type": "map", "entries": [["model", {"id": button_id}]]}}})

        press_stop()  # the first press asks for a second one
        run("t0 = time.time()\nwhile dash.view.stop_btn.label != 'Click again to stop' and time.time() - t0 < 30: "
            "time.sleep(0.1)\nassert dash.view.stop_btn.label == 'Click again to stop' and trainer.running")
        press_stop()
        run("summary = dash.wait(timeout=120)\nassert summary['state'] == 'stopped' and not trainer.running, summary")
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)


def test_importing_explorer_stays_light():
    code = ("import sys, explorer; assert 'panel' not in sys.modules; "
            "from explorer import watch, Dashboard; assert 'panel' in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)
