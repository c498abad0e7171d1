"""Comparing runs: the table's values against the run files, the settings that differ, archive and delete (moved to
the trash, refused for a live run, only after a second click), and the Compare tab's charts (one line per run)."""

import json
import os
import socket
import time

import holoviews as hv
import pytest

from conftest import copy_run
from core import Run
from core.errors import UserError
from explorer import compare
from explorer.app import ExplorerApp
from explorer.compare_view import ComparePanel
from explorer.projection import ProjectionService
from explorer.runs import RunsFolder


def edit_config(run, **settings):
    path = run / "config.json"
    config = json.loads(path.read_text())
    config["settings"].update(settings)
    path.write_text(json.dumps(config))


def set_created(run, created):
    path = run / "config.json"
    config = json.loads(path.read_text())
    config["created"] = created
    path.write_text(json.dumps(config))


def rewrite_metrics(run, change):
    """Rewrite metrics.jsonl through `change(records) -> records` (all kinds)."""
    lines = (run / "metrics.jsonl").read_text().splitlines()
    records = change([json.loads(line) for line in lines if line.strip()])
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))


def with_beta(records, beta, from_step=0):
    return [dict(r, beta_aug=beta) if r.get("kind") == "train" and r["step"] > from_step else r for r in records]


def add_set_record(records, step, value, previous):
    """A β_Aug change taken at `step` (after that step's train record), applied from the step after."""
    out = []
    for r in records:
        out.append(r)
        if r.get("kind") == "train" and r["step"] == step:
            out.append({"kind": "set", "step": step, "epoch": r["epoch"], "time": r["time"],
                        "timestamp": r["timestamp"], "setting": "beta_aug", "value": value, "previous": previous,
                        "source": "control"})
    return with_beta(out, value, from_step=step)


@pytest.fixture()
def runs(tmp_path, digits_run_template):
    """a: the finished digits run; b: β_Aug 3 and seed 1 (records say 3 too); c: lr changed, and β_Aug moved to 4 at
    step 30 by a `set` record. Created a, b, c in that order (newest last)."""
    root = tmp_path / "runs"
    a = copy_run(digits_run_template, root / "a")
    b = copy_run(digits_run_template, root / "b")
    c = copy_run(digits_run_template, root / "c")
    created = json.loads((a / "config.json").read_text())["created"]
    edit_config(b, beta_aug=3.0, seed=1)
    rewrite_metrics(b, lambda recs: with_beta(recs, 3.0))
    before = json.loads((c / "config.json").read_text())["settings"]["beta_aug"]
    edit_config(c, lr=5e-4)
    rewrite_metrics(c, lambda recs: add_set_record(recs, 30, 4.0, before))
    for i, run in enumerate((a, b, c)):
        set_created(run, created + i)
    return root, a, b, c


def last_with(records, key):
    return [r[key] for r in records if r.get(key) is not None][-1]


def test_run_row_holds_what_the_run_files_say(runs):
    root, a, b, c = runs
    recs = Run(a).metrics()
    row = compare.run_row(a)
    assert row["name"] == "a" and row["method"] == "DCCS" and row["data set"] == "digits"
    assert row["state"] == "finished" and row["step"] == 60 == Run(a).status()["step"]
    assert row["ACC (eval only)"] == pytest.approx(last_with(recs, "acc"))
    assert row["NMI (eval only)"] == pytest.approx(last_with(recs, "nmi"))
    assert row["ARI (eval only)"] == pytest.approx(last_with(recs, "ari"))
    assert row["Wasserstein"] == pytest.approx(last_with(recs, "wasserstein"))
    assert row["wall time (s)"] == pytest.approx(recs[-1]["time"])
    assert row["β_Aug"] == pytest.approx(recs[-1]["beta_aug"])
    assert row["archived"] is False and row["path"] == str(a)
    # β_Aug now: the last train record's, not the setting's (c's config still says the value it started with)
    assert compare.run_row(c)["β_Aug"] == 4.0 != Run(c).config["settings"]["beta_aug"]
    assert compare.run_row(b)["β_Aug"] == 3.0
    # no records yet: the setting
    rewrite_metrics(b, lambda recs: [])
    assert compare.run_row(b)["β_Aug"] == 3.0 and compare.run_row(b)["Wasserstein"] != compare.run_row(b)["Wasserstein"]

    table = compare.run_table([a, b, c])
    assert table["name"].tolist() == ["a", "b", "c"] and table.columns.tolist() == compare.COLUMNS
    assert table["step"].tolist() == [60, 60, 60] and table["β_Aug"].tolist()[2] == 4.0


def test_a_dcsm_run_has_no_wasserstein_estimate(runs):
    root, a, b, c = runs
    rewrite_metrics(b, lambda recs: [{k: v for k, v in r.items() if k not in ("wasserstein", "w_raw")}
                                     for r in recs])
    edit_config(b, method="dcsm")
    row = compare.run_row(b)
    assert row["method"] == "DCSM" and row["Wasserstein"] != row["Wasserstein"]  # NaN: a blank cell


