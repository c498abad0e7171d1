"""One rule for live changes: β_Aug asked for through the API, through control.json or by a branch applies from
the same step — the step after the next record — in one process and in two (torchrun), and the app shows a
change made elsewhere after it sent its own."""

import os
import socket
import subprocess
import sys
import time

import pytest

from conftest import REPO
from core import Run, TrainConfig
from core.trainer import Trainer
from steering_runs import ASK_AT, BASE, main as train_three_ways

TORCHRUN = os.path.join(os.path.dirname(sys.executable), "torchrun")
LOSSES = ("critic_loss", "w_raw", "gradient_penalty", "mi_loss", "aug_loss", "adv_loss", "encoder_loss")


def _check_change_at_step_11(root):
    """Each run records one change 2 → 3 at step 11 (its source says how it came) and trains with it from there."""
    for name, source in (("api", "api"), ("file", "control"), ("branch", "branch")):
        run = Run(root / name)
        sets = [(r["value"], r["previous"], r["source"], r["step"]) for r in run.metrics("set")]
        assert sets == [(3.0, 2.0, source, 11)], (name, sets)
        assert {r["step"]: r["beta_aug"] for r in run.metrics()} == {1: 2.0, 5: 2.0, 10: 2.0, 15: 3.0}, name


def _losses(run_dir, step):
    return [r for r in Run(run_dir).metrics() if r["step"] == step][0]


def test_api_control_file_and_branch_apply_beta_aug_at_the_same_step_in_one_process(tmp_path):
    assert ASK_AT == 7 and BASE["log_every"] == 5  # asked mid-window: the record at step 10 takes it
    train_three_ways(str(tmp_path))
    _check_change_at_step_11(tmp_path)
    # the same weights, data and noise with β_Aug 3 from step 11 on: the three runs compute the same losses
    api = _losses(tmp_path / "api", 15)
    for other in ("file", "branch"):
        got = _losses(tmp_path / other, 15)
        assert [got[k] for k in LOSSES] == [api[k] for k in LOSSES], other


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_the_same_step_in_two_processes(tmp_path):
    cmd = [TORCHRUN, "--nproc-per-node", "2", "--master-addr", "127.0.0.1", "--master-port", str(_free_port()),
           str(REPO / "tests" / "steering_runs.py"), str(tmp_path)]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), str(REPO / "tests")])}
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    _check_change_at_step_11(tmp_path)
    for name in ("api", "file", "branch"):  # both ranks trained with the same β_Aug and weights throughout
        assert Run(tmp_path / name).summary()["distributed"] == {"world_size": 2, "param_spread": 0.0}, name
    api, file = _losses(tmp_path / "api", 15), _losses(tmp_path / "file", 15)
    assert [file[k] for k in LOSSES] == [api[k] for k in LOSSES]


@pytest.mark.slow
def test_the_app_shows_a_change_made_elsewhere_after_sending_its_own(tmp_path):
    from explorer.app import RunView
    from explorer.projection import ProjectionService

    cfg = TrainConfig(dataset="digits", steps=100_000, batch_size=16, log_every=1, eval_every=0, snapshot_every=10**6,
                      checkpoint_every=10**6, probe_size=100, progress=False, threads=1,
                      run_dir=str(tmp_path / "run"))
    trainer = Trainer(cfg).start()
    view = RunView(ProjectionService(processes=False))
    try:
        run = Run(tmp_path / "run")

        def wait_for(predicate, what):
            deadline = time.time() + 120
            while time.time() < deadline:
                view.refresh()
                if predicate():
                    return
                time.sleep(0.1)
            raise AssertionError(f"timed out waiting for {what}")

        view.set_run(str(tmp_path / "run"))
        wait_for(lambda: view.info.state == "running" and not view.beta.disabled, "the run to train")
        view.beta.value = 3.0  # the page's slider, released at 3
        view._on_beta(type("Event", (), {"new": 3.0})())
        view.refresh()
        assert view.beta.value == 3.0  # what was sent, until the run has taken it
        wait_for(lambda: [s["value"] for s in run.metrics("set")] == [3.0], "the run to apply 3")
        run.set_beta_aug(5.0)  # another page, a notebook or the CLI
        wait_for(lambda: [s["value"] for s in run.metrics("set")] == [3.0, 5.0], "the run to apply 5")
        wait_for(lambda: view.beta.value == 5.0, "the slider to show 5")
        # both changes stand on the curves as rules at the steps they applied from
        sets = run.metrics("set")
        wait_for(lambda: view.rule_pipe is not None and view.rule_pipe.data["value"].tolist() == [3.0, 5.0],
                 "the rules on the curves")
        assert view.rule_pipe.data["x"].tolist() == [s["step"] for s in sets]
    finally:
        trainer.stop()
        trainer.join(60)
