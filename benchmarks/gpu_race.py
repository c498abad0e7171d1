"""The GPU race (docs/benchmarks.md, "The GPU race"): how fast this engine trains DCCS on Fashion-MNIST, lever by
lever, and how soon it reaches the paper's accuracy. `benchmarks/gpu_race.sh` runs both phases as one prepared
device run; each phase also runs alone:

    python benchmarks/gpu_race.py levers --data-path .data/fashion-mnist.npz --steps 150
    python benchmarks/gpu_race.py race --data-path .data/fashion-mnist.npz --minutes 5 --seeds 0,1 \
        --compile reduce-overhead --precision bf16
    python benchmarks/gpu_race.py levers --dataset digits --device cpu --steps 8 --setups eager,bf16   # smoke

Phase 1 (`levers`): every setup (eager fp32, then each lever alone and combined) trains the same number of steps
of the paper's schedule (batch 64, n_critic 4) in its own process; seconds per step are measured after a warm-up
(compilation) and an evaluation of every image is timed; an epoch's cost is steps-per-epoch × seconds per step plus
one evaluation. Each setup is printed as a ratio to this engine's eager fp32 measured in the same run, beside the
authors' code's 12.3–12.6 s per epoch on an H100 (for reference only: another machine).

Phase 2 (`race`): one process per seed and preset (`--schedules paper,fast`: the paper's hyper-parameters and the
data set's fast preset, Fashion-MNIST's being β_Aug 1 and β_Adv 10), all at once on the one device, each training with the given
compile/precision setup for `--minutes` of wall time and evaluating ACC/NMI/ARI on every image every
`--eval-seconds`; one CSV per preset and seed, and the time each first passed 0.70 and the paper's 0.756.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

AUTHORS_H100_S_PER_EPOCH = (12.3, 12.6)
PAPER_ACC = 0.756
SETUPS = {  # name: (compile mode, precision)
    "eager": ("none", "fp32"),
    "tf32": ("none", "tf32"),
    "bf16": ("none", "bf16"),
    "compile": ("default", "fp32"),
    "graphs": ("reduce-overhead", "fp32"),
    "graphs+tf32": ("reduce-overhead", "tf32"),
    "graphs+bf16": ("reduce-overhead", "bf16"),
}


def _sync(device):
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _trainer(args, compile_mode: str, precision: str, seed: int, run_dir: str, schedule: str = "paper"):
    from core import TrainConfig
    from core.trainer import Trainer

    cfg = TrainConfig(dataset=args.dataset, data_path=args.data_path, device=args.device, seed=seed,
                      schedule=schedule, compile=compile_mode, precision=precision, batch_size=64, n_critic=4,
                      steps=10 ** 9,
                      eval_every=0, snapshot_every=10 ** 9, checkpoint_every=10 ** 9, progress=False,
                      eval_batch_size=args.eval_batch_size, run_dir=run_dir)
    return Trainer(cfg)


def measure_setup(args) -> dict:
    """One setup in this process: warm-up steps, timed steps, one timed evaluation of every image."""
    import tempfile

    compile_mode, precision = SETUPS[args.setup]
    with tempfile.TemporaryDirectory() as tmp:
        t = _trainer(args, compile_mode, precision, 0, str(Path(tmp) / "run"))
        method, batches, device = t.method, t.batches, t.device
        method.train()
        started = time.perf_counter()
        for _ in range(args.warmup):
            method.train_step(batches)
        _sync(device)
        warmup_s = time.perf_counter() - started
        started = time.perf_counter()
        for _ in range(args.steps):
            out = method.train_step(batches)
        _sync(device)
        step_s = (time.perf_counter() - started) / args.steps
        losses = {k: float(v) for k, v in out.items()}
        started = time.perf_counter()
        scores = t.evaluate()
        _sync(device)
        eval_s = time.perf_counter() - started
        steps_per_epoch = (len(t.data) // t.config.batch_size) / method.batches_per_step
        return {"setup": args.setup, "compile": compile_mode, "precision": precision, "device": str(device),
                "s_per_step": step_s, "eval_s": eval_s, "s_per_epoch": steps_per_epoch * step_s + eval_s,
                "steps_per_epoch": steps_per_epoch, "warmup_s": warmup_s, "graph_breaks": method.graph_breaks,
                "compile_failed": [getattr(method, "_" + n).failed for n in method.compiled_functions
                                   if getattr(method, "_" + n).failed], "acc_after": scores.get("acc"),
                "losses_finite": all(v == v and abs(v) != float("inf") for v in losses.values())}


def levers(args) -> int:
    """Phase 1: each setup in its own process, capped; a table of ratios to eager fp32."""
    results = []
    for name in args.setups.split(","):
        cmd = [sys.executable, __file__, "one", "--setup", name, "--steps", str(args.steps), "--warmup",
               str(args.warmup), "--dataset", args.dataset, "--device", args.device,
               "--eval-batch-size", str(args.eval_batch_size)] + (["--data-path", args.data_path]
                                                                   if args.data_path else [])
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=args.setup_cap, cwd=REPO)
        except subprocess.TimeoutExpired:
            print(f"{name:>12}: cut off after {args.setup_cap} s", flush=True)
            continue
        line = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
        if proc.returncode != 0 or not line:
            print(f"{name:>12}: failed (exit {proc.returncode}): {(proc.stderr or proc.stdout)[-400:]}", flush=True)
            continue
        r = json.loads(line[-1])
        results.append(r)
        print(json.dumps(r), flush=True)
    base = next((r for r in results if r["setup"] == "eager"), None)
    print(f"\nphase 1: {args.steps} timed steps per setup after {args.warmup} warm-up steps; epoch = steps per "
          "epoch × s/step + one evaluation of every image")
    print(f"{'setup':>12} {'s/step':>9} {'eval s':>7} {'s/epoch':>8} {'speed-up':>9} {'graph breaks':>13}")
    for r in results:
        ratio = base["s_per_epoch"] / r["s_per_epoch"] if base else float("nan")
        print(f"{r['setup']:>12} {r['s_per_step']:9.4f} {r['eval_s']:7.2f} {r['s_per_epoch']:8.2f} {ratio:8.2f}× "
              f"{r['graph_breaks']:>13}" + (f"  (compile failed: {r['compile_failed']})" if r["compile_failed"]
                                            else ""))
    lo, hi = AUTHORS_H100_S_PER_EPOCH
    print(f"for reference only (another machine): the authors' code on an H100, {lo}–{hi} s per epoch")
    return 0 if base else 1


def race_one(args) -> dict:
    """Phase 2, one seed: train for `minutes` of wall time, evaluating every `eval_seconds`."""
    import tempfile

    compile_mode, precision = args.compile, args.precision
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        t = _trainer(args, compile_mode, precision, args.seed, str(Path(tmp) / "run"), args.schedule)
        method, batches, device = t.method, t.batches, t.device
        rows, step, started = [], 0, time.perf_counter()
        next_eval = args.eval_seconds
        deadline = started + args.minutes * 60
        method.train()
        while True:
            method.train_step(batches)
            step += 1
            now = time.perf_counter()
            if now - started >= next_eval or now >= deadline:
                _sync(device)
                s = t.evaluate()
                elapsed = time.perf_counter() - started
                rows.append({"seconds": round(elapsed, 2), "step": step, "epoch": round(batches.epoch, 3),
                             "acc": s.get("acc"), "nmi": s.get("nmi"), "ari": s.get("ari"),
                             "empty_clusters": s.get("empty_clusters")})
                print(json.dumps({"schedule": args.schedule, "seed": args.seed, **rows[-1]}), flush=True)
                next_eval += args.eval_seconds
                method.train()
                if time.perf_counter() >= deadline:
                    break
    with open(out / f"race-{args.schedule}-seed{args.seed}.csv", "w") as f:
        f.write(",".join(rows[0]) + "\n")
        for r in rows:
            f.write(",".join(str(v) for v in r.values()) + "\n")
    first = {th: next((r["seconds"] for r in rows if (r["acc"] or 0) >= th), None) for th in (0.70, PAPER_ACC)}
    best = max(rows, key=lambda r: r["acc"] or 0)
    return {"schedule": args.schedule, "seed": args.seed, "first_0.70_s": first[0.70], "first_0.756_s": first[PAPER_ACC], "best": best,
            "last": rows[-1]}


def race(args) -> int:
    """Phase 2: one process per schedule and seed, all at once."""
    procs = []
    for schedule, seed in [(sc, int(s)) for sc in args.schedules.split(",") for s in args.seeds.split(",")]:
        cmd = [sys.executable, __file__, "race-one", "--seed", str(seed), "--schedule", schedule,
               "--minutes", str(args.minutes),
               "--eval-seconds", str(args.eval_seconds), "--compile", args.compile, "--precision", args.precision,
               "--dataset", args.dataset, "--device", args.device, "--out", args.out,
               "--eval-batch-size", str(args.eval_batch_size)] + (["--data-path", args.data_path]
                                                                   if args.data_path else [])
        procs.append(subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=REPO))
    ok = True
    for p in procs:
        out, _ = p.communicate()
        sys.stdout.write(out)
        ok &= p.returncode == 0
    print(f"\nphase 2: schedules {args.schedules} × seeds {args.seeds} at once, {args.compile} / {args.precision}, "
          f"{args.minutes} min each, "
          f"ACC on every image every {args.eval_seconds} s; the paper: {PAPER_ACC}")
    return 0 if ok else 1


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("phase", choices=("levers", "one", "race", "race-one"))
    p.add_argument("--dataset", default="fashion-mnist")
    p.add_argument("--data-path", default=None)
    p.add_argument("--device", default="cuda")
    p.add_argument("--eval-batch-size", type=int, default=8192)
    p.add_argument("--setups", default=",".join(SETUPS), help="phase 1: comma-separated names from " + ", ".join(SETUPS))
    p.add_argument("--setup", default="eager")
    p.add_argument("--steps", type=int, default=150, help="phase 1: timed steps per setup")
    p.add_argument("--warmup", type=int, default=20, help="phase 1: untimed steps first (compilation)")
    p.add_argument("--setup-cap", type=int, default=150, help="phase 1: seconds before a setup is cut off")
    p.add_argument("--seeds", default="0,1")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--schedules", default="paper", help="phase 2: presets raced side by side (paper,fast: the "
                   "data set's fast preset beside the paper's; the race's --compile/--precision apply to both)")
    p.add_argument("--schedule", default="paper", choices=("paper", "fast"))
    p.add_argument("--minutes", type=float, default=5.0)
    p.add_argument("--eval-seconds", type=float, default=30.0)
    p.add_argument("--compile", default="none")
    p.add_argument("--precision", default="fp32")
    p.add_argument("--out", default=os.environ.get("OUT", "/tmp/gpu-race"))
    args = p.parse_args(argv)
    if args.phase == "one":
        print(json.dumps(measure_setup(args)), flush=True)
        return 0
    if args.phase == "race-one":
        print(json.dumps({"summary": race_one(args)}), flush=True)
        return 0
    return levers(args) if args.phase == "levers" else race(args)


if __name__ == "__main__":
    sys.exit(main())
