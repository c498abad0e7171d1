"""DCSM's pseudo-labels over the first steps on Fashion-MNIST, for several k-means schedules in the same run.

Why: with the centres of the dataset-scope k-means refitted only every quarter epoch (547 steps on 70,000 images),
the network drifts away from centres fitted on its earlier outputs, the nearest-centre assignment piles most
images onto one or two centres, r_ij = 1 for a large share of pairs, and L_DT pulls the clusters together (a
collapse episode). This prints, every `--every` steps and per schedule: probe ACC/NMI (labels, evaluation only),
the mean largest entry of l, the sizes of the predicted clusters on the probe set, the share of r_ij = 1 pairs in
training (`same`, 0.1 for ten balanced clusters) and how many probe images the largest centre takes (`top centre`).
The figure of merit is the largest `same` of each schedule, printed at the end beside the baseline schedule's.

    python benchmarks/dcsm_kmeans_schedule.py --steps 400                        # old default vs the new one
    python benchmarks/dcsm_kmeans_schedule.py --variants 'quarter-epoch:{"kmeans_every":547}' \\
        'batch:{"kmeans_scope":"batch"}' --steps 400
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from core import TrainConfig, load_dataset  # noqa: E402
from core.metrics import evaluate  # noqa: E402
from core.trainer import Trainer  # noqa: E402

DEFAULT_VARIANTS = ['quarter-epoch:{"kmeans_every":547}', 'default:{}']


def run_variant(name: str, extra: dict, data, args, root: Path) -> dict:
    cfg = TrainConfig(dataset="fashion-mnist", data_path=args.data_path, method="dcsm", device=args.device,
                      seed=args.seed, run_dir=str(root / name), progress=False, steps=10**9, **extra)
    trainer = Trainer(cfg, data=data)
    method = trainer.method
    probe = trainer.images[torch.from_numpy(trainer.probe_indices).to(trainer.device)]
    labels = data.labels[trainer.probe_indices]
    print(f"\n{name}: k-means every {method.kmeans_every} steps, scope {method.kmeans_scope}, "
          f"track {method.kmeans_track}")
    print(f"{'step':>6} {'time s':>7} {'ACC':>6} {'NMI':>6} {'max l':>6} {'same':>6} {'top centre':>10}  cluster sizes")
    window, worst, t0 = [], 0.0, time.perf_counter()
    for step in range(args.steps + 1):
        if step % args.every == 0:
            l = torch.as_tensor(trainer.predict(probe)[0])
            m = evaluate(labels, l.argmax(1))
            top = torch.bincount(torch.cdist(l, method.centres.cpu()).argmin(1), minlength=method.k).max().item()
            sizes = sorted(torch.bincount(l.argmax(1), minlength=method.k).tolist(), reverse=True)
            same = float(torch.stack(window).mean()) if window else float("nan")
            if window:
                worst = max(worst, same)
            print(f"{step:6d} {time.perf_counter() - t0:7.0f} {m['acc']:6.3f} {m['nmi']:6.3f} "
                  f"{l.max(1).values.mean():6.3f} {same:6.3f} {top:10d}  {sizes}", flush=True)
            window = []
            method.train()
        window.append(method.train_step(trainer.batches)["same_cluster_share"])
    return {"worst_same": worst, "acc": m["acc"], "nmi": m["nmi"]}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-path", default=str(REPO.parent / "shared" / "data" / "fashion-mnist.npz"))
    p.add_argument("--device", default="auto")
    p.add_argument("--steps", type=int, default=400)
    p.add_argument("--every", type=int, default=50, help="steps between probe evaluations")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--variants", nargs="+", default=DEFAULT_VARIANTS,
                   help="name:JSON settings; the first is the baseline")
    args = p.parse_args(argv)
    data = load_dataset("fashion-mnist", args.data_path)
    root = Path(tempfile.mkdtemp(prefix="bench-kmeans-"))
    results = {}
    for spec in args.variants:
        name, _, settings = spec.partition(":")
        results[name] = run_variant(name, json.loads(settings or "{}"), data, args, root)
    base_name = next(iter(results))
    base = results[base_name]
    print(f"\nlargest share of r_ij = 1 pairs over {args.steps} steps (0.1 = ten balanced clusters):")
    for name, r in results.items():
        print(f"  {name:16} {r['worst_same']:.3f}  ({r['worst_same'] / base['worst_same']:.2f}x {base_name}); "
              f"final probe ACC {r['acc']:.3f}, NMI {r['nmi']:.3f}")


if __name__ == "__main__":
    main()
