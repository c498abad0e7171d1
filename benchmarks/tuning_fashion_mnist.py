"""β_Aug tuning session on Fashion-MNIST (or any data set): overlap score, verdict and — for evaluation only —
ACC per value, the recommendation, and whether its ACC is within 0.02 of the session's best; the same session
trained from scratch and branched from a warm-up, with the wall time of each and their ratio, measured in the same
run. The paper's choice for Fashion-MNIST is 2 (3 overlaps); for CIFAR-10 it is 4 (5 overlaps).

    python benchmarks/tuning_fashion_mnist.py                                   # GPU: β 1..6, 20 epochs each
    python benchmarks/tuning_fashion_mnist.py --dataset cifar10 --data-path ../shared/data/cifar10-images.zip \\
        --values 2:6 --paper-choice 4
    python benchmarks/tuning_fashion_mnist.py --dataset digits --data-path '' --steps 200 --device cpu   # smoke test
    python benchmarks/tuning_fashion_mnist.py --schedule fast ...   # a preset; refused where the data set has none
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from core import TrainConfig  # noqa: E402
from core.errors import UserError  # noqa: E402
from core.tuning import SESSION_THRESHOLD, TuningSession, parse_values  # noqa: E402


def run_session(root: Path, mode: str, base: TrainConfig, values, args) -> tuple[TuningSession, float]:
    t0 = time.perf_counter()
    s = TuningSession.create(root / mode, base, values, mode=mode, parallel=args.parallel,
                             warmup_steps=args.warmup_steps, threshold=args.threshold,
                             stop_at_overlap=not args.all_values)
    s.run(progress=True)
    return s, time.perf_counter() - t0


def report(name: str, s: TuningSession, seconds: float, paper_choice: float | None) -> dict:
    print(f"\n{name}: {seconds:.0f} s wall")
    print(f"{'β_Aug':>6} {'state':>9} {'score':>7} {'verdict':>10} {'ACC*':>7} {'NMI*':>7} {'ARI*':>7}")
    accs = {}
    for v in s.values:
        e = s.entry(v)
        ev = e.get("evaluation") or {}
        if "acc" in ev:
            accs[v] = ev["acc"]
        score = f"{e['score']:.3f}" if e.get("score") is not None else "-"
        print(f"{v:6g} {e['state']:>9} {score:>7} {s.verdict(v) or '-':>10} {ev.get('acc', float('nan')):7.4f} "
              f"{ev.get('nmi', float('nan')):7.4f} {ev.get('ari', float('nan')):7.4f}")
    rec = s.recommendation or {}
    value = rec.get("value")
    print(f"recommendation: {value} — {rec.get('reason')}")
    if accs and value in accs:
        best_v = max(accs, key=accs.get)
        gap = accs[best_v] - accs[value]
        print(f"ACC of the recommendation {accs[value]:.4f}; best of the trained values {accs[best_v]:.4f} at β_Aug "
              f"{best_v:g}; gap {gap:.4f} ({'within' if gap <= 0.02 else 'NOT within'} 0.02)")
    if paper_choice is not None:
        print(f"paper's choice {paper_choice:g}: {'agrees' if value == paper_choice else 'differs'}")
    print("* labels: evaluation only; the decision never reads them")
    return {"value": value, "seconds": seconds}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dataset", default="fashion-mnist")
    p.add_argument("--data-path", default=str(REPO.parent / "shared" / "data" / "fashion-mnist.npz"))
    p.add_argument("--values", default="1:6")
    p.add_argument("--epochs", type=float, default=20.0)
    p.add_argument("--steps", type=int, default=None, help="steps per value (overrides --epochs)")
    p.add_argument("--warmup-steps", type=int, default=None)
    p.add_argument("--parallel", type=int, default=2)
    p.add_argument("--device", default="auto")
    p.add_argument("--threshold", type=float, default=SESSION_THRESHOLD)
    p.add_argument("--modes", default="scratch,branch")
    p.add_argument("--all-values", action="store_true", help="train every value even after an overlap (to see "
                                                              "ACC past the recommendation)")
    p.add_argument("--paper-choice", type=float, default=2.0)
    p.add_argument("--root", default=None)
    p.add_argument("--schedule", choices=["paper", "fast"], default="paper",
                   help="training preset of every run (default: paper, the paper's hyper-parameters)")
    args = p.parse_args(argv)
    base = TrainConfig(dataset=args.dataset, data_path=args.data_path or None, device=args.device,
                       epochs=None if args.steps else args.epochs, steps=args.steps, progress=False,
                       schedule=args.schedule)
    values = parse_values(args.values)
    root = Path(args.root or tempfile.mkdtemp(prefix="bench-tune-"))
    print(f"sessions in {root}; values {values}; threshold {args.threshold:g}")
    results = {}
    for mode in args.modes.split(","):
        try:
            s, secs = run_session(root, mode, base, values, args)
        except UserError as e:  # a setting this data set refuses (say --schedule fast where none was measured)
            p.exit(2, f"{p.prog}: error: {e}\n")
        results[mode] = report(mode, s, secs, args.paper_choice)
    if {"scratch", "branch"} <= set(results):
        a, b = results["scratch"], results["branch"]
        print(f"\nbranch vs scratch: same recommendation: {a['value'] == b['value']}; wall time ratio scratch/branch "
              f"{a['seconds'] / b['seconds']:.2f}x")


if __name__ == "__main__":
    main()
