"""What each view is given for a known run directory (no browser, no UI library)."""

import json
import time

import numpy as np
import pandas as pd
import pytest

from core.errors import UserError
from core.methods import DCCS, DCSM
from core.rundir import Probe, Run, RunWriter, Snapshot
from explorer import images, viewdata
from explorer.launcher import check_path, launch, launch_state, stop
from explorer.runs import RunsFolder, read_run_info


def known_snapshot():
    # 6 images, 3 clusters, 2 classes; z_c chosen by hand
    z_c = np.array([[0.9, 0.05, 0.05], [0.8, 0.1, 0.1], [0.1, 0.7, 0.2], [0.2, 0.6, 0.2], [0.1, 0.1, 0.8],
                    [0.5, 0.4, 0.1]], np.float32)
    labels = np.array([1, 1, 0, 0, 0, 1])
    return Snapshot(step=10, epoch=1.0, z_c=z_c, z_s=np.zeros((6, 2), np.float32), pred=z_c.argmax(1),
                    confidence=z_c.max(1), labels=labels, metrics={})


def known_probe():
    imgs = np.arange(6 * 4 * 4, dtype=np.uint8).reshape(6, 1, 4, 4)
    return Probe(indices=np.array([10, 11, 12, 13, 14, 15]), images=imgs, labels=np.array([1, 1, 0, 0, 0, 1]),
                 class_names=["shoe", "bag"])


def test_curves_are_grouped_smoothed_and_follow_the_x_axis():
    records = [{"kind": "train", "step": s, "time": 2.0 * s, "epoch": s / 10, "wasserstein": float(s),
                "mi_loss": 1.0, "aug_loss": 0.5, "adv_loss": -1.0} for s in (1, 2, 3)]
    records[-1].update(acc=0.7, nmi=0.6, ari=0.5)
    panels = viewdata.panels(DCCS.describe())  # what config.json says about a DCCS run
    labels = viewdata.curve_labels(panels)
    groups = dict(viewdata.curve_groups(records, panels))
    assert list(groups) == ["Wasserstein estimate (−L^C)", "DCCS losses", "Accuracy (labels used for evaluation only)"]
    assert groups["Wasserstein estimate (−L^C)"] == ["wasserstein"]
    # a DCSM panel titled like an engine panel adds its curve there, after the engine's
    health = dict(viewdata.panels(DCSM.describe()))["Cluster health"]
    assert [k for k, _ in health] == ["mean_max_prob", "size_entropy", "standard_share"]
    frame = viewdata.curve_frame(records, ["wasserstein", "acc"], x="time", labels=labels)
    w = frame[frame.metric == "W curve (−L^C)"]
    assert w.x.tolist() == [2.0, 4.0, 6.0] and w.value.tolist() == [1.0, 2.0, 3.0]
    assert frame[frame.metric == "ACC"].value.tolist() == [0.7]
    # EMA with bias correction: weight 0.5 -> 1, (0.5*1*0.5 + 0.5*2)/(0.75) = 1.6667, ...
    sm = viewdata.curve_frame(records, ["wasserstein"], smoothing=0.5, labels=labels).value.tolist()
    assert sm[0] == pytest.approx(1.0) and sm[1] == pytest.approx((0.25 + 1.0) / 0.75)
    assert viewdata.curve_frame([], ["acc"]).empty


def test_embedding_frame_has_positions_clusters_labels_and_thumbnails():
    snap, probe = known_snapshot(), known_probe()
    xy = np.arange(12, dtype=float).reshape(6, 2)
    thumbs = images.data_uris(probe.images)
    frame = viewdata.embedding_frame(xy, snap, probe, thumbs)
    assert frame.cluster.tolist() == ["c0", "c0", "c1", "c1", "c2", "c0"]
    assert frame.label.tolist() == ["bag", "bag", "shoe", "shoe", "shoe", "bag"]
    assert frame.confidence.tolist() == pytest.approx([0.9, 0.8, 0.7, 0.6, 0.8, 0.5])
    assert frame["index"].tolist() == [10, 11, 12, 13, 14, 15]
    assert frame.thumb[0].startswith("data:image/png;base64,")
    assert viewdata.space(snap, "Z").shape == (6, 5) and viewdata.space(snap, "Z_s").shape == (6, 2)
    with pytest.raises(ValueError):
        viewdata.space(snap, "W")


