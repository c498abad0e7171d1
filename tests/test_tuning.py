"""β_Aug tuning sessions: values, the decision rule with a person's marks, branching from a warm-up, and a short
session on digits run end to end through the CLI and opened by the app's tuning view."""

import json
import subprocess
import sys
import time

import pytest

from core import Run, TrainConfig
from core.errors import ConfigError, RunError, UserError
from core.trainer import Trainer
from core.tuning import TuningSession, parse_values

from conftest import REPO


def test_parse_values():
    assert parse_values("1,2,3") == [1.0, 2.0, 3.0]
    assert parse_values("3, 1, 2, 2") == [1.0, 2.0, 3.0]
    assert parse_values("1:6") == [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]
    assert parse_values("1:2:0.25") == [1.0, 1.25, 1.5, 1.75, 2.0]
    for bad in ("", "2", "a,b", "1:0", "1:3:0", "-1,2"):
        with pytest.raises(UserError):
            parse_values(bad)


def _session(tmp_path, values=(1, 2, 3, 4), **kw):
    base = TrainConfig(dataset="digits", steps=20, probe_size=200, progress=False)
    return TuningSession.create(tmp_path / "s", base, values, **kw)


def _score(session, value, score):
    e = session.entry(value)
    e.update(state="finished", score=score)


def test_decision_stops_at_the_first_overlap_and_a_person_overrides_it(tmp_path):
    s = _session(tmp_path)
    assert s.data["base"]["beta_aug"] == 1.0 and s.data["base"]["steps"] == 20
    _score(s, 1, 0.01)
    assert s.decide() == {**s.recommendation, "value": 1.0, "first_overlap": None, "final": False}
    _score(s, 3, 0.40)  # value 2 still unscored: no decision past it
    assert s.decide()["value"] == 1.0 and s._stop_point() is None
    _score(s, 2, 0.02)
    rec = s.decide()
    assert rec["value"] == 2.0 and rec["first_overlap"] == 3.0 and rec["final"] and rec["by"] == "score"
    assert s._stop_point() == 3.0
    s.save()
    # a person looks at β = 3 and calls it separated; β = 4 is then the next to judge
    rec = s.mark(3, "separated")
    assert rec["value"] == 3.0 and rec["by"] == "person" and not rec["final"]
    _score(s, 4, 0.03)
    assert s.decide()["value"] == 4.0
    s.mark(2, "overlap")
    reopened = TuningSession(tmp_path / "s")
    assert reopened.recommendation["value"] == 1.0 and reopened.choice["by"] == "person"
    assert reopened.data["marks"]["beta-2"]["verdict"] == "overlap"
    reopened.clear_mark(2)
    assert TuningSession(tmp_path / "s").recommendation["value"] == 4.0
    with pytest.raises(UserError):
        reopened.mark(2, "maybe")
    with pytest.raises(UserError):
        reopened.mark(7, "overlap")


def test_when_the_smallest_value_overlaps_short_runs_are_named_and_the_table_never_says_none(tmp_path):
    from core.cli import format_session

    s = _session(tmp_path)  # 20 steps per run: short
    _score(s, 1, 0.50)
    rec = s.decide()
    assert rec["value"] is None and "20 steps" in rec["reason"] and "too short" in rec["reason"]
    text = format_session(s)
    assert "None" not in text and "nan" not in text and "recommendation: none (already overlapping" in text
    assert text.splitlines()[2].split() == ["2", "pending", "—", "—", "—", "—"]  # not scored, no evaluation
    long = TuningSession.create(tmp_path / "long", TrainConfig(dataset="digits", steps=5000, progress=False), (1, 2))
    _score(long, 1, 0.5)
    assert long.decide()["reason"] == "already overlapping at the smallest β_Aug = 1; try smaller values"
    _score(long, 1, 0.01)
    _score(long, 2, 0.02)
    long.decide()
    assert "recommendation: β_Aug = 2 (no overlap up to" in format_session(long)


def test_the_tuning_view_shows_plain_text_dashes_and_every_value_on_its_axis(tmp_path):
    import holoviews as hv

    from explorer.projection import ProjectionService
    from explorer.tuning_view import TuningView

    s = _session(tmp_path, values=(1, 2, 3, 8))
    _score(s, 1, 0.01)
    s.entry(1)["summary"] = "line one: *not* bold\nline_two"
    s.decide()
    s.save()
    service = ProjectionService(processes=False)
    try:
        view = TuningView(tmp_path, service)
        view.open(str(tmp_path / "s"))
        view.slider.value = 1.0
        view._draw()
        assert "```" not in view.detail.object and "line one: &#42;not&#42; bold  \nline&#95;two" in view.detail.object
        table = view.table.object
        assert "—" in table.values.tolist()[1] and not table.isna().any().any()  # β 2 has no score: a dash
        plot = hv.render(view.plot.object)
        assert plot.x_range.start < 1 and plot.x_range.end > 8  # all four values, scored or not
    finally:
        service.shutdown()


