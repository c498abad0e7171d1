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


def test_presets_resolve_per_data_set_and_settings_given_explicitly_win(tmp_path):
    from core import load_dataset
    from core.config import default_sources, resolve_config, validate
    from core.errors import ConfigError
    from core.methods import DCCS, DCSM

    digits = load_dataset("digits")
    paper = resolve_config(TrainConfig(dataset="digits", schedule="paper"), digits)
    assert (paper.schedule, paper.lr, paper.crop_area_min, paper.lr_schedule, paper.ema, paper.lr_warmup) == \
        ("paper", 1e-4, 0.4, "constant", 0.0, 0)  # the paper's values (section 4.1, supplement B), levers off
    fast = resolve_config(TrainConfig(dataset="digits", schedule="fast"), digits)
    preset = DCCS.presets["fast"].lookup("digits", 1)
    assert fast.schedule == "fast" and all(getattr(fast, k) == v for k, v in preset.items())
    mine = resolve_config(TrainConfig(dataset="digits", schedule="fast", ema=0.0, lr=2e-4, steps=30), digits)
    assert (mine.ema, mine.lr, mine.steps) == (0.0, 2e-4, 30)  # what is typed wins over the preset
    default = resolve_config(TrainConfig(dataset="digits"), digits)
    assert default.schedule == DCCS.default_schedule("digits")
    assert DCCS.default_schedule("fashion-mnist") == "fast" and DCCS.default_schedule("my-folder") == "paper"
    assert fast.lr == 3e-4 and (fast.lr_schedule, fast.ema) == ("constant", 0.0)  # the levers did not help here
    # a method setting in a preset: digits' fast preset has a z_s of 20, the paper's is 50, and a typed value wins
    assert (paper.dim_zs, fast.dim_zs, default.dim_zs) == (50, 20, 20)
    assert resolve_config(TrainConfig(dataset="digits", dim_zs=50), digits).dim_zs == 50
    assert resolve_config(TrainConfig(dataset="fashion-mnist"), digits).dim_zs == 50
    # a shared setting in a preset: rotations up to 20° and 500 steps in digits' fast preset; none, 800 in the paper's
    assert (paper.rotation, fast.rotation, default.rotation, paper.steps, fast.steps) == (0.0, 20.0, 20.0, 800, 500)
    assert resolve_config(TrainConfig(dataset="fashion-mnist"), digits).rotation == 0.0
    assert resolve_config(TrainConfig(dataset="digits", rotation=0.0), digits).rotation == 0.0
    assert Trainer(TrainConfig(dataset="digits", run_dir=str(tmp_path / "r"))).method.encoder.heads.fc.out_features \
        == 10 + 20  # the network is built with the preset's z_s
    assert "time_to_accuracy" in default_sources(TrainConfig(dataset="digits", schedule="fast"), 1)["lr"]
    # Fashion-MNIST's fast preset: β_Aug 1 (the paper's 2), β_Adv 10 (the paper's 1) and bf16 where the hardware
    # multiplies it natively
    from core.acceleration import resolve_precision

    fm_fast = resolve_config(TrainConfig(dataset="fashion-mnist", device="cpu"), digits)
    fm_paper = resolve_config(TrainConfig(dataset="fashion-mnist", schedule="paper", device="cpu"), digits)
    assert (fm_fast.schedule, fm_fast.beta_aug, fm_fast.beta_adv, fm_fast.precision) == \
        ("fast", 1.0, 10.0, resolve_precision("auto", torch.device("cpu")))
    assert (fm_paper.beta_aug, fm_paper.beta_adv, fm_paper.precision, fm_paper.lr, fm_paper.dim_zs) == \
        (2.0, 1.0, "fp32", 1e-4, 50)
    assert fm_fast.epochs == fm_paper.epochs and fm_fast.steps == fm_paper.steps  # the same length
    typed = resolve_config(TrainConfig(dataset="fashion-mnist", beta_aug=3.0, beta_adv=2.0, precision="fp32"), digits)
    assert (typed.beta_aug, typed.beta_adv, typed.precision) == (3.0, 2.0, "fp32")
    assert fast.precision == paper.precision == "fp32"  # digits' presets keep fp32 (bf16 moved its seeds)
    with pytest.raises(ConfigError, match="measured on digits, fashion-mnist only, not on mnist"):
        resolve_config(TrainConfig(dataset="mnist", schedule="fast"), digits)
    assert default_sources(TrainConfig(dataset="digits", schedule="paper"), 1)["lr"].startswith("the paper")
    dcsm = resolve_config(TrainConfig(dataset="digits", method="dcsm"), digits)
    assert dcsm.schedule == "paper" and dcsm.lr_schedule == "constant" and dcsm.ema == 0.0
    with pytest.raises(ConfigError, match="DCSM has no 'fast' schedule"):
        resolve_config(TrainConfig(dataset="digits", method="dcsm", schedule="fast"), digits)
    with pytest.raises(ConfigError, match="schedule"):
        validate(TrainConfig(dataset="digits", schedule="fastest"))


def test_a_config_written_before_the_levers_trains_without_them(tmp_path):
    old = _config(tmp_path, "old").to_dict()
    for name in ("schedule", "lr_schedule", "lr_warmup", "lr_floor", "ema"):
        old.pop(name)
    cfg = TrainConfig.from_dict(old)
    assert cfg.schedule is None and cfg.ema is None
    from core.data import load_dataset
    from core.config import resolve_config

    method = Trainer(resolve_config(_config(tmp_path, "new", schedule="paper"), load_dataset("digits"))).method
    method.configure_levers(cfg)
    assert not method.lr_schedule.active and method.average is None


def test_a_run_recorded_before_rotation_existed_resumes_without_it(tmp_path):
    import json

    from core.checkpoints import resume_point

    Trainer(_config(tmp_path, "old", steps=10, checkpoint_every=10)).fit()
    path = tmp_path / "old" / "config.json"
    config = json.loads(path.read_text())
    assert isinstance(config["settings"]["rotation"], float)  # recorded, resolved, in every new run
    config["settings"].pop("rotation")  # as written before the setting existed
    path.write_text(json.dumps(config))
    assert Run(tmp_path / "old").config["settings"]["rotation"] == 0.0  # reads as what it trained with
    cfg, _ = resume_point(tmp_path / "old", {"steps": 20})
    assert cfg.rotation == 0.0  # not today's default or preset
    assert Trainer.resume(tmp_path / "old", steps=20).method.pipeline.settings.rotation == 0.0
