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