def test_setting_differences_lists_exactly_the_changed_settings(runs):
    root, a, b, c = runs
    diffs = compare.setting_differences([a, b])
    assert set(diffs.index) == {"beta_aug", "seed"} and diffs.columns.tolist() == ["a", "b"]
    assert diffs.loc["beta_aug", "b"] == "3" and diffs.loc["seed", "b"] == "1" and diffs.loc["seed", "a"] == "0"
    assert set(compare.setting_differences([a, b, c]).index) == {"beta_aug", "seed", "lr"}
    assert set(compare.setting_differences([a, c]).index) == {"lr"}  # β_Aug moved while training, not a setting
    copy_run(a, root / "a2")
    assert compare.setting_differences([a, root / "a2"]).empty  # run_dir differs, but names the run only


def test_archive_hides_a_run_and_unarchive_shows_it(runs):
    root, a, b, c = runs
    folder = RunsFolder(root)
    compare.archive(b, root)
    assert (b / ".archived").is_file() and (b / "config.json").is_file()  # kept as it was
    names = [i.name for i in folder.scan()[0]]
    assert names == ["c", "a"]
    every = folder.scan(archived=True)[0]
    assert [(i.name, i.archived) for i in every] == [("c", False), ("b", True), ("a", False)]
    assert compare.run_row(b)["archived"] is True
    compare.unarchive(b, root)
    assert [i.name for i in folder.scan()[0]] == ["c", "b", "a"]
    with pytest.raises(UserError, match="not a run of the runs folder"):
        compare.archive(root.parent, root)
    with pytest.raises(UserError, match="not a run of the runs folder"):
        compare.archive(root / ".." / "elsewhere", root)


def live_status(run):
    (run / "status.json").write_text(json.dumps({"state": "running", "step": 10, "total_steps": 60,
                                                 "pid": os.getpid(), "host": socket.gethostname(),
                                                 "updated": time.time()}))


def test_delete_moves_runs_to_the_trash_and_refuses_a_live_run(runs, tmp_path):
    root, a, b, c = runs
    files = sorted(p.relative_to(b).as_posix() for p in b.rglob("*"))
    moved, refused = compare.delete_runs([b], root)
    assert not b.exists() and refused == [] and len(moved) == 1
    dest = moved[0]
    assert dest.parent == root / ".trash" and dest.name.startswith("b-") and dest.name.endswith("Z")
    assert sorted(p.relative_to(dest).as_posix() for p in dest.rglob("*")) == files  # everything, moved
    assert [i.name for i in RunsFolder(root).scan(archived=True)[0]] == ["c", "a"]  # the trash is not listed
    # a running run is refused and stays
    live_status(c)
    moved, refused = compare.delete_runs([c, a], root)
    assert c.is_dir() and not a.exists() and len(moved) == 1
    assert refused == ["c is running: stop it before deleting it"]
    # nothing outside the runs root, nothing in the trash itself
    outside = copy_run(root / "c", tmp_path / "elsewhere" / "x")
    moved, refused = compare.delete_runs([outside, root / ".." / "elsewhere" / "x", dest], root)
    assert moved == [] and len(refused) == 3 and outside.is_dir() and dest.is_dir()
    assert "already in the trash" in refused[2]


def test_delete_needs_a_second_click_within_five_seconds(runs):
    root, a, b, c = runs
    panel = ComparePanel(root)
    panel.refresh()
    assert panel.chosen == [str(c), str(b)]  # the newest two
    panel.choose([a, b])
    panel.delete_btn.clicks += 1
    assert panel.delete_btn.label == "Click again to delete 2 runs" and a.exists() and b.exists()
    panel._delete_armed_at -= 6  # too late: the next click asks again
    panel.refresh()
    assert panel.delete_btn.label == "Delete"
    panel.delete_btn.clicks += 1
    assert a.exists() and b.exists()
    panel.delete_btn.clicks += 1
    assert not a.exists() and not b.exists() and panel.delete_btn.label == "Delete"
    assert "moved 2 run(s)" in panel.message.object
    assert panel.table.value["name"].tolist() == ["c"] and panel.chosen == []
    # a live run: refused with a message
    live_status(c)
    panel.choose([c])
    panel.delete_btn.clicks += 1
    panel.delete_btn.clicks += 1
    assert c.is_dir() and "c is running" in panel.message.object


@pytest.fixture(scope="module")
def service():
    svc = ProjectionService(processes=False)
    yield svc
    svc.shutdown()


