"""The settings of a training run: the shared ones here, the method's own in the method's `Settings` dataclass.

    cfg = TrainConfig(dataset="digits", beta_aug=3.0)      # shared and method settings side by side
    cfg.lr, cfg.beta_aug, cfg.options                      # options: the method's settings (DCCSSettings)
    cfg.to_dict()                                          # one flat dict: what config.json records

A setting left at None takes its default from the method's and the data set's tables (`resolve_config`);
`config.json` records the resolved values, so a run says exactly what it did. The CLI builds its flags from the
fields (`--beta-aug` for `beta_aug`), help text included.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, fields
from typing import Any

from .acceleration import COMPILE_MODES, PRECISIONS, resolve_precision
from .levers import LEVERS_OFF, PRESETS, SCHEDULES
from .errors import ConfigError
from .runtime import resolve_device
from .settings import Defaults, DefaultsTable, check_settings, flag, normalise, setting

COLOUR_MODES = ("grey", "rgb", "sobel")
DATA, RUN, LENGTH, TRAINING, AUGMENT, OUTPUT = ("data", "where and how", "length", "training (defaults per method)",
                                                "augmentation T (DCCS supplement B)", "what is written while training")


def _methods():
    from .methods import registry  # the methods import settings, not this module: imported when first needed

    return registry


@dataclass(init=False)
class TrainConfig:
    # ---- what to train on ----
    method: str = setting("dccs", "clustering method (see `python -m core train --help` for each one's settings)",
                          group=DATA)
    dataset: str = setting("digits", "data-set name (digits, mnist, fashion-mnist, cifar10, stl10) or a path to an "
                           "image folder, .zip or .npz", group=DATA)
    data_path: str | None = setting(None, "where a named data set is stored (.npz, IDX folder, image folder/zip, or "
                                    "a torchvision root)", group=DATA)
    download: bool = setting(False, "let torchvision download a named data set that is not found", group=DATA)
    image_size: int | None = setting(None, "resize every image to this square size (needed for mixed sizes or sizes "
                                     "other than 28, 32, 96)", low=8, group=DATA)
    colour_mode: str = setting("grey", "grey (the paper's default for colour data), rgb, or sobel",
                               choices=COLOUR_MODES, group=DATA)
    num_clusters: int | None = setting(None, "K, the number of clusters (default: the number of classes)", low=2,
                                       label="the number of clusters K", group=DATA)
    # ---- where and how ----
    run_dir: str | None = setting(None, "run directory (default: runs/<dataset>-<method>-<time>)", group=RUN)
    device: str = setting("auto", "auto (GPU when there is one), cpu, cuda, cuda:1, ...", group=RUN)
    seed: int = setting(0, "random seed (weights, data order, augmentation, prior samples)", low=0, high=2 ** 63 - 1,
                        group=RUN)
    threads: int | None = setting(None, "CPU threads for torch (default: torch's choice)", low=1, group=RUN)
    compile: str = setting("none", "torch.compile the method's loss functions: none, default, reduce-overhead (on a GPU "
                           "also CUDA graphs), max-autotune, or aot-eager (capture only: shows graph breaks, no "
                           "speed-up); falls back to uncompiled with a warning when compiling fails",
                           choices=COMPILE_MODES, group=RUN)
    precision: str | None = setting(None, "matrix-product precision: fp32, tf32 (Ampere-or-later GPUs), bf16 "
                                    "(autocast), or auto: bf16 where the device multiplies bf16 natively (a GPU with "
                                    "bf16, a CPU with AVX-512 BF16 or AMX), else fp32; config.json records which "
                                    "(default: fp32, or the preset's)", choices=PRECISIONS, group=RUN)
    # ---- length ----
    steps: int | None = setting(None, "training steps (DCCS: n_critic critic updates + 1 encoder update; DCSM: one "
                                "batch trained --repeats times); default from --epochs or the data set (digits: "
                                "DCCS 500 (fast preset) or 800 (paper), DCSM 400 steps; other sets: DCCS 100 "
                                "epochs, 200 for CIFAR-10 and STL-10; DCSM 20 epochs)", low=1,
                                group=LENGTH)
    epochs: float | None = setting(None, "passes over the data (each batch feeds one update); used when --steps is "
                                   "not given", low=0, low_open=True, high=1e6, group=LENGTH)
    # ---- optimisation: defaults from the method ----
    batch_size: int | None = setting(None, "batch size m (DCCS paper: 64; DCSM paper: 32)", low=2,
                                     why="the MI losses need in-batch negatives", label="batch size", group=TRAINING)
    lr: float | None = setting(None, "Adam learning rate (DCCS paper: 1e-4; DCSM paper: 1e-3)", low=0,
                               low_open=True, group=TRAINING)
    adam_beta1: float | None = setting(None, "Adam β1 (DCCS: 0.5; DCSM: Adam's default 0.9)", low=0, high=1,
                                       high_open=True, group=TRAINING)
    adam_beta2: float | None = setting(None, "Adam β2 (DCCS: 0.9; DCSM: Adam's default 0.999)", low=0, high=1,
                                       high_open=True, group=TRAINING)
    schedule: str | None = setting(None, "a preset of the optimisation settings: paper (the paper's: constant "
                                   "learning rate, no averaging) or fast (measured to reach good clusters sooner; "
                                   "docs/methods.md, 'Presets'); settings given explicitly win (default: fast where "
                                   "it was measured better, else paper)", choices=PRESETS, group=TRAINING)
    lr_schedule: str | None = setting(None, "learning-rate schedule after the warm-up: constant, cosine or linear "
                                      "decay to --lr-floor at the last step (default: constant, or the preset's)",
                                      choices=SCHEDULES, group=TRAINING)
    lr_warmup: int | None = setting(None, "steps of linear learning-rate warm-up from 0 (default: 0, or the "
                                    "preset's)", low=0, group=TRAINING)
    lr_floor: float | None = setting(None, "the decayed learning rate at the last step, as a fraction of --lr "
                                     "(default: 0, or the preset's)", low=0, high=1, group=TRAINING)
    ema: float | None = setting(None, "decay of an exponential moving average of the inference network's weights, "
                                "which evaluations, snapshots, maps and predictions use (0: off; e.g. 0.99; "
                                "default: 0, or the preset's)", low=0, high=1, high_open=True, group=TRAINING)
    # ---- augmentation T (supplement B) ----
    flip: bool | None = setting(None, "random horizontal flip (default: off for mnist and digits, on otherwise)",
                                group=AUGMENT)
    crop_area_min: float | None = setting(None, "smallest crop area, as a fraction of the image (paper: 0.4; "
                                          "digits: 0.7, since 40 % of an 8×8 digit is too little of it)", low=0,
                                          high=1, low_open=True, group=AUGMENT)
    crop_area_max: float = setting(1.0, "largest crop area", low=0, high=1, low_open=True, group=AUGMENT)
    crop_ratio_min: float = setting(3 / 4, "smallest crop aspect ratio", low=0, low_open=True, group=AUGMENT)
    crop_ratio_max: float = setting(4 / 3, "largest crop aspect ratio", low=0, low_open=True, group=AUGMENT)
    brightness: float = setting(0.4, "brightness factor drawn from [1-b, 1+b]", low=0, high=1, high_open=True,
                                group=AUGMENT)
    contrast: float = setting(0.4, "contrast factor drawn from [1-c, 1+c]", low=0, high=1, high_open=True,
                              group=AUGMENT)
    saturation: float = setting(0.4, "saturation factor drawn from [1-s, 1+s] (colour images)", low=0, high=1,
                                high_open=True, group=AUGMENT)
    hue: float = setting(0.125, "hue shift drawn from [-h, h] (colour images)", low=0, high=0.5, group=AUGMENT)
    channel_shuffle: bool = setting(True, "shuffle RGB channels before grey conversion (colour images)",
                                    group=AUGMENT)
    jitter_before_grey: bool = setting(False, "colour-jitter before grey conversion (the authors jitter after it)",
                                       group=AUGMENT)
    rotation: float | None = setting(None, "largest random rotation in degrees, drawn per image from [-r, r] (not "
                                     "in the paper's T; default: 0 = none, or the preset's)", low=0, high=180,
                                     group=AUGMENT)
    # ---- what is written while training ----
    log_every: int = setting(10, "steps between records in metrics.jsonl (the only host synchronisation; live "
                             "changes such as β_Aug apply from the step after a record)", low=1, group=OUTPUT)
    eval_every: int | None = setting(None, "steps between evaluations of the whole data set (default: about one "
                                     "epoch; 0 = only at the end)", low=0, group=OUTPUT)
    snapshot_every: int | None = setting(None, "steps between snapshots of the probe subset (default: ~50 per run)",
                                         low=1, group=OUTPUT)
    probe_size: int = setting(5000, "images in the fixed probe subset the snapshots hold", low=1, group=OUTPUT)
    eval_batch_size: int = setting(1024, "images per forward pass when embedding for evaluations and snapshots "
                                   "(larger is faster on a GPU)", low=1, group=OUTPUT)
    checkpoint_every: int | None = setting(None, "steps between checkpoints (default: ~10 per run, at most every "
                                           "1,000 steps)", low=1, group=OUTPUT)
    keep_checkpoints: int = setting(2, "latest checkpoints kept (the best one is kept as well)", low=1, group=OUTPUT)
    best_metric: str | None = setting(None, "curve that picks best.pt (lowest wins): DCCS wasserstein (−L^C, the "
                                      "paper's curve; its default), w_raw or loss; DCSM loss", group=OUTPUT)
    best_after: float = setting(0.25, "fraction of the run before which no checkpoint can become best.pt (the "
                                "critic starts untrained, so its early Wasserstein estimates are meaninglessly "
                                "low)", low=0, high=1, group=OUTPUT)
    progress: bool = setting(True, "show a progress bar", group=OUTPUT)
    #: the method's own settings (an instance of its `Settings` dataclass)
    options: Any = dataclasses.field(default=None, repr=True)

    def __init__(self, options=None, **settings):
        for f in shared_fields():
            setattr(self, f.name, normalise(f, settings.pop(f.name, f.default)))
        method = _methods().get(self.method)
        own = {f.name for f in fields(method.Settings)}
        for name in settings:
            if name not in own:
                owners = _methods().owners(name)
                if owners:
                    raise ConfigError(f"--{flag(name)} is a {'/'.join(o.upper() for o in owners)} setting: use it "
                                      f"with --method {owners[0]} (this run's method is {self.method})")
                raise ConfigError(f"unknown setting: {name}")
        if options is not None:
            if not isinstance(options, method.Settings):
                raise ConfigError(f"options must be {method.Settings.__name__} for {self.method}")
            options = dataclasses.replace(options, **settings)
        else:
            own_fields = {f.name: f for f in fields(method.Settings)}
            options = method.Settings(**{k: normalise(own_fields[k], v) for k, v in settings.items()})
        self.options = options

    def __getattr__(self, name: str):
        """The method's own settings read like shared ones: `cfg.beta_aug` is `cfg.options.beta_aug`."""
        options = self.__dict__.get("options")
        if options is not None and name in {f.name for f in fields(options)}:
            return getattr(options, name)
        raise AttributeError(f"{type(self).__name__} has no setting {name!r}"
                             + (f" for method {self.__dict__.get('method')}" if options is not None else ""))

    @property
    def method_class(self):
        return _methods().get(self.method)

    # ------------------------------------------------------------------
    def to_dict(self) -> dict:
        """Every setting, shared and the method's, in one flat dict (config.json's "settings")."""
        out = {f.name: getattr(self, f.name) for f in shared_fields()}
        out.update(dataclasses.asdict(self.options))
        return out

    @classmethod
    def from_dict(cls, d: dict) -> "TrainConfig":
        """From `to_dict()`'s output. Settings of other methods are dropped: runs written before the methods had
        their own settings recorded every method's (at their defaults)."""
        if not isinstance(d, dict):
            raise ConfigError(f"settings must be a mapping, got {type(d).__name__}")
        method = _methods().get(d.get("method", "dccs"))
        mine = {f.name for f in shared_fields()} | {f.name for f in fields(method.Settings)}
        unknown = sorted(k for k in d if k not in mine and not _methods().owners(k))
        if unknown:
            raise ConfigError(f"unknown settings: {', '.join(unknown)}")
        return cls(**{k: v for k, v in d.items() if k in mine})

    def replace(self, **changes) -> "TrainConfig":
        d = self.to_dict()
        if changes.get("method", self.method) != self.method:  # another method: its own settings start afresh
            d = {f.name: d[f.name] for f in shared_fields()}
        return TrainConfig(**{**d, **changes})


