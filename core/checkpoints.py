"""A run's checkpoints: what a checkpoint holds, writing it (atomically, rotating old ones, keeping the best),
reading one back, and where a trainer starts from (`Resume` a run, or `Branch` a new run off another's checkpoint).

Live settings (β_Aug) are stored apart from the weights (`live`), so that a branch starts from the source's
weights with its own live values, and a resumed run continues with the values in force when it stopped.
"""

from __future__ import annotations

import math
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

from .errors import ConfigError, DiskError, RunError
from .io import DISK_ERRNOS, atomic_torch_save, describe_os_error, link_atomic, unwritable
from .rundir import Run, checkpoint_name

FORMAT = 2  # 1: live settings inside `method` (still read)
# what `resume` and `branch` may change: settings that do not alter the method
CHANGEABLE = {"steps", "device", "threads", "progress", "log_every", "eval_every", "snapshot_every",
              "checkpoint_every", "keep_checkpoints", "data_path", "download"}


@dataclass
class Resume:
    """Continue a run directory from its checkpoint (`state`; None: it has none, and starts again from step 0);
    `changes`: settings given anew (a longer `steps`, ...)."""

    state: dict | None
    changes: dict = field(default_factory=dict)


@dataclass
class Branch:
    """Start a new run from another run's checkpoint at `step`, with the source's records up to it."""

    source: str
    step: int
    state: dict
    records: list = field(default_factory=list)


def load(run: Run, step: int | str = "latest") -> dict:
    """A checkpoint's state (CPU tensors); for "latest", the newest readable one, past damaged ones."""
    if step != "latest":
        path = run.checkpoint_path(step)
        try:
            return torch.load(path, map_location="cpu", weights_only=True)
        except Exception as e:  # noqa: BLE001 - a damaged file: say which, no traceback
            raise RunError(f"{path} cannot be read: it is damaged ({type(e).__name__})") from None
    for s in reversed(run.checkpoint_steps()):
        try:
            return torch.load(run.checkpoint_path(s), map_location="cpu", weights_only=True)
        except Exception:  # a damaged checkpoint: fall back to the one before
            continue
    raise RunError(f"{run.path} has no readable checkpoint")


def split_live(state: dict, live_names) -> tuple[dict, dict]:
    """(weights, live values) of a checkpoint, whatever its format."""
    weights = dict(state["method"])
    live = {name: float(weights.pop(name)) for name in live_names if name in weights}  # format 1
    live.update(state.get("live", {}))
    return weights, live


def capture(step: int, batches, elapsed: float, method, config, control_seq: int) -> dict:
    """Everything a resumed run needs to compute what the uninterrupted one would have (docs/run-directory.md)."""
    return {"format": FORMAT, "step": step, "epoch": batches.epoch, "elapsed": elapsed,
            "method": method.state_dict(), "live": method.live_values(),
            "optimizers": {k: o.state_dict() for k, o in method.optimizers().items()},
            "batches": batches.state_dict(), "torch_rng": torch.get_rng_state(), "control_seq": control_seq,
            "settings": config.to_dict(), **method.extra_state()}


def restore(state: dict, method, batches, *, live: bool = True) -> None:
    """Put a checkpoint's weights, optimiser states, data order and random state back; its live values too unless
    `live` is false (a branch keeps its own)."""
    if state.get("format") not in (1, FORMAT):
        raise RunError(f"checkpoint format {state.get('format')} is not supported by this version")
    weights, values = split_live(state, method.live_settings)
    method.load_state_dict(weights)
    for k, o in method.optimizers().items():
        o.load_state_dict(state["optimizers"][k])
    batches.load_state_dict(state["batches"])
    torch.set_rng_state(state["torch_rng"])
    method.load_extra_state(state)
    if live:
        for name, value in values.items():
            method.set_live(name, value)