def test_the_compare_table_joins_the_page_once_every_run_is_read(runs, service, monkeypatch):
    """Rows that reach a Tabulator while the browser builds it are dropped: the table joins the page with all its
    rows, after the background reads of large metrics files have finished."""
    root, a, b, c = runs
    monkeypatch.setattr(compare, "BACKGROUND_BYTES", 0)  # every run's metrics are read on the reader thread
    app = ExplorerApp(root, service=service)
    tab = app.compare_tab
    app.tabs.active = app.COMPARE_TAB
    assert any(t.reading for t in tab.tracks.values()) and tab.table_slot.objects == []
    deadline = time.time() + 30
    while time.time() < deadline and not tab.table_slot.objects:
        time.sleep(0.2)
        app.tick()
    assert tab.table_slot.objects == [tab.table]
    assert tab.table.value.set_index("name").loc["a", "ACC (eval only)"] == pytest.approx(
        [r["acc"] for r in Run(a).metrics() if "acc" in r][-1])


def test_the_compare_tab_overlays_the_chosen_runs(runs, service, monkeypatch):
    root, a, b, c = runs
    read = []
    real = compare.read_chunk_kept
    monkeypatch.setattr(compare, "read_chunk_kept", lambda tail: read.append(tail.path.parent.name) or real(tail))
    app = ExplorerApp(root, service=service)
    app.tick()
    tab = app.compare_tab
    assert tab.tracks == {} and read == []  # nothing read while the tab is not shown
    assert tab.table_slot.objects == []  # the table joins the page with its rows, not before (the browser drops
    app.tabs.active = app.COMPARE_TAB   # rows that reach a Tabulator while it builds)
    assert sorted(read) == ["a", "b", "c"]
    assert tab.table.value["name"].tolist() == ["c", "b", "a"] and sorted(tab.table.selection) == [0, 1]
    assert tab.table_slot.objects == [tab.table]
    tab.choose([a, b, c])
    assert sorted(tab.table.selection) == [0, 1, 2]
    # one chart per metric, titled by its label, one line per run in each
    labels = [label for _, label in tab.metrics]
    assert labels[0] == "W curve (−L^C)" and "ACC" in labels and len(tab.charts.objects) == len(tab.pipes) == len(labels)
    for key, pipe in tab.pipes.items():
        assert sorted(pipe.data["run"].unique()) == ["a", "b", "c"], key
    acc = tab.pipes["acc"].data
    assert acc[acc.run == "a"].value.tolist() == pytest.approx([r["acc"] for r in Run(a).metrics() if "acc" in r])
    assert acc[acc.run == "b"].x.tolist() == [20.0, 40.0, 60.0]
    # c's β_Aug change: a rule at step 30 with its value, in c's colour
    rules = tab.rule_pipe.data
    assert rules[["x", "run", "setting", "value"]].values.tolist() == [[30, "c", "beta_aug", 4.0]]
    for pane, label in zip(tab.charts.objects, labels):  # each draws, titled by its metric's label
        assert hv.render(pane.object).title.text == label
    assert len({tab.colour(str(p)) for p in (a, b, c)}) == 3
    # the differences of the three
    assert set(tab.diffs.object.index) == {"beta_aug", "seed", "lr"}
    # ticks read only what is new: nothing, then the one appended line
    read.clear()
    app.tick()
    sizes = []

    def read_and_note(tail):
        chunk = real(tail)
        sizes.append((tail.path.parent.name, chunk))
        return chunk

    monkeypatch.setattr(compare, "read_chunk_kept", read_and_note)
    line = json.dumps(dict(Run(a).metrics()[-1], step=70, acc=0.99)) + "\n"
    with open(a / "metrics.jsonl", "a") as f:
        f.write(line)
    app.tick()
    assert {n: ch.nbytes for n, ch in sizes} == {"a": len(line.encode()), "b": 0, "c": 0}
    assert tab.pipes["acc"].data.query("run == 'a'").x.max() == 70
    assert tab.table.value.set_index("name").loc["a", "ACC (eval only)"] == 0.99
    # back on the Runs tab: the Compare tab reads nothing
    app.tabs.active = 0
    sizes.clear()
    app.tick()
    assert sizes == []


def test_archiving_in_the_compare_tab_hides_the_run_from_the_runs_list(runs, service):
    root, a, b, c = runs
    app = ExplorerApp(root, service=service)
    app.tabs.active = app.COMPARE_TAB
    tab = app.compare_tab
    assert app.run_select.value == str(c)
    tab.choose([c])
    tab.archive_btn.clicks += 1
    assert (c / ".archived").is_file() and c.is_dir()
    assert str(c) not in app.run_select.options.values() and app.run_select.value == str(b)  # the Runs tab's list
    assert tab.table.value["name"].tolist() == ["b", "a"] and tab.chosen == []
    tab.show_archived.value = True
    assert tab.unarchive_btn.visible and tab.table.value["name"].tolist() == ["c", "b", "a"]
    assert tab.table.value["archived"].tolist() == [True, False, False]
    tab.choose([c])
    tab.unarchive_btn.clicks += 1
    assert not (c / ".archived").exists() and str(c) in app.run_select.options.values()
