"""Data-parallel scaling: DCCS trained by 1 process and by N processes (`torchrun`), same steps and per-process
batch, measured in the same run.

Prints, for each launch, the training throughput (images per second over every rank, from the run's records,
evaluation excluded), the wall time, ACC/NMI/ARI and the ranks' largest weight difference, and the throughput of
N processes as a ratio to one process. On GPUs each process takes one GPU (NCCL); with --device cpu the processes
share the CPU (gloo) — that checks the mechanics, not the speed-up.

    python benchmarks/ddp_scaling.py --device cuda --nproc 1 2 4 --dataset fashion-mnist \
        --data-path ../shared/data/fashion-mnist.npz --steps 2000
    python benchmarks/ddp_scaling.py --device cpu --nproc 1 2 --steps 200          # digits, 2 CPU cores
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from core import Run  # noqa: E402


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launch(nproc: int, run_dir: Path, args) -> float:
    train = ["-m", "core", "train", "--dataset", args.dataset, "--device", args.device, "--steps", str(args.steps),
             "--batch-size", str(args.batch_size), "--seed", str(args.seed), "--run-dir", str(run_dir),
             "--no-progress", "--eval-every", str(args.steps)]
    if args.data_path:
        train += ["--data-path", args.data_path]
    if args.device == "cpu":
        train += ["--threads", str(max(1, (os.cpu_count() or 1) // nproc))]
    if nproc == 1:
        cmd = [sys.executable, *train]
    else:
        cmd = [str(Path(sys.executable).with_name("torchrun")), "--nproc-per-node", str(nproc), "--master-addr",
               "127.0.0.1", "--master-port", str(free_port()), *train]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(REPO)})
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        sys.exit(f"{nproc} process(es) failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}")
    return wall


def throughput(run: Run) -> float:
    """Images per second over the training windows after the first (which includes start-up)."""
    rows = [r for r in run.metrics() if r.get("images_per_s")][1:]
    if not rows:
        return float("nan")
    steps = [r["step"] for r in rows]
    # each record's rate covers the steps since the previous record: weight by them
    prev = [run.metrics()[0]["step"]] + steps[:-1]
    spans = [s - p for s, p in zip(steps, prev)]
    seconds = sum(span / r["steps_per_s"] for span, r in zip(spans, rows))
    images = sum(span / r["steps_per_s"] * r["images_per_s"] for span, r in zip(spans, rows))
    return images / seconds


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--nproc", type=int, nargs="+", default=[1, 2])
    p.add_argument("--device", default="cpu")
    p.add_argument("--dataset", default="digits")
    p.add_argument("--data-path", default=None)
    p.add_argument("--steps", type=int, default=200)
    p.add_argument("--batch-size", type=int, default=64, help="per process")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    if 1 not in args.nproc:
        args.nproc = [1, *args.nproc]  # the baseline is always measured in the same run
    print(f"DCCS on {args.dataset}, {args.steps} steps, batch {args.batch_size} per process, device {args.device}")
    print(f"{'procs':>5} {'img/s':>9} {'ratio':>6} {'wall s':>7} {'ACC':>7} {'NMI':>7} {'ARI':>7} {'spread':>7}")
    base = None
    with tempfile.TemporaryDirectory() as tmp:
        for n in args.nproc:
            run_dir = Path(tmp) / f"p{n}"
            wall = launch(n, run_dir, args)
            run = Run(run_dir)
            s = run.summary()
            rate = throughput(run)
            base = rate if n == 1 else base
            spread = (s.get("distributed") or {}).get("param_spread", 0.0)
            print(f"{n:5d} {rate:9.0f} {rate / base:6.2f} {wall:7.1f} {s.get('acc', float('nan')):7.4f} "
                  f"{s.get('nmi', float('nan')):7.4f} {s.get('ari', float('nan')):7.4f} {spread:7.1g}", flush=True)


if __name__ == "__main__":
    main()