class Checkpoints:
    """Writes checkpoints into a run's `checkpoints/` folder: keeps the newest `keep`, and `best.pt` for the lowest
    value of `best_metric` among those from step `best_from` on."""

    def __init__(self, run_path: Path, keep: int, best_metric: str, first_within: float = 60.0):
        self.folder = Path(run_path) / "checkpoints"
        self.run_path = Path(run_path)
        self.keep = keep
        self.best_metric = best_metric
        self.best = {"value": math.inf, "step": None}
        self.first_within = first_within  # seconds
        self._since = time.monotonic()

    def check_room(self, method) -> None:
        """RunError when the run folder cannot be written, or its disk has no room for `keep` + 2 checkpoints (the
        one being written and best.pt besides) and 32 MiB for the rest. Before the run writes anything."""
        each = checkpoint_bytes(method)
        check_room(self.run_path, (self.keep + 2) * each + MARGIN,
                   f" ({self.keep} + 2 checkpoints of about {_size(each)} and {_size(MARGIN)} for the rest)")

    def first_due(self) -> bool:
        """True once `first_within` seconds have passed and the run has no checkpoint yet."""
        if self._since is None or time.monotonic() - self._since < self.first_within:
            return False
        return not any(self.folder.glob("step_*.pt"))

    def save(self, step: int, state: dict, record: dict | None, best_from: float = 0) -> tuple[Path, bool]:
        value = (record or {}).get(self.best_metric)
        is_best = (step >= best_from and value is not None and math.isfinite(value)
                   and value < self.best["value"])
        if is_best:
            self.best = {"value": float(value), "step": step}
        path = self.folder / checkpoint_name(step)
        atomic_torch_save(path, {**state, "best": dict(self.best)})
        self._since = None  # the first is written
        if is_best:  # a hard link: no second copy to write, and it outlives the rotation of step files
            link_atomic(path, self.folder / "best.pt")
        # only now that the new one is whole on disk (a failed write raised above) do the oldest go
        for old in Run(self.run_path).checkpoint_steps()[: -self.keep]:
            (self.folder / checkpoint_name(old)).unlink(missing_ok=True)
        return path, is_best


# ----------------------------------------------------------------------------------------------------------
# a disk that is read-only or too full: refused before a run writes anything; filling while it trains
# ----------------------------------------------------------------------------------------------------------
MARGIN = 32 * 2**20  # bytes for everything of a run but its checkpoints: config, probe, snapshots, metrics


def checkpoint_bytes(method) -> int:
    """About how large a checkpoint of `method` is: its weights three times over (Adam keeps two moments of each)."""
    return 3 * sum(t.numel() * t.element_size() for t in method.state_dict().values())


def check_room(folder, bytes_needed: int, what: str = "") -> None:
    """RunError unless files can be created in `folder` (or, when it does not exist yet, in the folder above it
    that it will be created in) and its disk has `bytes_needed` bytes free; `what` says what they are for.
    Creates nothing."""
    folder = Path(folder).absolute()
    existing = next(p for p in (folder, *folder.parents) if p.exists())
    if not existing.is_dir():
        return  # a file where a folder should be: `RunWriter.create` says so
    where = "" if existing == folder else f" (to be created in {existing})"
    elsewhere = ("copy the run to a disk that can be written and resume it there" if (folder / "config.json").exists()
                 else "choose another --run-dir")
    why = unwritable(existing)
    if why:
        raise RunError(f"cannot write the run directory {folder}: {existing} {why}; {elsewhere}")
    free = shutil.disk_usage(existing).free
    if free < bytes_needed:
        raise RunError(f"not enough room for the run directory {folder}{where}: its disk has {_size(free)} free, "
                       f"the run needs {_size(bytes_needed)}{what}; make room, lower --keep-checkpoints or "
                       f"{elsewhere}")


def _size(n: int) -> str:
    return f"{n / 2**30:.1f} GiB" if n >= 2**30 else f"{n / 2**20:.1f} MiB"


