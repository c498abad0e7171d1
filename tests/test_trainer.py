"""The trainer and its run directory: files and records, steering, stopping, divergence."""

import json
import math

import numpy as np
import pytest
import torch

from core import ImageSet, Run, TrainConfig, load_dataset
from core.errors import ConfigError, RunError, TrainingDiverged
from core.trainer import Trainer

_DIGITS = None


def digits(n=None):
    global _DIGITS
    if _DIGITS is None:
        _DIGITS = load_dataset("digits")
    if n is None:
        return _DIGITS
    return ImageSet(_DIGITS.images[:n].clone(), _DIGITS.labels[:n], _DIGITS.class_names, name="digits")


def small(tmp_path, **kw):
    base = dict(dataset="digits", run_dir=str(tmp_path / "run"), batch_size=32, log_every=2, progress=False,
                probe_size=300, steps=12, eval_every=6, snapshot_every=4, checkpoint_every=6)
    base.update(kw)
    return TrainConfig(**base)


def test_run_directory_is_written_while_training(tmp_path):
    trainer = Trainer(small(tmp_path), data=digits(640))
    result = trainer.fit()
    run = Run(tmp_path / "run")
    settings = run.config["settings"]
    assert settings["beta_aug"] == 2.0 and settings["flip"] is False and settings["num_clusters"] == 10
    assert settings["lr"] is not None and settings["steps"] == 12
    assert run.config["dataset"]["num_images"] == 640 and run.config["versions"]["torch"] == torch.__version__
    assert run.status()["state"] == "finished" and result["state"] == "finished"

    records = run.metrics()
    assert [r["step"] for r in records] == [1, 2, 4, 6, 8, 10, 12]
    for r in records:
        for key in ("epoch", "time", "critic_loss", "wasserstein", "w_raw", "mi_loss", "aug_loss", "adv_loss",
                    "encoder_loss", "beta_aug", "gradient_penalty"):
            assert isinstance(r[key], float), key
        assert r["wasserstein"] == pytest.approx(-r["critic_loss"])
        # Eq. 12 with beta_MI 0.5, beta_Adv 1 and beta_Aug 2 constant over the window
        assert r["encoder_loss"] == pytest.approx(0.5 * r["mi_loss"] + 2.0 * r["aug_loss"] + r["adv_loss"],
                                                  rel=1e-5, abs=1e-6)
    evals = [r for r in records if "acc" in r]
    assert [r["step"] for r in evals] == [6, 12]
    assert all(0 <= r["acc"] <= 1 and sum(r["cluster_sizes"]) == 640 for r in evals)
    # epochs: 640 // 32 = 20 batches per epoch, 5 batches per step
    assert records[-1]["epoch"] == pytest.approx(12 * 5 / 20)

    assert [ref.step for ref in run.snapshots()] == [1, 4, 8, 12]
    assert run.snapshots()[1].load().step == 4
    snap = run.snapshot()
    assert snap.step == 12 and snap.z_c.shape == (300, 10) and snap.z_s.shape == (300, 20)  # digits' fast preset: z_s of 20
    assert np.allclose(snap.z_c.sum(1), 1, atol=1e-2) and np.array_equal(snap.pred, snap.z_c.argmax(1))
    probe = run.probe()
    assert probe.images.shape == (300, 1, 28, 28) and probe.images.dtype == np.uint8
    assert np.array_equal(snap.labels, probe.labels) and np.array_equal(probe.labels, digits().labels[probe.indices])
    assert 0 <= snap.metrics["acc"] <= 1

    assert run.checkpoint_steps() == [6, 12]
    state = torch.load(run.checkpoint_path(), weights_only=True)
    assert state["step"] == 12 and "encoder.heads.fc.weight" in state["method"]
    summary = run.summary()
    assert summary["acc"] == records[-1]["acc"] and summary["step"] == 12
    # follow() on a finished run yields what is there and ends
    assert [r["step"] for r in run.follow(poll=0.01, kind="train")] == [1, 2, 4, 6, 8, 10, 12]
    steps, acc = run.series("acc")
    assert steps.tolist() == [6, 12]


