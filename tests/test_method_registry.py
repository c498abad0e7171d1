"""A method is the unit: a third method, defined here in a few lines and registered through the registry's public
function, trains through the CLI, writes a run directory the app reads, and is offered by the start form — with
no other module edited."""

from dataclasses import dataclass

import pytest
import torch
from torch import nn

from core import Run
from core.cli import main as cli_main
from core.errors import ConfigError
from core.methods import ClusteringMethod, register, unregister
from core.settings import Defaults, DefaultsTable, setting


@dataclass
class ToySettings:
    toy_width: int = setting(16, "hidden width of the toy encoder", low=1, group="Toy (a method defined in a test)")


class Toy(ClusteringMethod):
    """A linear encoder trained to make each image's assignment confident and the clusters' sizes even."""

    name = "toy"
    title = "Toy: a linear encoder with an entropy loss"
    Settings = ToySettings
    defaults = DefaultsTable(common=Defaults({"batch_size": 64, "lr": 1e-2, "adam_beta1": 0.9, "adam_beta2": 0.999,
                                              "steps": 30}, "chosen for the test"))
    curve_groups = (("Toy losses", (("loss", "entropy loss"),)),)
    progress_keys = (("loss", "H"),)

    @classmethod
    def from_config(cls, cfg, data, pipeline, device):
        return cls(pipeline, cfg.num_clusters, data.size, cfg.options, cfg.lr, device)

    def __init__(self, pipeline, k, size, settings, lr, device):
        super().__init__(pipeline, k, settings)
        self.net = nn.Sequential(nn.Flatten(), nn.Linear(pipeline.out_channels * size[0] * size[1],
                                                         settings.toy_width), nn.Linear(settings.toy_width, k))
        self.to(device)
        self.opt = torch.optim.Adam(self.parameters(), lr=lr)

    def optimizers(self):
        return {"net": self.opt}

    def encode(self, x):
        logits = self.net(x)
        return logits.softmax(1), logits

    def train_step(self, batches):
        p = self.net(self.pipeline.augment(batches.next(), batches.generator)).softmax(1)
        mean = p.mean(0)
        loss = -(p * p.clamp_min(1e-8).log()).sum(1).mean() + (mean * mean.clamp_min(1e-8).log()).sum()
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        return {"loss": loss.detach()}


@pytest.fixture
def toy():
    register(Toy)
    yield Toy
    unregister("toy")


def test_a_third_method_trains_through_the_cli_and_the_app_reads_its_run(toy, tmp_path, capsys):
    run_dir = tmp_path / "runs" / "toy-run"
    code = cli_main(["train", "--method", "toy", "--dataset", "digits", "--toy-width", "8", "--run-dir", str(run_dir),
                     "--no-progress", "--probe-size", "200", "--device", "cpu"])
    assert code == 0, capsys.readouterr().err
    run = Run(run_dir)
    assert run.config["settings"]["method"] == "toy" and run.config["settings"]["toy_width"] == 8
    assert run.config["settings"]["steps"] == 30 and run.config["settings"]["lr"] == 1e-2  # its own defaults
    assert run.config["method"]["curve_groups"] == [["Toy losses", [["loss", "entropy loss"]]]]
    records = run.metrics()
    assert records[-1]["step"] == 30 and all("loss" in r for r in records)
    assert run.summary()["state"] == "finished" and 0 <= run.summary()["acc"] <= 1
    assert run.checkpoint_steps()[-1] == 30 and run.snapshot().z_c.shape == (200, 10)

    from explorer.app import ExplorerApp
    from explorer.projection import ProjectionService

    app = ExplorerApp(tmp_path / "runs", service=ProjectionService(processes=False))
    assert "toy" in app.f_method.options  # the start form offers it
    assert str(run_dir) in app.run_select.options.values()
    view = app.view_a
    view.set_run(str(run_dir))
    assert list(view.curve_pipes)[0] == "Toy losses"  # its own panel first, from its run directory
    assert view.curve_pipes["Toy losses"].data["metric"].unique().tolist() == ["entropy loss"]
    assert view.snapshot is not None and view.snapshot.step == 30 and view.beta.disabled  # no β_Aug to steer
    assert "TOY" in view.status_md.object


def test_the_registry_refuses_what_would_clash(toy):
    from core import TrainConfig

    @dataclass
    class Clashing:
        lr: float = setting(1.0, "a shared setting's name")

    class Bad(Toy):
        name = "bad"
        Settings = Clashing

    with pytest.raises(ValueError, match="already a shared setting"):
        register(Bad)
    with pytest.raises(ConfigError, match="--toy-width is a TOY setting"):
        TrainConfig(method="dccs", toy_width=3)
    with pytest.raises(ConfigError, match="unknown method 'nope'.*dccs, dcsm, toy"):
        TrainConfig(method="nope")
