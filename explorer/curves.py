"""A run's curves as numpy columns: parsed from metrics.jsonl a piece at a time, smoothed and downsampled for drawing.

A run with 200,000 records (an 84 MB metrics.jsonl) held as a list of dicts took a minute to show and sent every point
to the browser. `CurveStore` keeps one float array per record key instead (NaN where a record lacks the key), takes
only the lines written since the last read (`MetricsTail.read_lines`), smooths with one `lfilter` call per line and
hands each line to the plots as at most `MAX_POINTS` points: the first, the last, and the lowest and highest point of
each bucket of consecutive records, so that spikes stay visible.

`read_chunk` (parse what is new) touches only the tail and its own result, so a view may run it on a thread and add
the chunk to its store (`CurveStore.add`) on its own thread afterwards.
"""

from __future__ import annotations

import json
import math
import os
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

try:
    import orjson

    _LOADS = (orjson.loads, json.loads)
except ImportError:  # an install without it parses at json's speed
    _LOADS = (json.loads,)

MAX_POINTS = 2000  # points per drawn line
BATCH = 2000  # lines parsed per json.loads call: each call holds the GIL, so a reading thread yields between them
X_KEYS = ("step", "time", "epoch")


def smooth(values, weight: float) -> np.ndarray:
    """`explorer.viewdata.smooth` (TensorBoard's exponential moving average with bias correction, NaNs carried
    through), vectorised: the same values, by one `scipy.signal.lfilter` call."""
    from scipy.signal import lfilter

    values = np.asarray(values, dtype=float)
    if weight <= 0 or len(values) == 0:
        return values
    ok = ~np.isnan(values)
    v = values[ok]
    acc = lfilter([1.0 - weight], [1.0, -weight], v)
    norm = 1.0 - weight ** np.arange(1, len(v) + 1, dtype=float)
    out = np.full_like(values, np.nan)
    out[ok] = acc / norm
    return out


