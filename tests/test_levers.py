"""The shared training levers: the learning-rate schedule's values at known steps (and in the optimisers), the
weight average (differs from the raw weights, and is what evaluation and snapshots use), and a resume that
reproduces a run with every lever on exactly."""

import copy

import pytest
import torch

from core import Run, TrainConfig
from core.levers import lr_factor
from core.trainer import Trainer


def test_schedule_values_at_known_steps():
    # warm-up 10 steps, then cosine from 1 to 0.1 at step 110
    assert [lr_factor(s, 110, "cosine", 10, 0.1) for s in (1, 5, 10)] == [0.1, 0.5, 1.0]
    assert lr_factor(60, 110, "cosine", 10, 0.1) == pytest.approx(0.1 + 0.9 * 0.5)
    assert lr_factor(35, 110, "cosine", 10, 0.1) == pytest.approx(0.1 + 0.9 * 0.5 * (1 + 2 ** -0.5))
    assert lr_factor(110, 110, "cosine", 10, 0.1) == pytest.approx(0.1)
    assert lr_factor(35, 110, "linear", 10, 0.1) == pytest.approx(0.1 + 0.9 * 0.75)
    assert [lr_factor(s, 100, "constant", 4) for s in (2, 4, 5, 100)] == [0.5, 1.0, 1.0, 1.0]
    assert lr_factor(50, 100) == 1.0


def _config(tmp_path, name, **kw):
    base = dict(dataset="digits", steps=20, batch_size=16, log_every=1, eval_every=0, snapshot_every=1000,
                checkpoint_every=10, probe_size=100, progress=False, run_dir=str(tmp_path / name))
    return TrainConfig(**{**base, **kw})


def test_the_optimisers_follow_the_schedule(tmp_path):
    t = Trainer(_config(tmp_path, "r", lr_schedule="cosine", lr_warmup=5, lr_floor=0.2, lr=1e-3))
    seen = {}
    t.add_callback(lambda ev: ev["type"] == "record" and seen.setdefault(
        ev["step"], [g["lr"] for o in t.method.optimizers().values() for g in o.param_groups]))
    t.fit()
    for step in (1, 3, 5, 12, 20):
        assert seen[step] == pytest.approx([1e-3 * lr_factor(step, 20, "cosine", 5, 0.2)] * len(seen[step])), step


def test_the_weight_average_is_what_evaluation_and_snapshots_use(tmp_path):
    t = Trainer(_config(tmp_path, "r", ema=0.9, steps=12))
    t.fit()
    m = t.method
    x = t.images[:64]
    raw_zc, _ = m.embed(x, averaged=False)
    avg_zc, _ = m.embed(x)
    assert not torch.allclose(raw_zc, avg_zc, atol=1e-4)  # the average differs from the raw weights
    by_hand = copy.deepcopy(m.encoder)  # load the shadow weights into a copy and encode with it
    for p, s in zip(by_hand.parameters(), m.average.shadow):
        p.data.copy_(s)
    by_hand.eval()
    with torch.no_grad():
        logits = by_hand(m.pipeline.clean(x)).logits
    assert torch.allclose(avg_zc, torch.softmax(logits, 1), atol=1e-5)
    assert torch.allclose(raw_zc, m.embed(x, averaged=False)[0])  # the swap left the raw weights in place
    snap = Run(tmp_path / "r").snapshot()
    probe_zc, _ = m.embed(t.images[torch.from_numpy(t.probe_indices)])
    assert torch.allclose(torch.from_numpy(snap.z_c), probe_zc.half().float(), atol=1e-3)


def test_resume_reproduces_a_run_with_every_lever_on_exactly(tmp_path):
    levers = dict(lr_schedule="cosine", lr_warmup=4, lr_floor=0.1, ema=0.9)
    Trainer(_config(tmp_path, "a", **levers)).fit()
    b = Trainer(_config(tmp_path, "b", **levers))
    b.add_callback(lambda ev: ev["type"] == "record" and ev["step"] == 10 and b.stop())
    assert b.fit()["step"] == 10
    Trainer.resume(tmp_path / "b").fit()
    keys = ("critic_loss", "mi_loss", "aug_loss", "encoder_loss")
    a_rec = {r["step"]: [r[k] for k in keys] for r in Run(tmp_path / "a").metrics()}
    b_rec = {r["step"]: [r[k] for k in keys] for r in Run(tmp_path / "b").metrics()}
    assert b_rec == a_rec  # every step, the resumed half included
    a_sum, b_sum = Run(tmp_path / "a").summary(), Run(tmp_path / "b").summary()
    assert (b_sum["acc"], b_sum["nmi"]) == (a_sum["acc"], a_sum["nmi"])  # evaluated with the restored average
