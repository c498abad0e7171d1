"""The training loop: runs a method on the GPU when there is one, else the CPU, and writes the run directory.

The hot loop keeps losses on the device and synchronises with the host once per logging window (`log_every`
steps); evaluation, snapshots, checkpoints and steering (`core.steering`: β_Aug changes, stop requests) happen at
the end of such a window. Nothing is lost: checkpoints are written atomically (`core.checkpoints`), SIGINT/SIGTERM
(CLI) or `stop()` save one before the run ends, and `resume` continues from the last checkpoint with model,
optimizer, data order and random state restored.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import torch

from . import checkpoints, distributed
from .batches import BatchStream
from .build import build_method
from .checkpoints import Branch, Checkpoints, Resume
from .config import TrainConfig, resolve_config, validate
from .control import ControlChannel
from .data import ImageSet, load_dataset
from .errors import TrainingDiverged
from .evaluate import Evaluator
from .events import Background, EventHub
from .records import LossWindow, Recorder, run_summary
from .rundir import NullWriter, Run, RunWriter
from .runtime import library_versions, resolve_device
from .steering import Steering

class Trainer:
    """Train a clustering method and write its run directory.

    In a script: `Trainer(cfg).fit()`. In a notebook: `t = Trainer(cfg).start()` trains in a background thread;
    `t.events()` yields every record as it is written, `t.set_beta_aug(3)` changes β_Aug from the step after the
    next record (and records it), `t.stop()` ends the run after the current step with a checkpoint. Callbacks
    given as `callbacks=[fn]` receive the same events. `Trainer.resume(run_dir)` continues a run;
    `Trainer.branch(source, run_dir, beta_aug=...)` starts a new one from another run's checkpoint.
    """

    def __init__(self, config: TrainConfig | dict | None = None, *, data: ImageSet | None = None,
                 callbacks: list[Callable[[dict], None]] = (), origin: Resume | Branch | None = None, **overrides):
        cfg = config if isinstance(config, TrainConfig) else TrainConfig.from_dict(dict(config or {}))
        cfg = cfg.replace(**overrides) if overrides else cfg
        validate(cfg)
        if cfg.threads:
            torch.set_num_threads(cfg.threads)
        self.dist, device_name = distributed.setup(cfg.device)
        self.device = resolve_device(device_name)
        self.data = data if data is not None else load_dataset(
            cfg.dataset, cfg.data_path, download=cfg.download, image_size=cfg.image_size, progress=cfg.progress)
        resuming = isinstance(origin, Resume) and origin.state is not None
        cfg = cfg if resuming else resolve_config(cfg, self.data, self.dist.world_size)
        if cfg.run_dir is None:
            run_dir = str(Path("runs") / f"{Path(cfg.dataset).stem}-{cfg.method}-{time.strftime('%Y%m%d-%H%M%S')}")
            cfg = cfg.replace(run_dir=distributed.broadcast_object(run_dir, self.dist))
        self.config = cfg
        self.run_dir = Path(cfg.run_dir)
        self.writer = RunWriter(self.run_dir) if self.dist.is_main else NullWriter(self.run_dir)

        torch.manual_seed(cfg.seed)
        self.method = build_method(cfg, self.data, self.device)
        self.images = self.data.images.to(self.device)
        if self.dist.active:  # each rank its share of every global batch, and its own noise
            self.batches = distributed.ShardedBatchStream(self.images, cfg.batch_size, cfg.seed, self.dist)
        else:
            generator = torch.Generator(device=self.device)
            generator.manual_seed(cfg.seed)
            self.batches = BatchStream(self.images, cfg.batch_size, generator)
        self.generator = self.batches.generator
        rng = np.random.default_rng(cfg.seed)
        self.probe_indices = np.sort(rng.choice(len(self.data), min(cfg.probe_size, len(self.data)), replace=False))
        self.evaluator = Evaluator(self.method, self.data, self.images, self.probe_indices, cfg.eval_batch_size)

        self.step, self.elapsed = 0, 0.0  # elapsed: training wall time of earlier sessions of this run
        self.hub = EventHub(callbacks)
        control = ControlChannel(self.run_dir) if self.dist.is_main else None
        self.steering = Steering(type(self.method), control, self.dist)
        self.checkpoints = Checkpoints(self.run_dir, cfg.keep_checkpoints, cfg.best_metric)
        if self.dist.is_main:  # a read-only or too full disk is refused before anything is written
            self.checkpoints.check_room(self.method)
        self.recorder = Recorder(self.writer, self.hub, self._stamp, lambda: self.config.steps,
                                 self.method.progress_keys)
        self._background = Background(self.fit)
        self.result: dict | None = None
        self._t0: float | None = None
        if resuming:
            self._resume(origin)
        else:
            self._create(origin)
        if self.dist.active:  # after any checkpoint is loaded: DDP starts from rank 0's weights
            self.method.distribute(self.dist, self.device)

    @classmethod
    def resume(cls, run_dir: str | Path, *, data: ImageSet | None = None, callbacks=(), **overrides) -> "Trainer":
        """Continue an interrupted run from its latest readable checkpoint; `overrides` may change the settings
        in `checkpoints.CHANGEABLE` (a larger `steps` trains longer)."""
        cfg, origin = checkpoints.resume_point(run_dir, overrides)
        return cls(cfg, data=data, callbacks=callbacks, origin=origin)

    @classmethod
    def branch(cls, source: str | Path, run_dir: str | Path, *, step: int | None = None,
               data: ImageSet | None = None, callbacks=(), **changes) -> "Trainer":
        """A new run that continues another run's checkpoint (its latest, or the one at `step`) with live
        settings changed — β_Aug tuning sessions train every value from one shared warm-up this way.

        `changes` may set live settings (β_Aug: applied from the first step after the branch point and recorded as a
        `set` record), the length and the settings `resume` may change. The new run's metrics.jsonl starts with
        the source's records up to the branch point, so its curves are whole."""
        cfg, origin = checkpoints.branch_point(source, run_dir, step, changes)
        return cls(cfg, data=data, callbacks=callbacks, origin=origin)

    def _create(self, branch: Branch | Resume | None) -> None:
        cfg = self.config
        extra = {"branched_from": {"run": branch.source, "step": branch.step}} if isinstance(branch, Branch) else {}
        if self.dist.active:
            extra["distributed"] = {"world_size": self.dist.world_size, "backend": distributed.backend(),
                                    "global_batch_size": cfg.batch_size * self.dist.world_size}
        self.writer.create({"settings": cfg.to_dict(), "method": type(self.method).describe(),
                            "dataset": self.data.describe(), "device": str(self.device),
                            "versions": library_versions(), "created": time.time(), **extra},
                           restart=isinstance(branch, Resume))  # a run with no checkpoint starts again
        labels = None if self.data.labels is None else self.data.labels[self.probe_indices]
        names = self.data.names and [self.data.names[i] for i in self.probe_indices]  # file names, when known
        self.writer.probe(self.probe_indices, self.data.images[self.probe_indices].numpy(), labels,
                          self.data.class_names, names=names)
        if self.steering.control is not None:
            self.steering.control.start_from_current()
        self.recorder.status("starting", 0)
        if not isinstance(branch, Branch):
            return
        for record in branch.records:
            self.writer.append(record)
        checkpoints.restore(branch.state, self.method, self.batches, live=False)  # this run's live values stay
        self.step, self.elapsed = int(branch.state["step"]), float(branch.state["elapsed"])
        self.recorder.event("branched", time=self.elapsed, dropped_records=0, changes={}, source=branch.source)
        _, source_live = checkpoints.split_live(branch.state, self.method.live_settings)
        for name, value in self.method.live_values().items():
            if source_live.get(name) != value:
                self.recorder.setting(name, value, source_live.get(name), "branch")

    def _resume(self, resume: Resume) -> None:
        state = resume.state
        self.writer.open()
        checkpoints.restore(state, self.method, self.batches, live=True)
        self.step, self.elapsed = int(state["step"]), float(state["elapsed"])
        self.checkpoints.best = dict(state["best"])
        if self.steering.control is not None:
            self.steering.control.seq = int(state.get("control_seq", 0))
        dropped = self.writer.truncate_after(self.step)
        self.recorder.event("resumed", time=self.elapsed, dropped_records=dropped, changes=resume.changes)
        self.recorder.status("starting", self.step)

    def _state(self) -> dict:
        control = self.steering.control
        return checkpoints.capture(self.step, self.batches, self._time(), self.method, self.config,
                                   control.seq if control is not None else 0)

    def start(self) -> "Trainer":
        """Train in a background thread (for notebooks and apps); returns at once."""
        self._background.start()
        return self

    @property
    def running(self) -> bool:
        return self._background.running

    @property
    def started(self) -> bool:
        """Whether training has begun (in the background or by `fit()`), or already ended."""
        return self._background.started or self._t0 is not None or self.result is not None

    @property
    def error(self) -> BaseException | None:
        """What ended a background run with an error (also recorded in status.json)."""
        return self._background.error

    def join(self, timeout: float | None = None) -> dict | None:
        self._background.join(timeout)
        return self.result

    @property
    def last_record(self) -> dict:
        return self.recorder.last

    def fit(self) -> dict:
        """Train to `steps`; returns the final summary (also written to summary.json)."""
        cfg, rec = self.config, self.recorder
        self._t0 = time.perf_counter()
        rec.status("running", self.step)
        self.hub.emit({"type": "status", "state": "running", "step": self.step})
        rec.open_bar(self.step, cfg.progress and self.dist.is_main, f"{cfg.method} {Path(cfg.dataset).stem}")
        window = LossWindow(self.dist)
        self.method.train()
        try:
            self._steer()  # requests made before training started apply from its first step
            while self.step < cfg.steps and not self.steering.stopping:
                window.add(self.method.step(self.batches, self.step + 1, cfg.steps))
                self.step += 1
                s = self.step
                due = {"eval": cfg.eval_every > 0 and s % cfg.eval_every == 0,
                       "snapshot": s % cfg.snapshot_every == 0 or s == 1,
                       # and the first one within a minute, so that a kill rarely costs more than that
                       "checkpoint": s % cfg.checkpoint_every == 0 or self.checkpoints.first_due()}
                if s % cfg.log_every == 0 or any(due.values()) or s == cfg.steps:
                    record = self._record(window)
                    if (due["eval"] or s == cfg.steps) and self.dist.is_main:
                        record.update(self.evaluate())
                    rec.record(record)
                    if due["snapshot"]:
                        self.snapshot()
                    if due["checkpoint"]:
                        self.checkpoint(record)
                    self._steer()
                    rec.heartbeat(self.step)
                    window.restart_clock()
            if window.steps:
                rec.record({**self._record(window), **(self.evaluate() if self.dist.is_main else {})})
            return self._finish()
        except TrainingDiverged as e:
            rec.end("failed", self.step, str(e), None)
            raise
        except KeyboardInterrupt:
            last = Run(self.run_dir).checkpoint_steps()
            rec.end("interrupted", self.step, "interrupted; resume continues from the last checkpoint"
                    + (f" (step {last[-1]})" if last else ""), None)
            raise
        except BaseException as e:
            error = checkpoints.disk_error(e, self.run_dir, self.step)  # a disk that filled: what is kept, and how on
            rec.end("failed", self.step, str(error or f"{type(e).__name__}: {e}"), None)
            raise error or e
        finally:
            rec.close_bar()
            self.writer.close()

    def _finish(self) -> dict:
        cfg = self.config
        # the weights and the live settings (β_Aug) of every rank against rank 0's: the last collective
        spread = distributed.spread([*self.method.parameters(),
                                     *(getattr(self.method, n) for n in self.method.live_settings)], self.dist)
        state = "finished" if self.step >= cfg.steps else "stopped"
        if not self.dist.is_main:
            self.result = {"state": state, "step": self.step, "rank": self.dist.rank, "param_spread": spread}
            return self.result
        if "size_entropy" not in self.recorder.last:  # stopped right after a plain log step
            self.recorder.last = {**self.recorder.last, **self.evaluate()}
        if self.step not in Run(self.run_dir).snapshot_steps():
            self.snapshot()
        self.checkpoint(self.recorder.last)
        message = "" if state == "finished" else (self.steering.stop_reason or "")
        self.result = run_summary(state, message, self.step, cfg.steps, self.batches.epoch, self._time(), self.device,
                                  self.checkpoints.best, self.recorder.last)
        if self.dist.active:
            self.result["distributed"] = {"world_size": self.dist.world_size, "param_spread": spread}
        self.writer.summary(self.result)
        self.recorder.end(state, self.step, message, self.result)
        return self.result

    def _time(self) -> float:
        return self.elapsed + (time.perf_counter() - self._t0 if self._t0 is not None else 0.0)

    def _stamp(self) -> dict:
        return {"step": self.step, "epoch": round(self.batches.epoch, 4), "time": round(self._time(), 3),
                "timestamp": time.time()}

    def _record(self, window: LossWindow) -> dict:
        """The window's record; stops the run when a loss became NaN or infinite."""
        images = self.method.batches_per_step * self.config.batch_size * self.dist.world_size
        n_steps = window.steps
        losses, bad = window.flush(images)
        record = {"kind": "train", **self._stamp(), **losses, **self.method.live_values()}
        if bad:
            self.writer.append(record)
            last = Run(self.run_dir).checkpoint_steps()
            where = f"the last good checkpoint is step {last[-1]}" if last else "no checkpoint was written before it"
            raise TrainingDiverged(
                f"training diverged: {', '.join(bad)} became NaN or infinite between steps "
                f"{self.step - n_steps + 1} and {self.step}; {where}. Try a smaller learning rate (--lr) or "
                "another seed")
        return record

    def _steer(self) -> None:
        for problem in self.steering.poll_control():
            print(f"warning: {problem}", file=sys.stderr)
            self.recorder.event("control_ignored", message=problem)
        for name, (value, source) in self.steering.settle().items():
            old = self.method.get_live(name)
            if value != old:
                self.method.set_live(name, value)
                self.recorder.setting(name, value, old, source)

    def set_live(self, name: str, value: float, source: str = "api") -> None:
        """Change a live setting; checked now (ConfigError), applied from the step after the next record."""
        self.steering.request(name, value, source)

    def set_beta_aug(self, value: float) -> None:
        """Change β_Aug; it applies from the step after the next record and is recorded in metrics.jsonl."""
        self.set_live("beta_aug", value)

    @property
    def beta_aug(self) -> float:
        return self.method.get_live("beta_aug")

    def stop(self, reason: str = "stopped by request") -> None:
        """End the run after the current step, with a checkpoint."""
        self.steering.request_stop(reason)

    @property
    def stop_requested(self) -> bool:
        return self.steering.stop_requested

    def add_callback(self, fn: Callable[[dict], None]) -> None:
        self.hub.add_callback(fn)

    def events(self) -> Iterator[dict]:
        """Every event of the run (records, snapshots, checkpoints, the end); starts training in the background
        if it is not running yet. Ends after the 'end' event."""
        return self.hub.subscribe(alive=lambda: self.running,
                                  on_start=lambda: None if self.started else self.start())

    def predict(self, images: torch.Tensor | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(z_c, z_s) as numpy arrays for uint8 images (default: the whole data set)."""
        return self.evaluator.predict(images)

    def evaluate(self) -> dict:
        """Label-free statistics of the whole data set, plus ACC/NMI/ARI when labels exist."""
        return self.evaluator.evaluate(self.step)

    def snapshot(self) -> Path | None:
        if not self.dist.is_main:  # rank 0 writes the run directory
            return None
        z_c, z_s, labels, metrics = self.evaluator.probe(self.step)
        metrics.update(self.method.live_values())
        path = self.writer.snapshot(self.step, self.batches.epoch, z_c, z_s, labels, metrics)
        self.hub.emit({"type": "snapshot", "step": self.step, "path": str(path), "metrics": metrics})
        return path

    def checkpoint(self, record: dict | None = None) -> Path | None:
        """Write the full training state atomically; keep the newest few and the best by `best_metric`."""
        if not self.dist.is_main:  # every rank holds the same weights: rank 0's are the run's
            return None
        path, is_best = self.checkpoints.save(self.step, self._state(), record,
                                              best_from=self.config.best_after * self.config.steps)
        self.hub.emit({"type": "checkpoint", "step": self.step, "path": str(path), "best": is_best})
        return path
