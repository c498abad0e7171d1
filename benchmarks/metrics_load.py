"""How long a run's curves take to appear in the explorer, by the size of its metrics.jsonl, and how long another
browser tab waits for its run list meanwhile; headless Chromium against `panel serve apps/explorer_app.py`.

    python benchmarks/metrics_load.py [--sizes 1000 20000 200000] [--repo OTHER_CHECKOUT]

Writes synthetic finished DCCS runs (config.json and status.json as the engine writes them, records shaped as its
`train` records with every key, the evaluation keys every 100 records) with 1k, 20k and 200k records, then for each:
the time from navigating to a page showing that run to its curve plots being drawn (all panels' canvases), on a fresh
server and on one that has served a page; the time from picking the largest run in the run list of a page that shows
the smallest to its curves; and, while the largest run loads in one tab, the time a second tab waits for its run
list. Baselines, measured in the same
invocation: reading and parsing the file alone in Python (`Run.metrics()`), and the page's load time for an empty
runs folder. `--repo` serves another checkout's app (to compare with an earlier commit on the same machine).
Needs /usr/bin/chromium and the playwright package.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from core.methods import DCCS  # noqa: E402
from core.rundir import Run  # noqa: E402

sys.path.insert(0, str(REPO / "tests"))
from headless import CHROMIUM, ExplorerServer, launch_context  # noqa: E402

# one record of a real DCCS run on digits (an evaluation step: it carries the evaluation keys too)
RECORD = {"kind": "train", "step": 20, "epoch": 1.7857, "time": 68.458, "timestamp": 1796168237.440535,
          "critic_loss": -1.8444686889648438, "w_raw": 1.9584686279296875, "gradient_penalty": 0.011399992555379868,
          "wasserstein": 1.8444686889648438, "mi_loss": 1.3979887008666991, "aug_loss": 0.12217416763305664,
          "adv_loss": 2.825170707702637, "encoder_loss": 3.768513488769531, "steps_per_s": 0.24293681038343756,
          "images_per_s": 38.86988966135001, "beta_aug": 2.0, "cluster_sizes": [182, 8, 315, 78, 70, 840, 0, 34, 4, 266],
          "empty_clusters": 1, "size_entropy": 0.6734921964498798, "mean_max_prob": 0.4156816038212381,
          "acc": 0.2826933778519755, "nmi": 0.301384746070851, "ari": 0.14721789702754468}
EVAL_KEYS = ("cluster_sizes", "empty_clusters", "size_entropy", "mean_max_prob", "acc", "nmi", "ari")


def write_run(path: Path, n: int, seed: int = 0) -> Path:
    """A finished DCCS run on digits with n train records (no snapshots: the curves are what is measured)."""
    import numpy as np

    rng = np.random.default_rng(seed)
    path.mkdir(parents=True)
    settings = {"method": "dccs", "dataset": "digits", "data_path": None, "num_clusters": 10, "run_dir": str(path),
                "device": "cpu", "seed": seed, "steps": n, "batch_size": 32, "lr": 3e-4, "schedule": "fast",
                "beta_aug": 2.0, "log_every": 1, "eval_every": 100, "snapshot_every": 0}
    config = {"format": 1, "settings": settings, "method": DCCS.describe(),
              "dataset": {"name": "digits", "source": "scikit-learn", "size": 1797, "channels": 1, "height": 28,
                          "width": 28, "has_labels": True, "class_names": [str(i) for i in range(10)]},
              "device": "cpu", "versions": {}, "created": time.time()}
    (path / "config.json").write_text(json.dumps(config, indent=2))
    (path / "status.json").write_text(json.dumps({"state": "finished", "updated": time.time(), "pid": 0,
                                                  "host": "bench", "step": n, "total_steps": n, "message": ""}))
    noise = rng.standard_normal((n, 6))
    train_keys = [k for k in RECORD if k not in EVAL_KEYS]
    with open(path / "metrics.jsonl", "w") as f:
        for i in range(n):
            s = i + 1
            w = 2.0 / (1 + s / 1000) + 0.05 * noise[i, 0]
            rec = {k: RECORD[k] for k in train_keys}
            rec.update(step=s, epoch=round(s / 56, 4), time=round(0.31 * s, 3), timestamp=1.79e9 + 0.31 * s,
                       critic_loss=-w, wasserstein=w, w_raw=w + 0.1 * noise[i, 1],
                       mi_loss=1.4 + 0.1 * noise[i, 2], aug_loss=0.12 + 0.01 * noise[i, 3],
                       adv_loss=2.8 + 0.1 * noise[i, 4], encoder_loss=3.8 + 0.1 * noise[i, 5])
            if s % 100 == 0:
                rec.update({k: RECORD[k] for k in EVAL_KEYS})
                rec["acc"] = min(1.0, 0.3 + 0.6 * s / n)
            f.write(json.dumps(rec) + "\n")
    return path


def serve(repo: Path, root: Path, run: str | None = None) -> ExplorerServer:
    """A fresh explorer server for `root` (opening `run`), listening; its log beside the runs folder."""
    server = ExplorerServer(root, *(["--run", run] if run else []), repo=repo, log=root.parent / "server.log")
    server.wait_listening(120)
    return server


def timed_goto(page, url: str, selector: str, count: int = 1, timeout: float = 600) -> float:
    """Seconds from navigating to `url` until `selector` matches at least `count` elements."""
    t0 = time.perf_counter()
    page.goto(url, timeout=timeout * 1000)
    wait_count(page, selector, count, timeout - (time.perf_counter() - t0))
    return time.perf_counter() - t0


def wait_count(page, selector: str, count: int, timeout: float) -> None:
    deadline = time.perf_counter() + timeout
    while page.locator(selector).count() < count:
        if time.perf_counter() > deadline:
            raise SystemExit(f"{selector} never reached {count} elements")
        time.sleep(0.05)


def note_text(page) -> str:
    return page.locator(".curve-note").first.evaluate("e => (e.shadowRoot || e).textContent || ''")


def wait_note_gone(page, timeout: float) -> float:
    """Seconds until the curves' "reading metrics" note is gone (every record read and drawn)."""
    t0 = time.perf_counter()
    while "reading metrics" in note_text(page):
        if time.perf_counter() - t0 > timeout:
            raise SystemExit("the metrics were never read whole")
        time.sleep(0.05)
    return time.perf_counter() - t0


