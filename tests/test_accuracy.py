"""Real training on real small data reaching a stated accuracy (CPU, fixed seeds)."""

import pytest

from core import Run, TrainConfig, load_dataset
from core.metrics import kmeans_baseline
from core.trainer import Trainer


@pytest.mark.slow
def test_default_digits_job_beats_kmeans_on_raw_pixels(tmp_path):
    """The quick-start job (`make run`) with its defaults: NMI above k-means measured in the same run.

    NMI, not ACC, is the comparison: the job's ACC depends on whether one pair of digits ends up merged, which
    changes with the seed and even the CPU (seed 0: ACC 0.855 on one machine, 0.799 with one cluster empty on
    another, where NMI was still 0.799 against k-means' 0.755; docs/notebooks.md)."""
    data = load_dataset("digits")
    base = kmeans_baseline(data, seed=0)
    assert base["acc"] == pytest.approx(0.805, abs=0.02) and base["nmi"] == pytest.approx(0.755, abs=0.02)
    result = Trainer(TrainConfig(dataset="digits", run_dir=str(tmp_path / "r"), progress=False), data=data).fit()
    assert result["step"] == 800
    # on the way, after 200 steps (its evaluation every 20 steps does not change the trajectory): clearly above
    # chance (0.1); measured 0.66–0.75 over seeds 0–2, one or two threads and two CPUs (docs/notebooks.md)
    (early,) = [r for r in Run(tmp_path / "r").metrics() if r["step"] == 200 and "acc" in r]
    assert early["acc"] >= 0.45 and early["nmi"] >= 0.35, early
    assert result["nmi"] > base["nmi"] + 0.02, (result, base)
    assert result["acc"] > base["acc"] - 0.03, (result, base)  # at worst one merged pair: 9 of 10 digits found
    assert result["empty_clusters"] <= 1, result


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
