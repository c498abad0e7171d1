"""A trainer's events and its background thread: callbacks and subscribers get every record, snapshot,
checkpoint and the end as it happens; `Background` runs the training in a daemon thread for notebooks and apps."""

from __future__ import annotations

import queue
import threading
import warnings
from typing import Callable, Iterator


class EventHub:
    def __init__(self, callbacks=()):
        self.callbacks: list[Callable[[dict], None]] = list(callbacks)
        self._queues: list[queue.Queue] = []

    def add_callback(self, fn: Callable[[dict], None]) -> None:
        self.callbacks.append(fn)

    def emit(self, event: dict) -> None:
        for fn in list(self.callbacks):
            try:
                fn(event)
            except Exception as e:  # a broken view must not kill the training it watches
                warnings.warn(f"callback {getattr(fn, '__name__', fn)!r} failed and was removed: "
                              f"{type(e).__name__}: {e}", RuntimeWarning, stacklevel=2)
                self.callbacks.remove(fn)
        for q in list(self._queues):
            q.put(event)

    def subscribe(self, alive: Callable[[], bool], on_start: Callable[[], None] = lambda: None) -> Iterator[dict]:
        """Every event from now on until the 'end' event (or until `alive()` turns false with nothing queued);
        `on_start` runs once the subscription is in place (so no event is missed)."""
        q: queue.Queue = queue.Queue()
        self._queues.append(q)
        on_start()
        try:
            while True:
                try:
                    ev = q.get(timeout=0.5)
                except queue.Empty:
                    if not alive():
                        return
                    continue
                yield ev
                if ev["type"] == "end":
                    return
        finally:
            self._queues.remove(q)


class Background:
    """Runs `target` once in a daemon thread; keeps its result or its error for `join`."""

    def __init__(self, target: Callable[[], object], name: str = "trainer"):
        self._target = target
        self._name = name
        self._thread: threading.Thread | None = None
        self.result = None
        self.error: BaseException | None = None

    def start(self) -> None:
        if self._thread is not None:
            return
        self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            self.result = self._target()
        except BaseException as e:  # recorded by the target's owner too; the thread must not die loudly
            self.error = e

    @property
    def started(self) -> bool:
        return self._thread is not None

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def join(self, timeout: float | None = None):
        if self._thread is not None:
            self._thread.join(timeout)
        if self.error is not None and not self.running:
            raise self.error
        return self.result