def test_beta_aug_changes_at_the_next_step_and_is_recorded(tmp_path):
    trainer = Trainer(small(tmp_path, log_every=1, steps=8), data=digits(640))

    def on_event(ev):
        if ev["type"] == "record" and ev["step"] == 4:
            trainer.set_beta_aug(5.0)

    trainer.add_callback(on_event)
    trainer.fit()
    run = Run(tmp_path / "run")
    sets = run.metrics("set")
    assert len(sets) == 1 and sets[0]["step"] == 5 and sets[0]["value"] == 5.0 and sets[0]["previous"] == 2.0
    assert sets[0]["source"] == "api"
    recs = {r["step"]: r for r in run.metrics()}
    assert [recs[s]["beta_aug"] for s in range(1, 9)] == [2.0] * 4 + [5.0] * 4
    for s in range(5, 9):  # the new weight is really in the encoder loss
        r = recs[s]
        assert r["encoder_loss"] == pytest.approx(0.5 * r["mi_loss"] + 5.0 * r["aug_loss"] + r["adv_loss"], rel=1e-5)
    assert trainer.beta_aug == 5.0
    with pytest.raises(ConfigError):
        trainer.set_beta_aug(-1)
    with pytest.raises(ConfigError):
        trainer.set_beta_aug(float("nan"))


def test_background_training_with_events_and_stop(tmp_path):
    trainer = Trainer(small(tmp_path, steps=10_000, log_every=1, checkpoint_every=1000), data=digits(640))
    seen = []
    for ev in trainer.events():  # starts the trainer in a background thread
        seen.append(ev["type"])
        if ev["type"] == "record" and ev["step"] == 3:
            trainer.stop()
    assert seen[-1] == "end" and "snapshot" in seen and "checkpoint" in seen
    result = trainer.join()
    run = Run(tmp_path / "run")
    assert result["state"] == "stopped" and run.status()["state"] == "stopped"
    assert trainer.step in (3, 4) and run.checkpoint_steps()[-1] == trainer.step
    assert not trainer.running


def test_control_file_steers_a_running_trainer(tmp_path):
    trainer = Trainer(small(tmp_path, steps=10_000, log_every=1, checkpoint_every=1000), data=digits(640))
    run = Run(tmp_path / "run")

    def other_process(ev):  # what the explorer does from its own process
        if ev["type"] == "record" and ev["step"] == 2:
            run.set_beta_aug(3.5)
        if ev["type"] == "record" and ev["step"] == 5:
            run.request_stop()

    trainer.add_callback(other_process)
    result = trainer.fit()
    sets = run.metrics("set")
    assert [(s["value"], s["source"], s["step"]) for s in sets] == [(3.5, "control", 3)]
    assert result["state"] == "stopped" and trainer.step == 5
    assert run.status()["message"] == "stopped from control.json"


def test_nan_stops_the_run_and_keeps_the_last_good_checkpoint(tmp_path):
    trainer = Trainer(small(tmp_path, steps=40, log_every=2, checkpoint_every=4, eval_every=0), data=digits(640))

    def poison(ev):
        if ev["type"] == "record" and ev["step"] == 6:
            with torch.no_grad():
                trainer.method.encoder.fc[0].weight.fill_(float("nan"))

    trainer.add_callback(poison)
    with pytest.raises(TrainingDiverged, match=r"became NaN or infinite between steps 7 and 8.*checkpoint is step 4"):
        trainer.fit()
    run = Run(tmp_path / "run")
    assert run.status()["state"] == "failed" and "NaN" in run.status()["message"]
    assert run.checkpoint_steps() == [4]  # nothing written after the poison
    state = torch.load(run.checkpoint_path(), weights_only=True)
    assert all(torch.isfinite(v).all() for v in state["method"].values() if v.is_floating_point())
    last = run.metrics()[-1]
    assert last["step"] == 8 and last["critic_loss"] is None  # written as null, readable


def test_config_checks_against_the_data(tmp_path):
    with pytest.raises(ConfigError, match="between 2 and the number of images"):
        Trainer(small(tmp_path, num_clusters=100), data=digits(64))
    with pytest.raises(ConfigError, match="at least 2"):
        Trainer(small(tmp_path, num_clusters=1), data=digits(64))
    unlabelled = ImageSet(digits(64).images)
    with pytest.raises(ConfigError, match="--num-clusters"):
        Trainer(small(tmp_path), data=unlabelled)
    with pytest.raises(ConfigError, match="batch size 32 is larger"):
        Trainer(small(tmp_path), data=digits(20))
    Trainer(small(tmp_path, steps=1), data=digits(64)).fit()
    with pytest.raises(RunError, match="already holds a run"):
        Trainer(small(tmp_path), data=digits(64))


def test_unlabelled_data_trains_with_label_free_statistics(tmp_path):
    data = ImageSet(digits(320).images)
    result = Trainer(small(tmp_path, steps=4, num_clusters=5), data=data).fit()
    assert "acc" not in result and result["empty_clusters"] >= 0
    snap = Run(tmp_path / "run").snapshot()
    assert snap.labels is None and snap.z_c.shape == (300, 5)