def pick_run(page, name: str, timeout: float) -> float:
    """Seconds from choosing run `name` in the page's run list until its curves are drawn (the previous run's plots
    go first: the count of curve canvases drops to none, then comes back)."""
    labels = page.locator(".run-select select option").all_text_contents()
    label = next(t for t in labels if t.strip().startswith(name))
    t0 = time.perf_counter()
    page.locator(".run-select select").select_option(label=label)
    deadline = t0 + timeout
    while page.locator(".curves .bk-Canvas").count() >= 3:
        if time.perf_counter() > deadline:
            raise SystemExit(f"{name}: the previous run's curves never went")
        time.sleep(0.02)
    wait_count(page, ".curves .bk-Canvas", 3, deadline - time.perf_counter())
    return time.perf_counter() - t0


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", type=int, nargs="+", default=[1000, 20_000, 200_000])
    p.add_argument("--repo", type=Path, default=REPO, help="the checkout whose app is served (default: this one)")
    p.add_argument("--timeout", type=float, default=600, help="seconds one page may take")
    args = p.parse_args(argv)
    if not Path(CHROMIUM).exists():
        raise SystemExit(f"needs {CHROMIUM} (apt-get install -y chromium)")
    from playwright.sync_api import sync_playwright

    repo = args.repo.resolve()
    tmp = Path(tempfile.mkdtemp(prefix="metrics-load-"))
    root, empty = tmp / "runs", tmp / "empty" / "runs"
    empty.mkdir(parents=True)
    names = {n: f"r{n // 1000}k" if n >= 1000 else f"r{n}" for n in args.sizes}
    cores = len(os.sched_getaffinity(0))
    print(f"serving {repo} ({subprocess.run(['git', 'rev-parse', '--short', 'HEAD'], cwd=repo, text=True, capture_output=True).stdout.strip()}); {cores} cores", flush=True)
    try:
        parse_s = {}
        for n in args.sizes:
            path = write_run(root / names[n], n)
            t0 = time.perf_counter()
            records = Run(path).metrics()
            parse_s[n] = time.perf_counter() - t0
            mb = (path / "metrics.jsonl").stat().st_size / 1e6
            print(f"{names[n]}: {len(records):,} records, {mb:.1f} MB; read + parsed in Python in {parse_s[n]:.2f} s",
                  flush=True)
            del records
        profile = tmp / "profile"
        with sync_playwright() as pw:
            ctx = launch_context(pw, profile)
            server = serve(repo, empty)  # a fresh server, as for each run below (its first page imports the app)
            try:
                page = ctx.new_page()
                page_s = timed_goto(page, server.url, ".run-select select", timeout=args.timeout)
                page.close()
                page = ctx.new_page()
                warm_s = timed_goto(page, server.url, ".run-select select", timeout=args.timeout)
                page.close()
            finally:
                server.close()
            print(f"empty runs folder: the page loads in {page_s:.2f} s as a server's first page "
                  f"({warm_s:.2f} s as its second): the baseline below", flush=True)
            for n in args.sizes:
                server = serve(repo, root, names[n])
                try:
                    page = ctx.new_page()
                    secs = timed_goto(page, server.url, ".curves .bk-Canvas", count=3, timeout=args.timeout)
                    page.close()
                    page = ctx.new_page()  # a second page: a new session reads the run again, on a warm server
                    warm = timed_goto(page, server.url, ".curves .bk-Canvas", count=3, timeout=args.timeout)
                    whole = warm + wait_note_gone(page, args.timeout)
                    page.close()
                finally:
                    server.close()
                print(f"{names[n]}: curves drawn {secs:.2f} s after navigating to a fresh server: "
                      f"{secs / parse_s[n]:.2f}× reading + parsing the file in Python, {secs / page_s:.2f}× an empty "
                      f"page's load; on a server that has served a page: {warm:.2f} s ({warm / warm_s:.2f}× an empty "
                      f"page there), every record drawn after "
                      f"{whole:.2f} s ({whole / parse_s[n]:.2f}× reading + parsing)", flush=True)
            big = max(args.sizes)
            if len(args.sizes) > 1:  # the large run picked in the run list of a page that shows a small one
                small = min(args.sizes)
                server = serve(repo, root, names[small])
                try:
                    page = ctx.new_page()
                    timed_goto(page, server.url, ".curves .bk-Canvas", count=3, timeout=args.timeout)
                    picked = pick_run(page, names[big], args.timeout)
                    page.close()
                finally:
                    server.close()
                print(f"{names[big]} picked in the run list of a page showing {names[small]} (a server that has "
                      f"served a page, the run not read before): curves drawn after {picked:.2f} s "
                      f"({picked / warm_s:.2f}× an empty page's load there)", flush=True)
            server = serve(repo, root, names[big])
            try:
                first = ctx.new_page()
                t0 = time.perf_counter()
                # navigate without waiting for the page: a server that builds it slowly must not hold up the second
                first.evaluate("url => { window.location.href = url; }", server.url)
                time.sleep(2.0)  # the large run is being read for the first tab
                second = ctx.new_page()
                t1 = time.perf_counter()
                second.goto(server.url, timeout=args.timeout * 1000)
                wait_count(second, ".run-select select option", len(args.sizes), args.timeout)
                waited = time.perf_counter() - t1
                wait_count(first, ".curves .bk-Canvas", 3, args.timeout)
                first_s = time.perf_counter() - t0
            finally:
                server.close()
            print(f"while {names[big]} loads in one tab (curves after {first_s:.2f} s), a second tab waits "
                  f"{waited:.2f} s for its run list: {waited / warm_s:.2f}× an empty page's load on a server that "
                  f"has served a page ({waited / page_s:.2f}× a server's first)", flush=True)
            ctx.close()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
