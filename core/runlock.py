"""One writer per run folder: an exclusive advisory lock (flock) on RUN/.lock, held while a trainer writes the
run. The kernel drops it when the process ends, however it ends, so a lock left by a killed process is simply taken
over; the file names the process that holds it, for the message a second writer gets."""

from __future__ import annotations

import json
import os
import socket
import time
from pathlib import Path

from .errors import RunError

try:
    import fcntl
except ImportError:  # not on Linux or macOS: no lock (documented in docs/reliability.md)
    fcntl = None

LOCK_FILE = ".lock"


class RunLock:
    def __init__(self, run_path: str | Path):
        self.path = Path(run_path) / LOCK_FILE
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self) -> None:
        """Take the lock, or RunError naming the live process that holds it."""
        if self._fd is not None or fcntl is None:
            return
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as e:  # a read-only folder or file system, no permission
            raise RunError(f"{self.path.parent} cannot be written: {self.path} cannot be opened for its lock "
                           f"({e.strerror or e}); a run needs a writable folder: make it writable, or copy the run "
                           "to one that is") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _describe(os.read(fd, 4096))
            os.close(fd)
            raise RunError(f"{self.path.parent} is being written by another process ({holder}): stop that one "
                           "first (Ctrl-C, its Stop button, or python -m core's stop), or wait until it ends") from None
        os.ftruncate(fd, 0)
        os.write(fd, json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "since": time.time()}).encode())
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None


def _describe(raw: bytes) -> str:
    try:
        info = json.loads(raw.decode())
        since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(float(info["since"])))
        return f"pid {int(info['pid'])} on {info['host']}, since {since}"
    except (ValueError, KeyError, TypeError, UnicodeDecodeError):
        return "a process that did not say which"
