"""Real training on real small data reaching a stated accuracy (CPU, fixed seeds)."""

import pytest

from core import Run, TrainConfig, load_dataset
from core.metrics import kmeans_baseline
from core.trainer import Trainer


@pytest.mark.slow
def test_default_digits_job_beats_kmeans_on_raw_pixels(tmp_path):
    """The quick-start job (`make run`) with its defaults (the digits fast preset): the issue's goal — ACC ≥ 0.90,
    NMI ≥ 0.85, every cluster used — and above k-means measured in the same run.

    Seed 0 at these settings ended at ACC 0.963 / NMI 0.930 after its 500 steps (seeds 1 and 2: 0.952 / 0.920 and
    0.955 / 0.920) on 2 AMD EPYC cores (2026-12-07, docs/methods.md "Rotations"; k-means 0.805 / 0.755), none
    empty. Before rotations were in the preset, seeds 1 and 2 ended near 0.86 with the 1s and 8s sharing two
    clusters, which this test fails. The trajectory depends on the CPU's floating-point order."""
    data = load_dataset("digits")
    base = kmeans_baseline(data, seed=0)
    assert base["acc"] == pytest.approx(0.805, abs=0.02) and base["nmi"] == pytest.approx(0.755, abs=0.02)
    result = Trainer(TrainConfig(dataset="digits", run_dir=str(tmp_path / "r"), progress=False), data=data).fit()
    assert result["step"] == 500
    # on the way, after 200 steps (its evaluation every 20 steps does not change the trajectory): clearly above
    # chance (0.1); measured 0.67–0.75 over seeds 0–2 (docs/methods.md)
    (early,) = [r for r in Run(tmp_path / "r").metrics() if r["step"] == 200 and "acc" in r]
    assert early["acc"] >= 0.45 and early["nmi"] >= 0.35, early
    assert result["acc"] >= 0.90 and result["nmi"] >= 0.85, (result, base)
    assert result["acc"] > base["acc"] and result["nmi"] > base["nmi"] + 0.02, (result, base)
    assert result["empty_clusters"] == 0, result


@pytest.mark.slow
def test_short_dcsm_run_on_digits_is_clearly_above_chance(tmp_path):
    # DCSM in the same engine: 100 steps of 32 images, each batch trained twice (digits' default is 4, as the paper
    # for MNIST: halved to keep CI short; about 100 s on 2 AMD EPYC cores), k-means per batch; chance is about
    # 0.1–0.2 for ten clusters matched by the Hungarian algorithm. Measured: seed 0 ACC 0.408 / NMI 0.405, seed 1
    # 0.378 / 0.355 (with 4 updates per batch, seed 0: 0.434 / 0.389)
    result = Trainer(TrainConfig(method="dcsm", dataset="digits", steps=100, seed=0, repeats=2,
                                 run_dir=str(tmp_path / "r"), progress=False, eval_every=0, kmeans_scope="batch")).fit()
    assert result["acc"] >= 0.33, result
    assert result["nmi"] >= 0.25, result