def last_intact(run_path) -> tuple[int, Path] | None:
    """(step, path) of the newest checkpoint that loads, or None."""
    try:
        run = Run(run_path)
        steps = run.checkpoint_steps()
    except (RunError, OSError):
        return None
    for step in reversed(steps):
        try:
            torch.load(run.checkpoint_path(step), map_location="cpu", weights_only=True)
            return step, run.checkpoint_path(step)
        except Exception:  # noqa: BLE001 - damaged: the one before
            continue
    return None


def disk_error(error: BaseException, run_path, step: int) -> DiskError | None:
    """For an OSError of a disk that filled, turned read-only or reached its quota while the run trained: a
    DiskError naming it, the last checkpoint still intact on disk and the command that continues the run. None for
    any other error."""
    if not isinstance(error, OSError) or error.errno not in DISK_ERRNOS:
        return None
    kept = last_intact(run_path)
    where = (f"its last intact checkpoint is step {kept[0]} ({kept[1]})" if kept
             else "it has no checkpoint yet (resuming starts it again from step 0)")
    err = DiskError(f"the run stopped at step {step}: cannot write {describe_os_error(error)}; {where}; make room, "
                    f"then continue with: python -m core resume {run_path}")
    err.__suppress_context__ = True  # raised while handling `error`: its message says it all
    return err


def resume_point(run_dir, overrides: dict):
    """(config, Resume) to continue `run_dir` from its latest readable checkpoint with `overrides` applied. A run
    with no readable checkpoint (killed before its first one) restarts from step 0 (`Resume.state` None); a
    finished run is refused unless `steps` asks for more."""
    from .config import TrainConfig

    run = Run(run_dir)
    overrides = allowed_changes(overrides, CHANGEABLE, "resuming")
    old = run.config["settings"]  # a dict: `Run.config` checks it
    cfg = TrainConfig.from_dict(old).replace(run_dir=str(run.path), **overrides)
    changes = {k: v for k, v in overrides.items() if old.get(k) != v}
    try:
        state = load(run)
    except RunError:
        return cfg, Resume(None, changes)
    step = int(state["step"])
    if step >= cfg.steps:
        done = (run.summary() or {}).get("state") == "finished"
        raise RunError(f"{run.path} has {'finished' if done else 'reached'} step {step} of {old.get('steps')}: "
                       f"nothing to resume" + (f" (--steps {cfg.steps} is not more than {step})" if "steps" in
                                               overrides else f"; give --steps larger than {step} to train longer"))
    return cfg, Resume(state, changes)


def branch_point(source, run_dir, step: int | None, changes: dict):
    """(config, Branch) for a new run in `run_dir` from `source`'s checkpoint at `step` (default: its latest)."""
    from .config import TrainConfig

    src = Run(source)
    changes = allowed_changes(changes, CHANGEABLE | set(src.live_settings), "branching")
    steps = src.checkpoint_steps()
    if not steps:
        raise RunError(f"{src.path} has no checkpoint to branch from")
    step = steps[-1] if step is None else step
    if step not in steps:
        raise RunError(f"{src.path} has no checkpoint at step {step} (it has: {', '.join(map(str, steps))})")
    cfg = TrainConfig.from_dict(src.config["settings"]).replace(run_dir=str(run_dir), **changes)
    if cfg.steps <= step:
        raise ConfigError(f"the branch starts at step {step}: give it more steps than that (--steps)")
    records = [r for r in src.metrics() if r.get("step", 0) <= step]
    return cfg, Branch(str(src.path), step, load(src, step), records)


def allowed_changes(given: dict, allowed: set, doing: str) -> dict:
    given = {k: v for k, v in given.items() if v is not None}
    bad = sorted(k for k in given if k not in allowed)
    if bad:
        raise ConfigError(f"cannot change {', '.join(bad)} when {doing} (changeable: {', '.join(sorted(allowed))})")
    return given
