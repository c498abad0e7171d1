"""What watching a run costs it: the quick-start job (`python -m explorer --train digits`, what `make run` starts)
run alone and then with the page open in headless Chromium, following the latest snapshot, in one invocation.

    python benchmarks/watch_cost.py [--seed 0] [--phases alone watched] [--keep DIR] [-- extra train flags]

Printed for each phase: the trainer's seconds per step (the median of its records' windows, which leave out
evaluations, snapshots and checkpoints, and the run's whole training time over its steps), the job's wall time from
the command to its final ACC line, and the ACC/NMI/empty clusters it ended at; for the watched phase, how many maps
the page drew and the time from the first snapshot written to the first map on the page. The figures are ratios of
the watched phase to the alone phase (goals, issue 14: step time ≤ 1.3×, first map ≤ 20 s after the first snapshot).
Needs /usr/bin/chromium and the playwright package for the watched phase.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from core.rundir import Run  # noqa: E402

sys.path.insert(0, str(REPO / "tests"))
from headless import CHROMIUM, free_port, goto, launch_context, stop  # noqa: E402

FINAL = re.compile(r"steps in [\d.]+ s — ACC ([\d.]+)")
SHOWN = re.compile(r"^\s*(t-SNE|UMAP) of \S+ at step ([\d,]+)")


class Job:
    """`python -m explorer --train digits` in a process of its own, its output read line by line."""

    def __init__(self, runs: Path, port: int, extra: list[str]):
        self.t0 = time.time()
        self.final_at: float | None = None
        self.run_dir: Path | None = None
        self.lines: list[str] = []
        cmd = [sys.executable, "-m", "explorer", "--train", "digits", "--no-show", "--runs", str(runs),
               "--port", str(port), *extra]
        self.proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                     env={**os.environ, "PYTHONUNBUFFERED": "1"})
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.proc.stdout:
            self.lines.append(line.rstrip())
            m = re.match(r"training in (\S+)", line)
            if m:
                self.run_dir = Path(m.group(1))
            if FINAL.search(line):
                self.final_at = time.time()

    def wait_final(self, timeout: float) -> None:
        deadline = time.time() + timeout
        while self.final_at is None:
            if self.proc.poll() is not None or time.time() > deadline:
                raise SystemExit("the job ended without its final ACC line:\n" + "\n".join(self.lines[-20:]))
            time.sleep(0.2)

    def close(self):
        stop(self.proc, 60)


def step_figures(run_dir: Path) -> dict:
    run = Run(run_dir)
    rates = [r["steps_per_s"] for r in run.metrics("train") if r.get("steps_per_s")]
    summary = run.summary() or {}
    return {"median_step_s": 1 / statistics.median(rates) if rates else float("nan"),
            "run_step_s": summary.get("time", float("nan")) / max(1, summary.get("step", 1)),
            "acc": summary.get("acc"), "nmi": summary.get("nmi"), "empty": summary.get("empty_clusters"),
            "steps": summary.get("step")}


def watch(url: str, job: Job, timeout: float) -> dict:
    """Open the page, keep it open until the job's final line; when each map appeared and of which step."""
    from playwright.sync_api import sync_playwright

    profile = Path(tempfile.mkdtemp(prefix="watch-cost-profile-"))
    shown: dict[int, float] = {}
    try:
        with sync_playwright() as p:
            ctx = launch_context(p, profile)
            page = goto(ctx.new_page(), url)
            opened = time.time()
            deadline = time.time() + timeout
            while job.final_at is None and time.time() < deadline and job.proc.poll() is None:
                try:
                    text = page.locator(".map-status").first.evaluate("e => (e.shadowRoot || e).textContent || ''")
                except Exception:
                    text = ""
                m = SHOWN.search(text)
                if m:
                    shown.setdefault(int(m.group(2).replace(",", "")), time.time())
                time.sleep(0.25)
            page.screenshot(path=str(profile.parent / "watch_cost.png"))
            ctx.close()
    finally:
        shutil.rmtree(profile, ignore_errors=True)
    return {"opened": opened, "shown": shown}


def run_phase(name: str, extra: list[str], watched: bool, timeout: float, keep: Path | None = None) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        port = free_port()
        job = Job((keep / name) if keep else Path(tmp) / "runs", port, extra)
        try:
            seen = watch(f"http://127.0.0.1:{port}/", job, timeout) if watched else None
            job.wait_final(timeout)
            out = {"phase": name, "job_s": job.final_at - job.t0, **step_figures(job.run_dir)}
            if seen:
                snaps = sorted((job.run_dir / "snapshots").glob("step_*.npz"), key=lambda p: p.stat().st_mtime)
                first_snapshot = snaps[0].stat().st_mtime if snaps else float("nan")
                first_map = min(seen["shown"].values()) if seen["shown"] else float("nan")
                out.update(maps=len(seen["shown"]), first_map_s=first_map - first_snapshot,
                           first_map_step=min(seen["shown"], key=seen["shown"].get) if seen["shown"] else None,
                           snapshots=len(snaps))
            return out
        finally:
            job.close()


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--phases", nargs="+", default=["alone", "watched"], choices=["alone", "watched"])
    p.add_argument("--timeout", type=float, default=1200, help="seconds a phase may take")
    p.add_argument("--keep", type=Path, default=None, metavar="DIR",
                   help="keep each phase's run folder under DIR/<phase> (default: a temporary folder, removed)")
    args, extra = p.parse_known_args(argv)
    if args.keep is not None and args.keep.exists() and not args.keep.is_dir():
        p.error(f"--keep {args.keep}: not a folder")
    extra = [a for a in extra if a != "--"] + ["--seed", str(args.seed)]
    if "watched" in args.phases and not Path(CHROMIUM).exists():
        raise SystemExit(f"the watched phase needs {CHROMIUM} (apt-get install -y chromium)")
    print(f"cores: {len(os.sched_getaffinity(0))}  extra train flags: {' '.join(extra)}")
    results = {}
    for phase in args.phases:
        r = results[phase] = run_phase(phase, extra, phase == "watched", args.timeout, args.keep)
        line = (f"{phase:>8}: step {r['median_step_s']:.3f} s (median window), {r['run_step_s']:.3f} s (training time "
                f"/ steps), job {r['job_s']:.1f} s to its final line, ACC {r['acc']:.3f} NMI {r['nmi']:.3f} "
                f"empty {r['empty']}")
        if "maps" in r:
            line += (f"; {r['maps']} maps of {r['snapshots']} snapshots drawn, the first (step {r['first_map_step']}) "
                     f"{r['first_map_s']:.1f} s after the first snapshot")
        print(line, flush=True)
    if len(results) == 2:
        a, w = results["alone"], results["watched"]
        print(f"\nwatched / alone: median step {w['median_step_s'] / a['median_step_s']:.2f}×, training time per step "
              f"{w['run_step_s'] / a['run_step_s']:.2f}×, job {w['job_s'] / a['job_s']:.2f}× "
              f"(goal: ≤ 1.3×; first map ≤ 20 s after the first snapshot)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
