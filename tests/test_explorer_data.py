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


def test_each_broken_entry_is_listed_with_its_message_and_the_rest_still_work(tmp_path, digits_run_template):
    import re

    from conftest import BROKEN_ENTRIES, DAMAGED_ON_OPEN, copy_run, make_broken_entries

    root = tmp_path / "runs"
    copy_run(digits_run_template, root / "good")
    make_broken_entries(root, digits_run_template)
    runs, message = RunsFolder(root).scan()
    assert message is None
    by = {r.name: r for r in runs}
    assert set(by) == {"good", *BROKEN_ENTRIES, *DAMAGED_ON_OPEN}
    for name, pattern in BROKEN_ENTRIES.items():
        assert by[name].state == "broken" and re.search(pattern, by[name].message), (name, by[name].message)
        assert "\n" not in by[name].message and name in by[name].label and "broken" in by[name].label
    for name in ("good", *DAMAGED_ON_OPEN):
        assert by[name].state == "finished" and by[name].step == 60, name
    stop(root / "launch-bad-pid")  # a damaged launch.json is no pid to signal
    assert launch_state(root / "launch-damaged")[0] == "broken"


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


# -- the curve store (explorer/curves.py) ------------------------------------------------------------------------

def train_records(n, start=1, eval_every=20, seed=0):
    """Records shaped as the engine's DCCS `train` records (every key it writes, evaluation keys every 20)."""
    rng = np.random.default_rng(seed)
    out = []
    for s in range(start, start + n):
        w = float(1.0 / s + 0.05 * rng.standard_normal())
        r = {"kind": "train", "step": s, "epoch": s / 56.0, "time": 0.31 * s, "timestamp": 1.7e9 + 0.31 * s,
             "critic_loss": -w, "wasserstein": w, "w_raw": w + 0.01, "gradient_penalty": float(rng.random()),
             "mi_loss": float(rng.random()), "aug_loss": float(rng.random()), "adv_loss": float(-rng.random()),
             "encoder_loss": float(rng.random()), "beta_aug": 2.0, "steps_per_s": 3.2, "images_per_s": 512.0}
        if s % eval_every == 0:
            r.update(cluster_sizes=[17, 20, 13], empty_clusters=0, size_entropy=0.97, mean_max_prob=0.8,
                     acc=float(rng.random()), nmi=0.5, ari=0.4)
        out.append(r)
    return out


def write_jsonl(path, records, mode="w"):
    with open(path, mode) as f:
        for r in records:
            f.write(json.dumps(r) + "\n")


def test_curve_store_read_in_pieces_equals_read_at_once(tmp_path):
    from core.rundir import MetricsTail
    from explorer.curves import CurveStore

    records = train_records(500)
    sets = [{"kind": "set", "step": 101, "setting": "beta_aug", "value": 3.0, "previous": 2.0, "source": "api",
             "beta_aug": 3.0}, {"kind": "event", "event": "control_ignored", "step": 300, "message": "bad"}]
    path = tmp_path / "metrics.jsonl"
    whole = records[:100] + sets[:1] + records[100:300] + sets[1:] + records[300:]
    write_jsonl(path, whole)
    once = CurveStore()
    chunk = once.read(MetricsTail(path))
    assert once.n == 500 and chunk.skipped == 0 and [p for p, _ in chunk.others] == [100, 300]
    assert once.set_records == sets[:1]
    # the same file written in pieces, one of them ending in the middle of a line
    path2 = tmp_path / "pieces.jsonl"
    text = path.read_bytes()
    tail, pieces = MetricsTail(path2), CurveStore()
    for cut in (0, 1000, 1001, 20_000, 77_777, len(text)):
        with open(path2, "ab") as f:
            f.write(text[path2.stat().st_size if path2.exists() else 0:cut])
        pieces.read(tail)
    assert pieces.n == 500 and pieces.set_records == sets[:1]
    assert set(pieces.columns.keys()) == set(once.columns.keys())
    for k in once.columns.keys():
        np.testing.assert_array_equal(pieces.column(k), once.column(k))
    # the columns hold what the records hold, NaN where a record lacks a key; lists are not columns
    np.testing.assert_array_equal(once.column("step"), np.arange(1, 501))
    acc = once.column("acc")
    assert np.isnan(acc).sum() == 500 - 25 and acc[19] == records[19]["acc"]
    assert "cluster_sizes" not in once.columns.keys() and once.last("acc") == records[499]["acc"]
    # what the curves show equals what viewdata makes of the records (with fewer than MAX_POINTS, every point)
    panels = viewdata.panels(DCCS.describe())
    assert once.groups(panels) == viewdata.curve_groups(records, panels)
    for x in ("step", "time", "epoch"):
        new = once.frame(["wasserstein", "acc"], x=x, smoothing=0.6)
        old = viewdata.curve_frame(records, ["wasserstein", "acc"], x=x, smoothing=0.6)
        pd.testing.assert_frame_equal(new, old, check_exact=False, rtol=1e-12)
    assert [r["step"] for r in once.records()] == list(range(1, 501))