def shared_fields() -> list[dataclasses.Field]:
    """The shared settings (every field of TrainConfig but `options`)."""
    return [f for f in fields(TrainConfig) if f.name != "options"]


# Defaults of the shared augmentation settings per data set (a property of the images, not of the method).
PAPER_CROP = "the paper's supplement B (crop area 0.4–1; flip, except for digits)"
AUGMENT_DEFAULTS = DefaultsTable(
    common=Defaults({"flip": True, "crop_area_min": 0.4, "rotation": 0.0}, PAPER_CROP + "; no rotation"),
    datasets={
        "digits": Defaults({"flip": False, "crop_area_min": 0.7}, "not in the paper: no flip for digits; 40 % of an "
                           "8×8 digit is too little of it (docs/methods.md, 'Digits settings')"),
        "mnist": Defaults({"flip": False}, "the paper's supplement B: no flip for MNIST"),
    },
)


def validate(cfg: TrainConfig, resolved: bool = False) -> None:
    """Every check that needs no data; raises ConfigError naming the setting. With `resolved`, no setting may be
    left at None."""
    method = _methods().get(cfg.method)
    check_settings(cfg, resolved=False)
    check_settings(cfg.options, resolved=False)
    if resolved:
        for f in shared_fields() + list(fields(cfg.options)):
            if f.name not in NULLABLE and getattr(cfg, f.name) is None:
                raise ConfigError(f"{flag(f.name)} was left unresolved")
    if cfg.best_metric is not None and cfg.best_metric not in method.best_metrics:
        raise ConfigError(f"{cfg.method.upper()} picks best.pt by {', '.join(method.best_metrics)}: best-metric "
                          f"cannot be {cfg.best_metric}")
    if cfg.crop_area_min is not None and cfg.crop_area_min > cfg.crop_area_max:
        raise ConfigError("crop areas must satisfy 0 < min ≤ max ≤ 1")
    if cfg.crop_ratio_min > cfg.crop_ratio_max:
        raise ConfigError("crop ratios must satisfy 0 < min ≤ max")
    if cfg.run_dir is not None and not cfg.run_dir.strip():
        raise ConfigError("the run directory is empty: give a folder with --run-dir, or leave it out")


