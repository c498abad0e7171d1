"""Start and stop training runs and tuning sessions as separate processes, so that training survives a page reload
(or the app). Each one's folder gets `launch.json` (the command, pid, start time) and the process's output in a log
(`train.log` for a run, `tune.log` for a session): docs/run-directory.md."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

from core.data import NAMED_DATASETS
from core.methods import registry  # the engine decides which methods exist
from core.errors import UserError
from core.io import atomic_write_json
from core.rundir import Run, pid_alive

REPO = Path(__file__).resolve().parents[1]


def check_path(text: str, *, must_exist: bool = True, folder: bool | None = None, what: str = "path",
               within: str | Path | None = None) -> Path:
    """A path typed by a person: refuse empty, control characters, paths outside `within` (when given; a relative
    path is taken inside it) and (when required) missing or wrong-kind paths, with a message that says which."""
    text = (text or "").strip()
    if not text:
        raise UserError(f"the {what} is empty")
    if any(ord(ch) < 32 for ch in text):
        raise UserError(f"the {what} contains control characters")
    path = Path(text).expanduser()
    if within is not None:
        root = Path(within).expanduser().resolve()
        path = (root / path).resolve()  # an absolute path stays itself; links and '..' are resolved first
        if path != root and root not in path.parents:
            raise UserError(f"the {what} {path} is outside {root}, the only folder this page may use (start the "
                            "explorer with another --runs or --data-root to use another)")
    if must_exist and not path.exists():
        raise UserError(f"the {what} {path} does not exist")
    if folder is True and path.exists() and not path.is_dir():
        raise UserError(f"the {what} {path} is not a folder")
    if folder is False and path.exists() and path.is_dir() and path.suffix in (".npz", ".zip"):
        raise UserError(f"the {what} {path} is a folder, not a file")
    return path.resolve()


def method_names() -> list[str]:
    """The methods a run can be started with (every method registered with the engine)."""
    return registry.names()


def unique_folder(root: Path, name: str) -> Path:
    """A new folder `root/name` (or name-2, name-3, ... when taken)."""
    root = Path(root).expanduser().resolve()  # the child process runs in another working directory
    root.mkdir(parents=True, exist_ok=True)
    path, suffix = root / name, 1
    while path.exists():
        suffix += 1
        path = root / f"{name}-{suffix}"
    path.mkdir()
    return path


def stem(dataset: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", Path(dataset).stem or dataset).strip("-") or "data"


def start_process(folder: Path, args: list[str], log_name: str) -> subprocess.Popen:
    """`python -m core ARGS` in its own process session, output to `folder/log_name`, recorded in launch.json."""
    cmd = [sys.executable, "-m", "core", *args]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH", "")) if p)
    with open(folder / log_name, "w") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=REPO,
                                env=env, start_new_session=True)
    atomic_write_json(folder / "launch.json", {"cmd": cmd, "pid": proc.pid, "started": time.time()})
    _children.append(proc)
    return proc


def check_dataset(dataset: str, data_path: str | None, within: str | Path | None = None) -> tuple[str, str | None]:
    """A data-set name or a checked path, and a checked data path (both inside `within` when it is given)."""
    if dataset not in NAMED_DATASETS:
        dataset = str(check_path(dataset, what="data set path", within=within))
    if data_path:
        data_path = str(check_path(data_path, what="data path", within=within))
    return dataset, data_path or None


def launch(runs_root: str | Path, *, method: str = "dccs", dataset: str = "digits", data_path: str | None = None,
           beta_aug: float | None = None, steps: int | None = None, device: str = "auto", seed: int = 0,
           extra_args: tuple[str, ...] = (), name: str | None = None, data_root: str | Path | None = None) -> Path:
    """Start `python -m core train` in its own process session; returns the run directory at once.

    The process writes its output to `train.log` in the run directory; `launch.json` records the command and pid so
    that a run that dies before writing its status (a bad data path, say) is shown as failed with its message."""
    if method not in registry.names():
        raise UserError(f"unknown method {method!r} (known: {', '.join(registry.names())})")
    dataset, data_path = check_dataset(dataset, data_path, within=data_root)
    if beta_aug is not None and not (0 <= float(beta_aug) < 1e6):
        raise UserError(f"β_Aug must be a number ≥ 0, got {beta_aug}")
    if steps is not None and int(steps) < 1:
        raise UserError(f"steps must be at least 1, got {steps}")
    run_dir = unique_folder(Path(runs_root), name or f"{stem(dataset)}-{method}-{time.strftime('%Y%m%d-%H%M%S')}")
    args = ["train", "--method", method, "--dataset", dataset, "--run-dir", str(run_dir), "--device", device,
            "--seed", str(int(seed)), "--no-progress"]
    if data_path:
        args += ["--data-path", data_path]
    if beta_aug is not None and "beta_aug" in registry.get(method).live_settings:  # DCSM has no β_Aug
        args += ["--beta-aug", str(float(beta_aug))]
    if steps is not None:
        args += ["--steps", str(int(steps))]
    start_process(run_dir, args + list(extra_args), "train.log")
    return run_dir


_children: list[subprocess.Popen] = []  # reaped from time to time so that finished children leave no zombies


def reap() -> None:
    for proc in list(_children):
        if proc.poll() is not None:
            _children.remove(proc)


def read_launch(run_dir: str | Path) -> tuple[dict, str]:
    """(launch.json of a run or session folder, "") — or ({}, a one-line message naming the folder) when the file
    is damaged: not JSON, binary, not an object, or a pid that is not a whole number. A missing file is ({}, "")."""
    run_dir = Path(run_dir)
    path = run_dir / "launch.json"
    try:
        if path.is_dir():
            return {}, f"{run_dir.name}: launch.json is a folder, not a file"
        if path.stat().st_size > 1 << 20:
            return {}, f"{run_dir.name}: launch.json is damaged (over 1 MiB)"
        info = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}, ""
    except OSError as e:
        return {}, f"{run_dir.name}: launch.json cannot be read ({e.strerror or e})"
    except ValueError as e:  # not JSON, or not text at all (UnicodeDecodeError is a ValueError)
        reason = "not text" if isinstance(e, UnicodeDecodeError) else "not JSON"
        return {}, f"{run_dir.name}: launch.json is damaged ({reason})"
    if not isinstance(info, dict):
        return {}, f"{run_dir.name}: launch.json is damaged (a JSON {type(info).__name__}, not an object)"
    pid = info.get("pid")
    if pid is not None and (isinstance(pid, bool) or not isinstance(pid, int)):
        return {}, f"{run_dir.name}: launch.json is damaged (pid {str(pid)[:40]!r} is not a whole number)"
    return info, ""


def launch_state(run_dir: Path) -> tuple[str, str]:
    """State of a launched run that has not written its status yet: starting, failed with its last log line, or
    broken when its launch.json is damaged."""
    reap()
    info, problem = read_launch(run_dir)
    if problem:
        return "broken", problem
    if info and pid_alive(info.get("pid")):
        return "starting", ""
    return "failed", last_error(Path(run_dir) / "train.log") or "the training process ended without a message"


def last_error(log: Path) -> str:
    try:
        lines = [line.strip() for line in log.read_text(errors="replace").splitlines() if line.strip()]
    except OSError:
        return ""
    errors = [line for line in lines if line.startswith("error:")]
    return (errors or lines or [""])[-1]


def stop(run_dir: str | Path, wait: float = 0.0) -> None:
    """Ask a running trainer to stop (it saves a checkpoint first); SIGTERM if it does not within `wait` seconds.

    A run still loading its data (no config.json yet) cannot read control.json yet: it gets SIGTERM at once."""
    run_dir = Path(run_dir)
    if not (run_dir / "config.json").exists():
        pid = read_launch(run_dir)[0].get("pid")
        if pid_alive(pid):
            os.kill(pid, signal.SIGTERM)
        return
    run = Run(run_dir)
    run.request_stop()
    if wait <= 0:
        return
    deadline = time.time() + wait
    while time.time() < deadline:
        if run.status().get("state") not in ("running", "starting"):
            return
        time.sleep(0.2)
    pid = run.status().get("pid")
    if pid_alive(pid):
        os.kill(pid, signal.SIGTERM)
