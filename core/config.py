"""Every training setting in one flat dataclass, with per-data-set defaults and checks.

A field left at None takes its default from the data set (`DATASET_DEFAULTS`) or the paper when the trainer
resolves the config; `config.json` records the resolved values, so a run says exactly what it did.
The CLI builds its flags from these fields (`--beta-aug` for `beta_aug`), help text included.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field, fields

from .errors import ConfigError

METHODS = ("dccs", "dcsm")
DCSM_ABLATIONS = ("none", "oc", "no-ft", "no-mi", "global-local", "local-local")
COLOUR_MODES = ("grey", "rgb", "sobel")


def _f(default, help: str, **kw):
    return field(default=default, metadata={"help": help, **kw})


@dataclass
class TrainConfig:
    # ---- what to train on ----
    method: str = _f("dccs", "clustering method", choices=METHODS)
    dataset: str = _f("digits", "data-set name (digits, mnist, fashion-mnist, cifar10, stl10) or a path to an "
                      "image folder, .zip or .npz")
    data_path: str | None = _f(None, "where a named data set is stored (.npz, IDX folder, image folder/zip, or a "
                               "torchvision root)")
    download: bool = _f(False, "let torchvision download a named data set that is not found")
    image_size: int | None = _f(None, "resize every image to this square size (needed for mixed sizes or sizes "
                                "other than 28, 32, 96)")
    colour_mode: str = _f("grey", "grey (the paper's default for colour data), rgb, or sobel", choices=COLOUR_MODES)
    num_clusters: int | None = _f(None, "K, the number of clusters (default: the number of classes)")
    # ---- where and how ----
    run_dir: str | None = _f(None, "run directory (default: runs/<dataset>-<method>-<time>)")
    device: str = _f("auto", "auto (GPU when there is one), cpu, cuda, cuda:1, ...")
    seed: int = _f(0, "random seed (weights, data order, augmentation, prior samples)")
    threads: int | None = _f(None, "CPU threads for torch (default: torch's choice)")
    # ---- length ----
    steps: int | None = _f(None, "encoder steps to train (one step = n_critic critic updates + 1 encoder update); "
                           "default from --epochs or the data set")
    epochs: float | None = _f(None, "passes over the data (each batch feeds one update); used when --steps is "
                              "not given")
    # ---- DCCS (paper section 4.1; Algorithm 1) ----
    dim_zs: int = _f(50, "dimension of the style code z_s")
    prior_std: float = _f(0.1, "σ of the Gaussian prior on z_s")
    beta_mi: float = _f(0.5, "β_MI, weight of the mutual-information loss")
    beta_adv: float = _f(1.0, "β_Adv, weight of the adversarial (prior-matching) loss")
    beta_aug: float | None = _f(None, "β_Aug, weight of the augmentation KL loss (default 2 for grey sets, "
                                "4 for colour sets)")
    lambda_gp: float = _f(10.0, "λ, gradient-penalty coefficient")
    n_critic: int = _f(4, "critic updates per encoder update")
    batch_size: int | None = _f(None, "batch size m (DCCS paper: 64; DCSM paper: 32)")
    lr: float | None = _f(None, "Adam learning rate (DCCS paper: 1e-4; DCSM paper: 1e-3)")
    adam_beta1: float | None = _f(None, "Adam β1 (DCCS: 0.5; DCSM: Adam's default 0.9)")
    adam_beta2: float | None = _f(None, "Adam β2 (DCCS: 0.9; DCSM: Adam's default 0.999)")
    negatives: str = _f("derangement", "in-batch negatives for the MI discriminator: derangement (never an image's "
                        "own z) or permutation (the authors' code)", choices=("derangement", "permutation"))
    mi_pair_mean: bool = _f(False, "average the MI loss over all 2m pairs as the authors' code does (half of "
                            "Eq. 6) instead of Eq. 6's sum of the two expectations")
    # ---- DCSM (Peng & Li 2023; docs/methods.md says why each default was chosen) ----
    ablation: str = _f("none", "DCSM ablation: none, oc (DCSM-oc: no IR-block, no MI), no-ft (without L_FT), no-mi "
                       "(without L_MI), global-local (L_LMI + L_LMIT only), local-local (L_LMIC only)",
                       choices=DCSM_ABLATIONS)
    dim_z: int = _f(30, "dimension of DCSM's instance-level z (the IR-block)")
    backbone_width: int = _f(64, "channels of the first VGG stage (doubled at each later stage)")
    backbone_convs: int = _f(1, "3×3 conv layers per VGG stage (the backbone's depth)")
    mi_hidden: int = _f(256, "width of the 1×1-conv MI discriminators")
    eps_dt: float = _f(1.0, "ε, weight of the pairwise-similarity loss L_DT")
    lambda_entropy: float = _f(1.0, "λ, weight of the entropy loss L_E")
    standard_threshold: float = _f(0.9, "largest entry of l at or above which a sample is cluster-standard (L_FT)")
    mi_alpha: float | None = _f(None, "α, weight of L_LMI (z of T(x) with the map of x); default from the paper's "
                                "Table 2")
    mi_beta: float | None = _f(None, "β, weight of L_LMIT (z of T(x) with the map of T(x)); default from Table 2")
    mi_delta: float | None = _f(None, "δ, weight of L_LMIC (map of T(x) with the map of x); default from Table 2")
    mi_negatives: int = _f(4, "negative maps per image for the MI terms, drawn outside its pseudo-cluster")
    similarity: str = _f("kmeans", "how r_ij is built: kmeans (DCSM) or threshold (DCCM's rule, Table 4)",
                         choices=("kmeans", "threshold"))
    similarity_threshold: float = _f(0.9, "cosine of l_i and l_j above which r_ij = 1 (similarity=threshold)")
    kmeans_scope: str = _f("dataset", "dataset: k-means centres of l over a sample of the images, refreshed every "
                           "--kmeans-every steps, each batch assigned to the nearest centre; batch: k-means of each "
                           "batch's l", choices=("dataset", "batch"))
    kmeans_sample: int = _f(10000, "images whose l the dataset-scope k-means is fitted on (all, if fewer)")
    kmeans_every: int | None = _f(None, "steps between dataset-wide k-means refreshes (default: a quarter epoch, "
                                  "at most 100 steps)")
    kmeans_iters: int = _f(20, "Lloyd iterations per k-means")
    kmeans_track: float = _f(0.0, "dataset scope: step by which each centre moves towards the mean of the batch's "
                             "points assigned to it, every update (online k-means between refreshes; 0: fixed)")
    repeats: int | None = _f(None, "updates per batch, each with a fresh T(x) (paper: 4 for MNIST, 8 otherwise)")
    # ---- augmentation T (supplement B) ----
    flip: bool | None = _f(None, "random horizontal flip (default: off for mnist and digits, on otherwise)")
    crop_area_min: float | None = _f(None, "smallest crop area, as a fraction of the image (paper: 0.4; digits: "
                                     "0.7, since 40 % of an 8×8 digit is too little of it)")
    crop_area_max: float = _f(1.0, "largest crop area")
    crop_ratio_min: float = _f(3 / 4, "smallest crop aspect ratio")
    crop_ratio_max: float = _f(4 / 3, "largest crop aspect ratio")
    brightness: float = _f(0.4, "brightness factor drawn from [1-b, 1+b]")
    contrast: float = _f(0.4, "contrast factor drawn from [1-c, 1+c]")
    saturation: float = _f(0.4, "saturation factor drawn from [1-s, 1+s] (colour images)")
    hue: float = _f(0.125, "hue shift drawn from [-h, h] (colour images)")
    channel_shuffle: bool = _f(True, "shuffle RGB channels before grey conversion (colour images)")
    jitter_before_grey: bool = _f(False, "colour-jitter before grey conversion (the authors jitter after it)")
    # ---- what is written while training ----
    log_every: int = _f(10, "steps between records in metrics.jsonl (the only host synchronisation)")
    eval_every: int | None = _f(None, "steps between evaluations of the whole data set (default: about one "
                                "epoch; 0 = only at the end)")
    snapshot_every: int | None = _f(None, "steps between snapshots of the probe subset (default: ~50 per run)")
    probe_size: int = _f(5000, "images in the fixed probe subset the snapshots hold")
    checkpoint_every: int | None = _f(None, "steps between checkpoints (default: ~10 per run, at most every "
                                      "1,000 steps)")
    keep_checkpoints: int = _f(2, "latest checkpoints kept (the best one is kept as well)")
    best_metric: str | None = _f(None, "curve that picks best.pt (lowest wins): wasserstein (−L^C, the DCCS paper's "
                                 "curve; DCCS default), w_raw (E[C(z̃)] − E[C(z)]) or loss (the total loss; DCSM "
                                 "default)", choices=("wasserstein", "w_raw", "loss"))
    best_after: float = _f(0.25, "fraction of the run before which no checkpoint can become best.pt (the critic "
                           "starts untrained, so its early Wasserstein estimates are meaninglessly low)")
    progress: bool = _f(True, "show a progress bar")

    # ------------------------------------------------------------------
    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "TrainConfig":
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ConfigError(f"unknown settings: {', '.join(unknown)}")
        return cls(**d)

    def replace(self, **changes) -> "TrainConfig":
        return dataclasses.replace(self, **changes)


# Per-data-set defaults for fields left at None. `steps` for digits is sized so the quick-start job finishes in
# minutes on two CPU cores; the larger sets default to a number of epochs.
DATASET_DEFAULTS: dict[str, dict] = {
    "digits": {"beta_aug": 2.0, "flip": False, "steps": 800, "lr": 3e-4, "crop_area_min": 0.7},
    "mnist": {"beta_aug": 2.0, "flip": False, "epochs": 100},
    "fashion-mnist": {"beta_aug": 2.0, "flip": True, "epochs": 100},
    "cifar10": {"beta_aug": 4.0, "flip": True, "epochs": 200},
    "stl10": {"beta_aug": 4.0, "flip": True, "epochs": 200},
}
GENERIC_DEFAULTS = {"grey": {"beta_aug": 2.0, "flip": True, "epochs": 100},
                    "colour": {"beta_aug": 4.0, "flip": True, "epochs": 100}}
PAPER_LR = 1e-4
PAPER_CROP_AREA_MIN = 0.4

# Settings whose defaults depend on the method.
METHOD_DEFAULTS: dict[str, dict] = {
    "dccs": {"batch_size": 64, "lr": PAPER_LR, "adam_beta1": 0.5, "adam_beta2": 0.9, "best_metric": "wasserstein"},
    "dcsm": {"batch_size": 32, "lr": 1e-3, "adam_beta1": 0.9, "adam_beta2": 0.999, "best_metric": "loss"},
}
# DCSM per data set: α, β, δ from the paper's Table 2 (Fashion-MNIST and digits take MNIST's, being grey 28-pixel
# sets like it; other grey sets MNIST's, other colour sets CIFAR-10's), repeats from section 4.3, and a length.
DCSM_DATASET_DEFAULTS: dict[str, dict] = {
    "digits": {"mi": (0.2, 1.0, 0.1), "repeats": 4, "steps": 400, "lr": 1e-3},
    "mnist": {"mi": (0.2, 1.0, 0.1), "repeats": 4, "epochs": 20},
    "fashion-mnist": {"mi": (0.2, 1.0, 0.1), "repeats": 4, "epochs": 20},
    "cifar10": {"mi": (0.1, 0.5, 0.2), "repeats": 8, "epochs": 20},
    "stl10": {"mi": (0.1, 1.0, 0.1), "repeats": 8, "epochs": 20},
}
DCSM_GENERIC_DEFAULTS = {"grey": {"mi": (0.2, 1.0, 0.1), "repeats": 4, "epochs": 20},
                         "colour": {"mi": (0.1, 0.5, 0.2), "repeats": 8, "epochs": 20}}


def dataset_defaults(dataset: str, channels: int, method: str = "dccs") -> dict:
    """Defaults for one data set and method: the shared augmentation defaults, then the method's own."""
    key = dataset.lower()
    kind = "colour" if channels == 3 else "grey"
    shared = DATASET_DEFAULTS.get(key, GENERIC_DEFAULTS[kind])
    if method != "dcsm":
        return shared
    own = DCSM_DATASET_DEFAULTS.get(key, DCSM_GENERIC_DEFAULTS[kind])
    keep = {k: v for k, v in shared.items() if k in ("flip", "crop_area_min")}
    return {**keep, **own}


