"""The run directory: the contract between the training engine and every view (format in docs/run-directory.md).

    config.json        every setting (resolved), the method's description, the data set, library versions
    status.json        state (running / finished / stopped / failed), step, message, pid
    metrics.jsonl      one JSON object per logged step, appended while training
    control.json       written by others to steer a running trainer (β_Aug, stop): `core.control`
    probe.npz          the fixed probe subset: indices, images (uint8), labels, class names, file names
    cluster_names.json names a person gave clusters in the explorer ({"3": "sneakers"})
    snapshots/step_XXXXXXXX.npz   z_c, z_s, predictions, labels of the probe subset at that step
    checkpoints/step_XXXXXXXX.pt  all model, optimizer and random state; best.pt: lowest value of best_metric
    summary.json       final metrics when the run ends
    launch.json, train.log        a run started as its own process (`explorer.launcher`): its command and output

`RunWriter` is the engine's side (every file but metrics.jsonl is written atomically; metrics.jsonl is appended
line by line and a reader skips a torn last line). `Run` is the readers' side.
"""

from __future__ import annotations

import json
import os
import re
import socket
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np

from .control import ControlChannel
from .errors import ConfigError, RunError
from .io import atomic_savez, atomic_write_json, json_line
from .runlock import RunLock

FORMAT_VERSION = 1
# Settings added after runs were recorded, with the value those runs trained with: a config.json without one reads
# as having it (so such a run resumes, branches and evaluates as it trained, not with today's default or preset).
SETTINGS_ADDED_LATER = {"rotation": 0.0}
_SNAP_RE = re.compile(r"^step_(\d{8})\.npz$")
_CKPT_RE = re.compile(r"^step_(\d{8})\.pt$")


def snapshot_name(step: int) -> str:
    return f"step_{step:08d}.npz"


def checkpoint_name(step: int) -> str:
    return f"step_{step:08d}.pt"


# ----------------------------------------------------------------------------------------------------------
# writing
# ----------------------------------------------------------------------------------------------------------
class NullWriter:
    """What a rank other than 0 writes in distributed training: nothing (rank 0 writes the run directory)."""

    def __init__(self, path: Path):
        self.path = Path(path)

    def create(self, config: dict, restart: bool = False) -> None:
        pass

    def append(self, record: dict) -> None:
        pass

    def status(self, state: str, **info) -> None:
        pass

    def probe(self, *args, **kwargs) -> None:
        pass

    def summary(self, summary: dict) -> None:
        pass

    def truncate_after(self, step: int) -> int:
        return 0

    def open(self) -> None:
        pass

    def close(self) -> None:
        pass


