"""control.json: the one channel through which other processes steer a running trainer.

Writers (`Run.send`, the app, a notebook) call `send(beta_aug=3.0)` or `send(stop=True)`: the change is merged into
the file with a sequence number one higher than before. The trainer `poll`s the file at every logged step: a
request is new when its `seq` is higher than the last one it took. The file is input from other processes, so a
malformed one is reported and ignored, never fatal, and one over 64 KiB is refused unread.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from .io import atomic_write_json

CONTROL_FILE = "control.json"
MAX_BYTES = 64 * 1024


class ControlChannel:
    def __init__(self, run_path: str | Path):
        self.path = Path(run_path) / CONTROL_FILE
        self.seq = 0  # the reader's side: the last sequence number taken
        self._mtime: int | None = None

    # -- writers ----------------------------------------------------------------------------------------
    def read(self) -> dict:
        """The file's content; {} when it is missing, too large or not a JSON object."""
        try:
            if self.path.stat().st_size > MAX_BYTES:
                return {}
            content = json.loads(self.path.read_text())
        except (OSError, ValueError):
            return {}
        return content if isinstance(content, dict) else {}

    def send(self, **changes) -> int:
        """Merge `changes` into the file under the next sequence number; returns that number."""
        content = self.read()
        seq = content.get("seq")
        seq = seq if isinstance(seq, int) and not isinstance(seq, bool) and seq >= 0 else 0
        content.update(changes)
        content["seq"] = seq + 1
        content["written"] = time.time()
        atomic_write_json(self.path, content)
        return seq + 1

    # -- the trainer ------------------------------------------------------------------------------------
    def start_from_current(self) -> None:
        """Count from the sequence number the file holds now: a request left in the folder before this trainer
        started (by an earlier run of it, or a stale writer) is not taken."""
        seq = self.read().get("seq")
        self.seq = seq if isinstance(seq, int) and not isinstance(seq, bool) and seq >= 0 else 0
        try:
            self._mtime = self.path.stat().st_mtime_ns
        except OSError:
            self._mtime = None

    def poll(self) -> tuple[dict | None, str | None]:
        """(a new request, None), (None, a message saying what is wrong with the file) or (None, None) when
        nothing changed. One stat call when the file is unchanged."""
        try:
            st = self.path.stat()
        except OSError:
            return None, None
        if st.st_mtime_ns == self._mtime:
            return None, None
        self._mtime = st.st_mtime_ns
        if st.st_size > MAX_BYTES:
            return None, f"{CONTROL_FILE} is {st.st_size:,} bytes, more than {MAX_BYTES // 1024} KiB: ignored unread"
        try:
            content = json.loads(self.path.read_text(), parse_constant=_no_constant)
        except (OSError, ValueError) as e:
            return None, f"{CONTROL_FILE} is not valid JSON ({e}): ignored"
        if not isinstance(content, dict):
            return None, f"{CONTROL_FILE} must hold a JSON object, not {type(content).__name__}: ignored"
        seq = content.get("seq")
        if not isinstance(seq, int) or isinstance(seq, bool) or seq < 0:
            return None, f"{CONTROL_FILE}: seq must be a whole number ≥ 0, got {seq!r}: ignored"
        if seq <= self.seq:
            return None, None
        self.seq = seq
        return content, None


def _no_constant(name: str):
    raise ValueError(f"{name} is not a number JSON allows")
