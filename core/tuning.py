"""β_Aug tuning sessions: the DCCS paper's rule "raise β_Aug until the clusters start to overlap", as one job.

A session is a folder: `session.json` (values, runs, scores, the recommendation, the choice and who made it) and one
run directory per β_Aug value (`beta-2`, …), plus `warmup/` when the values branch from a shared warm-up run.

    s = TuningSession.create("runs/tune-fmnist", TrainConfig(dataset="fashion-mnist", epochs=20),
                             values=[1, 2, 3, 4, 5, 6], mode="branch", parallel=2)
    s.run()                        # trains, scores each value's latest snapshot, stops at the first overlap
    s.recommendation               # {'value': 2.0, 'by': 'score', ...}
    s.mark(3, "separated")         # a person overrides the automatic call; saved, recommendation recomputed
    TuningSession("runs/tune-fmnist")   # reopen later

Values train in increasing order, `parallel` at a time, each in its own process. As soon as the values below some
value are all scored and it overlaps, the session stops raising β_Aug: runs of larger values are stopped or never
started. Labels are never used for the decision; ACC/NMI/ARI are stored beside the scores only for evaluation.
"""

from __future__ import annotations

import contextlib
import json
import math
import multiprocessing as mp
import os
import sys
import time
import traceback
from pathlib import Path

from .config import TrainConfig
from .cpu_budget import cores, share
from .errors import ConfigError, RunError, UserError
from .io import atomic_write_json
from .overlap import recommend, snapshot_overlap
from .rundir import Run

SESSION_FILE = "session.json"
SHORT_RUN_STEPS = 2_000  # runs shorter than this may overlap only because the clusters have not separated yet
STOP_FILE = "stop.json"  # a stop request from another process (the app, a notebook); the running session polls it
# The session calls a value overlapping from a worst-pair score of 0.10 ("clearly overlapping", about 3.7σ between
# two Gaussian blobs), not the score's "first contact" level 0.05: on digits the maps of β_Aug 1 and 2 already touch
# at 0.056–0.072 while their ACC is the best of the sweep (docs/overlap-score.md, docs/tuning.md).
SESSION_THRESHOLD = 0.10
MODES = ("scratch", "branch")
VERDICTS = ("overlap", "separated")
FORMAT = 1
MAX_VALUES = 100  # β_Aug values in one session (each is a training run)


def parse_values(text: str) -> list[float]:
    """'1,2,3' or '1:6' (inclusive, step 1) or '1:6:0.5' → sorted distinct β_Aug values."""
    text = text.strip()
    try:
        if ":" in text:
            parts = [float(p) for p in text.split(":")]
            if len(parts) not in (2, 3):
                raise ValueError
            lo, hi = parts[0], parts[1]
            step = parts[2] if len(parts) == 3 else 1.0
            if not all(map(math.isfinite, (lo, hi, step))) or step <= 0 or hi < lo:
                raise ValueError
            count = int(math.floor((hi - lo) / step + 1e-9)) + 1
            if count > MAX_VALUES:
                raise UserError(f"{text!r} gives {count:,} β_Aug values; a session takes at most {MAX_VALUES}")
            values = [round(lo + i * step, 10) for i in range(count)]
        else:
            values = [float(p) for p in text.split(",") if p.strip()]
    except ValueError:
        raise UserError(f"cannot read β_Aug values from {text!r}: write them as 1,2,3 or as a range 1:6 or "
                        "1:6:0.5") from None
    return check_values(values)


def check_values(values) -> list[float]:
    values = sorted({float(v) for v in values})
    if len(values) < 2:
        raise UserError("a tuning session needs at least two β_Aug values")
    if len(values) > MAX_VALUES:
        raise UserError(f"a tuning session takes at most {MAX_VALUES} β_Aug values, got {len(values)}")
    if any(not math.isfinite(v) or v < 0 for v in values):
        raise UserError(f"β_Aug values must be finite numbers ≥ 0, got {values}")
    return values


