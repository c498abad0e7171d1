"""The training loop: runs a method on the GPU when there is one, else the CPU, and writes the run directory.

The hot loop keeps losses on the device and synchronises with the host once per logging window (`log_every`
steps); evaluation, snapshots and checkpoints happen at the end of such a window. Nothing is lost: checkpoints
are written atomically, SIGINT/SIGTERM (CLI) or `stop()` save one before the run ends, and `resume` continues
from the last checkpoint with model, optimizer, data order and random state restored.
"""

from __future__ import annotations

import math
import platform
import queue
import threading
import time
import warnings
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import torch

from . import __version__, distributed
from .augment import AugmentSettings, InputPipeline
from .batches import BatchStream
from .config import METHOD_DEFAULTS, PAPER_CROP_AREA_MIN, TrainConfig, dataset_defaults, validate
from .data import ImageSet, load_dataset
from .errors import ConfigError, RunError, TrainingDiverged
from .io import atomic_torch_save, link_atomic
from .methods import DCCS, DCSM, ClusteringMethod
from .metrics import cluster_statistics, evaluate
from .rundir import NullWriter, Run, RunWriter, checkpoint_name

CHECKPOINT_FORMAT = 1


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(name)
    except RuntimeError:
        raise ConfigError(f"unknown device '{name}' (use auto, cpu, cuda or cuda:N)") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device cuda was asked for, but no CUDA GPU is available here; use --device cpu")
    return dev


def _round_up(x: float, multiple: int) -> int:
    return int(math.ceil(max(x, 1) / multiple) * multiple)


def batches_per_step(cfg: TrainConfig) -> int:
    """Batches one training step draws: n_critic + 1 for DCCS (Algorithm 1), one for DCSM (trained `repeats`
    times)."""
    return cfg.n_critic + 1 if cfg.method == "dccs" else 1


def resolve_config(cfg: TrainConfig, data: ImageSet, world_size: int = 1) -> TrainConfig:
    """Fill every None setting from the method's and the data set's defaults and check what needs the data.
    `world_size` processes each take `batch_size` images of a step (distributed training)."""
    validate(cfg)
    d = dataset_defaults(cfg.dataset, data.channels, cfg.method)
    changes = {}
    for name, value in METHOD_DEFAULTS[cfg.method].items():
        if getattr(cfg, name) is None:
            changes[name] = d.get(name, value)
    if cfg.method == "dccs" and cfg.beta_aug is None:
        changes["beta_aug"] = d["beta_aug"]
    if cfg.method == "dcsm":
        for name, value in zip(("mi_alpha", "mi_beta", "mi_delta"), d["mi"]):
            if getattr(cfg, name) is None:
                changes[name] = value
        if cfg.repeats is None:
            changes["repeats"] = d["repeats"]
    if cfg.flip is None:
        changes["flip"] = d["flip"]
    if cfg.crop_area_min is None:
        changes["crop_area_min"] = d.get("crop_area_min", PAPER_CROP_AREA_MIN)
    k = cfg.num_clusters or data.num_classes
    if k is None:
        raise ConfigError(f"{data.name} has no labels: say how many clusters to make with --num-clusters K")
    if k < 2 or k > len(data):
        raise ConfigError(f"the number of clusters K must lie between 2 and the number of images ({len(data)}), "
                          f"got {k}")
    changes["num_clusters"] = k
    batch_size = changes.get("batch_size", cfg.batch_size) * world_size
    if batch_size > len(data):
        raise ConfigError(f"batch size {batch_size} is larger than the data set ({len(data)} images)")
    batches_per_epoch = len(data) // batch_size
    steps_per_epoch = batches_per_epoch / batches_per_step(cfg)
    steps = cfg.steps
    if steps is None:
        epochs = cfg.epochs if cfg.epochs is not None else d.get("epochs")
        steps = int(math.ceil(epochs * steps_per_epoch)) if epochs is not None else d["steps"]
    changes["steps"] = max(1, steps)
    log = cfg.log_every
    if cfg.snapshot_every is None:
        changes["snapshot_every"] = _round_up(steps / 50, log)
    if cfg.eval_every is None:
        changes["eval_every"] = _round_up(max(steps_per_epoch, steps / 50), log)
    if cfg.checkpoint_every is None:
        changes["checkpoint_every"] = _round_up(min(1000, steps / 10), log)
    if cfg.method == "dcsm" and cfg.kmeans_every is None:
        # in steps, not epochs: the network drifts away from the centres by the step, whatever the data set's size
        changes["kmeans_every"] = max(1, min(100, int(round(steps_per_epoch / 4))))
    return cfg.replace(**changes)