def validate(cfg: TrainConfig) -> None:
    """Range checks that need no data; raises ConfigError naming the setting."""
    def need(cond, msg):
        if not cond:
            raise ConfigError(msg)

    need(cfg.method in METHODS, f"unknown method '{cfg.method}' (known: {', '.join(METHODS)})")
    need(cfg.colour_mode in COLOUR_MODES, f"colour mode must be one of {', '.join(COLOUR_MODES)}")
    need(cfg.ablation in DCSM_ABLATIONS, f"unknown ablation '{cfg.ablation}' (known: {', '.join(DCSM_ABLATIONS)})")
    for name in ("n_critic", "dim_zs", "log_every", "probe_size", "keep_checkpoints", "dim_z", "backbone_width",
                 "backbone_convs", "mi_hidden", "mi_negatives", "kmeans_iters", "kmeans_sample"):
        need(getattr(cfg, name) >= 1, f"{name.replace('_', '-')} must be at least 1, got {getattr(cfg, name)}")
    need(cfg.batch_size is None or cfg.batch_size >= 2,
         "batch size must be at least 2 (the MI losses need in-batch negatives)")
    for name in ("repeats", "kmeans_every"):
        v = getattr(cfg, name)
        need(v is None or v >= 1, f"{name.replace('_', '-')} must be at least 1, got {v}")
    for name in ("eps_dt", "lambda_entropy", "mi_alpha", "mi_beta", "mi_delta"):
        v = getattr(cfg, name)
        need(v is None or (math.isfinite(v) and v >= 0), f"{name.replace('_', '-')} must be a finite number ≥ 0, got {v}")
    for name in ("standard_threshold", "similarity_threshold"):
        v = getattr(cfg, name)
        need(0 < v < 1, f"{name.replace('_', '-')} must lie strictly between 0 and 1, got {v}")
    need(0 <= cfg.kmeans_track <= 1, f"kmeans-track must lie in [0, 1], got {cfg.kmeans_track}")
    need(cfg.similarity in ("kmeans", "threshold"), "similarity must be kmeans or threshold")
    need(cfg.kmeans_scope in ("dataset", "batch"), "kmeans-scope must be dataset or batch")
    if cfg.method == "dcsm":
        need(cfg.beta_aug is None, "--beta-aug is a DCCS setting; DCSM has no augmentation weight (its weights are "
                                   "--eps-dt, --lambda-entropy, --mi-alpha, --mi-beta, --mi-delta)")
        need(cfg.best_metric in (None, "loss"), "DCSM has no Wasserstein estimate: best-metric must be loss")
    else:
        need(cfg.ablation == "none", "--ablation is a DCSM setting; use it with --method dcsm")
    for name in ("steps", "snapshot_every", "checkpoint_every"):
        v = getattr(cfg, name)
        need(v is None or v >= 1, f"{name.replace('_', '-')} must be at least 1, got {v}")
    need(cfg.eval_every is None or cfg.eval_every >= 0, "eval-every must be 0 or more")
    need(cfg.epochs is None or cfg.epochs > 0, f"epochs must be positive, got {cfg.epochs}")
    for name in ("beta_mi", "beta_adv", "lambda_gp", "prior_std"):
        v = getattr(cfg, name)
        need(math.isfinite(v) and v >= 0, f"{name.replace('_', '-')} must be a finite number ≥ 0, got {v}")
    need(cfg.beta_aug is None or (math.isfinite(cfg.beta_aug) and cfg.beta_aug >= 0),
         f"beta-aug must be a finite number ≥ 0, got {cfg.beta_aug}")
    need(cfg.lr is None or (math.isfinite(cfg.lr) and cfg.lr > 0), f"lr must be positive, got {cfg.lr}")
    need(all(b is None or 0 <= b < 1 for b in (cfg.adam_beta1, cfg.adam_beta2)), "Adam betas must lie in [0, 1)")
    need(cfg.crop_area_min is None or 0 < cfg.crop_area_min <= cfg.crop_area_max <= 1,
         "crop areas must satisfy 0 < min ≤ max ≤ 1")
    need(0 < cfg.crop_ratio_min <= cfg.crop_ratio_max, "crop ratios must satisfy 0 < min ≤ max")
    for name in ("brightness", "contrast", "saturation"):
        v = getattr(cfg, name)
        need(0 <= v < 1, f"{name} must lie in [0, 1), got {v}")
    need(0 <= cfg.hue <= 0.5, f"hue must lie in [0, 0.5], got {cfg.hue}")
    need(cfg.image_size is None or cfg.image_size >= 8, f"image size must be at least 8, got {cfg.image_size}")
    need(cfg.num_clusters is None or cfg.num_clusters >= 2,
         f"the number of clusters K must be at least 2, got {cfg.num_clusters}")
    need(cfg.threads is None or cfg.threads >= 1, "threads must be at least 1")
    need(0 <= cfg.best_after <= 1, f"best-after must lie in [0, 1], got {cfg.best_after}")