def value_name(value: float) -> str:
    return f"beta-{value:g}"


@contextlib.contextmanager
def _child_output(log_path: str):
    """A run's process writes everything to its train.log — its error too: the traceback is written while the log
    is still open (Python's own report would come after the file is closed, and be lost), then the process exits 1."""
    with open(log_path, "a", buffering=1) as log:
        os.dup2(log.fileno(), 1)
        os.dup2(log.fileno(), 2)
        sys.stdout = sys.stderr = log
        try:
            yield
        except BaseException as e:  # noqa: BLE001 - reported, then the process fails
            if isinstance(e, UserError):
                print(f"error: {e}", file=log)
            else:
                traceback.print_exc(file=log)
            log.flush()
            os._exit(1)


def cpu_threads(parallel: int) -> tuple[int, int]:
    """Threads of each of `parallel` runs side by side, and of the warm-up, which trains alone: from the cores this
    process may use (its affinity mask: taskset, a container, a pinned test worker), not the machine's count —
    two threads on one allowed core wait for each other."""
    return share(parallel), cores()


def _train_child(cfg: dict, branch: dict | None, threads: int | None, log_path: str) -> None:
    """Entry point of a run's process: train one value, output to the run's train.log."""
    with _child_output(log_path):
        import torch

        from .trainer import Trainer

        if threads:
            torch.set_num_threads(threads)
        if branch:
            trainer = Trainer.branch(branch["run"], cfg["run_dir"], step=branch.get("step"), beta_aug=cfg["beta_aug"],
                                     steps=cfg["steps"], device=cfg["device"], progress=False)
        else:
            trainer = Trainer(TrainConfig.from_dict(cfg))
        trainer.fit()


