"""Every notebook runs headless in a real kernel (nbclient) without an error; the assertions inside each notebook
check what it shows. The committed notebooks carry no outputs."""

import time

import nbformat
import pytest
from nbclient import NotebookClient

from conftest import REPO

NOTEBOOKS = REPO / "notebooks"
NAMES = ["beta_tuning", "quickstart", "open_run", "dcsm_ablations"]  # the longest first (tests/conftest.py)


def test_every_notebook_is_tested_and_committed_without_outputs():
    assert sorted(p.stem for p in NOTEBOOKS.glob("*.ipynb")) == sorted(NAMES)
    for name in NAMES:
        nb = nbformat.read(NOTEBOOKS / f"{name}.ipynb", as_version=4)
        nbformat.validate(nb)
        code = [c for c in nb.cells if c.cell_type == "code"]
        assert code and all(not c.outputs and c.execution_count is None for c in code), name
        assert "FULL = False" in code[0].source, name  # the switch to the full data sets, at the top


@pytest.mark.notebook
@pytest.mark.parametrize("name", NAMES)
def test_notebook_runs_headless(name, tmp_path, monkeypatch):
    monkeypatch.setenv("DCX_RUNS", str(tmp_path / "runs"))  # the notebooks' runs folder (default ../runs)
    nb = nbformat.read(NOTEBOOKS / f"{name}.ipynb", as_version=4)
    client = NotebookClient(nb, timeout=600, kernel_name="python3",
                            resources={"metadata": {"path": str(NOTEBOOKS)}})
    started = time.time()
    try:
        client.execute()
    finally:
        nbformat.write(nb, tmp_path / f"{name}.executed.ipynb")  # to read what went wrong
    print(f"{name}: {time.time() - started:.0f} s")
    runs = [p.parent for p in (tmp_path / "runs").rglob("config.json")]  # runs, or runs of a tuning session
    assert runs, "the notebook wrote no run"