def test_a_kept_read_serves_the_next_reader_and_only_while_the_file_is_unchanged(tmp_path):
    import os

    from core.rundir import MetricsTail
    from explorer.curves import CurveStore, ReadCache, read_chunk_kept

    records = train_records(300)
    path = tmp_path / "metrics.jsonl"
    write_jsonl(path, records[:200])
    cache = ReadCache()
    first = CurveStore()
    first.add(read_chunk_kept(MetricsTail(path), cache))
    # the run goes on: a second reader takes the kept 200 records and reads only the 100 written since
    write_jsonl(path, records)  # same content first, then more (rewritten in place: same inode)
    tail = MetricsTail(path)
    kept = cache.take(tail)
    assert kept is not None and kept.n == 200 and tail.offset == len(b"".join(
        (json.dumps(r) + "\n").encode() for r in records[:200]))
    second = CurveStore()
    second.add(kept)
    second.read(tail)
    whole = CurveStore()
    whole.read(MetricsTail(path))
    assert second.n == 300
    for k in whole.columns.keys():
        np.testing.assert_array_equal(second.column(k), whole.column(k))
    assert first.n == 200  # the first reader's store is its own

    # the same file with other bytes before the kept offset (a resumed run rewrote it in place): not used
    altered = [dict(r, wasserstein=r["wasserstein"] + 1) for r in records]
    write_jsonl(path, altered)
    assert cache.take(MetricsTail(path)) is None
    # replaced by another file (a new inode) or shrunk: not used either
    read_chunk_kept(MetricsTail(path), cache)
    other = tmp_path / "other.jsonl"
    write_jsonl(other, altered)
    os.replace(other, path)
    assert cache.take(MetricsTail(path)) is None
    read_chunk_kept(MetricsTail(path), cache)
    write_jsonl(path, altered[:50])
    assert cache.take(MetricsTail(path)) is None
    # a tail that has read already takes nothing; the budget drops the least recently used read
    tail = MetricsTail(path)
    tail.read()
    assert cache.take(tail) is None
    small = ReadCache(max_bytes=1)
    read_chunk_kept(MetricsTail(path), small)
    assert small.take(MetricsTail(path)) is None


def test_metric_lines_with_nan_and_damaged_lines_parse_as_json_reads_them():
    from explorer.curves import _LOADS, parse_lines

    lines = [b'{"kind": "train", "step": 1, "wasserstein": NaN, "acc": Infinity}',
             b'{"kind": "train", "step": 2, "wasserstein": 1.5}', b"", b"not json {"]
    chunk = parse_lines(lines)  # orjson refuses NaN, json the damaged line: then line by line
    assert chunk.n == 2 and chunk.skipped == 1
    np.testing.assert_array_equal(chunk.columns.get("wasserstein"), [np.nan, 1.5])
    np.testing.assert_array_equal(chunk.columns.get("acc"), [np.inf, np.nan])
    assert parse_lines(lines[1:2]).n == 1 and len(_LOADS) == 2  # orjson is installed with the project


def test_curve_store_smoothing_equals_viewdata_smooth():
    from explorer.curves import smooth

    rng = np.random.default_rng(1)
    values = rng.standard_normal(5000).cumsum()
    values[[3, 100, 4000]] = np.nan  # carried through, as viewdata.smooth does
    for weight in (0.0, 0.1, 0.6, 0.9, 0.99):
        np.testing.assert_allclose(smooth(values, weight), viewdata.smooth(values, weight), rtol=1e-10,
                                   equal_nan=True)
    assert smooth([], 0.6).size == 0 and smooth([2.5], 0.9).tolist() == [2.5]


