"""Reading run directories, also half-written or damaged ones."""

import json
import os
import socket
import subprocess
import sys

import numpy as np
import pytest

from core.errors import RunError
from core.rundir import Run, RunWriter, list_runs


def make_run(path, steps=(1, 2)):
    w = RunWriter(path)
    w.create({"settings": {"method": "dccs"}})
    w.status("running", step=0)
    for s in steps:
        w.append({"kind": "train", "step": s, "wasserstein": 1.0 / s})
    return w


def test_tail_waits_for_torn_lines_and_skips_corrupt_ones(tmp_path):
    make_run(tmp_path / "r", steps=[1])
    run = Run(tmp_path / "r")
    tail = run.tail()
    assert [r["step"] for r in tail.read()] == [1]
    with open(tmp_path / "r" / "metrics.jsonl", "a") as f:
        f.write('{"kind":"train","step":2,"wasser')  # the writer is in the middle of a line
    assert tail.read() == [] and tail.grew
    with open(tmp_path / "r" / "metrics.jsonl", "a") as f:
        f.write('stein":0.5}\nthis is not json\n{"kind":"set","step":3,"beta_aug":3}\n')
    got = tail.read()
    assert [(r["kind"], r["step"]) for r in got] == [("train", 2), ("set", 3)] and tail.skipped == 1
    assert [r["step"] for r in run.metrics()] == [1, 2] and run.skipped_lines == 1
    # a resumed run rewrites the file shorter: the tail starts over and says so
    (tmp_path / "r" / "metrics.jsonl").write_text('{"kind":"train","step":1}\n')
    assert [r["step"] for r in tail.read()] == [1] and tail.restarted


def test_damaged_snapshots_raise_run_error_and_are_skipped(tmp_path):
    w = make_run(tmp_path / "r")
    z = np.random.default_rng(0).dirichlet(np.ones(4), 20)
    w.snapshot(5, 0.5, z, np.zeros((20, 3)), np.arange(20) % 4, {"acc": 0.5})
    w.snapshot(9, 0.9, z, np.zeros((20, 3)), None, {})
    (tmp_path / "r" / "snapshots" / "step_00000009.npz").write_bytes(b"PK\x03\x04 half a zip")
    run = Run(tmp_path / "r")
    assert [s.step for s in run.snapshots()] == [5, 9]
    with pytest.raises(RunError, match="step 9 is damaged"):
        run.snapshot(9)
    snap = run.latest_snapshot()  # the newest readable one
    assert snap.step == 5 and snap.z_c.shape == (20, 4) and snap.labels.tolist() == (np.arange(20) % 4).tolist()
    assert snap.metrics == {"acc": 0.5}
    with pytest.raises(RunError, match="no snapshot at step 7"):
        run.snapshot(7)


def test_not_a_run_and_missing_folders(tmp_path):
    with pytest.raises(RunError, match="no run directory"):
        Run(tmp_path / "missing")
    (tmp_path / "plain").mkdir()
    with pytest.raises(RunError, match="not a run directory"):
        Run(tmp_path / "plain")
    assert list_runs(tmp_path / "missing") == []
    make_run(tmp_path / "runs" / "a")
    make_run(tmp_path / "runs" / "b")
    (tmp_path / "runs" / "junk").mkdir()
    assert sorted(p.name for p in list_runs(tmp_path / "runs")) == ["a", "b"]


def test_a_run_whose_process_died_reads_as_interrupted(tmp_path):
    make_run(tmp_path / "r")
    assert Run(tmp_path / "r").status()["state"] == "running"  # this process is alive
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    status = json.loads((tmp_path / "r" / "status.json").read_text())
    status["pid"] = int(dead.stdout)
    (tmp_path / "r" / "status.json").write_text(json.dumps(status))
    s = Run(tmp_path / "r").status()
    assert s["state"] == "interrupted" and s["stale"]
    status["host"] = "another-machine"  # we cannot look at another machine's processes: trust the file
    (tmp_path / "r" / "status.json").write_text(json.dumps(status))
    assert Run(tmp_path / "r").status()["state"] == "running"


def test_control_messages_accumulate(tmp_path):
    make_run(tmp_path / "r")
    run = Run(tmp_path / "r")
    run.set_beta_aug(3)
    run.request_stop()
    ctl = run.control()
    assert ctl["beta_aug"] == 3.0 and ctl["stop"] is True and ctl["seq"] == 2
