"""What the engine needs from a clustering method. A method is the unit: it owns its networks and training step,
its settings (a dataclass, with their defaults per data set and where they come from), the curves a view groups
its records into, the keys of the progress bar, the curves that may pick best.pt and the settings that may change
while training. The engine, the CLI and the explorer learn all of that from the class; a new method is one module
and one `core.methods.register(...)` call (docs/methods.md, "Adding a method").
"""

from __future__ import annotations

import contextlib
import dataclasses
from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn

from ..acceleration import Compiled, autocast, set_matmul_precision
from ..levers import LEVERS_OFF, LRSchedule, WeightAverage
from ..augment import InputPipeline
from ..settings import DefaultsTable, live_names


@dataclass
class NoSettings:
    """A method without settings of its own."""


class ClusteringMethod(nn.Module):
    """Base class of the methods.

    `train_step(batches)` draws what it needs from the batch stream and returns detached 0-d tensors (no host
    synchronisation); `encode(x)` gives (z_c, z_s) for network inputs, z_c being the soft cluster assignment.
    Live settings are device tensors (non-persistent buffers, so checkpoints store them apart from the weights), so
    changing one never retraces or recaptures anything.
    """

    name: ClassVar[str] = ""
    title: ClassVar[str] = ""  # "DCCS (Zhao et al., ECCV 2020)": the start form and `--help`
    Settings: ClassVar[type] = NoSettings
    defaults: ClassVar[DefaultsTable] = DefaultsTable()
    #: `--schedule` presets: defaults laid over `defaults` (the "paper" one restores the paper's where `defaults`
    #: departs from it); a data set uses `fast_default_for`'s preset when none is asked for
    presets: ClassVar[dict[str, DefaultsTable]] = {"paper": DefaultsTable()}
    #: data sets whose default is the fast preset (where it was measured at or above the paper one)
    fast_default_for: ClassVar[tuple[str, ...]] = ()
    #: (panel title, ((record key, label), ...)): a title the engine already has (the accuracy or cluster-health
    #: panels) adds the keys to that panel
    curve_groups: ClassVar[tuple] = ()
    progress_keys: ClassVar[tuple[tuple[str, str], ...]] = ()  # (record key, short label) on the progress bar
    best_metrics: ClassVar[tuple[str, ...]] = ("loss",)  # curves that may pick best.pt (lowest wins); first: default
    live_settings: ClassVar[tuple[str, ...]] = ()  # derived from the Settings fields marked live
    #: methods of the class that `--compile` compiles (pure functions of tensors and weights), called as `_name`
    compiled_functions: ClassVar[tuple[str, ...]] = ()
    #: the modules `encode` uses: what `--ema` averages
    averaged_modules: ClassVar[tuple[str, ...]] = ()

    @classmethod
    def default_schedule(cls, dataset: str) -> str:
        return "fast" if str(dataset).lower() in cls.fast_default_for and "fast" in cls.presets else "paper"

    def __init_subclass__(cls, **kw):
        super().__init_subclass__(**kw)
        cls.live_settings = live_names(cls.Settings)

    def __init__(self, pipeline: InputPipeline, k: int, settings=None):
        super().__init__()
        self.pipeline = pipeline
        self.k = k
        self.settings = settings if settings is not None else self.Settings()
        for name in self.live_settings:
            value = getattr(self.settings, name)
            self.register_buffer(name, torch.tensor(float(value if value is not None else 0.0)), persistent=False)
        self.accelerate()
        self.lr_schedule = LRSchedule()
        self.average: WeightAverage | None = None

    def configure_levers(self, cfg) -> None:
        """The shared training levers of a config: the learning-rate schedule and the weight average."""
        off = LEVERS_OFF.values  # a run written before the levers existed has none of them in its config
        pick = {name: getattr(cfg, name, None) for name in off}
        pick = {name: off[name] if value is None else value for name, value in pick.items()}
        self.lr_schedule = LRSchedule(pick["lr_schedule"], pick["lr_warmup"], pick["lr_floor"])
        modules = [getattr(self, name) for name in self.averaged_modules]
        self.average = WeightAverage(modules, pick["ema"]) if pick["ema"] > 0 and modules else None

    def step(self, batches, step: int, total: int) -> dict[str, torch.Tensor]:
        """Training step `step` of `total`: the learning rate set for it, the method's own `train_step`, then the
        weight average moved."""
        self.lr_schedule.apply(self.optimizers().values(), step, total)
        out = self.train_step(batches)
        if self.average is not None:
            self.average.update()
        return out

    def extra_state(self) -> dict:
        """What a checkpoint keeps beside the state dict: the weight average."""
        return {"average": self.average.state_dict()} if self.average is not None else {}

    def load_extra_state(self, state: dict) -> None:
        if self.average is not None and "average" in state:
            self.average.load_state_dict(state["average"])

    def accelerate(self, compile_mode: str = "none", precision: str = "fp32") -> None:
        """Compile the `compiled_functions` (mode "none": eager) and set the precision of the forward passes."""
        self.precision = precision
        if precision != "fp32":
            set_matmul_precision(precision)
        for name in self.compiled_functions:
            setattr(self, "_" + name, Compiled(getattr(self, name), compile_mode, f"{self.name}.{name}"))

    def autocast(self):
        """The context the forward passes of a training step run in (bf16 autocast with --precision bf16)."""
        if self.precision != "bf16":
            return contextlib.nullcontext()
        return autocast(self.precision, next(self.parameters()).device)

    @property
    def graph_breaks(self) -> int:
        """Graph breaks dynamo reported while compiling this method's functions (0 with one graph each)."""
        return sum(getattr(self, "_" + name).graph_breaks for name in self.compiled_functions)

    # -- building ---------------------------------------------------------------------------------------
    @classmethod
    def from_config(cls, cfg, data, pipeline: InputPipeline, device: torch.device) -> "ClusteringMethod":
        """The method for a resolved `TrainConfig` (its own settings in `cfg.options`) and an `ImageSet`."""
        raise NotImplementedError

    @classmethod
    def batches_per_step_for(cls, settings) -> int:
        """Batches one training step draws from the stream (for epochs and throughput)."""
        return 1

    @classmethod
    def derived_settings(cls, settings, *, steps: int, steps_per_epoch: float) -> dict:
        """Defaults that depend on the run's length (DCSM's k-means period); only for settings left at None."""
        return {}

    @property
    def batches_per_step(self) -> int:
        return self.batches_per_step_for(self.settings)

    # -- training ---------------------------------------------------------------------------------------
    def train_step(self, batches) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        raise NotImplementedError

    def distribute(self, ctx, device: torch.device) -> None:
        """Wrap the networks for data-parallel training (`core.distributed`); inference keeps using the plain
        modules, so rank 0 can evaluate alone."""
        from ..errors import ConfigError

        raise ConfigError(f"distributed training (torchrun) is implemented for DCCS, not for {self.name.upper()}")

    def set_live(self, name: str, value: float) -> None:
        if name not in self.live_settings:
            raise KeyError(f"{name} cannot be changed while training (changeable: {', '.join(self.live_settings)})")
        getattr(self, name).fill_(float(value))

    def get_live(self, name: str) -> float:
        return float(getattr(self, name))

    def live_values(self) -> dict[str, float]:
        return {name: self.get_live(name) for name in self.live_settings}

    # -- inference --------------------------------------------------------------------------------------
    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(z_c, z_s) for network inputs x (already through the pipeline)."""
        raise NotImplementedError

    @torch.no_grad()
    def embed(self, images_u8: torch.Tensor, batch_size: int = 1024,
              averaged: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
        """z_c and z_s of uint8 images in evaluation mode (BatchNorm running statistics), in chunks; with the
        averaged weights when `--ema` is on (`averaged=False`: the raw ones, for what training itself uses)."""
        was_training = self.training
        self.eval()
        use = averaged and self.average is not None
        averaged = self.average.applied() if use else contextlib.nullcontext()
        try:
            with averaged:  # the averaged weights, when --ema is on
                zc, zs = [], []
                for chunk in images_u8.split(batch_size):
                    a, b = self.encode(self.pipeline.clean(chunk))
                    zc.append(a)
                    zs.append(b)
                return torch.cat(zc), torch.cat(zs)
        finally:
            self.train(was_training)

    @classmethod
    def describe(cls) -> dict:
        """What a run directory records about its method (config.json "method"), so that views need no registry."""
        return {"name": cls.name, "title": cls.title, "live_settings": list(cls.live_settings),
                "curve_groups": [[title, [list(k) for k in keys]] for title, keys in cls.curve_groups],
                "progress_keys": [list(k) for k in cls.progress_keys], "best_metrics": list(cls.best_metrics),
                "settings": [f.name for f in dataclasses.fields(cls.Settings)]}