def test_session_input_checks(tmp_path):
    with pytest.raises(UserError, match="DCCS"):
        TuningSession.create(tmp_path / "a", TrainConfig(method="dcsm", dataset="digits"), [1, 2])
    with pytest.raises(UserError, match="warm-up"):
        TuningSession.create(tmp_path / "b", TrainConfig(dataset="digits", steps=10), [1, 2], mode="branch",
                             warmup_steps=10)
    _session(tmp_path)
    with pytest.raises(RunError, match="already holds"):
        _session(tmp_path)
    with pytest.raises(RunError, match="not a tuning session"):
        TuningSession(tmp_path)


@pytest.mark.slow
def test_branch_continues_a_checkpoint_with_a_new_beta(tmp_path):
    kw = dict(dataset="digits", progress=False, log_every=5, eval_every=0, probe_size=100, batch_size=32)
    Trainer(TrainConfig(steps=10, beta_aug=1.0, run_dir=str(tmp_path / "w"), **kw)).fit()
    t = Trainer.branch(tmp_path / "w", tmp_path / "b", beta_aug=3.0, steps=15)
    assert t.step == 10 and t.beta_aug == 3.0
    t.fit()
    run = Run(tmp_path / "b")
    assert run.config["branched_from"] == {"run": str(tmp_path / "w"), "step": 10}
    steps = [r["step"] for r in run.metrics()]
    assert steps == [1, 5, 10, 15]  # the warm-up's records (step 1 is logged with its snapshot), then its own
    assert [r["beta_aug"] for r in run.metrics()] == [1.0, 1.0, 1.0, 3.0]
    (s,) = run.metrics("set")
    assert s["step"] == 11 and s["previous"] == 1.0 and s["value"] == 3.0 and s["source"] == "branch"
    with pytest.raises(ConfigError, match="more steps"):
        Trainer.branch(tmp_path / "w", tmp_path / "c", beta_aug=2.0, steps=10)
    with pytest.raises(ConfigError, match="cannot change"):
        Trainer.branch(tmp_path / "w", tmp_path / "d", lr=1.0, steps=20)


@pytest.mark.slow
def test_short_session_on_digits_end_to_end_and_the_app_opens_it(tmp_path):
    root = tmp_path / "runs"
    cmd = [sys.executable, "-m", "core", "tune", "--session-dir", str(root / "tune-digits"), "--dataset", "digits",
           "--values", "1,3", "--mode", "branch", "--warmup-steps", "10", "--steps", "30", "--parallel", "2",
           "--probe-size", "300", "--eval-every", "0", "--batch-size", "32", "--no-progress"]
    t0 = time.time()
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "recommendation" in proc.stdout
    doc = json.loads((root / "tune-digits" / "session.json").read_text())
    assert doc["state"] == "finished" and doc["mode"] == "branch" and doc["warmup"]["steps"] == 10
    e1 = doc["runs"]["beta-1"]
    assert e1["state"] == "finished" and 0.0 <= e1["score"] <= 1.0 and "acc" in e1["evaluation"]
    assert doc["runs"]["beta-3"]["state"] in ("finished", "skipped")
    assert doc["recommendation"] is not None and doc["choice"]["by"] == "score"
    assert Run(root / "tune-digits" / "beta-1").config["branched_from"]["step"] == 10
    print(f"session took {time.time() - t0:.0f} s")

    # the app's tuning tab opens it, draws the maps and saves a person's mark
    import holoviews as hv

    hv.extension("bokeh")
    from explorer.projection import ProjectionService
    from explorer.runs import RunsFolder
    from explorer.tuning_view import TuningView

    view = TuningView(root, ProjectionService(processes=False))
    assert view.session is not None and view.slider.options == [1.0, 3.0]
    deadline = time.time() + 240
    while time.time() < deadline and 1.0 not in view.maps:
        view.refresh()
        time.sleep(0.5)
    assert 1.0 in view.maps and view.maps[1.0][0].shape == (300, 2)
    view._shown = None
    view._draw()
    first = view.map_row.objects[0].object
    assert first.label == "" and "β_Aug 1" in hv.Store.lookup_options("bokeh", first, "plot").kwargs["title"]
    view.slider.value = 1.0
    view._mark("overlap")
    assert TuningSession(root / "tune-digits").data["marks"]["beta-1"]["by"] == "person"
    assert TuningSession(root / "tune-digits").recommendation["value"] is None  # the smallest value overlaps
    # the session's runs show in the runs list as session/run
    names = {i.name for i in RunsFolder(root).scan()[0]}
    assert {"tune-digits/beta-1", "tune-digits/warmup"} <= names


