"""Comparing runs, without any UI library: one table row per run, the settings that differ between runs, the curves
of several runs over each other, and archiving or deleting runs (the explorer's Compare tab draws these).

A run's metrics are read incrementally: a `RunTrack` keeps one `CurveStore` per run and reads only the bytes written
since its last read (`read_chunk` on the run's `MetricsTail`); a large unread part (a long run just seen) is read on
a reader thread when the caller asks for it.

Archiving writes a marker file `RUN/.archived` (the run stays on disk; lists hide it); deleting moves the run's folder
to `<runs root>/.trash/<name>-<UTC time>` (nothing is removed), and is refused for a run that is starting or running
and for any path outside the runs root (docs/run-directory.md).
"""

from __future__ import annotations

import math
import time
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd

from core.errors import UserError
from core.rundir import Run

from . import viewdata
from .curves import READ_CACHE, CurveStore, read_chunk_kept
from .runs import ARCHIVED, TRASH, RunInfo, read_run_info

BACKGROUND_BYTES = 1 << 20  # more unread metrics than this are read on the reader thread (as RunView does)
_READER = ThreadPoolExecutor(max_workers=1, thread_name_prefix="compare-reader")

# the table's columns, in order ("path" is kept for the page and hidden there)
COLUMNS = ["name", "method", "data set", "state", "step", "β_Aug", "ACC (eval only)", "NMI (eval only)",
           "ARI (eval only)", "Wasserstein", "wall time (s)", "archived", "path"]
EVAL_COLUMNS = {"acc": "ACC (eval only)", "nmi": "NMI (eval only)", "ari": "ARI (eval only)"}
# settings that name the run itself rather than how it was trained: never listed as a difference
NOT_COMPARED = {"run_dir"}