def downsample(x: np.ndarray, y: np.ndarray, max_points: int = MAX_POINTS) -> tuple[np.ndarray, np.ndarray]:
    """At most `max_points` of a line, in order: the first and last point, and the lowest and highest point of each
    bucket of consecutive points in between (so the global minimum and maximum, and every spike, are kept)."""
    n = len(y)
    max_points = max(int(max_points), 4)
    if n <= max_points:
        return x, y
    inner = y[1:-1]
    m = len(inner)
    size = -(-m // ((max_points - 2) // 2))  # points per bucket
    buckets = -(-m // size)
    pad = buckets * size - m
    if pad:  # the last bucket is filled with its last value: argmin/argmax pick the real one first
        inner = np.concatenate([inner, np.full(pad, inner[-1])])
    rows = inner.reshape(buckets, size)
    lo, hi = rows.argmin(axis=1), rows.argmax(axis=1)
    base = np.arange(buckets) * size
    picks = np.stack([base + np.minimum(lo, hi), base + np.maximum(lo, hi)], axis=1).ravel()
    idx = np.concatenate([[0], np.unique(picks) + 1, [n - 1]])
    return x[idx], y[idx]


class Columns:
    """Growable float64 columns of equal length (NaN where a row lacks a key); appending is amortised O(new rows)."""

    def __init__(self):
        self.n = 0
        self._cap = 0
        self._data: dict[str, np.ndarray] = {}

    def keys(self):
        return self._data.keys()

    def get(self, key: str) -> np.ndarray | None:
        a = self._data.get(key)
        return None if a is None else a[:self.n]

    def extend(self, cols: dict[str, np.ndarray], n: int) -> None:
        if n <= 0:
            return
        need = self.n + n
        if need > self._cap:
            cap = max(need, 2 * self._cap, 256)
            for k, a in self._data.items():
                grown = np.full(cap, np.nan)
                grown[:self.n] = a[:self.n]
                self._data[k] = grown
            self._cap = cap
        for k, v in cols.items():
            if k not in self._data:
                self._data[k] = np.full(self._cap, np.nan)
            self._data[k][self.n:need] = v
        for k, a in self._data.items():
            if k not in cols:
                a[self.n:need] = np.nan
        self.n = need


def _column(values: list) -> np.ndarray | None:
    """A float column of JSON values (None → NaN), or None when the key holds no numbers (lists, strings)."""
    try:
        a = np.array(values, dtype=float)
        if a.ndim == 1:
            return a
    except (TypeError, ValueError):
        pass
    a = np.array([v if isinstance(v, (int, float)) and not isinstance(v, bool) else np.nan for v in values],
                 dtype=float)
    return a if not np.isnan(a).all() else None


@dataclass
class Chunk:
    """What a read of metrics.jsonl found: the train records as columns, the other records (`set`, `event`) with
    the number of train records before each, how many lines could not be parsed, and whether the file was read
    anew from its start (a resumed run rewrote it)."""

    columns: Columns = field(default_factory=Columns)
    others: list[tuple[int, dict]] = field(default_factory=list)
    skipped: int = 0
    restarted: bool = False
    nbytes: int = 0

    @property
    def n(self) -> int:
        return self.columns.n


def _parse_batch(lines: list[bytes]) -> tuple[list, int]:
    """The lines' JSON values and how many lines were not JSON: one orjson call for the batch (twice as fast as
    json's), then json's (which also takes the NaN and Infinity that Python's json writes and orjson refuses),
    then line by line."""
    text = b"[" + b",".join(lines) + b"]"
    for loads in _LOADS:
        try:
            out = loads(text)
            if len(out) == len(lines):
                return out, 0
        except ValueError:  # orjson.JSONDecodeError is a ValueError
            pass
    out, skipped = [], 0
    for line in lines:
        try:
            out.append(json.loads(line))
        except ValueError:
            skipped += 1
    return out, skipped


def parse_lines(lines: list[bytes], batch: int = BATCH) -> Chunk:
    """Parse complete JSON lines into a Chunk, `batch` lines per `json.loads` call (blank lines are ignored; a line
    that is not JSON is counted in `skipped`; one that is not an object is ignored, as `parse_records` does)."""
    chunk = Chunk(nbytes=sum(len(line) + 1 for line in lines))
    lines = [line for line in lines if line.strip()]
    for start in range(0, len(lines), batch):
        recs, skipped = _parse_batch(lines[start:start + batch])
        chunk.skipped += skipped
        train = []
        for r in recs:
            if not isinstance(r, dict):
                continue
            if r.get("kind") == "train":
                train.append(r)
            else:
                chunk.others.append((chunk.columns.n + len(train), r))
        if not train:
            continue
        keys = set().union(*train)
        keys.discard("kind")
        cols = {}
        for k in keys:
            col = _column([r.get(k) for r in train])
            if col is not None:
                cols[k] = col
        chunk.columns.extend(cols, len(train))
    return chunk


def read_chunk(tail) -> Chunk:
    """What is new in a `core.rundir.MetricsTail`, parsed (safe on a thread as long as nothing else uses the tail)."""
    lines = tail.read_lines()
    chunk = parse_lines(lines)
    chunk.restarted = tail.restarted
    tail.skipped += chunk.skipped
    return chunk


@dataclass
class _Kept:
    identity: tuple[int, int]  # (device, inode) of the file read
    offset: int
    pending: bytes
    skipped: int
    tail_bytes: bytes  # the bytes just before `offset`: an in-place rewrite of the file shows as a difference
    chunk: Chunk
    size: int  # bytes held (the columns), for the cache's budget


class ReadCache:
    """Large reads of metrics.jsonl kept for the server process: the next page (or view) that opens the same run
    takes the parsed columns instead of parsing the file again, and reads only what was written since. A 200,000-record
    run's 93 MB take about 1.3 s to parse, a third of its page's time. A kept read is used only while the file is the
    same file (device and inode), has not shrunk and still holds the same bytes just before the kept offset; the
    cache holds at most `max_bytes` of columns, the least recently used read dropped first. Kept chunks are shared:
    readers copy from them (`CurveStore.add`) and never change them."""

    CHECK = 64

    def __init__(self, max_bytes: int = 256 << 20):
        self.max_bytes = max_bytes
        self._kept: OrderedDict[str, _Kept] = OrderedDict()
        self._lock = threading.Lock()

    def _tail_bytes(self, f, offset: int) -> bytes:
        start = max(0, offset - self.CHECK)
        f.seek(start)
        return f.read(offset - start)

    def keep(self, tail, chunk: Chunk) -> None:
        """Keep a read that covered the file from its start (`tail` as the read left it)."""
        size = sum(chunk.columns.get(k).nbytes for k in chunk.columns.keys())
        if size > self.max_bytes:
            return
        try:
            with open(tail.path, "rb") as f:
                st = os.fstat(f.fileno())
                if st.st_size < tail.offset:
                    return
                kept = _Kept((st.st_dev, st.st_ino), tail.offset, tail.pending, tail.skipped,
                             self._tail_bytes(f, tail.offset), chunk, size)
        except OSError:
            return
        key = str(Path(tail.path).resolve())
        with self._lock:
            self._kept[key] = kept
            self._kept.move_to_end(key)
            while sum(k.size for k in self._kept.values()) > self.max_bytes:
                self._kept.popitem(last=False)

    def take(self, tail) -> Chunk | None:
        """For a tail that has read nothing yet: the kept read of its file, the tail moved to where it ended (so
        that it reads only what came after); None when there is none or the file changed under it."""
        if tail.offset or tail.pending:
            return None
        key = str(Path(tail.path).resolve())
        with self._lock:
            kept = self._kept.get(key)
        if kept is None:
            return None
        try:
            with open(tail.path, "rb") as f:
                st = os.fstat(f.fileno())
                same = ((st.st_dev, st.st_ino) == kept.identity and st.st_size >= kept.offset
                        and self._tail_bytes(f, kept.offset) == kept.tail_bytes)
        except OSError:
            same = False
        with self._lock:
            if not same:
                self._kept.pop(key, None)
                return None
            self._kept.move_to_end(key)
        tail.offset, tail.pending, tail.skipped = kept.offset, kept.pending, kept.skipped
        return kept.chunk

    def clear(self) -> None:
        with self._lock:
            self._kept.clear()


READ_CACHE = ReadCache()


def read_chunk_kept(tail, cache: ReadCache | None = None) -> Chunk:
    """`read_chunk`, keeping the result in the cache when the read covered the file from its start."""
    whole = tail.offset == 0 and not tail.pending
    chunk = read_chunk(tail)
    if whole or chunk.restarted:
        (cache or READ_CACHE).keep(tail, chunk)
    return chunk


class CurveStore:
    """A run's train records as columns, its `set` records (β_Aug changes) as dicts; the curves drawn from them."""

    def __init__(self):
        self.clear()

    def clear(self) -> None:
        self.columns = Columns()
        self.set_records: list[dict] = []
        self._present: set[str] = set()

    @property
    def n(self) -> int:
        """How many train records the store holds."""
        return self.columns.n

    def __len__(self) -> int:
        return self.columns.n

    def read(self, tail) -> Chunk:
        """Read and add what is new in the tail (on the calling thread)."""
        chunk = read_chunk(tail)
        self.add(chunk)
        return chunk

    def add(self, chunk: Chunk) -> None:
        if chunk.restarted:
            self.clear()
        self.columns.extend({k: chunk.columns.get(k) for k in chunk.columns.keys()}, chunk.n)
        for k in chunk.columns.keys():
            if k not in self._present and not np.isnan(chunk.columns.get(k)).all():
                self._present.add(k)
        self.set_records += [r for _, r in chunk.others if r.get("kind") == "set"]

    def column(self, key: str) -> np.ndarray | None:
        return self.columns.get(key)

    def present(self) -> set[str]:
        """The record keys with at least one value."""
        return set(self._present)

    def last(self, key: str) -> float | None:
        """The latest value of a key (None when no record has one)."""
        col = self.column(key)
        if col is None:
            return None
        ok = np.flatnonzero(~np.isnan(col))
        return float(col[ok[-1]]) if len(ok) else None

    def groups(self, panel_list) -> list[tuple[str, list[str]]]:
        """The panels that have data in this run, with the keys that have data (as `viewdata.curve_groups`)."""
        present = self._present
        return [(title, [k for k, _ in keys if k in present]) for title, keys in panel_list
                if any(k in present for k, _ in keys)]

    def series(self, key: str, x: str = "step") -> tuple[np.ndarray, np.ndarray]:
        """(x, values) of the records that have both."""
        xs, vs = self.column(x), self.column(key)
        if xs is None or vs is None:
            return np.zeros(0), np.zeros(0)
        ok = ~(np.isnan(xs) | np.isnan(vs))
        return xs[ok], vs[ok]

    def frame(self, metrics: list[str], x: str = "step", smoothing: float = 0.0, labels: dict | None = None,
              max_points: int = MAX_POINTS) -> pd.DataFrame:
        """Long table (x, value, metric label) of the given metrics, smoothed, then at most `max_points` per line
        (`viewdata.curve_frame` with every point)."""
        parts = []
        for m in metrics:
            xs, vs = self.series(m, x)
            if not len(vs):
                continue
            xs, vs = downsample(xs, smooth(vs, smoothing), max_points)
            parts.append(pd.DataFrame({"x": xs, "value": vs, "metric": (labels or {}).get(m, m)}))
        if not parts:
            return pd.DataFrame({"x": pd.Series(dtype=float), "value": pd.Series(dtype=float),
                                 "metric": pd.Series(dtype=str)})
        return pd.concat(parts, ignore_index=True)

    def to_frame(self) -> pd.DataFrame:
        """One row per train record, one column per numeric key (NaN where a record lacks it)."""
        frame = pd.DataFrame({k: self.columns.get(k) for k in sorted(self.columns.keys())})
        if "step" in frame and len(frame) and not frame["step"].isna().any():
            frame["step"] = frame["step"].astype(np.int64)
        return frame

    def records(self) -> list[dict]:
        """The train records again as dicts of their numeric values (for small runs and tests; slow for large)."""
        keys = list(self.columns.keys())
        cols = [self.columns.get(k) for k in keys]
        out = []
        for i in range(self.n):
            r = {"kind": "train"}
            for k, c in zip(keys, cols):
                v = c[i]
                if not math.isnan(v):
                    r[k] = int(v) if k == "step" else float(v)
            out.append(r)
        return out
