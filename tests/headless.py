"""The explorer served on a free port and opened in headless Chromium: shared by the browser tests and the
benchmarks that drive a page (`benchmarks/screenshots.py`, `metrics_load.py`, `watch_cost.py`).

Debian's chromium through Playwright (its own browser download does not work on these machines), with the flags a
root user in a container needs."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launch_context(playwright, profile: Path, width: int = 1600, height: int = 1100):
    """A headless Chromium context with an empty profile folder (Playwright refuses --user-data-dir in args)."""
    return playwright.chromium.launch_persistent_context(str(profile), executable_path=CHROMIUM, headless=True,
                                                         args=ARGS, viewport={"width": width, "height": height})


def goto(page, url: str, timeout: float = 60):
    """Navigate `page` to `url`, retrying while the server behind it is still starting; returns the page."""
    deadline = time.time() + timeout
    while True:
        try:
            page.goto(url)
            return page
        except Exception:
            if time.time() > deadline:
                raise
            time.sleep(0.5)


def stop(proc: subprocess.Popen, wait: float = 30) -> None:
    """Terminate a process, killing it when it does not end within `wait` seconds (a busy server on two shared
    cores may be slow to stop: never hide the caller's own error behind a timeout here)."""
    proc.terminate()
    try:
        proc.wait(wait)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(wait)


class ExplorerServer:
    """`panel serve apps/explorer_app.py --runs ROOT [extra]` on a free port of 127.0.0.1, from `repo`'s checkout;
    its output goes to `log` (a path) or nowhere. A context manager: the server stops on exit."""

    def __init__(self, root: Path, *extra: str, repo: Path = REPO, log: Path | None = None):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/explorer_app"
        self._log = open(log, "w") if log else None
        out = self._log or subprocess.DEVNULL
        self.proc = subprocess.Popen([sys.executable, "-m", "panel", "serve", "apps/explorer_app.py", "--address",
                                      "127.0.0.1", "--port", str(self.port), "--args", "--runs", str(root), *extra],
                                     cwd=repo, stdout=out, stderr=subprocess.STDOUT,
                                     env={**os.environ, "PYTHONPATH": str(repo)})

    def wait_listening(self, timeout: float = 120) -> None:
        """Return once the server accepts connections."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    return
            except OSError:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"the explorer server ended with code {self.proc.returncode}")
                time.sleep(0.3)
        raise RuntimeError("the explorer server did not start")

    def open(self, page, timeout: float = 60):
        """Navigate `page` to the app, retrying while the server is still starting; returns the page."""
        return goto(page, self.url, timeout)

    def close(self) -> None:
        stop(self.proc)
        if self._log:
            self._log.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
