"""The command line: clear one-line errors, train/eval, resume after a kill, SIGTERM."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import REPO
from core import Run
from core.cli import main

LOSSES = ("critic_loss", "w_raw", "gradient_penalty", "mi_loss", "aug_loss", "adv_loss", "encoder_loss")


def cli(*args, check=False, timeout=300):
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.run([sys.executable, "-m", "core", *args], cwd=REPO, capture_output=True, text=True,
                          timeout=timeout, env=env)
    if check and proc.returncode != 0:
        raise AssertionError(f"exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}")
    return proc


def spawn(*args):
    return subprocess.Popen([sys.executable, "-m", "core", *args], cwd=REPO, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})


@pytest.mark.parametrize("args,message", [
    (["train", "--dataset", "nope"], "unknown data set 'nope'"),
    (["train", "--dataset", "digits", "--num-clusters", "1"], "at least 2"),
    (["train", "--dataset", "digits", "--num-clusters", "5000"], "between 2 and the number of images"),
    (["train", "--dataset", "digits", "--beta-aug", "-1"], "beta-aug must be"),
    (["train", "--dataset", "fashion-mnist", "--data-path", "/no/such/file.npz"], "no such file"),
    (["train", "--dataset", "digits", "--image-size", "64"], "--image-size 28, 32 or 96"),
    (["eval", "/no/such/run"], "no run directory"),
    (["train", "--resume"], "no run directory"),
])
def test_user_mistakes_give_one_clear_line(args, message, tmp_path, capsys):
    # in this process (what `python -m core` runs, without starting Python and torch eight times)
    code = main([*args, "--run-dir", str(tmp_path / "r")] if args[0] == "train" else args)
    err = capsys.readouterr().err
    assert code == 2, err
    assert message in err
    assert "Traceback" not in err and err.startswith("error: ") and err.count("\n") == 1


def test_a_user_mistake_in_a_real_process_is_one_line_and_exit_status_2(tmp_path):
    proc = cli("train", "--dataset", "nope", "--run-dir", str(tmp_path / "r"))
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.startswith("error: unknown data set 'nope'")
    assert "Traceback" not in proc.stderr and proc.stderr.count("\n") == 1 and not (tmp_path / "r").exists()


@pytest.mark.slow
def test_train_then_eval(tmp_path):
    run_dir = tmp_path / "run"
    proc = cli("train", "--dataset", "digits", "--steps", "6", "--batch-size", "32", "--run-dir", str(run_dir),
               "--no-progress", check=True)
    assert "ACC " in proc.stdout and "NMI " in proc.stdout
    proc = cli("eval", str(run_dir), check=True)
    lines = proc.stdout.splitlines()
    assert any(line.startswith("ACC ") for line in lines)
    assert "confusion matrix" in proc.stdout
    rows = lines[lines.index(next(l for l in lines if l.startswith("confusion"))) + 2:]
    assert [r.split()[0] for r in rows[:10]] == [str(i) for i in range(10)]
    assert sum(int(v) for r in rows[:10] for v in r.split()[1:]) == 1797
    acc_eval = float(next(l for l in lines if l.startswith("ACC ")).split()[1])
    assert acc_eval == pytest.approx(Run(run_dir).summary()["acc"], abs=1e-4)


def _losses_by_step(run_dir):
    return {r["step"]: [r[k] for k in LOSSES] for r in Run(run_dir).metrics()}


@pytest.mark.slow
def test_resumed_run_computes_the_same_losses_as_an_uninterrupted_one(tmp_path):
    common = ["train", "--dataset", "digits", "--steps", "40", "--batch-size", "32", "--log-every", "1",
              "--checkpoint-every", "10", "--eval-every", "0", "--snapshot-every", "100", "--no-progress", "--seed", "3"]
    cli(*common, "--run-dir", str(tmp_path / "a"), check=True)
    reference = _losses_by_step(tmp_path / "a")

    b = tmp_path / "b"
    proc = spawn(*common, "--run-dir", str(b))
    deadline = time.time() + 120
    while time.time() < deadline:  # kill it hard once it is past the checkpoint at step 20
        if (b / "metrics.jsonl").exists() and '"step":25,' in (b / "metrics.jsonl").read_text():
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    status = Run(b).status()  # killed: status.json still says running, but the reader sees the process is gone
    assert status["state"] == "interrupted" and status["stale"] is True
    assert max(Run(b).checkpoint_steps()) == 20

    proc = cli("train", "--resume", "--run-dir", str(b), "--no-progress", check=True)
    assert "resuming" in proc.stderr and "at step 20" in proc.stderr
    resumed = _losses_by_step(b)
    assert sorted(resumed) == list(range(1, 41))  # records past step 20 from the killed session were dropped
    for step in range(21, 41):
        assert resumed[step] == pytest.approx(reference[step], rel=1e-6, abs=1e-7), step
    events = Run(b).metrics("event")
    assert events[0]["event"] == "resumed" and events[0]["step"] == 20


@pytest.mark.slow
def test_sigterm_saves_a_checkpoint_and_the_run_resumes(tmp_path):
    run_dir = tmp_path / "run"
    proc = spawn("train", "--dataset", "digits", "--steps", "100000", "--batch-size", "32", "--log-every", "1",
                 "--checkpoint-every", "100000", "--eval-every", "0", "--no-progress", "--run-dir", str(run_dir))
    deadline = time.time() + 120
    while time.time() < deadline:
        if (run_dir / "metrics.jsonl").exists() and '"step":5,' in (run_dir / "metrics.jsonl").read_text():
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    assert "SIGTERM" in err and "--resume" in err
    run = Run(run_dir)
    status = run.status()
    assert status["state"] == "stopped" and "SIGTERM" in status["message"]
    last = run.checkpoint_steps()[-1]
    assert last == status["step"] == run.metrics()[-1]["step"] >= 5
    proc = cli("resume", str(run_dir), "--steps", str(last + 3), "--no-progress", check=True)
    assert Run(run_dir).status()["state"] == "finished" and Run(run_dir).metrics()[-1]["step"] == last + 3


def test_train_help_lists_every_method_and_setting():
    proc = cli("train", "--help", check=True)
    for text in ("--method {dccs,dcsm}", "--ablation", "--beta-aug", "--mi-alpha", "--kmeans-scope", "40 %"):
        assert text in proc.stdout, text
    # the default lengths it states are the methods' own defaults
    from core.methods import DCCS, DCSM

    dccs, dcsm = DCCS.defaults.lookup, DCSM.defaults.lookup
    text = " ".join(proc.stdout.split())
    fast = DCCS.presets["fast"].lookup("digits", 1)["steps"]
    assert (f"digits: DCCS {fast} (fast preset) or {dccs('digits', 1)['steps']} (paper), DCSM "
            f"{dcsm('digits', 1)['steps']} steps; other sets: DCCS "
            f"{dccs('fashion-mnist', 1)['epochs']} epochs, {dccs('cifar10', 3)['epochs']} for CIFAR-10 and STL-10; "
            f"DCSM {dcsm('fashion-mnist', 1)['epochs']} epochs") in text
    assert dccs("stl10", 3)["epochs"] == dccs("cifar10", 3)["epochs"] and dcsm("cifar10", 3)["epochs"] == 20
