"""Shared fixtures: the repository's shared data (beside the clone, as in CI) and small runs."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"

torch.set_num_threads(min(2, os.cpu_count() or 1))


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
    """A copy of a run folder (tests change their copy, never the shared one)."""
    import shutil

    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.copytree(template, dest)
    return dest