class RunTrack:
    """One run's metrics as a CurveStore, extended by what was written since the last `update`."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.run: Run | None = None
        self.tail = None
        self.store = CurveStore()
        self.panels = viewdata.panels(None)
        self.job: Future | None = None
        self.reads = 0  # reads of metrics.jsonl that found something (for tests)

    def update(self, background: bool = False) -> bool:
        """Read what is new; True when the store changed. With `background`, a large unread part is read on the
        reader thread and taken by a later call."""
        if self.run is None:
            if not (self.path / "config.json").is_file():
                return False
            self.run = Run(self.path)
            self.panels = viewdata.panels(self.run.method)
            self.tail = self.run.tail()
        if self.job is not None:
            if not self.job.done():
                return False
            chunk, self.job = self.job.result(), None
        elif (kept := READ_CACHE.take(self.tail)) is not None:  # parsed already for another page or view
            chunk = kept
        elif background and self.tail.unread_bytes() > BACKGROUND_BYTES:
            self.job = _READER.submit(read_chunk_kept, self.tail)
            return False
        else:
            chunk = read_chunk_kept(self.tail)
        self.store.add(chunk)
        changed = bool(chunk.n or chunk.others or chunk.restarted)
        self.reads += changed
        return changed

    @property
    def reading(self) -> bool:
        return self.job is not None


def _number(value) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        return math.nan
    return v


def run_row(run_path: str | Path, info: RunInfo | None = None, track: RunTrack | None = None) -> dict:
    """One row of the compare table: name, method, data set, state, step, β_Aug now (the last train record's, else
    the setting), the latest evaluation's ACC/NMI/ARI, the latest Wasserstein estimate (DCCS; blank otherwise), the
    training wall time in seconds, whether it is archived, and its path."""
    path = Path(run_path)
    info = info or read_run_info(path)
    if track is None:
        track = RunTrack(path)
        try:
            track.update()
        except Exception:  # a run that cannot be read still gets its row (its state says why)
            pass
    store = track.store
    beta = store.last("beta_aug")
    if beta is None:
        beta = info.beta_aug
    wall = store.last("time")
    if wall is None and track.run is not None:
        summary = track.run.summary() or {}
        wall = summary.get("time")
    row = {"name": info.name, "method": (info.method or "").upper(), "data set": Path(info.dataset).name
           if info.dataset else "", "state": info.state, "step": int(info.step or store.last("step") or 0),
           "β_Aug": _number(beta)}
    for key, column in EVAL_COLUMNS.items():
        row[column] = _number(store.last(key))
    row["Wasserstein"] = _number(store.last("wasserstein"))
    row["wall time (s)"] = _number(wall)
    row["archived"] = is_archived(path)
    row["path"] = str(path)
    return row


def run_table(paths, infos: dict | None = None, tracks: dict | None = None) -> pd.DataFrame:
    """The compare table of these runs (one row each, in the given order). `infos` and `tracks` (by path string)
    supply what the caller already has: the run list's infos and the runs' kept curve stores."""
    rows = [run_row(p, (infos or {}).get(str(p)), (tracks or {}).get(str(p))) for p in paths]
    frame = pd.DataFrame(rows, columns=COLUMNS)
    for column in ("β_Aug", *EVAL_COLUMNS.values(), "Wasserstein", "wall time (s)"):
        frame[column] = frame[column].astype(float)
    frame["step"] = frame["step"].astype(np.int64)
    frame["archived"] = frame["archived"].astype(bool)
    return frame


def _shown(value) -> str:
    if value is None:
        return "—"
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        return f"{value:g}"
    return str(value)


def setting_differences(paths, names: list[str] | None = None) -> pd.DataFrame:
    """The settings (config.json's `settings`) whose values differ between the runs: one row per setting, one
    column per run (its name), values as text ("—" where a run lacks the setting). Empty when they all agree."""
    paths = [Path(p) for p in paths]
    names = list(names) if names is not None else [p.name for p in paths]
    seen: dict[str, int] = {}
    columns = []
    for n in names:  # two runs of the same name (in two tuning sessions) stay two columns
        seen[n] = seen.get(n, 0) + 1
        columns.append(n if seen[n] == 1 else f"{n} ({seen[n]})")
    settings = []
    for p in paths:
        try:
            settings.append(Run(p).config["settings"])
        except Exception:
            settings.append({})
    keys = []
    for s in settings:
        keys += [k for k in s if k not in keys and k not in NOT_COMPARED]
    rows = {}
    for k in keys:
        values = [s.get(k) for s in settings]
        if len(paths) > 1 and any(v != values[0] for v in values[1:]):
            rows[k] = [_shown(v) for v in values]
    frame = pd.DataFrame.from_dict(rows, orient="index", columns=columns)
    frame.index.name = "setting"
    return frame


# -- the overlay --------------------------------------------------------------------------------------------------
def metric_order(tracks) -> list[tuple[str, str]]:
    """(record key, label) of every curve any of the runs has data for, in panel order (first run's panels first)."""
    out, labels = [], {}
    for track in tracks:
        present = track.store.present()
        for _, keys in track.panels:
            for key, label in keys:
                labels.setdefault(key, label)
                if key in present and key not in [k for k, _ in out]:
                    out.append((key, labels[key]))
    return out


def overlay_frame(tracks, names: list[str], key: str, x: str = "step") -> pd.DataFrame:
    """Long table (x, value, run) of one metric over several runs, each line downsampled (CurveStore.frame)."""
    parts = []
    for track, name in zip(tracks, names):
        frame = track.store.frame([key], x=x)
        if len(frame):
            parts.append(pd.DataFrame({"x": frame["x"].to_numpy(), "value": frame["value"].to_numpy(), "run": name}))
    if not parts:
        return pd.DataFrame({"x": pd.Series(dtype=float), "value": pd.Series(dtype=float), "run": pd.Series(dtype=str)})
    return pd.concat(parts, ignore_index=True)


def overlay_rules(tracks, names: list[str], x: str = "step") -> pd.DataFrame:
    """Every run's setting changes (`set` records: β_Aug) as (x, run, setting, value): dashed rules on the charts."""
    parts = []
    for track, name in zip(tracks, names):
        changes = viewdata.setting_changes(track.store.set_records, x=x)
        if len(changes):
            changes.insert(1, "run", name)
            parts.append(changes)
    if not parts:
        return pd.DataFrame(columns=["x", "run", "setting", "value"])
    return pd.concat(parts, ignore_index=True)


# -- archive and delete -------------------------------------------------------------------------------------------
def is_archived(path: str | Path) -> bool:
    return (Path(path) / ARCHIVED).exists()


def inside_root(path: str | Path, root: str | Path) -> Path:
    """The run folder `path`, resolved, when it lies below the runs root (and not in its trash); UserError if not."""
    root = Path(root).expanduser().resolve()
    resolved = Path(path).expanduser().resolve()
    if resolved == root or root not in resolved.parents:
        raise UserError(f"{path} is not a run of the runs folder {root}")
    if (root / TRASH) == resolved or (root / TRASH) in resolved.parents:
        raise UserError(f"{path} is already in the trash")
    if not resolved.is_dir():
        raise UserError(f"{path} is not a folder")
    return resolved


def archive(path: str | Path, root: str | Path) -> Path:
    """Hide a run from the lists (the marker file RUN/.archived); it stays on disk as it is."""
    run = inside_root(path, root)
    (run / ARCHIVED).write_text(f"archived {time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())}\n")
    return run


def unarchive(path: str | Path, root: str | Path) -> Path:
    run = inside_root(path, root)
    (run / ARCHIVED).unlink(missing_ok=True)
    return run


def trash_name(name: str, now: float | None = None) -> str:
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(time.time() if now is None else now))
    return f"{name.replace('/', '__')}-{stamp}"


def delete_runs(paths, root: str | Path) -> tuple[list[Path], list[str]]:
    """Move each run's folder to <root>/.trash/<name>-<UTC time> (never removed). A run that is starting or running,
    or a path outside the runs root, is refused. Returns (where the moved runs are now, one message per refusal)."""
    root = Path(root).expanduser().resolve()
    moved, refused = [], []
    for p in paths:
        try:
            run = inside_root(p, root)
        except UserError as e:
            refused.append(str(e))
            continue
        info = read_run_info(run)
        if info.live:
            refused.append(f"{run.name} is {info.state}: stop it before deleting it")
            continue
        name = str(run.relative_to(root))
        trash = root / TRASH
        trash.mkdir(exist_ok=True)
        dest = trash / trash_name(name)
        n = 1
        while dest.exists():
            n += 1
            dest = trash / f"{trash_name(name)}-{n}"
        run.rename(dest)  # same file system (below the same root): an atomic move, nothing copied or removed
        moved.append(dest)
    return moved, refused
