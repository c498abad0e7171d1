"""Time of an updated t-SNE map of a new snapshot (warm-started from the previous map, as the explorer does),
beside a from-scratch openTSNE fit of the same points with openTSNE's defaults, measured in the same run.

    python benchmarks/tsne_update.py                    # 5,000 synthetic 60-dim codes, 4 successive snapshots
    python benchmarks/tsne_update.py --points 70000     # all of Fashion-MNIST's size: landmarks + placement
    python benchmarks/tsne_update.py --run runs/x       # the last snapshots of a real run

Both sides use the map worker's thread setting (DCE_MAP_THREADS, default 1). Map quality beside each: the
silhouette of the true groups and the share of each point's 10 nearest neighbours in the codes that are among its
10 nearest on the map (neighbourhood preservation, 2,000 sampled points).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from core.cpu_budget import map_threads  # noqa: E402
from explorer.projection import compute_map, nearest  # noqa: E402


def synthetic_snapshots(n=5000, k=10, dim_zs=50, steps=4, seed=0):
    """Codes like DCCS's: z_c softmax probabilities sharpening over time, z_s ~ N(0, 0.1²) with class structure."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, k, n)
    centres = rng.normal(0, 1, (k, dim_zs))
    noise_c, noise_s = rng.normal(0, 1, (n, k)), rng.normal(0, 1, (n, dim_zs))
    out = []
    for t in range(steps):
        sharp = 1.0 + 1.5 * t
        logits = sharp * np.eye(k)[labels] * 2 + noise_c
        z_c = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
        z_s = 0.1 * (0.3 * (1 + t) * centres[labels] + noise_s) / (1 + 0.3 * (1 + t))
        out.append(np.concatenate([z_c, z_s], 1).astype(np.float32))
    return out, labels


def real_snapshots(run_dir, count=4):
    from core import Run

    run = Run(run_dir)
    steps = run.snapshot_steps()[-count:]
    snaps = [run.snapshot(s) for s in steps]
    return [s.z for s in snaps], snaps[-1].labels


def preservation(x, y, k=10, sample=2000, seed=0):
    """Mean share of a point's k nearest neighbours in x that are among its k nearest in the map y."""
    rows = np.random.default_rng(seed).choice(len(x), min(sample, len(x)), replace=False)
    near_x = nearest(x[rows], x, k + 1)[0][:, 1:]
    near_y = nearest(y[rows], y, k + 1)[0][:, 1:]
    return float(np.mean([len(np.intersect1d(a, b)) / k for a, b in zip(near_x, near_y)]))


def silhouette(y, labels):
    from sklearn.metrics import silhouette_score

    if labels is None:
        return float("nan")
    return float(silhouette_score(y, labels, sample_size=min(len(y), 5000), random_state=0))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--run", default=None)
    p.add_argument("--points", type=int, default=5000)
    p.add_argument("--scratch", choices=("each", "last"), default="each",
                   help="fit from scratch for each snapshot or only the last (70,000 points: minutes per fit)")
    args = p.parse_args(argv)
    import torch
    from openTSNE import TSNE

    threads = map_threads()
    torch.set_num_threads(threads)

    xs, labels = real_snapshots(args.run) if args.run else synthetic_snapshots(args.points)
    print(f"{len(xs)} snapshots of {len(xs[0])} points × {xs[0].shape[1]} dims; {threads} thread(s) of "
          f"{os.cpu_count()} CPU cores")
    print(f"{'snapshot':>8} {'scratch s':>10} {'update s':>9} {'ratio':>6} {'sil scratch':>11} {'sil update':>10}"
          f" {'nbr scratch':>11} {'nbr update':>10}")
    previous, knn, ratios = None, None, []
    for t, x in enumerate(xs):
        t_scratch, q_scratch = float("nan"), (float("nan"), float("nan"))
        if args.scratch == "each" or t == len(xs) - 1:
            t0 = time.perf_counter()
            scratch = np.asarray(TSNE(n_jobs=threads, random_state=0).fit(x))
            t_scratch = time.perf_counter() - t0
            q_scratch = silhouette(scratch, labels), preservation(x, scratch)
        y, t_update, knn = compute_map("t-SNE", x, previous, knn)
        kind = "first" if previous is None else "update"
        previous = y
        q_update = silhouette(y, labels), preservation(x, y)
        if kind == "update" and t_scratch == t_scratch:
            ratios.append(t_scratch / t_update)
        print(f"{t:>8} {t_scratch:10.2f} {t_update:9.2f} {t_scratch / t_update:6.1f} {q_scratch[0]:11.3f}"
              f" {q_update[0]:10.3f} {q_scratch[1]:11.3f} {q_update[1]:10.3f}  ({kind})", flush=True)
    if ratios:
        print(f"\nupdated map: median {np.median(ratios):.1f}x faster than a from-scratch openTSNE fit of the same "
              "points")

if __name__ == "__main__":
    main()