def test_curve_store_downsampling_keeps_the_extremes_and_the_ends():
    from explorer.curves import MAX_POINTS, CurveStore, Chunk, downsample

    rng = np.random.default_rng(2)
    for n in (1, 2, 3, 1999, 2000, 2001, 2003, 10_007, 200_000):
        x = np.arange(n, dtype=float) * 10
        y = rng.standard_normal(n)
        if n > 10:
            y[n // 3] = 40.0  # one spike up, one down
            y[n // 2] = -40.0
        xs, ys = downsample(x, y)
        assert len(xs) <= MAX_POINTS and len(xs) == len(ys)
        assert xs[0] == x[0] and xs[-1] == x[-1] and ys[0] == y[0] and ys[-1] == y[-1]
        assert ys.max() == y.max() and ys.min() == y.min()
        assert np.all(np.diff(xs) > 0)  # in order, no point twice
        np.testing.assert_array_equal(ys, y[(xs / 10).astype(int)])  # real points, not averages
        if n <= MAX_POINTS:
            assert len(xs) == n
    # through the store: a long run's lines have at most MAX_POINTS points; a line with one point is kept
    chunk = Chunk()
    chunk.columns.extend({"step": np.arange(1, 50_001, dtype=float), "wasserstein": rng.standard_normal(50_000),
                          "acc": np.r_[np.full(49_999, np.nan), 0.9]}, 50_000)
    store = CurveStore()
    store.add(chunk)
    frame = store.frame(["wasserstein", "acc"], smoothing=0.6, labels={"acc": "ACC"})
    assert (frame.metric == "wasserstein").sum() <= MAX_POINTS
    assert frame[frame.metric == "ACC"][["x", "value"]].values.tolist() == [[50_000.0, 0.9]]


def test_curve_store_resets_when_a_resumed_run_rewrote_its_metrics(tmp_path):
    from core.rundir import MetricsTail
    from explorer.curves import CurveStore

    path = tmp_path / "metrics.jsonl"
    write_jsonl(path, train_records(300))
    tail, store = MetricsTail(path), CurveStore()
    store.read(tail)
    assert store.n == 300
    # resumed from the checkpoint of step 200: the lines after it are dropped, then training goes on
    write_jsonl(path, train_records(200) + [{"kind": "event", "event": "resumed", "step": 200}]
                + train_records(10, start=201, seed=5))
    chunk = store.read(tail)
    assert chunk.restarted and store.n == 210
    np.testing.assert_array_equal(store.column("step"), np.arange(1, 211))
    write_jsonl(path, train_records(5, start=211), mode="a")
    chunk = store.read(tail)
    assert not chunk.restarted and store.n == 215
    # damaged lines are skipped and counted, the rest is read
    with open(path, "a") as f:
        f.write('{"kind": "train", "step": 216, "wass\n')
        f.write(json.dumps(train_records(1, start=217)[0]) + "\n")
    store.read(tail)
    assert store.n == 216 and tail.skipped == 1 and store.last("step") == 217


def test_curves_with_few_points_get_markers():
    import holoviews as hv

    from explorer import views

    def drawn(n):  # (points drawn as lines, points drawn as markers) per metric, rendered by Bokeh
        frame = pd.DataFrame({"x": np.arange(n, dtype=float).repeat(2), "value": np.linspace(0, 1, 2 * n),
                              "metric": ["a", "b"] * n})
        fig = hv.render(views.curves_map(hv.streams.Pipe(data=frame), "t", "step",
                                         rules=hv.streams.Pipe(data=viewdata.setting_changes([]))))
        glyphs = [(type(r.glyph).__name__, len(r.data_source.data["x"])) for r in fig.renderers
                  if type(r.glyph).__name__ in ("Line", "Scatter")]
        return sorted(glyphs)

    assert drawn(1) == [("Line", 1), ("Line", 1), ("Scatter", 1), ("Scatter", 1)]  # one point: a marker shows it
    assert drawn(20) == [("Line", 20), ("Line", 20), ("Scatter", 0), ("Scatter", 0)]  # a line needs no markers


def test_eta_is_worked_out_from_the_time_per_step_so_far():
    assert viewdata.eta_text(100, 800, 30.0) == "about 4 min left"  # 700 steps at 0.3 s: 210 s
    assert viewdata.eta_text(100, 150, 30.0) == "about 15 s left"
    assert viewdata.eta_text(10, 100_000, 36.0) == "about 100.0 h left"
    assert viewdata.eta_text(800, 800, 30.0) == viewdata.eta_text(0, 800, 0.0) == viewdata.eta_text(5, None, 1) == ""


def test_a_confusion_cell_names_its_images():
    snap = known_snapshot()
    view = viewdata.confusion_view(snap, known_probe())
    assert viewdata.cell_rows(snap, view, "c1", "shoe").tolist() == [2, 3]  # the cell that counts 2
    assert viewdata.cell_rows(snap, view, "c0", "bag").tolist() == [0, 1, 5]
    assert viewdata.cell_rows(snap, view, "c2", "bag").tolist() == []
    assert viewdata.cell_rows(snap, view, "c9", "bag").tolist() == []  # not an axis name: nothing


def test_nearest_images_and_selection_counts():
    snap = known_snapshot()  # z_s is zero: distances in Z_c alone
    # row 0 (0.9, 0.05, 0.05): row 1 (0.8, 0.1, 0.1) is nearest, then row 5 (0.5, 0.4, 0.1), then rows 3, 2, 4
    assert viewdata.nearest(snap, "Z_c", 0, k=3).tolist() == [1, 5, 3]
    assert viewdata.nearest(snap, "Z", 0, k=16).tolist() == [1, 5, 3, 2, 4]  # at most n − 1, never itself
    assert viewdata.nearest(snap, "Z_c", 99).tolist() == []
    text = viewdata.selection_counts(snap, [0, 1, 2, 5], known_probe(), {0: "bags"})
    assert text == "by cluster: c0 · bags 3 · c1 1 — by label: bag 3 · shoe 1"
    assert viewdata.selection_counts(snap, []) == ""
