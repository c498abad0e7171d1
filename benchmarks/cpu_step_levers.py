"""CPU speed levers for a DCCS training step (the convergence issue's "CPU speed" list): seconds per step of eager
fp32 against channels_last memory format, `torch.compile` (inductor; needs a C++ compiler) and bf16 autocast, each
setup in its own process, the setups alternated over --rounds rounds so that a noisy machine slows them alike; each
printed as a ratio to eager fp32's median in the same run, with the first compilation's seconds.

    python benchmarks/cpu_step_levers.py                       # digits (28×28, the same networks as Fashion-MNIST)
    python benchmarks/cpu_step_levers.py --setups eager,compile --steps 200 --rounds 3

channels_last is not a training setting: it is tried here by converting the networks and their input, and it
becomes one only if it measures faster (docs/methods.md, "CPU speed").
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

SETUPS = {  # name: (compile mode, precision, channels_last)
    "eager": ("none", "fp32", False),
    "channels-last": ("none", "fp32", True),
    "compile": ("default", "fp32", False),
    "bf16": ("none", "bf16", False),
}


def measure(name: str, steps: int, warmup: int, dataset: str, data_path: str | None) -> dict:
    """One setup in this process: `warmup` untimed steps (compilation happens there), then `steps` timed ones."""
    import torch

    from core import TrainConfig
    from core.trainer import Trainer

    compile_mode, precision, channels_last = SETUPS[name]
    with tempfile.TemporaryDirectory() as tmp:
        t = Trainer(TrainConfig(run_dir=f"{tmp}/run", dataset=dataset, data_path=data_path, steps=10 ** 9,
                                eval_every=0, snapshot_every=10 ** 9, checkpoint_every=10 ** 9, progress=False,
                                compile=compile_mode, precision=precision))
        method = t.method
        if channels_last:
            method.to(memory_format=torch.channels_last)
            encoder, forward = method.encoder, method.encoder.forward
            encoder.forward = lambda x, *a, **k: forward(x.contiguous(memory_format=torch.channels_last), *a, **k)
        method.train()
        started = time.perf_counter()
        for _ in range(warmup):
            method.train_step(t.batches)
        warmup_s = time.perf_counter() - started
        started = time.perf_counter()
        for _ in range(steps):
            out = method.train_step(t.batches)
        step_s = (time.perf_counter() - started) / steps
        return {"setup": name, "s_per_step": step_s, "warmup_s": warmup_s, "threads": torch.get_num_threads(),
                "graph_breaks": method.graph_breaks, "encoder_loss": float(out["encoder_loss"]),
                "compile_failed": [getattr(method, "_" + n).failed for n in method.compiled_functions
                                   if getattr(method, "_" + n).failed]}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--setups", default="eager,channels-last,compile,bf16")
    p.add_argument("--steps", type=int, default=150)
    p.add_argument("--warmup", type=int, default=10)
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--dataset", default="digits")
    p.add_argument("--data-path")
    p.add_argument("--one", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.one:
        print(json.dumps(measure(args.one, args.steps, args.warmup, args.dataset, args.data_path)), flush=True)
        return 0
    names = args.setups.split(",")
    unknown = [n for n in names if n not in SETUPS]
    if unknown:
        p.error(f"unknown setup(s) {', '.join(unknown)} (known: {', '.join(SETUPS)})")
    rows: dict[str, list[dict]] = {n: [] for n in names}
    for r in range(args.rounds):
        for name in names:
            cmd = [sys.executable, __file__, "--one", name, "--steps", str(args.steps), "--warmup", str(args.warmup),
                   "--dataset", args.dataset] + (["--data-path", args.data_path] if args.data_path else [])
            proc = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO)
            line = next((l for l in proc.stdout.splitlines() if l.startswith("{")), None)
            if proc.returncode != 0 or line is None:
                print(f"round {r + 1} {name}: failed (exit {proc.returncode})\n{proc.stderr[-2000:]}", flush=True)
                continue
            row = json.loads(line)
            rows[name].append(row)
            print(f"round {r + 1} {name:>13}: {row['s_per_step']:.4f} s/step, warm-up {row['warmup_s']:.1f} s, "
                  f"{row['threads']} threads, graph breaks {row['graph_breaks']}"
                  + (f", compile failed: {row['compile_failed']}" if row["compile_failed"] else ""), flush=True)
    if not rows.get("eager"):
        print("no eager baseline measured: no ratios")
        return 1
    base = statistics.median(r["s_per_step"] for r in rows["eager"])
    print(f"\n| setup | s/step (median of {args.rounds}) | speed-up over eager fp32 | first warm-up s |")
    print("|---|---|---|---|")
    for name in names:
        if rows[name]:
            med = statistics.median(r["s_per_step"] for r in rows[name])
            print(f"| {name} | {med:.4f} | {base / med:.2f}× | {rows[name][0]['warmup_s']:.1f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
