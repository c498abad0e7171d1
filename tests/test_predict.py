"""Getting the clusters out (`python -m core predict`, `Run.predict`): every image of the run's folder round-trips
into the CSV under its file name with the cluster the run's own snapshot gives it; another folder of the same size
is clustered too; bad input is one line."""

import csv

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from core import Run, load_dataset
from core.cli import main

TINY = ["--steps", "4", "--batch-size", "16", "--eval-every", "0", "--no-progress", "--device", "cpu"]


def _folder(root, images, labels=None):
    names = []
    for i, img in enumerate(images):
        rel = f"{'digit' + str(labels[i]) if labels is not None else ''}/img_{i:03d}.png".lstrip("/")
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(img).save(root / rel)
        names.append(rel)
    return names


@pytest.fixture(scope="module")
def folder_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("predict")
    digits = load_dataset("digits")
    images = digits.images[:60, 0].numpy()
    names = _folder(root / "images", images, digits.labels[:60])
    run_dir = root / "run"
    assert main(["train", "--dataset", str(root / "images"), "--run-dir", str(run_dir), "--probe-size", "60",
                 *TINY]) == 0
    return root, run_dir, names, digits


def _read(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_the_runs_own_images_round_trip_into_the_csv_by_file_name(folder_run, capsys):
    root, run_dir, names, digits = folder_run
    out = root / "clusters.csv"
    assert main(["predict", str(run_dir), "--out", str(out)]) == 0
    assert "60 images in" in capsys.readouterr().out
    rows = _read(out)
    assert sorted(r["name"] for r in rows) == sorted(names)
    assert all(r["label"] == r["name"].split("/")[0] for r in rows)  # its class folder
    assert all(0 < float(r["confidence"]) <= 1 and 0 <= int(r["cluster"]) < 10 for r in rows)
    # the clusters are the ones the run's last snapshot holds for the same images (the probe is all 60)
    run = Run(run_dir)
    snap, probe = run.snapshot(), run.probe()
    by_name = {r["name"]: int(r["cluster"]) for r in rows}
    order = sorted(names)  # the folder loader's order: sorted file names
    assert [by_name[order[i]] for i in probe.indices] == snap.pred.tolist()


def test_another_folder_npz_and_arrays_of_the_same_size(folder_run):
    root, run_dir, _, digits = folder_run
    other = digits.images[100:125, 0].numpy()
    names = _folder(root / "other", other)  # flat: no labels
    result = Run(run_dir).predict(root / "other", with_z=True)
    frame = pd.DataFrame(result)
    assert sorted(frame["name"]) == sorted(names) and "label" not in frame
    assert [c for c in frame.columns if c.startswith("z_c_")] == [f"z_c_{k}" for k in range(10)]
    assert np.allclose(frame[[f"z_c_{k}" for k in range(10)]].sum(axis=1), 1, atol=1e-4)
    from_array = Run(run_dir).predict(other)  # the same images as an N×H×W uint8 array, by index
    assert from_array["name"].tolist() == [str(i) for i in range(25)]
    by_name = dict(zip(result["name"], result["cluster"]))
    assert [by_name[f"img_{i:03d}.png"] for i in range(25)] == from_array["cluster"].tolist()
    np.savez(root / "other.npz", images=other)
    out = root / "other-clusters.npz"
    assert main(["predict", str(run_dir), "--data", str(root / "other.npz"), "--out", str(out)]) == 0
    with np.load(out) as f:
        assert f["cluster"].tolist() == from_array["cluster"].tolist()


def test_bad_input_is_one_line(folder_run, capsys, tmp_path):
    root, run_dir, _, digits = folder_run
    big = np.zeros((3, 40, 40), np.uint8)
    np.savez(tmp_path / "big.npz", images=big)
    cases = [(["--data", str(tmp_path / "big.npz")], "trained on 1-channel 28×28 images, these are 1-channel 40×40;"
                                                     " resize them with --image-size 28"),
             (["--data", str(tmp_path / "nothing")], "no such file"),
             (["--out", str(tmp_path / "clusters.txt")], "must be a .csv or .npz file"),
             (["--out", str(tmp_path / "no" / "dir.csv")], "does not exist"),
             (["--checkpoint", "77"], "no checkpoint 77")]
    for args, message in cases:
        out = [] if "--out" in args else ["--out", str(tmp_path / "c.csv")]
        code = main(["predict", str(run_dir), *out, *args])
        err = capsys.readouterr().err
        assert code == 2 and err.startswith("error: ") and message in err and err.count("\n") == 1, (args, err)
    assert not (tmp_path / "c.csv").exists()
    assert main(["predict", str(run_dir), "--data", str(tmp_path / "big.npz"), "--image-size", "28", "--out",
                 str(tmp_path / "resized.csv")]) == 0
    assert len(_read(tmp_path / "resized.csv")) == 3
