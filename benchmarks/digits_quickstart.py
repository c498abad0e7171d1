"""The quick-start job (`make run`): DCCS on scikit-learn's digits with the default settings, on the CPU.

Prints the wall time of the whole job (data, training, evaluation) and its ACC/NMI/ARI as a ratio to k-means on
the raw pixels, measured in the same run. The target: under 3 minutes on 2 CPU cores, ACC above k-means.

    python benchmarks/digits_quickstart.py [--seeds 0 1 2] [--threads 2]
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
from core.metrics import kmeans_baseline  # noqa: E402
from core.trainer import Trainer  # noqa: E402


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seeds", type=int, nargs="+", default=[0])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--device", default="cpu")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)

    t0 = time.perf_counter()
    base = kmeans_baseline(load_dataset("digits"), seed=0)
    t_kmeans = time.perf_counter() - t0
    print(f"k-means on raw pixels (10 restarts): ACC {base['acc']:.4f}  NMI {base['nmi']:.4f}  ARI {base['ari']:.4f}"
          f"  ({t_kmeans:.1f} s)")
    print(f"\n{'seed':>4} {'wall s':>7} {'ACC':>7} {'NMI':>7} {'ARI':>7} {'ACC/kmeans':>10} {'empty':>5}")
    for seed in args.seeds:
        with tempfile.TemporaryDirectory() as tmp:
            t0 = time.perf_counter()
            cfg = TrainConfig(dataset="digits", seed=seed, device=args.device, run_dir=str(Path(tmp) / "run"),
                              progress=False)
            result = Trainer(cfg).fit()
            wall = time.perf_counter() - t0
        print(f"{seed:4d} {wall:7.1f} {result['acc']:7.4f} {result['nmi']:7.4f} {result['ari']:7.4f} "
              f"{result['acc'] / base['acc']:10.3f} {result['empty_clusters']:5d}", flush=True)


if __name__ == "__main__":
    main()
