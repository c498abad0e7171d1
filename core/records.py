"""What a run records while it trains: the losses of a logging window (summed on the device step by step,
averaged with one host synchronisation when the window's record is written: the only synchronisation of the hot
loop), and the records, status and events it writes (`Recorder`)."""

from __future__ import annotations

import math
import time

import torch

from . import distributed


class LossWindow:
    def __init__(self, dist=distributed.SINGLE):
        self.dist = dist
        self.sums: dict[str, torch.Tensor] = {}
        self.steps = 0
        self.started = time.perf_counter()

    def add(self, losses: dict[str, torch.Tensor]) -> None:
        for key, v in losses.items():
            self.sums[key] = self.sums[key] + v if key in self.sums else v
        self.steps += 1

    def restart_clock(self) -> None:
        """Throughput counts training only: the clock restarts after a record's evaluation, snapshot, checkpoint."""
        self.started = time.perf_counter()

    def flush(self, images_per_step: int) -> tuple[dict, list[str]]:
        """(mean of each loss over the window, averaged over the ranks, with throughput; the keys that are NaN or
        infinite), and a fresh window."""
        keys = list(self.sums)
        values = (distributed.average(torch.stack([self.sums[k] for k in keys]).double() / self.steps, self.dist)
                  .cpu().tolist() if keys else [])
        seconds = time.perf_counter() - self.started
        out = dict(zip(keys, values))
        out["steps_per_s"] = self.steps / seconds if seconds > 0 else None
        out["images_per_s"] = self.steps * images_per_step / seconds if seconds > 0 else None
        self.sums, self.steps = {}, 0
        return out, [k for k, v in zip(keys, values) if not math.isfinite(v)]


class Recorder:
    """What a run tells the world while it trains: records into metrics.jsonl, its state into status.json, the
    same as events to callbacks and subscribers, and the progress bar. `where()` stamps each record with the step,
    epoch and training time it belongs to."""

    def __init__(self, writer, hub, where, total_steps, progress_keys=()):
        self.writer, self.hub, self.where = writer, hub, where
        self.total_steps = total_steps  # a callable: the run's length may be changed before it trains
        self.progress_keys = (*progress_keys, ("acc", "ACC"))
        self.last: dict = {}
        self.bar = None
        self._last_beat = 0.0

    def open_bar(self, initial: int, enabled: bool, desc: str) -> None:
        from tqdm.auto import tqdm

        self.bar = tqdm(total=self.total_steps(), initial=initial, unit="step", dynamic_ncols=True, disable=not enabled,
                        desc=desc)

    def close_bar(self) -> None:
        if self.bar is not None:
            self.bar.close()

    def record(self, record: dict) -> None:
        self.writer.append(record)
        self.last = record
        self.hub.emit({"type": "record", **record})
        if self.bar is not None:
            self.bar.update(record["step"] - self.bar.n)
            parts = [f"{label}={record[k]:.3f}" for k, label in self.progress_keys if record.get(k) is not None]
            self.bar.set_postfix_str(" ".join(parts), refresh=False)

    def event(self, event: str, **info) -> None:
        self.writer.append({"kind": "event", "event": event, **self.where(), **info})

    def setting(self, name: str, value: float, previous: float | None, source: str) -> None:
        """A live setting changed: it applies from the next step."""
        here = self.where()
        rec = {"kind": "set", **here, "step": here["step"] + 1, "setting": name, "value": value, "previous": previous,
               "source": source, name: value}
        self.writer.append(rec)
        self.hub.emit({"type": "set", **rec})

    def status(self, state: str, step: int, message: str | None = None) -> None:
        extra = {} if message is None else {"message": message}
        self.writer.status(state, step=step, total_steps=self.total_steps(), **extra)
        if state == "running":
            self._last_beat = time.monotonic()

    def heartbeat(self, step: int, every: float = 10.0) -> None:
        """Refresh status.json now and then, so that readers can tell a live run from a killed one."""
        if time.monotonic() - self._last_beat >= every:
            self.status("running", step)

    def end(self, state: str, step: int, message: str, summary: dict | None) -> None:
        try:
            self.status(state, step, message)
        except OSError:  # a full or read-only disk: the error that ends the run goes on to the caller all the same
            if summary is not None:
                raise
        self.hub.emit({"type": "end", "state": state, "step": step, "message": message, "summary": summary})


SUMMARY_KEYS = ("acc", "nmi", "ari", "wasserstein", "mean_max_prob", "empty_clusters", "size_entropy")


def run_summary(state: str, message: str, step: int, steps: int, epoch: float, seconds: float, device,
                best: dict, last: dict) -> dict:
    """summary.json: how the run ended and its last evaluation."""
    return {"state": state, "message": message, "step": step, "steps": steps, "epoch": epoch, "time": seconds,
            "device": str(device), "best_checkpoint": best, **{k: last[k] for k in SUMMARY_KEYS if k in last}}