class RunWriter:
    """Everything the trainer writes into a run directory."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.snapshots = self.path / "snapshots"
        self.checkpoints = self.path / "checkpoints"
        self.lock = RunLock(self.path)

    def create(self, config: dict, restart: bool = False) -> None:
        """A new run in the folder (which may exist, empty or not a run). `restart`: the folder holds a run that
        never wrote a checkpoint; it starts again from step 0 and its old files go."""
        if self.path.exists() and not self.path.is_dir():
            raise RunError(f"the run directory {self.path} is a file, not a folder: choose another --run-dir")
        if (self.path / "config.json").exists() and not restart:
            raise RunError(
                f"{self.path} already holds a run. Resume it with --resume, or choose another --run-dir"
            )
        try:
            self.path.mkdir(parents=True, exist_ok=True)
            self.open()
        except OSError as e:  # under a file, read-only, disk full
            raise RunError(f"cannot create the run directory {self.path}: {e.strerror or e}") from None
        if restart:
            for name in ("metrics.jsonl", "summary.json", "status.json", "probe.npz"):
                (self.path / name).unlink(missing_ok=True)
            for folder in (self.snapshots, self.checkpoints):
                for p in folder.glob("*") if folder.is_dir() else ():
                    p.unlink()
        self.snapshots.mkdir(exist_ok=True)
        self.checkpoints.mkdir(exist_ok=True)
        atomic_write_json(self.path / "config.json", {"format": FORMAT_VERSION, **config})
        (self.path / "metrics.jsonl").touch()

    def open(self) -> None:
        """Become the run's one writer (RunError when a live process already is), and remove the temporary files
        a process killed while writing left behind."""
        self.lock.acquire()
        for folder in (self.path, self.snapshots, self.checkpoints):
            for tmp in folder.glob(".*.tmp") if folder.is_dir() else ():
                tmp.unlink(missing_ok=True)

    def close(self) -> None:
        self.lock.release()

    def append(self, record: dict) -> None:
        path = self.path / "metrics.jsonl"
        try:
            with open(path, "a", encoding="utf-8") as f:
                f.write(json_line(record))
                f.flush()
        except OSError as e:  # a full disk fails flush(), unnamed (a torn last line is skipped by readers)
            e.filename = e.filename or str(path)
            raise

    def status(self, state: str, **info) -> None:
        atomic_write_json(self.path / "status.json", {
            "state": state, "updated": time.time(), "pid": os.getpid(), "host": socket.gethostname(), **info})

    def probe(self, indices, images, labels, class_names, names=None) -> None:
        """`names`: each probe image's file name in its folder or zip (None: the data set has none)."""
        atomic_savez(self.path / "probe.npz", indices=np.asarray(indices, np.int64), images=np.asarray(images),
                     labels=np.asarray(labels if labels is not None else np.zeros(0), np.int64),
                     has_labels=np.array(labels is not None), class_names=np.array(json.dumps(class_names or [])),
                     names=np.array(json.dumps(list(names) if names is not None else [])))

    def snapshot(self, step: int, epoch: float, z_c, z_s, labels, metrics: dict) -> Path:
        path = self.snapshots / snapshot_name(step)
        z_c = np.asarray(z_c, np.float32)
        atomic_savez(path, step=np.array(step), epoch=np.array(epoch), z_c=z_c.astype(np.float16),
                     z_s=np.asarray(z_s, np.float16), pred=z_c.argmax(1).astype(np.int16),
                     confidence=z_c.max(1).astype(np.float16),
                     labels=np.asarray(labels if labels is not None else np.zeros(0), np.int16),
                     metrics=np.array(json.dumps(metrics)))
        return path

    def summary(self, summary: dict) -> None:
        atomic_write_json(self.path / "summary.json", summary)

    # -- resuming -----------------------------------------------------------------------------------------
    def truncate_after(self, step: int) -> int:
        """Drop metric records and snapshots written after `step` (the checkpoint a run resumes from).

        Returns how many metric lines were dropped, torn lines included."""
        path = self.path / "metrics.jsonl"
        kept, dropped = [], 0
        if path.exists():
            for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
                try:
                    rec = json.loads(line)
                except ValueError:
                    dropped += 1
                    continue
                if rec.get("step", 0) <= step:
                    kept.append(line + "\n")
                else:
                    dropped += 1
        from .io import atomic_write_bytes

        atomic_write_bytes(path, "".join(kept).encode())
        for p in self.snapshots.glob("step_*.npz"):
            m = _SNAP_RE.match(p.name)
            if m and int(m.group(1)) > step:
                p.unlink()
        return dropped


# ----------------------------------------------------------------------------------------------------------
# reading
# ----------------------------------------------------------------------------------------------------------
@dataclass
class Snapshot:
    step: int
    epoch: float
    z_c: np.ndarray  # (n, K) soft assignments
    z_s: np.ndarray  # (n, dim_zs)
    pred: np.ndarray  # (n,) argmax z_c
    confidence: np.ndarray  # (n,) max z_c
    labels: np.ndarray | None
    metrics: dict

    @property
    def z(self) -> np.ndarray:
        return np.concatenate([self.z_c, self.z_s], axis=1)


def parse_records(lines, kind: str | None = None) -> tuple[list[dict], int]:
    """(the records of `kind` among JSON lines, how many lines were torn or corrupt); blank lines are ignored."""
    records, skipped = [], 0
    for line in lines:
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except ValueError:
            skipped += 1
            continue
        if isinstance(rec, dict) and (kind is None or rec.get("kind") == kind):
            records.append(rec)
    return records, skipped


class MetricsTail:
    """Incremental, non-blocking reader of metrics.jsonl.

    Keeps a byte offset; a torn last line waits for its newline; a corrupt line is skipped and counted; a file that
    shrank (a resumed run rewrote it) is read again from the start, with `restarted` set so a view can reset."""

    def __init__(self, path: Path, kind: str | None = None):
        self.path = Path(path)
        self.kind = kind
        self.offset = 0
        self.pending = b""
        self.skipped = 0
        self.grew = False
        self.restarted = False

    def read(self) -> list[dict]:
        out, skipped = parse_records(self.read_lines(), self.kind)
        self.skipped += skipped
        return out

    def read_lines(self) -> list[bytes]:
        """The complete lines written since the last read, unparsed (a reader that parses them itself, such as the
        explorer's curve store, adds the lines it could not parse to `skipped`)."""
        self.grew = self.restarted = False
        try:
            with open(self.path, "rb") as f:
                size = os.fstat(f.fileno()).st_size
                if size < self.offset:
                    self.offset, self.pending, self.restarted = 0, b"", True
                f.seek(self.offset)
                chunk = f.read()
        except FileNotFoundError:
            return []
        self.offset += len(chunk)
        self.grew = bool(chunk)
        *lines, self.pending = (self.pending + chunk).split(b"\n")
        return lines

    def unread_bytes(self) -> int:
        """How many bytes the file holds beyond what was read (the whole file when it shrank: it is read anew)."""
        try:
            size = os.stat(self.path).st_size
        except FileNotFoundError:
            return 0
        return size if size < self.offset else size - self.offset


