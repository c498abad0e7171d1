"""One budget of CPU cores for the processes a session starts (trainer, map worker, tuning runs).

Two processes that each take every core run several times slower than either alone (measured on 2 cores: a trainer
step 6.6× slower beside a t-SNE that also took every core), because each one's threads wait for cores the other
holds. So: the trainer keeps every core (torch's default, or `--threads`), the map worker runs one thread at the
lowest priority (it gets the moments the trainer leaves, and never pushes the trainer off a core) and its idle
threads sleep instead of spinning; tuning runs side by side split the cores between them (core/tuning.py). The
trainer's own OpenMP threads keep libgomp's default spin-then-sleep: making them sleep at once
(OMP_WAIT_POLICY=PASSIVE) made a digits step 39 % slower (docs/benchmarks.md, "Watching a run"). Overrides:
`--threads` for a run, DCE_MAP_THREADS, DCE_MAP_NICE and DCE_MAP_IDLE for the map worker.
"""

from __future__ import annotations

import os

MAP_NICE = 19  # the map worker takes only what the trainer leaves (the lowest priority)
MAP_THREADS_ENV, MAP_NICE_ENV, MAP_IDLE_ENV = "DCE_MAP_THREADS", "DCE_MAP_NICE", "DCE_MAP_IDLE"


def cores() -> int:
    """The cores this process may run on (its affinity mask, which containers and `taskset` narrow)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def share(parts: int, total: int | None = None) -> int:
    """Threads for each of `parts` processes that run side by side."""
    return max(1, (total or cores()) // max(1, parts))


def env_int(name: str, default: int, low: int, high: int) -> int:
    """An integer setting from the environment, clamped to [low, high]; the default when unset or not a number."""
    try:
        return min(high, max(low, int(os.environ.get(name, default))))
    except ValueError:
        return default


def map_threads() -> int:
    """Threads of the map worker: one unless DCE_MAP_THREADS says otherwise."""
    return env_int(MAP_THREADS_ENV, 1, 1, cores())


def map_nice() -> int:
    return env_int(MAP_NICE_ENV, MAP_NICE, 0, 19)


def map_idle_class() -> bool:
    """Whether the map worker runs in Linux's idle scheduling class (DCE_MAP_IDLE=0 keeps it in the normal one)."""
    return env_int(MAP_IDLE_ENV, 1, 0, 1) == 1


def lower_priority(niceness: int | None = None, idle_class: bool | None = None) -> None:
    """Make this process yield its core to the trainer (best effort: some systems refuse). In the idle class
    (SCHED_IDLE) it runs only on a core nothing else wants, and a waking trainer thread takes the core back at
    once; nice 19 alone still leaves it a share of a busy core (measured on 2 cores, digits quick start watched,
    400 steps: median step 0.148 s at nice 19, 0.134 s in the idle class; alone 0.107 s)."""
    try:
        os.nice(map_nice() if niceness is None else niceness)
    except (AttributeError, OSError):
        pass
    if map_idle_class() if idle_class is None else idle_class:
        try:
            os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
        except (AttributeError, OSError):
            pass


def quiet_environment(env: dict | None = None) -> dict:
    """An environment for the map worker: its OpenMP threads sleep when idle instead of spinning on a core the
    trainer needs (kept as the user set it, if set)."""
    env = dict(os.environ if env is None else env)
    env.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    return env