def test_confusion_is_aligned_by_matching_and_named():
    view = viewdata.confusion_view(known_snapshot(), known_probe())
    # class 0 (shoe) is mostly cluster c1 (2 of 3), class 1 (bag) is c0 (3 of 3); c2 is unmatched
    assert view.class_names == ["shoe", "bag"]
    assert view.cluster_names[:2] == ["c1", "c0"] and view.cluster_names[2] == "c2"
    assert view.matrix.tolist() == [[2, 0, 1], [0, 3, 0]]
    assert view.frame()["count"].sum() == 6
    unlabelled = known_snapshot()
    unlabelled.labels = None
    assert viewdata.confusion_view(unlabelled) is None
    assert viewdata.cluster_sizes(unlabelled)["size"].tolist() == [3, 2, 1]


def test_gallery_ranks_members_by_cluster_probability_in_class_order():
    g = viewdata.gallery(known_snapshot(), per_cluster=2)
    assert [c for c, _, _ in g] == [1, 0, 2]  # c1 matches class 0, c0 matches class 1, then the unmatched c2
    rows = {c: r.tolist() for c, r, _ in g}
    # members only, most probable first: c0 holds rows 0, 1, 5 (p 0.9, 0.8, 0.5); c2 holds row 4 alone (row 2
    # has a higher p(c2) than row 5 but belongs to c1, so it is not shown under c2)
    assert rows == {0: [0, 1], 1: [2, 3], 2: [4]}
    assert {c: n for c, _, n in g} == {0: 3, 1: 2, 2: 1}
    empty = known_snapshot()
    empty.pred = np.array([0, 0, 1, 1, 1, 0])  # nobody in c2
    assert [(c, r.tolist(), n) for c, r, n in viewdata.gallery(empty)][-1] == (2, [], 0)


def test_named_clusters_are_shown_by_number_and_name():
    names = {1: "shoes"}
    assert viewdata.cluster_label(1, names) == "c1 · shoes" and viewdata.cluster_label(0, names) == "c0"
    assert viewdata.confusion_view(known_snapshot(), known_probe(), names).cluster_names == ["c1 · shoes", "c0", "c2"]
    assert viewdata.confusion_view(known_snapshot(), known_probe()).clusters == [1, 0, 2]
    sel = viewdata.selection(known_snapshot(), [0, 3], known_probe(), cluster_names=names)
    assert sel.cluster.tolist() == ["c0", "c1 · shoes"]
    frame = viewdata.embedding_frame(np.zeros((6, 2)), known_snapshot(), known_probe(), names=names)
    assert frame.cluster.tolist() == ["c0", "c0", "c1 · shoes", "c1 · shoes", "c2", "c0"]
    assert viewdata.cluster_sizes(known_snapshot(), names).cluster.tolist() == ["c0", "c1 · shoes", "c2"]


def test_selection_lists_the_most_confident_first():
    sel = viewdata.selection(known_snapshot(), [5, 0, 99, 3], known_probe())
    assert sel.row.tolist() == [0, 3, 5]  # 99 is out of range
    assert sel.label.tolist() == ["bag", "shoe", "bag"] and sel.cluster.tolist() == ["c0", "c1", "c0"]


def test_tiles_and_pngs():
    imgs = np.zeros((5, 1, 4, 4), np.uint8)
    imgs[2] = 200
    grid = images.tile(imgs, ncols=3, pad=1)
    assert grid.shape == (2 * 5 + 1, 3 * 5 + 1)
    assert grid[1, 11] == 200 and grid[0, 0] == 255
    colour = images.tile(np.zeros((2, 3, 4, 4), np.uint8), ncols=2)
    assert colour.shape == (6, 11, 3)
    assert images.png_bytes(imgs[0])[:4] == b"\x89PNG"


def test_runs_folder_lists_states_and_survives_bad_input(tmp_path):
    folder = RunsFolder(tmp_path / "missing")
    runs, message = folder.scan()
    assert runs == [] and "does not exist" in message
    root = tmp_path / "runs"
    w = RunWriter(root / "good")
    w.create({"settings": {"method": "dccs", "dataset": "digits", "steps": 10, "beta_aug": 2.0}, "created": 1.0})
    w.status("finished", step=10, total_steps=10)
    (root / "broken").mkdir()
    (root / "broken" / "config.json").write_text("{not json")
    (root / "launched").mkdir()
    (root / "launched" / "launch.json").write_text('{"pid": -1}')
    (root / "launched" / "train.log").write_text("loading\nerror: unknown data set 'x'\n")
    (root / "not-a-run").mkdir()
    runs, message = RunsFolder(root).scan()
    assert message is None
    by = {r.name: r for r in runs}
    assert set(by) == {"good", "broken", "launched"}
    assert by["good"].state == "finished" and by["good"].beta_aug == 2.0 and by["good"].total_steps == 10
    assert by["broken"].state == "broken" and "cannot be read" in by["broken"].message
    assert by["launched"].state == "failed" and by["launched"].message == "error: unknown data set 'x'"


