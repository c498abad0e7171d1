"""One CPU budget for the processes we start: the map worker runs its share of threads at the lowest priority (nice
19, and Linux's idle class), its idle OpenMP threads sleeping (core/cpu_budget.py)."""

import os

import numpy as np
import pytest

from core import cpu_budget
from explorer.projection import ProjectionService, worker_environment


@pytest.mark.slow  # starts a worker process and draws a map in it (about 15 s on two cores)
def test_the_map_worker_runs_one_thread_at_a_lower_priority_and_draws_maps(monkeypatch):
    monkeypatch.delenv("OMP_WAIT_POLICY", raising=False)
    monkeypatch.delenv(cpu_budget.MAP_THREADS_ENV, raising=False)
    monkeypatch.delenv(cpu_budget.MAP_IDLE_ENV, raising=False)
    before = dict(os.environ)
    svc = ProjectionService(processes=True)
    try:
        with worker_environment():  # as `submit` does: the worker starts with its share in its environment
            nice = svc._executor().submit(os.nice, 0).result(120)
        assert dict(os.environ) == before  # the server's own environment is left as it was
        assert nice == min(19, os.nice(0) + cpu_budget.MAP_NICE)
        if hasattr(os, "SCHED_IDLE"):  # Linux: the idle class, a core only when nothing else wants it
            assert svc._executor().submit(os.sched_getscheduler, 0).result(60) == os.SCHED_IDLE
        for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
            assert svc._executor().submit(os.getenv, name).result(60) == "1"
        assert svc._executor().submit(os.getenv, "OMP_WAIT_POLICY").result(60) == "PASSIVE"
        # and it still draws maps: three separated blobs stay separated
        rng = np.random.default_rng(0)
        x = np.concatenate([rng.normal(c, 0.3, (60, 5)) for c in (0, 5, 10)]).astype(np.float32)
        y, seconds, _ = svc.submit(("run", "Z", "t-SNE", 1), x).future.result(120)
        centres = np.stack([y[i * 60:(i + 1) * 60].mean(0) for i in range(3)])
        spread = max(np.linalg.norm(y[i * 60:(i + 1) * 60] - centres[i], axis=1).mean() for i in range(3))
        gaps = min(np.linalg.norm(centres[i] - centres[j]) for i in range(3) for j in range(i + 1, 3))
        assert gaps > 2 * spread and seconds > 0
    finally:
        svc.shutdown()


def test_budget_settings_and_overrides(monkeypatch):
    assert cpu_budget.cores() >= 1
    assert cpu_budget.share(2, total=2) == 1 and cpu_budget.share(4, total=2) == 1 and cpu_budget.share(1, 8) == 8
    monkeypatch.setenv(cpu_budget.MAP_THREADS_ENV, "99")
    assert cpu_budget.map_threads() == cpu_budget.cores()  # capped at the cores there are
    monkeypatch.setenv(cpu_budget.MAP_THREADS_ENV, "many")
    assert cpu_budget.map_threads() == 1  # a malformed value falls back to the default
    monkeypatch.setenv(cpu_budget.MAP_NICE_ENV, "3")
    assert cpu_budget.map_nice() == 3
    assert cpu_budget.map_idle_class()  # the default
    for value, idle in (("0", False), ("1", True), ("7", True), ("no", True)):  # clamped; malformed: the default
        monkeypatch.setenv(cpu_budget.MAP_IDLE_ENV, value)
        assert cpu_budget.map_idle_class() is idle

    monkeypatch.setenv("OMP_WAIT_POLICY", "ACTIVE")  # what a user set is kept
    assert cpu_budget.quiet_environment()["OMP_WAIT_POLICY"] == "ACTIVE"
    monkeypatch.delenv("OMP_WAIT_POLICY")
    assert cpu_budget.quiet_environment({"A": "1"}) == {"A": "1", "OMP_WAIT_POLICY": "PASSIVE"}


@pytest.mark.slow  # a server process and its worker (about 10 s)
def test_the_map_worker_ends_when_its_server_is_killed(tmp_path):
    import signal
    import subprocess
    import sys
    import time

    server = subprocess.Popen([sys.executable, "-c", (
        "import sys, time\n"
        "from explorer.projection import ProjectionService\n"
        "svc = ProjectionService(processes=True)\n"
        "svc.prewarm()\n"
        "print(svc._executor().submit(__import__('os').getpid).result(120), flush=True)\n"
        "time.sleep(600)\n")], stdout=subprocess.PIPE, text=True, cwd=str(tmp_path),
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    worker = int(server.stdout.readline())
    assert os.path.exists(f"/proc/{worker}")
    server.send_signal(signal.SIGKILL)  # no shutdown of the pool: the worker must notice by itself
    server.wait(30)
    deadline = time.time() + 30
    while time.time() < deadline and os.path.exists(f"/proc/{worker}"):
        try:
            if open(f"/proc/{worker}/stat").read().split()[2] == "Z":
                break  # ended; a zombie until its new parent reaps it
        except OSError:
            break
        time.sleep(0.2)
    alive = os.path.exists(f"/proc/{worker}") and open(f"/proc/{worker}/stat").read().split()[2] != "Z"
    assert not alive, "the map worker outlived its server"


@pytest.mark.slow  # a short-lived server process and its worker (about 10 s)
def test_a_map_worker_whose_server_died_while_it_started_ends_too(tmp_path):
    """A server killed in the seconds its map worker spends importing left the worker to init before the worker
    looked at its parent; it waited for work forever (850 MB each; found after a test session)."""
    import subprocess
    import sys
    import time

    out = subprocess.run([sys.executable, "-c", (
        "import os\n"
        "from explorer.projection import ProjectionService\n"
        "pool = ProjectionService(processes=True)._executor()\n"
        "pool.submit(os.getpid)  # starts the worker\n"
        "print(*pool._processes, flush=True)\n"
        "os._exit(0)  # gone before the worker has imported anything\n")], capture_output=True, text=True,
        cwd=str(tmp_path), env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}, timeout=120).stdout
    worker = int(out.split()[0])
    deadline = time.time() + 60
    alive = True
    while alive and time.time() < deadline:
        try:
            alive = open(f"/proc/{worker}/stat").read().split()[2] != "Z"
        except OSError:
            alive = False
        time.sleep(0.2)
    if alive:
        os.kill(worker, 9)
    assert not alive, "the map worker outlived a server that died while it started"


def test_a_tuning_session_splits_the_cores_it_may_use_not_the_machines(monkeypatch):
    from core import tuning

    monkeypatch.setattr(os, "cpu_count", lambda: 16)
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {3})  # pinned to one core of sixteen
    assert tuning.cpu_threads(2) == (1, 1)
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(8)))
    assert tuning.cpu_threads(2) == (4, 8) and tuning.cpu_threads(3) == (2, 8)