class TuningSession:
    """Open an existing session folder; `TuningSession.create(...)` makes a new one."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        file = self.path / SESSION_FILE
        if not file.exists():
            raise RunError(f"{self.path} is not a tuning session (no {SESSION_FILE})")
        try:
            self.data = json.loads(file.read_text(encoding="utf-8"))
        except (OSError, ValueError) as e:
            raise RunError(f"{file} cannot be read: {e}") from None
        if self.data.get("kind") != "beta_aug_tuning":
            raise RunError(f"{file} is not a β_Aug tuning session")

    # -- creating ---------------------------------------------------------------------------------------
    @classmethod
    def create(cls, path: str | Path, base: TrainConfig | dict, values, *, mode: str = "scratch",
               warmup_steps: int | None = None, parallel: int = 1, threshold: float = SESSION_THRESHOLD,
               space: str = "z", stop_at_overlap: bool = True) -> "TuningSession":
        """Write a new session file. `base` holds every setting but β_Aug (its run_dir is ignored).

        mode="scratch" trains each value from fresh weights (the paper's way); mode="branch" trains one warm-up
        run with the smallest value for `warmup_steps` (default: a third of the steps) and continues every value
        from its last checkpoint (faster: the warm-up is paid once)."""
        from .config import resolve_config
        from .data import load_dataset

        path = Path(path)
        if path.exists() and not path.is_dir():
            raise UserError(f"the session folder {path} is a file: choose another --session-dir")
        if not (isinstance(threshold, (int, float)) and 0 < threshold <= 1):
            raise UserError(f"the overlap threshold must lie in (0, 1], got {threshold}")
        if (path / SESSION_FILE).exists():
            raise RunError(f"{path} already holds a tuning session: open it with TuningSession({str(path)!r})")
        if mode not in MODES:
            raise UserError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
        if int(parallel) < 1:
            raise UserError(f"parallel must be at least 1, got {parallel}")
        if space != "z":
            raise UserError("the session scores snapshots in z space (space='z'); maps are scored in the app")
        values = check_values(values)
        cfg = base if isinstance(base, TrainConfig) else TrainConfig.from_dict(dict(base))
        if "beta_aug" not in cfg.method_class.live_settings:
            raise UserError(f"β_Aug tuning is for DCCS (--method dccs); {cfg.method.upper()} has no β_Aug")
        data = load_dataset(cfg.dataset, cfg.data_path, download=cfg.download, image_size=cfg.image_size,
                            progress=False)
        cfg = resolve_config(cfg.replace(beta_aug=values[0], run_dir=None), data)
        if mode == "branch":
            warmup_steps = int(warmup_steps) if warmup_steps else max(1, cfg.steps // 3)
            if not 1 <= warmup_steps < cfg.steps:
                raise UserError(f"warm-up steps must lie between 1 and the run length ({cfg.steps}), got "
                                f"{warmup_steps}")
        path.mkdir(parents=True, exist_ok=True)
        data_doc = {
            "kind": "beta_aug_tuning", "format": FORMAT, "created": time.time(), "mode": mode,
            "warmup_steps": warmup_steps if mode == "branch" else None, "parallel": int(parallel),
            "threshold": float(threshold), "space": space, "stop_at_overlap": bool(stop_at_overlap),
            "values": values, "base": cfg.to_dict(), "state": "created", "time": None,
            "runs": {value_name(v): {"value": v, "run": value_name(v), "state": "pending", "score": None}
                     for v in values},
            "marks": {}, "recommendation": None, "choice": None,
        }
        atomic_write_json(path / SESSION_FILE, data_doc)
        return cls(path)

    # -- reading ----------------------------------------------------------------------------------------
    @property
    def values(self) -> list[float]:
        return list(self.data["values"])

    def entry(self, value: float) -> dict:
        return self.data["runs"][value_name(float(value))]

    def run_dir(self, value: float) -> Path:
        return self.path / self.entry(value)["run"]

    @property
    def recommendation(self) -> dict | None:
        return self.data.get("recommendation")

    @property
    def choice(self) -> dict | None:
        return self.data.get("choice")

    def save(self) -> None:
        atomic_write_json(self.path / SESSION_FILE, self.data)

    def reload(self) -> "TuningSession":
        self.data = TuningSession(self.path).data
        return self

    # -- scoring and deciding ---------------------------------------------------------------------------
    def score(self, value: float) -> dict:
        """Score the latest snapshot of a value's run (label-free) and store it with the run's ACC/NMI/ARI."""
        entry = self.entry(value)
        run = Run(self.run_dir(value))
        snaps = run.snapshots()
        if not snaps:
            raise RunError(f"{run.path} has no snapshot to score yet")
        snap = snaps[-1].load()
        report = snapshot_overlap(snap, threshold=self.data["threshold"])
        summary = run.summary() or {}
        entry.update({
            "score": report.score, "score_step": snap.step, "worst_pair": list(report.worst_pair),
            "mixing": report.mixing, "summary": report.summary(),
            "evaluation": {k: summary[k] for k in ("acc", "nmi", "ari") if k in summary},  # labels: evaluation only
            "time": summary.get("time"),
        })
        return entry

    def verdict(self, value: float) -> str | None:
        """"overlap"/"separated": a person's mark wins over the score; None while unscored."""
        mark = self.data["marks"].get(value_name(float(value)))
        if mark:
            return mark["verdict"]
        score = self.entry(value).get("score")
        if score is None:
            return None
        return "overlap" if score >= self.data["threshold"] else "separated"

    def mark(self, value: float, verdict: str, by: str = "person") -> dict:
        """Record a person's call on a value ("overlap" or "separated"); it overrides the score. Saved."""
        if verdict not in VERDICTS:
            raise UserError(f"verdict must be one of {', '.join(VERDICTS)}, got {verdict!r}")
        if value_name(float(value)) not in self.data["runs"]:
            raise UserError(f"β_Aug = {value:g} is not a value of this session ({', '.join(map(str, self.values))})")
        self.data["marks"][value_name(float(value))] = {"verdict": verdict, "by": by, "time": time.time()}
        self.decide()
        self.save()
        return self.data["recommendation"]

    def clear_mark(self, value: float) -> None:
        self.data["marks"].pop(value_name(float(value)), None)
        self.decide()
        self.save()

    def _adopt_marks(self) -> bool:
        """Take a person's marks from the file (they are written by whoever shows the session, maybe another
        process, from a copy that may be older); the running session owns everything else in it and saves it again
        at once, so a stale copy written with a mark is overwritten within a poll. True when the marks changed."""
        try:
            marks = json.loads((self.path / SESSION_FILE).read_text(encoding="utf-8")).get("marks", {})
        except (OSError, ValueError):
            return False
        if marks == self.data["marks"]:
            return False
        self.data["marks"] = marks
        return True

    # -- stopping ---------------------------------------------------------------------------------------
    def request_stop(self, by: str = "person") -> None:
        """Ask the session that is training (in this process or another) to stop: its runs save a checkpoint and
        stop, values not started stay pending, and running the session again continues it."""
        atomic_write_json(self.path / STOP_FILE, {"stop": True, "by": by, "time": time.time()})

    @property
    def stop_requested(self) -> bool:
        return (self.path / STOP_FILE).exists()

    def decide(self) -> dict | None:
        """The recommendation from the values decided so far: the largest β_Aug before the first overlap, over the
        leading values that have a verdict. None until the first value has one."""
        decided = []
        for v in self.values:
            verdict = self.verdict(v)
            if verdict is None:
                break
            decided.append((v, verdict))
        if not decided:
            self.data["recommendation"] = None
            return None
        scores = [1.0 if verdict == "overlap" else 0.0 for _, verdict in decided]
        rec = recommend([v for v, _ in decided], scores, threshold=0.5)
        by = "person" if any(value_name(v) in self.data["marks"] for v, _ in decided) else "score"
        complete = rec.first_overlap is not None or len(decided) == len(self.values)
        first = rec.first_overlap
        steps = self.data.get("base", {}).get("steps")
        if rec.value is None and isinstance(steps, int) and steps < SHORT_RUN_STEPS:
            reason = (f"already overlapping at the smallest β_Aug = {first:g} after {steps:,} steps: the runs may be "
                      "too short for the clusters to separate; try longer runs (--steps) before smaller values")
        elif rec.value is None:
            reason = f"already overlapping at the smallest β_Aug = {first:g}; try smaller values"
        elif first is None:
            reason = f"no overlap up to β_Aug = {rec.value:g}" + ("" if complete else " so far")
        else:
            reason = f"clusters start to overlap at β_Aug = {first:g}; keep {rec.value:g}"
        self.data["recommendation"] = {"value": rec.value, "first_overlap": first, "by": by, "final": complete,
                                       "reason": reason}
        self.data["choice"] = {"value": rec.value, "by": by, "time": time.time()} if complete else None
        return self.data["recommendation"]

    def _stop_point(self) -> float | None:
        """The first overlapping value once every value below it is decided (None: keep going)."""
        for v in self.values:
            verdict = self.verdict(v)
            if verdict is None:
                return None
            if verdict == "overlap":
                return v
        return None

    # -- training ---------------------------------------------------------------------------------------
    def run(self, progress: bool = True, poll: float = 1.0, threads: int | None = None) -> dict | None:
        """Train the values (resuming an interrupted session), score each, and decide. Blocks until done."""
        ctx = mp.get_context("spawn")
        base = dict(self.data["base"])
        parallel = int(self.data["parallel"])
        warmup_threads = threads
        if threads is None and (base.get("device", "auto") == "cpu" or not _has_cuda()):
            threads, warmup_threads = cpu_threads(parallel)
        started = time.perf_counter()
        (self.path / STOP_FILE).unlink(missing_ok=True)  # a request left from an earlier, stopped run of it
        self._adopt_marks()
        self.data["state"] = "running"
        self.save()
        branch = None
        if self.data["mode"] == "branch":
            branch = self._warmup(ctx, base, warmup_threads, progress)
            if branch is None:
                return self._stopped(started)
        pending = [v for v in self.values if self.entry(v)["state"] not in ("finished", "skipped")]
        running: dict[float, mp.Process] = {}
        devices = _devices(base.get("device", "auto"))
        bar = _bar(len(self.values), progress, "β_Aug values")
        bar.update(len(self.values) - len(pending))
        asked: set[float] = set()  # running values past the overlap that were asked to stop
        try:
            while pending or running:
                if self.stop_requested:
                    self._stop_all(running, poll)
                    return self._stopped(started)
                if self._adopt_marks():
                    self.decide()
                    self.save()
                stop_at = self._stop_point() if self.data["stop_at_overlap"] else None
                if stop_at is not None:
                    for v in [v for v in pending if v > stop_at]:
                        pending.remove(v)
                        self.entry(v)["state"] = "skipped"
                        bar.update(1)
                    for v in running:
                        if v > stop_at and v not in asked and self._ask_to_stop(v):
                            asked.add(v)
                while pending and len(running) < parallel:
                    v = pending.pop(0)
                    running[v] = self._start(ctx, v, base, branch, devices[len(running) % len(devices)], threads)
                for v, proc in list(running.items()):
                    if proc.is_alive():
                        continue
                    proc.join()
                    del running[v]
                    entry = self.entry(v)
                    status = self._run_status(v)
                    entry["state"] = status.get("state", "failed") if proc.exitcode == 0 else "failed"
                    if entry["state"] == "stopped" and stop_at is not None and v > stop_at:
                        entry["state"] = "skipped"
                    elif entry["state"] == "failed":
                        entry["message"] = status.get("message") or _last_line(self.run_dir(v) / "train.log")
                    else:
                        try:
                            self.score(v)
                        except RunError as e:
                            entry["state"], entry["message"] = "failed", str(e)
                    bar.update(1)
                    rec = self.decide()
                    if rec and progress:
                        bar.set_postfix_str(f"β={v:g} score {entry.get('score') or float('nan'):.3f} → "
                                            f"keep {rec['value']}", refresh=False)
                    self.save()
                time.sleep(poll)
        except KeyboardInterrupt:
            for v, proc in running.items():
                if not self._ask_to_stop(v):
                    proc.terminate()  # still starting: nothing of it to keep yet
            for proc in running.values():
                proc.join(60)
            self.data["state"] = "interrupted"
            self.save()
            raise
        finally:
            bar.close()
        failed = [v for v in self.values if self.entry(v)["state"] == "failed"]
        self.data["state"] = "failed" if failed and self.recommendation is None else "finished"
        self.data["time"] = (self.data.get("time") or 0) + time.perf_counter() - started
        self.decide()
        self.save()
        return self.recommendation

    def _ask_to_stop(self, value: float | str) -> bool:
        """Ask a run to stop through its control.json, once its trainer has started (status.json written). A
        trainer takes a control.json it finds when it creates the run for a stale one, so a request written while
        the child process is still starting would be lost: the caller asks again at its next poll."""
        run_dir = self.path / "warmup" if value == "warmup" else self.run_dir(value)
        if not ((run_dir / "config.json").exists() and (run_dir / "status.json").exists()):
            return False
        Run(run_dir).request_stop()
        return True

    def _run_status(self, value: float) -> dict:
        """status.json of a value's run; empty when its process ended before it created the run."""
        try:
            return Run(self.run_dir(value)).status()
        except RunError:
            return {}

    def _stop_all(self, running: dict, poll: float) -> None:
        """A person's stop: every running value stops at its next step with a checkpoint; waits for them all."""
        asked: set[float] = set()
        while running:
            for v in running:
                if v not in asked and self._ask_to_stop(v):
                    asked.add(v)
            for v, proc in list(running.items()):
                if not proc.is_alive():
                    proc.join()
                    del running[v]
                    self.entry(v)["state"] = self._run_status(v).get("state", "stopped")
            time.sleep(min(poll, 0.5))

    def _stopped(self, started: float) -> dict | None:
        """End a run of the session on a stop request: state "stopped"; `run()` again continues it."""
        self.data["state"] = "stopped"
        self.data["time"] = (self.data.get("time") or 0) + time.perf_counter() - started
        self.decide()
        self.save()
        return self.recommendation

    def _start(self, ctx, value: float, base: dict, branch: dict | None, device: str, threads: int | None):
        run_dir = self.run_dir(value)
        cfg = {**base, "beta_aug": value, "run_dir": str(run_dir), "device": device, "progress": False}
        resuming = (run_dir / "config.json").exists()
        if resuming:  # an interrupted session: continue that run where it stopped
            target, args = _resume_child, (str(run_dir), threads)
        else:
            run_dir.mkdir(parents=True, exist_ok=True)
            target, args = _train_child, (cfg, branch, threads)
        proc = ctx.Process(target=target, args=(*args, str(run_dir / "train.log")), daemon=False)
        proc.start()
        self.entry(value).update(state="running", pid=proc.pid, device=device)
        self.save()
        return proc

    def _warmup(self, ctx, base: dict, threads, progress) -> dict:
        """Train (or find) the shared warm-up run; returns where the values branch from (None: stopped)."""
        run_dir = self.path / "warmup"
        steps = int(self.data["warmup_steps"])
        done = run_dir.exists() and steps in Run(run_dir).checkpoint_steps()
        if not done:
            if progress:
                print(f"warm-up: {steps} steps at β_Aug = {self.values[0]:g}", file=sys.stderr)
            if (run_dir / "config.json").exists():
                proc = ctx.Process(target=_resume_child, args=(str(run_dir), threads, str(run_dir / "train.log")))
            else:
                run_dir.mkdir(parents=True, exist_ok=True)
                cfg = {**base, "beta_aug": self.values[0], "run_dir": str(run_dir), "steps": steps,
                       "progress": False}
                proc = ctx.Process(target=_train_child, args=(cfg, None, threads, str(run_dir / "train.log")))
            proc.start()
            asked = False
            while proc.is_alive():
                proc.join(0.5)
                if not asked and self.stop_requested:
                    asked = self._ask_to_stop("warmup")
            if self.stop_requested:
                return None
            if steps not in Run(run_dir).checkpoint_steps():
                raise RunError(f"the warm-up run failed: {_last_line(run_dir / 'train.log')}")
        self.data["warmup"] = {"run": "warmup", "steps": steps}
        self.save()
        return {"run": str(run_dir), "step": steps}


def _resume_child(run_dir: str, threads: int | None, log_path: str) -> None:
    with _child_output(log_path):
        import torch

        from .trainer import Trainer

        if threads:
            torch.set_num_threads(threads)
        Trainer.resume(run_dir, progress=False).fit()


def _has_cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def _devices(device: str) -> list[str]:
    """One entry per GPU when device is auto/cuda and there are several (runs are spread over them)."""
    import torch

    if device in ("auto", "cuda") and torch.cuda.is_available():
        return [f"cuda:{i}" for i in range(torch.cuda.device_count())]
    return [device if device != "auto" else "cpu"]


def _last_line(path: Path) -> str:
    try:
        lines = [ln for ln in path.read_text(errors="replace").splitlines() if ln.strip()]
        return lines[-1] if lines else "no output"
    except OSError:
        return "no log"


def _bar(total: int, enabled: bool, desc: str):
    from tqdm.auto import tqdm

    return tqdm(total=total, disable=not enabled, desc=desc, unit="value", dynamic_ncols=True)


def find_sessions(root: str | Path) -> list[Path]:
    """Session folders directly inside a runs folder, newest first."""
    root = Path(root)
    if not root.is_dir():
        return []
    found = [p for p in root.iterdir() if (p / SESSION_FILE).is_file()]
    return sorted(found, key=lambda p: (p / SESSION_FILE).stat().st_mtime, reverse=True)


__all__ = ["TuningSession", "parse_values", "find_sessions", "SESSION_FILE", "STOP_FILE", "MODES", "ConfigError"]
