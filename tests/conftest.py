"""Shared fixtures: the repository's shared data (beside the clone, as in CI) and small runs."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from core.cpu_budget import cores, share

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"


def _pin_worker() -> bool:
    """Under pytest-xdist, give each worker process its own cores (DCX_TEST_PIN=0: leave them shared).

    Every process a test starts (a trainer, a notebook's kernel, a map worker, Chromium) inherits the worker's
    affinity mask, and the engine sizes its threads by that mask (core/cpu_budget.py): so the workers' tests never
    compete for a core, whatever they start — two processes that each take every core run several times slower."""
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    name = os.environ.get("PYTEST_XDIST_WORKER", "")
    if workers < 2 or not name.startswith("gw") or os.environ.get("DCX_TEST_PIN", "1") == "0":
        return False
    try:
        available = sorted(os.sched_getaffinity(0))
        index = int(name[2:])
        # a worker that replaces a crashed one (gw2, ...) takes the cores of the slot it has the number of
        mine = available[index % workers::workers] or [available[index % len(available)]]
        os.sched_setaffinity(0, mine)
    except (AttributeError, OSError, ValueError):
        return False
    return True


# two threads, or the worker's own cores (above), or a share of the cores when the workers are not pinned: the
# workers share one budget of cores, as the processes the explorer starts do (core/cpu_budget.py)
_workers = 1 if _pin_worker() else int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
torch.set_num_threads(share(_workers, min(2, cores())))


def pytest_collection_modifyitems(config, items):
    """The long tests first (notebooks, then training and browser tests): make test hands them out to whichever
    worker is free (tests/run_suite.sh), so the workers end on short tests rather than one of them finishing a long
    one alone. In one process the order stays pytest's, which sets each module's fixtures up once."""
    if not os.environ.get("PYTEST_XDIST_WORKER"):
        return

    def rank(item):
        return (0 if item.get_closest_marker("notebook") else
                1 if item.get_closest_marker("slow") or item.get_closest_marker("browser") else 2)
    items.sort(key=rank)


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    """Decoded-image caches go to a per-session temporary folder, never the user's home."""
    monkeypatch.setenv("DCX_CACHE", str(tmp_path_factory.getbasetemp() / "dcx-cache"))


def shared_file(name: str) -> Path:
    path = SHARED_DATA / name
    if not path.exists():
        pytest.fail(f"{path} is missing: the shared data must sit beside the repository (../shared/data)")
    return path


# The finished DCCS run on digits that the app, browser and dashboard tests look at, trained once per test session
# (a few seconds): 60 steps of 32 images, a record every 10, an evaluation every 20, snapshots at steps 1, 20, 40
# and 60 of a 500-image probe.
DIGITS_RUN = dict(dataset="digits", steps=60, batch_size=32, snapshot_every=20, log_every=10, eval_every=20,
                  probe_size=500, progress=False)


@pytest.fixture(scope="session")
def digits_run_template(tmp_path_factory) -> Path:
    from core import TrainConfig
    from core.trainer import Trainer

    run_dir = tmp_path_factory.mktemp("shared-runs") / "digits-finished"
    Trainer(TrainConfig(run_dir=str(run_dir), **DIGITS_RUN)).fit()
    return run_dir


def copy_run(template: Path, dest: Path) -> Path:
    """A copy of a run folder (tests change their copy, never the shared one).

    Its checkpoints are hard links to the template's (about 90 MiB each for the digits network; dozens of copies
    filled CI's disk): the engine never writes a checkpoint in place — it writes a new file and renames it over the
    old name, and prunes by unlinking — so a copy that trains on leaves the template's files as they were."""
    import shutil

    from core.io import link_atomic  # a hard link, or a copy where links are not supported

    def link_checkpoints(src, dst):
        if Path(src).suffix != ".pt":
            return shutil.copy2(src, dst)
        link_atomic(Path(src), Path(dst))
        return dst

    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.copytree(template, dest, copy_function=link_checkpoints)
    return dest


# Damaged entries of a runs folder, each of another kind, and the line each must be listed with (state 'broken';
# the line names the folder). The explorer's run list and the browser test use them (docs/reliability.md).
BROKEN_ENTRIES = {
    "cfg-list": r"cfg-list/config\.json is not a run's configuration: it holds no settings object",
    "cfg-not-json": r"cfg-not-json/config\.json cannot be read",
    "cfg-binary": r"cfg-binary/config\.json cannot be read",
    "cfg-no-settings": r"cfg-no-settings/config\.json is not a run's configuration: it holds no settings object",
    "cfg-wrong-types": r"cfg-wrong-types: settings\.steps is 'abc', not a whole number",
    "cfg-is-a-folder": r"cfg-is-a-folder: config\.json is a folder",
    "status-binary": r"status-binary: status\.json is damaged and there is no summary\.json",
    "launch-damaged": r"launch-damaged: launch\.json is damaged \(not text\)",
    "launch-wrong-shape": r"launch-wrong-shape: launch\.json is damaged \(a JSON list, not an object\)",
    "launch-bad-pid": r"launch-bad-pid: launch\.json is damaged \(pid 'abc' is not a whole number\)",
}
# Runs whose list entry is fine but whose damage shows when they are opened (the message names the run).
DAMAGED_ON_OPEN = {
    "metrics-binary": r"metrics-binary: \d+ damaged line\(s\) in metrics\.jsonl",
    "snapshot-empty": r"snapshot-empty: snapshot at step 60 is damaged",
    "probe-damaged": r"probe-damaged: probe\.npz is damaged",
}


def make_broken_entries(root: Path, good_run: Path) -> None:
    """Fill `root` with BROKEN_ENTRIES and DAMAGED_ON_OPEN (copies of `good_run`, a finished run, where needed)."""
    import json

    binary = bytes(range(256)) * 4

    def entry(name, files):
        (root / name).mkdir(parents=True)
        for rel, content in files.items():
            path = root / name / rel
            path.write_bytes(content if isinstance(content, bytes) else content.encode())

    entry("cfg-list", {"config.json": "[1, 2, 3]"})
    entry("cfg-not-json", {"config.json": "{not json"})
    entry("cfg-binary", {"config.json": binary})
    entry("cfg-no-settings", {"config.json": "{}"})
    entry("cfg-wrong-types", {"config.json": json.dumps({"settings": {"method": "dccs", "dataset": "digits",
                                                                     "steps": "abc"}})})
    (root / "cfg-is-a-folder" / "config.json").mkdir(parents=True)
    copy_run(good_run, root / "status-binary")
    (root / "status-binary" / "summary.json").unlink()
    (root / "status-binary" / "status.json").write_bytes(binary)
    entry("launch-damaged", {"launch.json": binary})
    entry("launch-wrong-shape", {"launch.json": "[1, 2]"})
    entry("launch-bad-pid", {"launch.json": '{"pid": "abc", "cmd": []}'})
    copy_run(good_run, root / "metrics-binary")
    (root / "metrics-binary" / "metrics.jsonl").write_bytes(binary.replace(b"\n", b"") + b"\n" + binary + b"\n")
    copy_run(good_run, root / "snapshot-empty")
    for snap in (root / "snapshot-empty" / "snapshots").iterdir():
        snap.unlink()
    (root / "snapshot-empty" / "snapshots" / "step_00000060.npz").write_bytes(b"")
    copy_run(good_run, root / "probe-damaged")
    (root / "probe-damaged" / "probe.npz").write_bytes(b"PK\x03\x04" + binary)
