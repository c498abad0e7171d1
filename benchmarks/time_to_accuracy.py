"""ACC/NMI/ARI on all images against wall time, for two or more ways of training the same method on the same data
with the same seeds, run alternately in one invocation (so that a noisy machine slows them alike).

    python benchmarks/time_to_accuracy.py                                   # digits, DCCS, paper vs fast, seeds 0 1
    python benchmarks/time_to_accuracy.py --dataset fashion-mnist --minutes 15 --eval-every 200
    python benchmarks/time_to_accuracy.py --variant base="" --variant ema="--ema 0.99" --seeds 0 1 2

A variant is a name and the `python -m core train` flags that make it (default: `--schedule paper` and
`--schedule fast`). Each run stops at its own length or after --minutes of wall time, whichever comes first;
its evaluations (every --eval-every steps, on every image) are the points of its curve. Wall time counts from the
run's start, evaluations included, as the run's own `time` field does. Printed: k-means on the raw pixels
(measured in the same invocation, the baseline each ACC is given as a ratio to), a table of every evaluation, the
first time each variant passed each ACC threshold, the mean over seeds at each evaluation index, and each variant's
mean ACC at the first variant's evaluation times (equal wall time) with whether it is at or above the first
variant's at every one — the rule for a fast preset (docs/methods.md, 'Presets'). Written under
--out: curves.csv and acc_vs_time.png (one line per variant and seed, k-means dashed).
"""

from __future__ import annotations

import argparse
import csv
import json
import shlex
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from core import TrainConfig, load_dataset  # noqa: E402
from core.cli import OneLineParser, add_config_arguments, given_settings  # noqa: E402
from core.metrics import kmeans_baseline  # noqa: E402
from core.trainer import Trainer  # noqa: E402

FIXED = ("dataset", "data_path", "seed", "run_dir", "progress", "method", "eval_every", "threads")


def parse_variant(text: str) -> tuple[str, dict]:
    """'name=--flag value ...' → (name, the settings those flags give)."""
    name, _, flags = text.partition("=")
    if not name:
        raise SystemExit(f"error: a variant needs a name: {text!r} (name=flags)")
    parser = OneLineParser(prog=f"variant {name}", add_help=False)
    add_config_arguments(parser, skip=FIXED)
    return name, given_settings(parser.parse_args(shlex.split(flags)), skip=FIXED)


def run_one(settings: dict, common: dict, seed: int, minutes: float, run_dir: Path) -> list[dict]:
    """Train one variant for one seed; its evaluation records."""
    trainer = None

    def stop_on_time(event: dict) -> None:
        if event.get("type") == "record" and event.get("time", 0) > minutes * 60 and trainer is not None:
            trainer.stop("time budget spent")

    cfg = TrainConfig(**common, **settings, seed=seed, run_dir=str(run_dir), progress=False)
    trainer = Trainer(cfg, callbacks=[stop_on_time])
    trainer.fit()
    evals = []
    with open(run_dir / "metrics.jsonl") as f:
        for line in f:
            rec = json.loads(line)
            if rec.get("kind") == "train" and rec.get("acc") is not None:
                evals.append(rec)
    return evals


def first_time(points: list[dict], threshold: float) -> float | None:
    return next((p["time"] for p in points if p["acc"] >= threshold), None)