@dataclass(frozen=True)
class SnapshotRef:
    run: "Run"
    step: int

    @property
    def path(self) -> Path:
        return self.run.path / "snapshots" / snapshot_name(self.step)

    def load(self) -> Snapshot:
        return self.run.snapshot(self.step)


@dataclass
class Probe:
    indices: np.ndarray
    images: np.ndarray  # uint8 (n, C, H, W)
    labels: np.ndarray | None
    class_names: list[str] | None
    names: list[str] | None = None  # file names (None: the data set has none, or an older run)

    def name_of(self, row: int) -> str:
        """The image's file name, or its index in the data set when it has none."""
        return self.names[row] if self.names else str(int(self.indices[row]))


CLUSTER_NAME_MAX = 40


def check_cluster_name(name) -> str:
    """A cluster's name as a person typed it: stripped, at most 40 characters, no control characters."""
    if not isinstance(name, str):
        raise ConfigError(f"a cluster name must be text, got {type(name).__name__}")
    name = " ".join(name.split())
    if len(name) > CLUSTER_NAME_MAX:
        raise ConfigError(f"a cluster name has at most {CLUSTER_NAME_MAX} characters, got {len(name)}")
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in name):
        raise ConfigError("a cluster name cannot hold control characters")
    return name


class Run:
    """Read a run directory, also while it is being written: `Run(path).config`, `.metrics()`, `.snapshots()`,
    `.follow()` for new records as they arrive."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        if not self.path.is_dir():
            raise RunError(f"no run directory at {self.path}")
        if not (self.path / "config.json").is_file():
            raise RunError(f"{self.path} is not a run directory (no config.json)")
        self._config = None

    def __repr__(self):
        return f"Run({str(self.path)!r})"

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def config(self) -> dict:
        if self._config is None:
            try:
                config = json.loads((self.path / "config.json").read_text())
            except (OSError, ValueError) as e:
                raise RunError(f"{self.path}/config.json cannot be read: {e}") from None
            if not isinstance(config, dict) or not isinstance(config.get("settings"), dict):
                raise RunError(f"{self.path}/config.json is not a run's configuration: it holds no settings object")
            config["settings"] = {**SETTINGS_ADDED_LATER, **config["settings"]}
            self._config = config
        return self._config

    def status(self) -> dict:
        """status.json, with state 'unknown' when it is missing or unreadable.

        A run that says it is running but whose process is gone (killed on this machine) is reported as
        'interrupted', with `stale: True`; it can be resumed from its last checkpoint."""
        try:
            status = json.loads((self.path / "status.json").read_text())
            if not isinstance(status, dict):
                raise ValueError("status.json is not an object")
        except (OSError, ValueError):
            summary = self.summary()  # written once at the end: a damaged status of an ended run is told by it
            if summary and summary.get("state"):
                return {"state": summary["state"], "message": summary.get("message", ""),
                        "step": summary.get("step", 0), "total_steps": summary.get("steps"), "from_summary": True}
            return {"state": "unknown"}
        if status.get("state") in ("running", "starting") and status.get("host") == socket.gethostname():
            if not pid_alive(status.get("pid")):
                status.update(state="interrupted", stale=True,
                              message="the training process is gone; resume continues from the last checkpoint")
        return status

    def summary(self) -> dict | None:
        try:
            summary = json.loads((self.path / "summary.json").read_text())
        except (OSError, ValueError):
            return None
        return summary if isinstance(summary, dict) else None

    # -- metrics ------------------------------------------------------------------------------------------
    def metrics(self, kind: str | None = "train") -> list[dict]:
        """All complete records (of one kind: 'train', 'set', 'event'; None for all). Torn or corrupt lines are
        skipped and counted in `self.skipped_lines`."""
        try:
            text = (self.path / "metrics.jsonl").read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            self.skipped_lines = 0
            return []
        records, self.skipped_lines = parse_records(text.splitlines(), kind)
        return records

    def series(self, key: str, kind: str = "train") -> tuple[np.ndarray, np.ndarray]:
        """(steps, values) of one metric, skipping records without it."""
        recs = [r for r in self.metrics(kind) if r.get(key) is not None]
        return (np.array([r["step"] for r in recs], dtype=np.int64),
                np.array([r[key] for r in recs], dtype=np.float64))

    def tail(self, kind: str | None = None) -> "MetricsTail":
        """A non-blocking reader of new records: call `.read()` whenever you like (for apps' periodic callbacks)."""
        return MetricsTail(self.path / "metrics.jsonl", kind)

    def follow(self, poll: float = 0.5, timeout: float | None = None, until_done: bool = True,
               kind: str | None = None) -> Iterator[dict]:
        """Yield records as they are appended (like `tail -f`), starting from the first.

        Stops when the run is no longer running (after reading what is left) if `until_done`, or after `timeout`
        seconds without a new record. A line is only parsed once its newline has been written."""
        tail, idle_since = self.tail(kind), time.monotonic()
        while True:
            records = tail.read()
            yield from records
            if records:
                idle_since = time.monotonic()
            if until_done and not tail.grew and self.status().get("state") not in ("running", "starting"):
                return
            if timeout is not None and time.monotonic() - idle_since > timeout:
                return
            time.sleep(poll)

    # -- snapshots ----------------------------------------------------------------------------------------
    def snapshot_steps(self) -> list[int]:
        folder = self.path / "snapshots"
        if not folder.is_dir():
            return []
        return sorted(int(m.group(1)) for p in folder.iterdir() if (m := _SNAP_RE.match(p.name)))

    def snapshots(self) -> list["SnapshotRef"]:
        """The snapshots on disk, oldest first, as references that load on demand (`ref.load()`)."""
        return [SnapshotRef(self, step) for step in self.snapshot_steps()]

    def snapshot(self, step: int | None = None) -> Snapshot:
        """The snapshot at `step` (default: the latest). RunError if it is missing or damaged."""
        steps = self.snapshot_steps()
        if not steps:
            raise RunError(f"{self.name} has no snapshots yet")
        if step is None:
            step = steps[-1]
        path = self.path / "snapshots" / snapshot_name(step)
        try:
            with np.load(path, allow_pickle=False) as f:
                labels = f["labels"].astype(np.int64)
                return Snapshot(
                    step=int(f["step"]), epoch=float(f["epoch"]), z_c=f["z_c"].astype(np.float32),
                    z_s=f["z_s"].astype(np.float32), pred=f["pred"].astype(np.int64),
                    confidence=f["confidence"].astype(np.float32), labels=labels if len(labels) else None,
                    metrics=json.loads(str(f["metrics"])))
        except FileNotFoundError:
            raise RunError(f"{self.name}: no snapshot at step {step}") from None
        except Exception as e:  # torn or corrupt file: report it on this run, never crash a view
            raise RunError(f"{self.name}: snapshot at step {step} is damaged ({type(e).__name__}: {e})") from None

    def latest_snapshot(self) -> Snapshot | None:
        """The newest readable snapshot, or None."""
        for step in reversed(self.snapshot_steps()):
            try:
                return self.snapshot(step)
            except RunError:
                continue
        return None

    def probe(self) -> Probe:
        try:
            with np.load(self.path / "probe.npz", allow_pickle=False) as f:
                has = bool(f["has_labels"])
                names = json.loads(str(f["class_names"]))
                files = json.loads(str(f["names"])) if "names" in f.files else []
                files = files if len(files) == len(f["indices"]) else None
                return Probe(f["indices"], f["images"], f["labels"] if has else None, names or None, files)
        except FileNotFoundError:
            raise RunError(f"{self.name} has no probe.npz yet") from None
        except Exception as e:
            raise RunError(f"{self.name}: probe.npz is damaged ({type(e).__name__}: {e})") from None

    # -- checkpoints --------------------------------------------------------------------------------------
    def checkpoint_steps(self) -> list[int]:
        folder = self.path / "checkpoints"
        if not folder.is_dir():
            return []
        return sorted(int(m.group(1)) for p in folder.iterdir() if (m := _CKPT_RE.match(p.name)))

    def checkpoint_path(self, which: str | int = "latest") -> Path:
        """Path of the latest, best, or a given step's checkpoint."""
        folder = self.path / "checkpoints"
        if which == "best":
            path = folder / "best.pt"
        elif which == "latest":
            steps = self.checkpoint_steps()
            if not steps:
                raise RunError(f"{self.name} has no checkpoint yet")
            path = folder / checkpoint_name(steps[-1])
        else:
            try:
                path = folder / checkpoint_name(int(which))
            except (TypeError, ValueError):
                raise RunError(f"a checkpoint is latest, best or a step number, got {which!r}") from None
        if not path.is_file():
            raise RunError(f"{self.name}: no checkpoint {which}")
        return path

    # -- results ------------------------------------------------------------------------------------------
    def predict(self, data=None, **options) -> dict:
        """The cluster of every image of `data` (default: the run's data set) from a checkpoint, as numpy arrays
        (name, cluster, confidence, label when known; z_c and z_s columns with `with_z=True`): see
        `core.predict.predict` for the options."""
        from .predict import predict

        return predict(self, data, **options)

    # -- cluster names ------------------------------------------------------------------------------------
    def cluster_names(self) -> dict[int, str]:
        """Names a person gave clusters ({3: "sneakers"}); {} when none, or when the file is damaged."""
        try:
            raw = json.loads((self.path / "cluster_names.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        if not isinstance(raw, dict):
            return {}
        out = {}
        for k, v in raw.items():
            try:
                out[int(k)] = check_cluster_name(v)
            except (ValueError, ConfigError):
                continue
        return {k: v for k, v in sorted(out.items()) if v}

    def name_cluster(self, cluster: int, name: str) -> dict[int, str]:
        """Give cluster `cluster` a name (an empty name removes it); written atomically; returns all names."""
        k = self.config.get("settings", {}).get("num_clusters")
        if not isinstance(cluster, (int, np.integer)) or cluster < 0 or (isinstance(k, int) and cluster >= k):
            raise ConfigError(f"no cluster {cluster!r} in this run" + (f" (it has c0…c{k - 1})" if k else ""))
        names = self.cluster_names()
        names[int(cluster)] = check_cluster_name(name)
        names = {c: n for c, n in sorted(names.items()) if n}
        atomic_write_json(self.path / "cluster_names.json", {str(c): n for c, n in names.items()})
        return names

    # -- the method --------------------------------------------------------------------------------------
    @property
    def method(self) -> dict:
        """The run's method as config.json describes it: name, live settings, curve groups, progress keys (runs
        written before the description was recorded get it from the method registry)."""
        described = self.config.get("method")
        if isinstance(described, dict):
            return described
        cls = self.method_class
        name = self.config.get("settings", {}).get("method", "")
        return cls.describe() if cls is not None else {"name": name, "live_settings": [], "curve_groups": []}

    @property
    def method_class(self):
        """The method's class from this process's registry, or None when it is not registered here."""
        from .errors import ConfigError
        from .methods import registry

        try:
            return registry.get(self.config.get("settings", {}).get("method", ""))
        except ConfigError:
            return None

    @property
    def live_settings(self) -> tuple[str, ...]:
        """The settings this run can change while it trains (("beta_aug",) for DCCS; none for DCSM)."""
        return tuple(self.method.get("live_settings", ()))

    # -- steering a running trainer (from another process) ------------------------------------------------
    def control(self) -> dict:
        return ControlChannel(self.path).read()

    def send(self, **changes) -> int:
        """Merge `changes` (beta_aug=3.0, stop=True) into control.json; the trainer takes them at its next logged
        step and applies setting changes from the step after. Live values are checked here first (ConfigError).
        Returns the request's sequence number."""
        cls = self.method_class
        for name, value in changes.items():
            if name == "stop":
                if not isinstance(value, bool):
                    raise ConfigError(f"stop must be true or false, got {value!r}")
            elif cls is not None:
                from .steering import check_live

                changes[name] = check_live(cls, name, value)
            elif name not in self.live_settings:
                raise ConfigError(f"{name} cannot be changed while this run trains")
        return ControlChannel(self.path).send(**changes)

    def set_live(self, name: str, value: float) -> int:
        return self.send(**{name: value})

    def set_beta_aug(self, value: float) -> int:
        return self.set_live("beta_aug", value)

    def request_stop(self) -> int:
        return self.send(stop=True)


def pid_alive(pid) -> bool:
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie (exited, not yet reaped by its parent) is gone for our purposes
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ", 1)[1][0] != "Z"
    except (OSError, IndexError):
        return True


def list_runs(root: str | Path) -> list[Path]:
    """Run directories directly under `root`, newest first."""
    root = Path(root)
    if not root.is_dir():
        return []
    runs = [p for p in root.iterdir() if (p / "config.json").is_file()]
    return sorted(runs, key=lambda p: p.stat().st_mtime, reverse=True)
