"""The speed levers keep the method: the compiled DCCS loss functions (captured whole, forward and backward, the
gradient penalty's double backward included) give the eager losses and gradients, and a run with bf16 autocast
trains. On the CPU the capture is checked with the aot_eager backend (no C++ compiler needed); the generated code's
speed is the GPU race's to measure (benchmarks/gpu_race.sh)."""

import warnings

import pytest
import torch

from core import TrainConfig, losses
from core.acceleration import Compiled
from core.trainer import Trainer


def _trainer(tmp_path, **kw):
    return Trainer(TrainConfig(dataset="digits", steps=1000, batch_size=16, log_every=1000, eval_every=0,
                               snapshot_every=10 ** 6, checkpoint_every=10 ** 6, probe_size=100, progress=False,
                               run_dir=str(tmp_path / "run"), **kw))


def _close(a, b, rtol=1e-4, atol=1e-6):
    return torch.allclose(a.float(), b.float(), rtol=rtol, atol=atol)


@pytest.mark.slow
def test_compiled_dccs_losses_and_gradients_equal_the_eager_ones_over_20_steps(tmp_path):
    trainer = _trainer(tmp_path)
    m, batches = trainer.method, trainer.batches
    gen, pipe = batches.generator, m.pipeline
    compiled = {name: Compiled(getattr(m, name), "aot-eager", name) for name in m.compiled_functions}
    critic_params, q_params = list(m.critic.parameters()), [*m.encoder.parameters(), *m.discriminator.parameters()]
    m.train()
    for step in range(20):  # each step: the same inputs and weights through both, then the eager update
        x = pipe.clean(batches.next())
        z_prior = losses.sample_prior(x.shape[0], m.k, m.dim_zs, m.prior_std, gen, x.device)
        eps = torch.rand(x.shape[0], generator=gen)
        results = []
        for fns in ({n: getattr(m, n) for n in compiled}, compiled):
            z = fns["critic_codes"](x)
            loss, w_raw, gp = fns["critic_losses"](z, z_prior, losses.interpolate(z, z_prior, eps))
            results.append((z, loss, w_raw, gp, torch.autograd.grad(loss, critic_params)))
        (z, loss, w_raw, gp, grads), (z2, loss2, w_raw2, gp2, grads2) = results
        assert all(_close(a, b) for a, b in zip((z, loss, w_raw, gp, *grads), (z2, loss2, w_raw2, gp2, *grads2))), step
        m.opt_c.zero_grad(set_to_none=True)
        for p, g in zip(critic_params, grads):
            p.grad = g
        m.opt_c.step()

        u8 = batches.next()
        xc, xa = pipe.clean(u8), pipe.augment(u8, gen)
        neg = losses.in_batch_negatives(x.shape[0], gen, x.device)
        m.critic.requires_grad_(False)
        outs = []
        for fn in (m.encoder_losses, compiled["encoder_losses"]):
            terms = fn(xc, xa, neg)
            outs.append((terms, torch.autograd.grad(terms[0], q_params)))
        m.critic.requires_grad_(True)
        (terms, grads), (terms2, grads2) = outs
        assert all(_close(a, b) for a, b in zip((*terms, *grads), (*terms2, *grads2))), step
        m.opt_q.zero_grad(set_to_none=True)
        for p, g in zip(q_params, grads):
            p.grad = g
        m.opt_q.step()
    assert all(c.compiled is not None and c.failed is None for c in compiled.values())
    assert sum(c.graph_breaks for c in compiled.values()) == 0  # one graph per function: capturable whole


def test_a_run_set_to_compile_trains_and_reports_its_graph_breaks(tmp_path):
    trainer = _trainer(tmp_path, compile="aot-eager")
    out = [trainer.method.train_step(trainer.batches) for _ in range(2)]
    assert all(torch.isfinite(v) for o in out for v in o.values())
    assert trainer.method.graph_breaks == 0 and trainer.config.to_dict()["compile"] == "aot-eager"


def test_bf16_autocast_trains_with_finite_losses_close_to_fp32(tmp_path):
    a = _trainer(tmp_path / "a")
    b = _trainer(tmp_path / "b", precision="bf16")
    out_a, out_b = a.method.train_step(a.batches), b.method.train_step(b.batches)  # the same first step
    for key in out_a:
        assert torch.isfinite(out_b[key]) and out_b[key].dtype == torch.float32, key
        assert abs(float(out_a[key]) - float(out_b[key])) <= 0.05 * abs(float(out_a[key])) + 0.05, key
    assert float(out_a["encoder_loss"]) != float(out_b["encoder_loss"])  # bf16 was really in use


def test_a_compiler_failure_falls_back_to_eager_with_one_warning(monkeypatch):
    def broken_compile(fn, **kw):
        def run(*a, **k):
            raise RuntimeError("no C++ compiler found")
        return run

    monkeypatch.setattr(torch, "compile", broken_compile)
    c = Compiled(lambda x: x * 2, "default", "double")
    with pytest.warns(RuntimeWarning, match="torch.compile of double failed .*no C\\+\\+ compiler"):
        assert c(torch.tensor(3.0)) == 6.0
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert c(torch.tensor(4.0)) == 8.0  # eager from then on, no second warning
    assert c.compiled is None and "no C++ compiler" in c.failed


def test_auto_precision_is_bf16_only_where_the_device_has_native_bf16_and_is_recorded_as_chosen(tmp_path,
                                                                                                 monkeypatch):
    import core.acceleration as acceleration
    from core import Run

    assert acceleration.resolve_precision("tf32", torch.device("cpu")) == "tf32"  # only "auto" is chosen
    for native, chosen in ((True, "bf16"), (False, "fp32")):
        monkeypatch.setattr(acceleration, "native_bf16", lambda device, native=native: native)
        t = _trainer(tmp_path / chosen, precision="auto")
        assert t.config.precision == chosen and t.method.precision == chosen
        # recorded as chosen: a resume on another machine trains as this run did
        assert Run(tmp_path / chosen / "run").config["settings"]["precision"] == chosen
    assert _trainer(tmp_path / "default").config.precision == "fp32"  # the paper's, unless a preset says otherwise
    # on this machine: bf16 exactly where torch reports AVX-512 BF16 or AMX
    monkeypatch.undo()
    cpu_native = torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported()
    assert acceleration.resolve_precision("auto", torch.device("cpu")) == ("bf16" if cpu_native else "fp32")