def acc_at_reference_times(curves: dict, name: str, reference: str, seeds: list[int]) -> list[float | None]:
    """`name`'s mean ACC over the seeds at each of `reference`'s evaluation times (per seed, the latest evaluation
    of `name` at or before that time; None where some seed had none yet). Variants whose steps differ in cost
    are compared at equal wall time, not at equal evaluation index."""
    n = min(len(curves[(reference, s)]) for s in seeds)
    row = []
    for i in range(n):
        accs = []
        for s in seeds:
            t = curves[(reference, s)][i]["time"]
            seen = [q["acc"] for q in curves[(name, s)] if q["time"] <= t + 1e-9]
            accs.append(seen[-1] if seen else None)
        row.append(None if None in accs else sum(accs) / len(accs))
    return row


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dataset", default="digits")
    p.add_argument("--data-path", default=None)
    p.add_argument("--method", default="dccs")
    p.add_argument("--variant", action="append", default=None, metavar="NAME=FLAGS")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    p.add_argument("--minutes", type=float, default=3.0, help="wall-time cap per curve")
    p.add_argument("--eval-every", type=int, default=50, help="steps between evaluations on every image")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    p.add_argument("--thresholds", type=float, nargs="+", default=[0.8, 0.85, 0.9])
    p.add_argument("--out", default=None, help="folder for curves.csv and acc_vs_time.png (default: a temporary one)")
    args = p.parse_args(argv)

    variants = dict(parse_variant(v) for v in (args.variant or ["paper=--schedule paper", "fast=--schedule fast"]))
    out = Path(args.out or tempfile.mkdtemp(prefix="time_to_accuracy-"))
    out.mkdir(parents=True, exist_ok=True)
    common = {"dataset": args.dataset, "data_path": args.data_path, "method": args.method,
              "eval_every": args.eval_every, "threads": args.threads}

    t0 = time.perf_counter()
    base = kmeans_baseline(load_dataset(args.dataset, args.data_path), seed=0)
    print(f"k-means on the raw pixels: ACC {base['acc']:.4f}  NMI {base['nmi']:.4f}  ARI {base['ari']:.4f}  "
          f"({time.perf_counter() - t0:.1f} s)")
    for name, settings in variants.items():
        print(f"variant {name}: {settings or '(defaults)'}")

    curves: dict[tuple[str, int], list[dict]] = {}
    print(f"\n{'variant':>10} {'seed':>4} {'step':>6} {'time s':>7} {'ACC':>6} {'NMI':>6} {'ARI':>6} "
          f"{'ACC/km':>6} {'empty':>5}")
    with tempfile.TemporaryDirectory() as tmp:
        for seed in args.seeds:  # alternately: every variant for a seed, then the next seed
            for name, settings in variants.items():
                points = run_one(settings, common, seed, args.minutes, Path(tmp) / f"{name}-{seed}")
                curves[(name, seed)] = points
                for q in points:
                    print(f"{name:>10} {seed:4d} {q['step']:6d} {q['time']:7.1f} {q['acc']:6.3f} {q['nmi']:6.3f} "
                          f"{q['ari']:6.3f} {q['acc'] / base['acc']:6.3f} {q['empty_clusters']:5d}", flush=True)

    with open(out / "curves.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["variant", "seed", "step", "time_s", "acc", "nmi", "ari", "empty_clusters"])
        for (name, seed), points in curves.items():
            for q in points:
                w.writerow([name, seed, q["step"], q["time"], q["acc"], q["nmi"], q["ari"], q["empty_clusters"]])

    print(f"\nfirst time past each ACC (s; '-' = never), and the last evaluation:")
    print(f"{'variant':>10} {'seed':>4} " + " ".join(f"{t:>7}" for t in args.thresholds)
          + f" {'last ACC':>8} {'NMI':>6} {'empty':>5} {'time s':>7}")
    for (name, seed), points in curves.items():
        times = [first_time(points, t) for t in args.thresholds]
        last = points[-1]
        print(f"{name:>10} {seed:4d} " + " ".join(f"{t:7.1f}" if t is not None else f"{'-':>7}" for t in times)
              + f" {last['acc']:8.3f} {last['nmi']:6.3f} {last['empty_clusters']:5d} {last['time']:7.1f}")

    print("\nmean ACC over the seeds at each evaluation (time: mean over the seeds)")
    for name in variants:
        runs = [curves[(name, s)] for s in args.seeds]
        n = min(len(r) for r in runs)
        row = [(sum(r[i]["time"] for r in runs) / len(runs), sum(r[i]["acc"] for r in runs) / len(runs))
               for i in range(n)]
        print(f"{name:>10}: " + "  ".join(f"{t:.0f}s {a:.3f}" for t, a in row))

    reference = next(iter(variants))
    print(f"\nby time: mean ACC over the seeds at each of {reference}'s evaluation times (each variant's latest "
          f"evaluation by then; '-': none yet), and whether it is at or above {reference}'s at every one")
    for name in variants:
        row = acc_at_reference_times(curves, name, reference, args.seeds)
        ok = all(a is not None and a >= r - 1e-12 for a, r in zip(row, acc_at_reference_times(
            curves, reference, reference, args.seeds)))
        print(f"{name:>10}: " + "  ".join("-" if a is None else f"{a:.3f}" for a in row)
              + ("" if name == reference else f"   at or above at every one: {'yes' if ok else 'no'}"))

    from plot import line_chart

    series = {f"{name} seed {seed}": ([q["time"] for q in pts], [q["acc"] for q in pts])
              for (name, seed), pts in curves.items()}
    png = line_chart(series, out / "acc_vs_time.png", title=f"{args.method} on {args.dataset}: ACC on all images",
                     xlabel="wall time (s)", ylabel="ACC", hlines={"k-means": base["acc"]})
    print(f"\nwritten: {out / 'curves.csv'}, {png}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