def _backend() -> str | None:
    import torch.distributed as dist

    return dist.get_backend() if dist.is_initialized() else None


def library_versions() -> dict:
    import sklearn
    import torchvision

    return {"python": platform.python_version(), "torch": torch.__version__, "torchvision": torchvision.__version__,
            "numpy": np.__version__, "scikit-learn": sklearn.__version__, "engine": __version__,
            "platform": platform.platform()}


def build_method(cfg: TrainConfig, data: ImageSet, device: torch.device) -> ClusteringMethod:
    aug = AugmentSettings(
        crop_area=(cfg.crop_area_min, cfg.crop_area_max), crop_ratio=(cfg.crop_ratio_min, cfg.crop_ratio_max),
        flip=bool(cfg.flip), brightness=cfg.brightness, contrast=cfg.contrast, saturation=cfg.saturation,
        hue=cfg.hue, channel_shuffle=cfg.channel_shuffle, jitter_before_grey=cfg.jitter_before_grey)
    pipeline = InputPipeline(data.channels, cfg.colour_mode, aug)
    height, width = data.size
    if height != width:
        raise ConfigError(f"images are {height}×{width}; the encoders take square images: set --image-size")
    if cfg.method == "dccs":
        return DCCS(pipeline, cfg.num_clusters, height, dim_zs=cfg.dim_zs, prior_std=cfg.prior_std,
                    beta_mi=cfg.beta_mi, beta_adv=cfg.beta_adv, beta_aug=cfg.beta_aug, lambda_gp=cfg.lambda_gp,
                    n_critic=cfg.n_critic, lr=cfg.lr, adam_betas=(cfg.adam_beta1, cfg.adam_beta2),
                    negatives=cfg.negatives, mi_pair_mean=cfg.mi_pair_mean, device=device)
    if cfg.method == "dcsm":
        return DCSM(pipeline, cfg.num_clusters, height, len(data), dim_z=cfg.dim_z, width=cfg.backbone_width,
                    convs_per_stage=cfg.backbone_convs, mi_hidden=cfg.mi_hidden, eps_dt=cfg.eps_dt,
                    lambda_entropy=cfg.lambda_entropy, standard_threshold=cfg.standard_threshold,
                    mi_alpha=cfg.mi_alpha, mi_beta=cfg.mi_beta, mi_delta=cfg.mi_delta, mi_negatives=cfg.mi_negatives,
                    similarity=cfg.similarity, similarity_threshold=cfg.similarity_threshold,
                    kmeans_scope=cfg.kmeans_scope, kmeans_every=cfg.kmeans_every, kmeans_iters=cfg.kmeans_iters,
                    kmeans_sample=cfg.kmeans_sample, kmeans_track=cfg.kmeans_track,
                    repeats=cfg.repeats, ablation=cfg.ablation, lr=cfg.lr,
                    adam_betas=(cfg.adam_beta1, cfg.adam_beta2), device=device)
    raise ConfigError(f"unknown method '{cfg.method}'")