def test_paths_typed_into_the_app_are_checked(tmp_path):
    with pytest.raises(UserError, match="empty"):
        check_path("  ")
    with pytest.raises(UserError, match="does not exist"):
        check_path(str(tmp_path / "nope"))
    with pytest.raises(UserError, match="control characters"):
        check_path("runs\n/../x")
    (tmp_path / "f.txt").write_text("x")
    with pytest.raises(UserError, match="not a folder"):
        check_path(str(tmp_path / "f.txt"), folder=True)
    assert check_path(str(tmp_path)) == tmp_path.resolve()


@pytest.mark.slow
def test_launch_runs_training_in_its_own_process_and_stop_ends_it(tmp_path):
    run_dir = launch(tmp_path / "runs", dataset="digits", steps=100000, device="cpu",
                     extra_args=("--batch-size", "32", "--log-every", "2", "--eval-every", "0"))
    deadline = time.time() + 120
    while time.time() < deadline and read_run_info(run_dir).state != "running":
        time.sleep(0.2)
    info = read_run_info(run_dir)
    assert info.state == "running" and info.method == "dccs" and info.live
    stop(run_dir, wait=60)
    deadline = time.time() + 60
    while time.time() < deadline and read_run_info(run_dir).live:
        time.sleep(0.2)
    info = read_run_info(run_dir)
    assert info.state == "stopped" and Run(run_dir).checkpoint_steps()
    failed = launch(tmp_path / "runs", dataset="digits", steps=5, extra_args=("--num-clusters", "1"))
    deadline = time.time() + 60
    while time.time() < deadline and launch_state(failed)[0] == "starting":
        time.sleep(0.2)
    assert read_run_info(failed).state == "failed"
    assert "at least 2" in read_run_info(failed).message
    with pytest.raises(UserError):
        launch(tmp_path / "runs", dataset=str(tmp_path / "no-such-data"))


@pytest.mark.slow
def test_launch_starts_a_dcsm_run_and_leaves_out_the_dccs_only_beta(tmp_path):
    run_dir = launch(tmp_path / "runs", method="dcsm", dataset="digits", steps=2, beta_aug=3.0, device="cpu",
                     extra_args=("--backbone-width", "8", "--repeats", "1", "--eval-every", "0",
                                 "--probe-size", "100"))
    assert "--beta-aug" not in json.loads((run_dir / "launch.json").read_text())["cmd"]
    deadline = time.time() + 120
    while time.time() < deadline and read_run_info(run_dir).state not in ("finished", "failed"):
        time.sleep(0.2)
    info = read_run_info(run_dir)
    assert info.state == "finished" and info.method == "dcsm", info.message
    with pytest.raises(UserError, match="unknown method"):
        launch(tmp_path / "runs", method="dcsx")


def test_export_tables_name_files_clusters_and_labels():
    from explorer import exports

    probe = known_probe()
    probe.names = [f"bag/{i}.jpg" for i in range(6)]
    table = exports.selection_table(known_snapshot(), probe, [5, 0, 4, 99], {0: "bags"})
    # most confident first: row 0 (0.9), row 4 (0.8), row 5 (0.5); 99 is not a probe row
    assert table["index"].tolist() == [10, 14, 15] and table["name"].tolist() == ["bag/0.jpg", "bag/4.jpg", "bag/5.jpg"]
    assert table.cluster.tolist() == [0, 2, 0] and table.cluster_name.tolist() == ["bags", "", "bags"]
    assert table.label.tolist() == ["bag", "shoe", "bag"]
    assert exports.cluster_table(known_snapshot(), probe, 1)["index"].tolist() == [12, 13]
    assert exports.csv_bytes(table).decode().splitlines()[0] == "index,name,cluster,cluster_name,confidence,label"
    import io
    import zipfile

    with zipfile.ZipFile(io.BytesIO(exports.images_zip(table, probe))) as z:
        assert sorted(z.namelist()) == ["c0/000010_bag_0.png", "c0/000015_bag_5.png", "c2/000014_bag_4.png",
                                        "images.csv"]
    with pytest.raises(ValueError, match="at most 2"):
        exports.images_zip(table, probe, limit=2)