def test_a_running_session_adopts_marks_another_process_saved(tmp_path):
    runner = _session(tmp_path, values=(1, 2))
    viewer = TuningSession(tmp_path / "s")  # e.g. the app, with its own copy of the file
    _score(runner, 1, 0.01)
    runner.decide()
    runner.save()
    viewer.mark(1, "overlap")  # written from the viewer's older copy (no score for β_Aug 1 in it)
    assert TuningSession(tmp_path / "s").entry(1)["score"] is None
    assert runner._adopt_marks() and runner.verdict(1) == "overlap"
    assert not runner._adopt_marks()  # nothing new
    runner.decide()
    runner.save()  # what the running session does at once when the marks changed: its score and the mark
    saved = TuningSession(tmp_path / "s")
    assert saved.entry(1)["score"] == 0.01 and saved.data["marks"]["beta-1"]["by"] == "person"
    assert saved.recommendation["value"] is None
    runner.request_stop()
    assert runner.stop_requested and viewer.stop_requested


@pytest.mark.slow
def test_a_stop_reaches_runs_whose_process_is_still_starting(tmp_path):
    """A person's stop (or the overlap rule's) can come while a value's child process is still importing torch:
    its run directory has no config.json yet, and a request written then would be taken for a stale one. The
    session asks again until the trainer has started, and ends stopped — it used to fail with a RunError."""
    import threading

    s = _session(tmp_path, values=(1, 2), parallel=1)
    s.data["base"].update(steps=100000, batch_size=32, eval_every=0, snapshot_every=100000,
                      checkpoint_every=100000)
    s.save()
    assert not s._ask_to_stop(1)  # no run directory yet: nothing written, ask again later
    done = {}
    worker = threading.Thread(target=lambda: done.update(rec=s.run(progress=False, poll=0.2, threads=1)))
    worker.start()
    deadline = time.time() + 60
    while time.time() < deadline and TuningSession(tmp_path / "s").entry(1)["state"] != "running":
        time.sleep(0.02)
    started = not (s.run_dir(1) / "status.json").exists()  # the child is spawned, its trainer not yet begun
    TuningSession(tmp_path / "s").request_stop()
    worker.join(240)
    assert not worker.is_alive()
    saved = TuningSession(tmp_path / "s")
    assert saved.data["state"] == "stopped", saved.data
    assert saved.entry(1)["state"] == "stopped" and saved.entry(2)["state"] == "pending", saved.data["runs"]
    run = Run(s.run_dir(1))
    assert run.status()["state"] == "stopped" and run.control()["stop"] is True
    assert run.checkpoint_steps(), "stopped with a checkpoint, to continue from"
    assert started, "the stop was meant to arrive while the child was starting"


@pytest.mark.slow
def test_a_branched_run_obeys_its_own_control_file_not_the_sources_sequence(tmp_path):
    kw = dict(dataset="digits", progress=False, log_every=1, eval_every=0, probe_size=100, batch_size=32)
    source = Trainer(TrainConfig(steps=200, beta_aug=1.0, run_dir=str(tmp_path / "w"), **kw))
    for value in (1.5, 2.0, 1.0):  # three β_Aug changes through the source's control.json: its sequence is 3
        Run(tmp_path / "w").set_beta_aug(value)
        source.steering.poll_control()
    source.config.steps = 10
    source.fit()
    assert source.steering.control.seq == 3
    t = Trainer.branch(tmp_path / "w", tmp_path / "b", beta_aug=3.0, steps=40)
    assert t.steering.control.seq == 0
    Run(tmp_path / "b").set_beta_aug(4.0)  # the branch's first request: sequence 1
    t.fit()
    changes = [(r["value"], r["source"]) for r in Run(tmp_path / "b").metrics("set")]
    assert changes == [(3.0, "branch"), (4.0, "control")], changes