class Trainer:
    """Train a clustering method and write its run directory.

    In a script: `Trainer(cfg).fit()`. In a notebook: `t = Trainer(cfg).start()` trains in a background thread;
    `t.events()` yields every record as it is written, `t.set_beta_aug(3)` changes β_Aug at the next step (and
    records it), `t.stop()` ends the run after the current step with a checkpoint. Callbacks given as
    `callbacks=[fn]` receive the same events.
    """

    def __init__(self, config: TrainConfig | dict | None = None, *, data: ImageSet | None = None,
                 callbacks: list[Callable[[dict], None]] = (), _resume_state: dict | None = None,
                 _branch: dict | None = None, **overrides):
        cfg = config if isinstance(config, TrainConfig) else TrainConfig.from_dict(dict(config or {}))
        if overrides:
            cfg = cfg.replace(**overrides)
        validate(cfg)
        if cfg.threads:
            torch.set_num_threads(cfg.threads)
        self.dist, device_name = distributed.setup(cfg.device)
        self.device = resolve_device(device_name)
        self.data = data if data is not None else load_dataset(
            cfg.dataset, cfg.data_path, download=cfg.download, image_size=cfg.image_size, progress=cfg.progress)
        self.config = resolve_config(cfg, self.data, self.dist.world_size) if _resume_state is None else cfg
        cfg = self.config
        if cfg.run_dir is None:
            stamp = time.strftime("%Y%m%d-%H%M%S")
            run_dir = str(Path("runs") / f"{Path(cfg.dataset).stem}-{cfg.method}-{stamp}")
            self.config = cfg = cfg.replace(run_dir=distributed.broadcast_object(run_dir, self.dist))
        self.run_dir = Path(cfg.run_dir)
        self.writer = RunWriter(self.run_dir) if self.dist.is_main else NullWriter(self.run_dir)

        torch.manual_seed(cfg.seed)
        self.method = build_method(cfg, self.data, self.device)
        self.images = self.data.images.to(self.device)
        if self.dist.active:  # each rank its share of every global batch, and its own noise
            self.batches = distributed.ShardedBatchStream(self.images, cfg.batch_size, cfg.seed, self.dist)
            self.generator = self.batches.generator
        else:
            self.generator = torch.Generator(device=self.device)
            self.generator.manual_seed(cfg.seed)
            self.batches = BatchStream(self.images, cfg.batch_size, self.generator)
        rng = np.random.default_rng(cfg.seed)
        n_probe = min(cfg.probe_size, len(self.data))
        self.probe_indices = np.sort(rng.choice(len(self.data), n_probe, replace=False))

        self.step = 0
        self.elapsed = 0.0  # training wall time of earlier sessions of this run
        self.best = {"value": math.inf, "step": None}
        self.control_seq = 0
        self.callbacks = list(callbacks)
        self._queues: list[queue.Queue] = []
        self._lock = threading.Lock()
        self._pending: dict[str, tuple[float, str]] = {}
        self._stop_reason: str | None = None
        self._thread: threading.Thread | None = None
        self.result: dict | None = None
        self.error: BaseException | None = None
        self.last_record: dict = {}

        self._agreed_stop = False  # distributed: the ranks stop together, at a step rank 0 announced
        if _resume_state is None:
            extra = {"branched_from": {k: _branch[k] for k in ("run", "step")}} if _branch else {}
            if self.dist.active:
                extra["distributed"] = {"world_size": self.dist.world_size, "backend": _backend(),
                                        "global_batch_size": cfg.batch_size * self.dist.world_size}
            self.writer.create({"settings": cfg.to_dict(), "dataset": self.data.describe(),
                                "device": str(self.device), "versions": library_versions(),
                                "created": time.time(), **extra})
            self.writer.probe(self.probe_indices, self.data.images[self.probe_indices].numpy(),
                              None if self.data.labels is None else self.data.labels[self.probe_indices],
                              self.data.class_names)
            ctl = Run(self.run_dir).control() if self.dist.is_main else {}
            self.control_seq = int(ctl.get("seq", 0))
            self.writer.status("starting", step=0, total_steps=cfg.steps)
            if _branch:
                self._start_branch(_branch)
        else:
            self._load_state(_resume_state)
        if self.dist.active:  # after any checkpoint is loaded: DDP starts from rank 0's weights
            self.method.distribute(self.dist, self.device)

    # ------------------------------------------------------------------------------------------------------
    # resuming
    # ------------------------------------------------------------------------------------------------------
    @classmethod
    def resume(cls, run_dir: str | Path, *, data: ImageSet | None = None, callbacks=(), **overrides) -> "Trainer":
        """Continue an interrupted run from its latest readable checkpoint.

        `overrides` may change settings that do not alter the method: steps (to train longer), device, threads,
        progress, logging periods."""
        run = Run(run_dir)
        allowed = {"steps", "device", "threads", "progress", "log_every", "eval_every", "snapshot_every",
                   "checkpoint_every", "keep_checkpoints", "data_path", "download"}
        bad = sorted(k for k, v in overrides.items() if k not in allowed and v is not None)
        if bad:
            raise ConfigError(f"cannot change {', '.join(bad)} when resuming (changeable: {', '.join(sorted(allowed))})")
        cfg = TrainConfig.from_dict(run.config["settings"])
        cfg = cfg.replace(run_dir=str(run.path), **{k: v for k, v in overrides.items() if v is not None})
        state = None
        for step in reversed(run.checkpoint_steps()):
            try:
                state = torch.load(run.checkpoint_path(step), map_location="cpu", weights_only=True)
                break
            except Exception:  # a damaged checkpoint: fall back to the one before
                continue
        if state is None:
            raise RunError(f"{run.path} has no readable checkpoint to resume from")
        old = run.config["settings"]
        state["changes"] = {k: v for k, v in overrides.items() if v is not None and old.get(k) != v}
        return cls(cfg, data=data, callbacks=callbacks, _resume_state=state)

    @classmethod
    def branch(cls, source: str | Path, run_dir: str | Path, *, step: int | None = None,
               data: ImageSet | None = None, callbacks=(), **changes) -> "Trainer":
        """A new run that continues another run's checkpoint (its latest, or the one at `step`) with live
        settings changed — β_Aug tuning sessions train every value from one shared warm-up this way.

        `changes` may set β_Aug (applied from the first step after the branch point and recorded as a `set`
        record), the length and the settings `resume` may change. The new run's metrics.jsonl starts with the
        source's records up to the branch point, so its curves are whole."""
        src = Run(source)
        allowed = {"beta_aug", "steps", "device", "threads", "progress", "log_every", "eval_every",
                   "snapshot_every", "checkpoint_every", "keep_checkpoints", "data_path", "download"}
        bad = sorted(k for k, v in changes.items() if k not in allowed and v is not None)
        if bad:
            raise ConfigError(f"cannot change {', '.join(bad)} when branching (changeable: {', '.join(sorted(allowed))})")
        steps = src.checkpoint_steps()
        if not steps:
            raise RunError(f"{src.path} has no checkpoint to branch from")
        if step is None:
            step = steps[-1]
        if step not in steps:
            raise RunError(f"{src.path} has no checkpoint at step {step} (it has: {', '.join(map(str, steps))})")
        state = torch.load(src.checkpoint_path(step), map_location="cpu", weights_only=True)
        cfg = TrainConfig.from_dict(src.config["settings"]).replace(
            run_dir=str(run_dir), **{k: v for k, v in changes.items() if v is not None})
        if cfg.steps <= step:
            raise ConfigError(f"the branch starts at step {step}: give it more steps than that (--steps)")
        return cls(cfg, data=data, callbacks=callbacks,
                   _branch={"run": str(src.path), "step": step, "state": state,
                            "records": [r for r in src.metrics() if r.get("step", 0) <= step]})

    def _start_branch(self, branch: dict) -> None:
        for record in branch["records"]:
            self.writer.append(record)
        wanted = {name: self.method.get_live(name) for name in self.method.live_settings}
        own_control = self.control_seq  # this run's control.json, not the source's: requests sent here count
        self._load_state({**branch["state"], "changes": {}}, event="branched", source=branch["run"])
        self.control_seq = own_control
        self.best = {"value": math.inf, "step": None}  # the source's best.pt is not in this run
        for name, value in wanted.items():  # the checkpoint brought the source's values back: set ours again
            old = self.method.get_live(name)
            if old != value:
                self.method.set_live(name, value)
                self.writer.append({"kind": "set", "step": self.step + 1, "epoch": self.batches.epoch,
                                    "time": self._time(), "timestamp": time.time(), "setting": name,
                                    "value": value, "previous": old, "source": "branch", name: value})

    def _state(self) -> dict:
        return {
            "format": CHECKPOINT_FORMAT, "step": self.step, "epoch": self.batches.epoch,
            "elapsed": self.elapsed + self._session_time(), "method": self.method.state_dict(),
            "optimizers": {k: o.state_dict() for k, o in self.method.optimizers().items()},
            "batches": self.batches.state_dict(), "torch_rng": torch.get_rng_state(),
            "best": dict(self.best), "control_seq": self.control_seq, "settings": self.config.to_dict(),
        }

    def _load_state(self, state: dict, event: str = "resumed", source: str | None = None) -> None:
        if state.get("format") != CHECKPOINT_FORMAT:
            raise RunError(f"checkpoint format {state.get('format')} is not supported by this version")
        self.method.load_state_dict(state["method"])
        for k, o in self.method.optimizers().items():
            o.load_state_dict(state["optimizers"][k])
        self.batches.load_state_dict(state["batches"])
        torch.set_rng_state(state["torch_rng"])
        self.step = int(state["step"])
        self.elapsed = float(state["elapsed"])
        self.best = dict(state["best"])
        self.control_seq = int(state["control_seq"])
        dropped = self.writer.truncate_after(self.step)
        record = {"kind": "event", "event": event, "step": self.step, "epoch": self.batches.epoch,
                  "time": self.elapsed, "timestamp": time.time(), "dropped_records": dropped,
                  "changes": state.get("changes", {})}
        if source:
            record["source"] = source
        self.writer.append(record)
        self.writer.status("starting", step=self.step, total_steps=self.config.steps)

    # ------------------------------------------------------------------------------------------------------
    # steering (thread-safe; applied at the next step)
    # ------------------------------------------------------------------------------------------------------
    def set_beta_aug(self, value: float) -> None:
        """Change β_Aug; it applies from the next step and is recorded in metrics.jsonl."""
        self.set_live("beta_aug", value, source="api")

    def set_live(self, name: str, value: float, source: str = "api") -> None:
        if name not in self.method.live_settings:
            raise ConfigError(f"{name} cannot be changed while training")
        value = float(value)
        if not math.isfinite(value) or value < 0:
            raise ConfigError(f"{name} must be a finite number ≥ 0, got {value}")
        with self._lock:
            self._pending[name] = (value, source)

    @property
    def beta_aug(self) -> float:
        return self.method.get_live("beta_aug")

    def stop(self, reason: str = "stopped by request") -> None:
        """End the run after the current step, with a checkpoint."""
        self._stop_reason = reason

    # ------------------------------------------------------------------------------------------------------
    # events
    # ------------------------------------------------------------------------------------------------------
    def add_callback(self, fn: Callable[[dict], None]) -> None:
        self.callbacks.append(fn)

    def _emit(self, event: dict) -> None:
        for fn in list(self.callbacks):
            try:
                fn(event)
            except Exception as e:  # a broken view must not kill the training it watches
                warnings.warn(f"callback {getattr(fn, '__name__', fn)!r} failed and was removed: "
                              f"{type(e).__name__}: {e}", RuntimeWarning, stacklevel=2)
                self.callbacks.remove(fn)
        for q in list(self._queues):
            q.put(event)

    def events(self) -> Iterator[dict]:
        """Every event of the run (records, snapshots, checkpoints, the end); starts training in the background
        if it is not running yet. Ends after the 'end' event."""
        q: queue.Queue = queue.Queue()
        self._queues.append(q)
        if self._thread is None and self.result is None:
            self.start()
        try:
            while True:
                try:
                    ev = q.get(timeout=0.5)
                except queue.Empty:
                    if not self.running:
                        return
                    continue
                yield ev
                if ev["type"] == "end":
                    return
        finally:
            self._queues.remove(q)

    # ------------------------------------------------------------------------------------------------------
    # running
    # ------------------------------------------------------------------------------------------------------
    def start(self) -> "Trainer":
        """Train in a background thread (for notebooks and apps); returns at once."""
        if self._thread is not None and self._thread.is_alive():
            return self
        self._thread = threading.Thread(target=self._fit_quietly, name="trainer", daemon=True)
        self._thread.start()
        return self

    def _fit_quietly(self):
        try:
            self.fit()
        except BaseException as e:  # recorded in status.json and self.error; the thread must not die loudly
            self.error = e

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def join(self, timeout: float | None = None) -> dict | None:
        if self._thread is not None:
            self._thread.join(timeout)
        if self.error is not None and not self.running:
            raise self.error
        return self.result

    def _session_time(self) -> float:
        return time.perf_counter() - self._t0 if hasattr(self, "_t0") else 0.0

    def fit(self) -> dict:
        """Train to `steps`; returns the final summary (also written to summary.json)."""
        cfg = self.config
        self._t0 = time.perf_counter()
        self.writer.status("running", step=self.step, total_steps=cfg.steps)
        self._emit({"type": "status", "state": "running", "step": self.step})
        from tqdm.auto import tqdm

        bar = tqdm(total=cfg.steps, initial=self.step, unit="step", dynamic_ncols=True,
                   disable=not cfg.progress or not self.dist.is_main,
                   desc=f"{cfg.method} {Path(cfg.dataset).stem}")
        window: dict[str, torch.Tensor] = {}
        window_steps, window_start = 0, time.perf_counter()
        self.method.train()
        try:
            while self.step < cfg.steps and not self._stopping():
                if not self.dist.active:  # distributed: applied when the ranks agree on it (_sync_control)
                    self._apply_pending()
                out = self.method.train_step(self.batches)
                self.step += 1
                window_steps += 1
                for key, v in out.items():
                    window[key] = window[key] + v if key in window else v
                s = self.step
                due = {
                    "eval": cfg.eval_every > 0 and s % cfg.eval_every == 0,
                    "snapshot": s % cfg.snapshot_every == 0 or s == 1,
                    "checkpoint": s % cfg.checkpoint_every == 0,
                }
                if s % cfg.log_every == 0 or any(due.values()) or s == cfg.steps:
                    record = self._flush(window, window_steps, time.perf_counter() - window_start)
                    window, window_steps = {}, 0
                    if (due["eval"] or s == cfg.steps) and self.dist.is_main:
                        record.update(self.evaluate())
                    self.writer.append(record)
                    self.last_record = record
                    self._emit({"type": "record", **record})
                    bar.update(s - bar.n)
                    bar.set_postfix_str(self._postfix(record), refresh=False)
                    if due["snapshot"]:
                        self.snapshot()
                    if due["checkpoint"]:
                        self.checkpoint(record)
                    self._poll_control()
                    self._sync_control()
                    self._heartbeat()
                    window_start = time.perf_counter()  # throughput counts training only, not the work above
            if window_steps:
                record = self._flush(window, window_steps, time.perf_counter() - window_start)
                if self.dist.is_main:
                    record.update(self.evaluate())
                self.writer.append(record)
                self.last_record = record
                self._emit({"type": "record", **record})
            # the weights and the live settings (β_Aug) of every rank against rank 0's: the last collective
            spread = distributed.spread([*self.method.parameters(),
                                         *(getattr(self.method, n) for n in self.method.live_settings)], self.dist)
            if not self.dist.is_main:
                self.result = {"state": "finished" if self.step >= cfg.steps else "stopped", "step": self.step,
                               "rank": self.dist.rank, "param_spread": spread}
                return self.result
            if "size_entropy" not in self.last_record:  # stopped right after a plain log step
                self.last_record = {**self.last_record, **self.evaluate()}
            finished = self.step >= cfg.steps
            if self.step not in Run(self.run_dir).snapshot_steps():
                self.snapshot()
            self.checkpoint(self.last_record)
            state = "finished" if finished else "stopped"
            message = "" if finished else (self._stop_reason or "")
            self.result = self._summary(state, message)
            if self.dist.active:
                self.result["distributed"] = {"world_size": self.dist.world_size, "param_spread": spread}
            self.writer.summary(self.result)
            self.writer.status(state, step=self.step, total_steps=cfg.steps, message=message)
            self._emit({"type": "end", "state": state, "step": self.step, "message": message,
                        "summary": self.result})
            return self.result
        except TrainingDiverged as e:
            self._fail(str(e))
            raise
        except KeyboardInterrupt:
            last = Run(self.run_dir).checkpoint_steps()
            self._fail("interrupted; resume continues from the last checkpoint"
                       + (f" (step {last[-1]})" if last else ""), state="interrupted")
            raise
        except BaseException as e:
            self._fail(f"{type(e).__name__}: {e}")
            raise
        finally:
            bar.close()

    def _fail(self, message: str, state: str = "failed") -> None:
        self.writer.status(state, step=self.step, total_steps=self.config.steps, message=message)
        self._emit({"type": "end", "state": state, "step": self.step, "message": message, "summary": None})

    def _heartbeat(self, every: float = 10.0) -> None:
        """Refresh status.json now and then, so that readers can tell a live run from a killed one."""
        now = time.monotonic()
        if now - getattr(self, "_last_beat", 0.0) >= every:
            self._last_beat = now
            self.writer.status("running", step=self.step, total_steps=self.config.steps)

    def _stopping(self) -> bool:
        return self._agreed_stop if self.dist.active else self._stop_reason is not None

    def _sync_control(self) -> None:
        """Distributed: rank 0's pending changes and stop request reach every rank at this same step (every rank
        runs the same logging schedule), so the ranks never train with different β_Aug or stop apart."""
        if not self.dist.active:
            return
        with self._lock:
            mine = {"pending": dict(self._pending), "stop": self._stop_reason}
        agreed = distributed.broadcast_object(mine, self.dist)
        with self._lock:
            self._pending = dict(agreed["pending"])
        if agreed["stop"] is not None:
            self._stop_reason = agreed["stop"]
            self._agreed_stop = True
        self._apply_pending()

    def _apply_pending(self) -> None:
        if not self._pending:
            return
        with self._lock:
            pending, self._pending = self._pending, {}
        for name, (value, source) in pending.items():
            old = self.method.get_live(name)
            self.method.set_live(name, value)
            rec = {"kind": "set", "step": self.step + 1, "epoch": self.batches.epoch, "time": self._time(),
                   "timestamp": time.time(), "setting": name, "value": value, "previous": old, "source": source,
                   name: value}
            self.writer.append(rec)
            self._emit({"type": "set", **rec})

    def _poll_control(self) -> None:
        ctl = self.writer.poll_control()
        if not ctl or int(ctl.get("seq", 0)) <= self.control_seq:
            return
        self.control_seq = int(ctl.get("seq", 0))
        for name in self.method.live_settings:
            if name in ctl and ctl[name] is not None and float(ctl[name]) != self.method.get_live(name):
                try:
                    self.set_live(name, ctl[name], source="control")
                except ConfigError:
                    pass  # a bad value from outside is ignored, never fatal
        if ctl.get("stop"):
            self.stop("stopped from control.json")

    def _time(self) -> float:
        return self.elapsed + self._session_time()

    def _flush(self, window: dict[str, torch.Tensor], n_steps: int, seconds: float) -> dict:
        """Average the window's losses with one host synchronisation; stop on NaN or infinity."""
        keys = list(window)
        values = (distributed.average(torch.stack([window[k] for k in keys]).double() / n_steps, self.dist)
                  .cpu().tolist() if keys else [])
        record = {"kind": "train", "step": self.step, "epoch": round(self.batches.epoch, 4),
                  "time": round(self._time(), 3), "timestamp": time.time()}
        bad = [k for k, v in zip(keys, values) if not math.isfinite(v)]
        record.update({k: v for k, v in zip(keys, values)})
        for name in self.method.live_settings:
            record[name] = self.method.get_live(name)
        images = n_steps * self.method.batches_per_step * self.config.batch_size * self.dist.world_size
        record["steps_per_s"] = n_steps / seconds if seconds > 0 else None
        record["images_per_s"] = images / seconds if seconds > 0 else None
        if bad:
            self.writer.append(record)
            last = Run(self.run_dir).checkpoint_steps()
            where = f"the last good checkpoint is step {last[-1]}" if last else "no checkpoint was written before it"
            raise TrainingDiverged(
                f"training diverged: {', '.join(bad)} became NaN or infinite between steps "
                f"{self.step - n_steps + 1} and {self.step}; {where}. Try a smaller learning rate (--lr) or "
                "another seed")
        return record

    @staticmethod
    def _postfix(r: dict) -> str:
        parts = []
        for key, label in (("wasserstein", "W"), ("mi_loss", "MI"), ("aug_loss", "Aug"), ("dt_loss", "DT"),
                           ("standard_share", "std"), ("mi_global", "MIgl"), ("acc", "ACC")):
            if r.get(key) is not None:
                parts.append(f"{label}={r[key]:.3f}")
        return " ".join(parts)

    # ------------------------------------------------------------------------------------------------------
    # evaluation, snapshots, checkpoints
    # ------------------------------------------------------------------------------------------------------
    def predict(self, images: torch.Tensor | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(z_c, z_s) as numpy arrays for uint8 images (default: the whole data set)."""
        imgs = self.images if images is None else images.to(self.device)
        z_c, z_s = self.method.embed(imgs)
        return z_c.float().cpu().numpy(), z_s.float().cpu().numpy()

    def evaluate(self) -> dict:
        """Label-free statistics of the whole data set, plus ACC/NMI/ARI when labels exist."""
        z_c, _ = self.predict()
        stats = cluster_statistics(z_c)
        out = {"cluster_sizes": stats["sizes"], "empty_clusters": stats["empty"],
               "size_entropy": stats["size_entropy"], "mean_max_prob": stats["mean_max_prob"]}
        if self.data.labels is not None:
            out.update(evaluate(self.data.labels, z_c.argmax(1)))
        return out

    def snapshot(self) -> Path | None:
        if not self.dist.is_main:  # rank 0 writes the run directory
            return None
        idx = torch.from_numpy(self.probe_indices)
        z_c, z_s = self.predict(self.data.images[idx])
        labels = None if self.data.labels is None else self.data.labels[self.probe_indices]
        metrics = cluster_statistics(z_c)
        if labels is not None:
            metrics.update(evaluate(labels, z_c.argmax(1)))
        metrics.update({k: self.method.get_live(k) for k in self.method.live_settings})
        path = self.writer.snapshot(self.step, self.batches.epoch, z_c, z_s, labels, metrics)
        self._emit({"type": "snapshot", "step": self.step, "path": str(path), "metrics": metrics})
        return path

    def checkpoint(self, record: dict | None = None) -> Path | None:
        """Write the full training state atomically; keep the newest few and the best by the Wasserstein curve."""
        if not self.dist.is_main:  # every rank holds the same weights: rank 0's are the run's
            return None
        value = (record or {}).get(self.config.best_metric)
        eligible = self.step >= self.config.best_after * self.config.steps
        is_best = eligible and value is not None and math.isfinite(value) and value < self.best["value"]
        if is_best:
            self.best = {"value": float(value), "step": self.step}
        path = self.writer.checkpoints / checkpoint_name(self.step)
        atomic_torch_save(path, self._state())
        if is_best:  # a hard link: no second copy to write, and it outlives the rotation of step files
            link_atomic(path, self.writer.checkpoints / "best.pt")
        steps = Run(self.run_dir).checkpoint_steps()
        for old in steps[: -self.config.keep_checkpoints]:
            (self.writer.checkpoints / checkpoint_name(old)).unlink(missing_ok=True)
        self._emit({"type": "checkpoint", "step": self.step, "path": str(path), "best": is_best})
        return path

    def _summary(self, state: str, message: str) -> dict:
        rec = self.last_record
        out = {"state": state, "message": message, "step": self.step, "steps": self.config.steps,
               "epoch": self.batches.epoch, "time": self._time(), "device": str(self.device),
               "best_checkpoint": self.best}
        for key in ("acc", "nmi", "ari", "wasserstein", "mean_max_prob", "empty_clusters", "size_entropy"):
            if key in rec:
                out[key] = rec[key]
        return out
