"""DCSM, DCSM-oc and DCCS on Fashion-MNIST (all 70,000 images): ACC/NMI/ARI against training wall time, for the
three in the same run on the same device, each given the same time budget.

The curve is measured on the runs' fixed probe subset (5,000 images) at evenly spaced moments; the final row of
each method is evaluated on all 70,000 images. Evaluation time is not counted as training time. The figure of
merit printed at the end is each method's final ACC as a ratio to DCCS's, measured in this run.

    python benchmarks/dcsm_fashion_mnist.py                          # GPU if there is one, 10 minutes each
    python benchmarks/dcsm_fashion_mnist.py --device cpu --minutes 3 --evals 4
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from core import TrainConfig, load_dataset  # noqa: E402
from core.metrics import evaluate  # noqa: E402
from core.runtime import resolve_device  # noqa: E402
from core.trainer import Trainer  # noqa: E402

METHODS = {
    "DCCS": dict(method="dccs", schedule="paper"),  # the paper's settings, as the DCSM runs
    "DCSM": dict(method="dcsm"),
    "DCSM-oc": dict(method="dcsm", ablation="oc"),
}


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def train_for(name: str, cfg: TrainConfig, data, seconds: float, evals: int) -> list[dict]:
    """Train for `seconds` of training time, evaluating the probe subset `evals` times on the way."""
    trainer = Trainer(cfg, data=data)
    device = trainer.device
    probe = trainer.images[torch.from_numpy(trainer.probe_indices).to(device)]
    labels = data.labels[trainer.probe_indices]
    rows, trained, next_eval = [], 0.0, 0.0
    trainer.method.train()
    while True:
        if trained >= next_eval or trained >= seconds:
            final = trained >= seconds
            z_c = trainer.predict(None if final else probe)[0]
            m = evaluate(data.labels if final else labels, z_c.argmax(1))
            rows.append({"method": name, "time": trained, "step": trainer.step, "epoch": trainer.batches.epoch,
                         "scope": "all" if final else "probe", **m})
            r = rows[-1]
            print(f"{name:8} {r['time']:8.1f} {r['step']:7d} {r['epoch']:7.2f} {r['scope']:>6} {r['acc']:7.4f} "
                  f"{r['nmi']:7.4f} {r['ari']:7.4f}", flush=True)
            if final:
                return rows
            next_eval += seconds / evals
            trainer.method.train()
        _sync(device)
        t0 = time.perf_counter()
        for _ in range(10):  # a few steps between clock reads
            trainer.method.train_step(trainer.batches)
            trainer.step += 1
        _sync(device)
        trained += time.perf_counter() - t0


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-path", default=str(REPO.parent / "shared" / "data" / "fashion-mnist.npz"))
    p.add_argument("--device", default="auto")
    p.add_argument("--minutes", type=float, default=10.0, help="training time per method")
    p.add_argument("--evals", type=int, default=10, help="probe evaluations per method")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--methods", default=",".join(METHODS), help="comma-separated subset of " + ", ".join(METHODS))
    args = p.parse_args(argv)
    by_name = {name.lower(): name for name in METHODS}  # names are matched without regard to case
    asked = [m.strip() for m in args.methods.split(",")]
    unknown = [m for m in asked if m.lower() not in by_name]
    if unknown:
        p.error(f"unknown method {', '.join(unknown)}: choose from {', '.join(METHODS)}")
    methods = [by_name[m.lower()] for m in asked]

    device = resolve_device(args.device)
    data = load_dataset("fashion-mnist", args.data_path)
    root = Path(tempfile.mkdtemp(prefix="bench-dcsm-"))
    print(f"device {device}; {len(data)} images; {args.minutes:g} min of training per method; runs in {root}")
    print(f"{'method':8} {'time s':>8} {'step':>7} {'epoch':>7} {'on':>6} {'ACC':>7} {'NMI':>7} {'ARI':>7}")
    finals = {}
    for name in methods:
        cfg = TrainConfig(dataset="fashion-mnist", data_path=args.data_path, device=str(device), seed=args.seed,
                          run_dir=str(root / name), progress=False, steps=10**9, **METHODS[name])
        finals[name] = train_for(name, cfg, data, args.minutes * 60, args.evals)[-1]
    print("\nfinal (all images):")
    base = finals.get("DCCS")
    for name, r in finals.items():
        ratio = f"   ACC ratio to DCCS {r['acc'] / base['acc']:.3f}" if base else ""
        print(f"  {name:8} ACC {r['acc']:.4f}  NMI {r['nmi']:.4f}  ARI {r['ari']:.4f}  after {r['epoch']:.2f} epochs "
              f"({r['step']} steps){ratio}")


if __name__ == "__main__":
    main()