# Settings that may stay None in a resolved config: no such setting given, and nothing to resolve it from.
NULLABLE = {"data_path", "image_size", "threads", "run_dir", "epochs", "schedule"}  # schedule: runs from before presets


def _round_up(x: float, multiple: int) -> int:
    return int(math.ceil(max(x, 1) / multiple) * multiple)


def resolve_config(cfg: TrainConfig, data, world_size: int = 1) -> TrainConfig:
    """Fill every None setting from the method's and the data set's defaults and check what needs the data.
    `world_size` processes each take `batch_size` images of a step (distributed training)."""
    validate(cfg)
    method = cfg.method_class
    schedule = cfg.schedule or method.default_schedule(cfg.dataset)
    if schedule not in method.presets:
        raise ConfigError(f"{cfg.method.upper()} has no '{schedule}' schedule (it has: "
                          f"{', '.join(method.presets)})")
    measured = method.presets[schedule].datasets
    if schedule != "paper" and not method.presets[schedule].common.values and cfg.dataset.lower() not in measured:
        raise ConfigError(f"{cfg.method.upper()}'s '{schedule}' schedule was measured on "
                          f"{', '.join(measured) or 'no data set'} only, not on {cfg.dataset}: use --schedule paper "
                          "and set the levers (--lr, --lr-schedule, --ema, ...) yourself")
    table = {}
    for layer in (LEVERS_OFF.values, AUGMENT_DEFAULTS.lookup(cfg.dataset, data.channels),
                  method.defaults.lookup(cfg.dataset, data.channels),
                  method.presets[schedule].lookup(cfg.dataset, data.channels)):
        if "steps" in layer or "epochs" in layer:  # a later layer's length replaces an earlier one's
            table.pop("steps", None), table.pop("epochs", None)
        table.update(layer)
    own = {f.name for f in fields(method.Settings)}
    changes = {name: value for name, value in table.items()
               if name not in ("steps", "epochs") and (name in own or hasattr(cfg, name)) and getattr(cfg, name) is None}
    changes["schedule"] = schedule
    precision = changes.get("precision", cfg.precision)
    if precision == "auto":  # recorded as what it chose, so a resume elsewhere trains as this run did
        changes["precision"] = resolve_precision(precision, resolve_device(cfg.device))
    if cfg.best_metric is None:
        changes["best_metric"] = method.best_metrics[0]
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
    options = dataclasses.replace(cfg.options, **{n: v for n, v in changes.items() if n in own})
    steps_per_epoch = (len(data) // batch_size) / method.batches_per_step_for(options)
    steps = cfg.steps
    if steps is None:
        epochs = cfg.epochs if cfg.epochs is not None else table.get("epochs")
        steps = int(math.ceil(epochs * steps_per_epoch)) if epochs is not None else table["steps"]
    changes["steps"] = steps = max(1, steps)
    log = cfg.log_every
    if cfg.snapshot_every is None:
        changes["snapshot_every"] = _round_up(steps / 50, log)
    if cfg.eval_every is None:
        changes["eval_every"] = _round_up(max(steps_per_epoch, steps / 50), log)
    if cfg.checkpoint_every is None:
        changes["checkpoint_every"] = _round_up(min(1000, steps / 10), log)
    changes.update(method.derived_settings(options, steps=steps, steps_per_epoch=steps_per_epoch))
    out = cfg.replace(**changes)
    validate(out, resolved=True)
    return out


def default_sources(cfg: TrainConfig, channels: int) -> dict[str, str]:
    """Where each per-data-set default of this config comes from (for documentation and `--help`)."""
    method = cfg.method_class
    preset = method.presets.get(cfg.schedule or method.default_schedule(cfg.dataset))
    return {**{name: LEVERS_OFF.source for name in LEVERS_OFF.values},
            **AUGMENT_DEFAULTS.sources(cfg.dataset, channels), **method.defaults.sources(cfg.dataset, channels),
            **(preset.sources(cfg.dataset, channels) if preset else {})}
