"""Training levers shared by every method that keep its networks, losses and priors: a learning-rate schedule
(warm-up, then constant, cosine or linear decay to a floor) and an exponential moving average of the inference
networks' weights, which evaluation, snapshots, maps and predictions use while training goes on with the raw
weights. Both are settings (`--lr-schedule`, `--lr-warmup`, `--lr-floor`, `--ema`), off in the `paper` preset and set by a
method's `fast` preset (`--schedule`); their measured effect is in docs/methods.md."""

from __future__ import annotations

import contextlib
import math

import torch

from .settings import Defaults

SCHEDULES = ("constant", "cosine", "linear")
PRESETS = ("paper", "fast")  # --schedule: each method says what each means for each data set (its `presets`)
LEVERS_OFF = Defaults({"lr_schedule": "constant", "lr_warmup": 0, "lr_floor": 0.0, "ema": 0.0, "precision": "fp32"},
                      "the papers' training: constant learning rate, no weight averaging, fp32")


def lr_factor(step: int, total: int, schedule: str = "constant", warmup: int = 0, floor: float = 0.0) -> float:
    """The learning rate of training step `step` (1-based) as a fraction of the set one: a linear warm-up over
    `warmup` steps, then constant, or a cosine or linear decay from 1 to `floor` at step `total`."""
    if warmup > 0 and step <= warmup:
        return step / warmup
    if schedule == "constant" or total <= warmup:
        return 1.0
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    decay = 0.5 * (1 + math.cos(math.pi * progress)) if schedule == "cosine" else 1 - progress
    return floor + (1 - floor) * decay


class LRSchedule:
    def __init__(self, schedule: str = "constant", warmup: int = 0, floor: float = 0.0):
        self.schedule, self.warmup, self.floor = schedule, warmup, floor

    @property
    def active(self) -> bool:
        return self.schedule != "constant" or self.warmup > 0

    def apply(self, optimizers, step: int, total: int) -> None:
        """Set every parameter group's learning rate for training step `step` (no host synchronisation)."""
        if not self.active:
            return
        factor = lr_factor(step, total, self.schedule, self.warmup, self.floor)
        for opt in optimizers:
            for group in opt.param_groups:
                group["lr"] = group.setdefault("initial_lr", group["lr"]) * factor


class WeightAverage:
    """An exponential moving average of some modules' parameters; their buffers (BatchNorm statistics) are copied.
    The decay ramps up as min(decay, (1 + t) / (10 + t)), so early averages do not hold on to the initial weights."""

    def __init__(self, modules, decay: float):
        self.decay = decay
        self.params = [p for m in modules for p in m.parameters()]
        self.buffers = [b for m in modules for b in m.buffers()]
        self.shadow = [p.detach().clone() for p in self.params]
        self.shadow_buffers = [b.detach().clone() for b in self.buffers]
        self.updates = 0

    @torch.no_grad()
    def update(self) -> None:
        self.updates += 1
        decay = min(self.decay, (1 + self.updates) / (10 + self.updates))
        torch._foreach_lerp_(self.shadow, [p.detach() for p in self.params], 1 - decay)
        for s, b in zip(self.shadow_buffers, self.buffers):
            s.copy_(b)

    @contextlib.contextmanager
    def applied(self):
        """The averaged weights in the modules for the duration (the storages are swapped, nothing is copied)."""
        pairs = list(zip(self.params, self.shadow)) + list(zip(self.buffers, self.shadow_buffers))
        for p, s in pairs:
            p.data, s.data = s.data, p.data
        try:
            yield
        finally:
            for p, s in pairs:
                p.data, s.data = s.data, p.data

    def state_dict(self) -> dict:
        return {"updates": self.updates, "shadow": [s.cpu() for s in self.shadow],
                "shadow_buffers": [s.cpu() for s in self.shadow_buffers]}

    def load_state_dict(self, state: dict) -> None:
        self.updates = int(state["updates"])
        for s, v in zip(self.shadow, state["shadow"]):
            s.copy_(v)
        for s, v in zip(self.shadow_buffers, state["shadow_buffers"]):
            s.copy_(v)
