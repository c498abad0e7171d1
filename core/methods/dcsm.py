"""DCSM (Peng & Li, Applied Sciences 2023): label similarity + extended mutual information across views.

One training step takes one batch of m images and makes `repeats` updates on it (the paper: "the number of
training repetitions for each batch of MNIST is 4, and for the rest of the datasets, it is 8"), each with a fresh
augmentation T(x). Per update, both views go through the network in one pass and

    L = ε·L_DT + L_FT + α·L_LMI + β·L_LMIT + δ·L_LMIC + λ·L_E

with r_ij from k-means on l of the original images (or DCCM's threshold rule), g_ij = l̃_i·l̃_j from the
transformed images, L_FT on the cluster-standard transformed images, and the three JSD MI terms with negatives
drawn outside the image's pseudo-cluster. See docs/methods.md for every choice the paper leaves open.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from .. import dcsm_losses as L
from ..augment import InputPipeline
from ..kmeans import kmeans
from ..nets import ConvDiscriminator, VGGBackboneNet
from ..settings import Defaults, DefaultsTable, setting
from .base import ClusteringMethod

ABLATIONS = ("none", "oc", "no-ft", "no-mi", "global-local", "local-local")
GROUP = "DCSM (Peng & Li 2023; docs/methods.md says why each default was chosen)"


@dataclass
class DCSMSettings:
    ablation: str = setting("none", "DCSM ablation: none, oc (DCSM-oc: no IR-block, no MI), no-ft (without L_FT), "
                            "no-mi (without L_MI), global-local (L_LMI + L_LMIT only), local-local (L_LMIC only)",
                            choices=ABLATIONS, group=GROUP)
    dim_z: int = setting(30, "dimension of DCSM's instance-level z (the IR-block)", low=1, group=GROUP)
    backbone_width: int = setting(64, "channels of the first VGG stage (doubled at each later stage)", low=1,
                                  group=GROUP)
    backbone_convs: int = setting(1, "3×3 conv layers per VGG stage (the backbone's depth)", low=1, group=GROUP)
    mi_hidden: int = setting(256, "width of the 1×1-conv MI discriminators", low=1, group=GROUP)
    eps_dt: float = setting(1.0, "ε, weight of the pairwise-similarity loss L_DT", low=0, group=GROUP)
    lambda_entropy: float = setting(1.0, "λ, weight of the entropy loss L_E", low=0, group=GROUP)
    standard_threshold: float = setting(0.9, "largest entry of l at or above which a sample is cluster-standard "
                                        "(L_FT)", low=0, high=1, low_open=True, high_open=True, group=GROUP)
    mi_alpha: float | None = setting(None, "α, weight of L_LMI (z of T(x) with the map of x); default from the "
                                     "paper's Table 2", low=0, group=GROUP)
    mi_beta: float | None = setting(None, "β, weight of L_LMIT (z of T(x) with the map of T(x)); default from "
                                    "Table 2", low=0, group=GROUP)
    mi_delta: float | None = setting(None, "δ, weight of L_LMIC (map of T(x) with the map of x); default from "
                                     "Table 2", low=0, group=GROUP)
    mi_negatives: int = setting(4, "negative maps per image for the MI terms, drawn outside its pseudo-cluster",
                                low=1, group=GROUP)
    similarity: str = setting("kmeans", "how r_ij is built: kmeans (DCSM) or threshold (DCCM's rule, Table 4)",
                              choices=("kmeans", "threshold"), group=GROUP)
    similarity_threshold: float = setting(0.9, "cosine of l_i and l_j above which r_ij = 1 (similarity=threshold)",
                                          low=0, high=1, low_open=True, high_open=True, group=GROUP)
    kmeans_scope: str = setting("dataset", "dataset: k-means centres of l over a sample of the images, refreshed "
                                "every --kmeans-every steps, each batch assigned to the nearest centre; batch: "
                                "k-means of each batch's l", choices=("dataset", "batch"), group=GROUP)
    kmeans_sample: int = setting(10000, "images whose l the dataset-scope k-means is fitted on (all, if fewer)",
                                 low=1, group=GROUP)
    kmeans_every: int | None = setting(None, "steps between dataset-wide k-means refreshes (default: a quarter "
                                       "epoch, at most 100 steps)", low=1, group=GROUP)
    kmeans_iters: int = setting(20, "Lloyd iterations per k-means", low=1, group=GROUP)
    kmeans_track: float = setting(0.0, "dataset scope: step by which each centre moves towards the mean of the "
                                  "batch's points assigned to it, every update (online k-means between refreshes; "
                                  "0: fixed)", low=0, high=1, group=GROUP)
    repeats: int | None = setting(None, "updates per batch, each with a fresh T(x) (paper: 4 for MNIST, 8 "
                                  "otherwise)", low=1, group=GROUP)


MNIST_LIKE = {"mi_alpha": 0.2, "mi_beta": 1.0, "mi_delta": 0.1, "repeats": 4}
TABLE2 = "α/β/δ: the paper's Table 2; repeats: section 4.3"
DEFAULTS = DefaultsTable(
    common=Defaults({"batch_size": 32, "lr": 1e-3, "adam_beta1": 0.9, "adam_beta2": 0.999},
                    "the paper, section 4.3 (Adam with its default betas)"),
    datasets={
        "digits": Defaults({**MNIST_LIKE, "steps": 400}, "MNIST's values (a grey 28-pixel set like it); length "
                                                          "chosen here"),
        "mnist": Defaults({**MNIST_LIKE, "epochs": 20}, TABLE2 + "; length chosen here"),
        "fashion-mnist": Defaults({**MNIST_LIKE, "epochs": 20}, "MNIST's values (a grey 28-pixel set like it); "
                                                                 "length chosen here"),
        "cifar10": Defaults({"mi_alpha": 0.1, "mi_beta": 0.5, "mi_delta": 0.2, "repeats": 8, "epochs": 20},
                            TABLE2 + "; length chosen here"),
        "stl10": Defaults({"mi_alpha": 0.1, "mi_beta": 1.0, "mi_delta": 0.1, "repeats": 8, "epochs": 20},
                          TABLE2 + "; length chosen here"),
    },
    generic={"grey": Defaults({**MNIST_LIKE, "epochs": 20}, "MNIST's values for grey sets; length chosen here"),
             "colour": Defaults({"mi_alpha": 0.1, "mi_beta": 0.5, "mi_delta": 0.2, "repeats": 8, "epochs": 20},
                                "CIFAR-10's values for colour sets; length chosen here")},
)


class DCSM(ClusteringMethod):
    name = "dcsm"
    title = "DCSM (Peng & Li, Applied Sciences 2023)"
    Settings = DCSMSettings
    defaults = DEFAULTS
    curve_groups = (
        ("DCSM losses", (("dt_loss", "L_DT"), ("ft_loss", "L_FT"), ("mi_global", "global-local MI"),
                         ("mi_local", "local-local MI"), ("entropy", "entropy H(q)"))),
        ("Cluster health", (("standard_share", "cluster-standard share"),)),
    )
    progress_keys = (("dt_loss", "DT"), ("standard_share", "std"), ("mi_global", "MIgl"))
    best_metrics = ("loss",)
    averaged_modules = ("net",)

    @classmethod
    def from_config(cls, cfg, data, pipeline, device):
        return cls(pipeline, cfg.num_clusters, data.size[0], len(data), cfg.options, lr=cfg.lr,
                   adam_betas=(cfg.adam_beta1, cfg.adam_beta2), device=device)

    @classmethod
    def derived_settings(cls, settings, *, steps, steps_per_epoch):
        if settings.kmeans_every is not None:
            return {}
        # in steps, not epochs: the network drifts away from the centres by the step, whatever the data set's size
        return {"kmeans_every": max(1, min(100, int(round(steps_per_epoch / 4))))}

    def __init__(self, pipeline: InputPipeline, k: int, input_size: int, n_images: int,
                 settings: DCSMSettings | None = None, *, lr: float = 1e-3, adam_betas=(0.9, 0.999), device="cpu"):
        s = settings if settings is not None else DCSMSettings(**{**MNIST_LIKE, "kmeans_every": 100})
        super().__init__(pipeline, k, s)
        ablation = s.ablation
        if ablation not in ABLATIONS:
            raise ValueError(f"unknown DCSM ablation '{ablation}' (known: {', '.join(ABLATIONS)})")
        self.ablation = ablation
        self.eps_dt, self.lambda_entropy = s.eps_dt, s.lambda_entropy
        self.standard_threshold = s.standard_threshold
        self.use_ft = ablation not in ("oc", "no-ft")
        no_mi = ablation in ("oc", "no-mi")
        self.mi_alpha = 0.0 if no_mi or ablation == "local-local" else s.mi_alpha
        self.mi_beta = 0.0 if no_mi or ablation == "local-local" else s.mi_beta
        self.mi_delta = 0.0 if no_mi or ablation == "global-local" else s.mi_delta
        self.mi_negatives = s.mi_negatives
        self.similarity, self.similarity_threshold = s.similarity, s.similarity_threshold
        self.kmeans_scope, self.kmeans_every, self.kmeans_iters = s.kmeans_scope, s.kmeans_every, s.kmeans_iters
        self.kmeans_sample = min(s.kmeans_sample, n_images)
        self.kmeans_track = s.kmeans_track
        self.repeats = s.repeats
        dim_z, mi_hidden = s.dim_z, s.mi_hidden
        self.net = VGGBackboneNet(pipeline.out_channels, k, input_size, dim_z, s.backbone_width, s.backbone_convs)
        c = self.net.map_channels
        self.disc_global = ConvDiscriminator(c, dim_z, mi_hidden)  # (z̃, C) and (z̃, C̃): L_LMI, L_LMIT
        self.disc_local = ConvDiscriminator(c, c, mi_hidden)  # (C̃, C): L_LMIC
        # dataset scope: k-means centres of l over a sample of the images, refreshed every `kmeans_every` steps and
        # saved with the model; each batch's images are assigned to the nearest centre
        self.register_buffer("centres", torch.full((k, k), 1.0 / k))
        self.to(device)
        params = list(self.net.local.parameters()) + list(self.net.top.parameters()) + \
            list(self.net.shared.parameters()) + list(self.net.c_block.parameters())
        if ablation != "oc":  # DCSM-oc has no IR-block: its weights stay as initialised and are never trained
            params += list(self.net.ir_block.parameters())
        if self.mi_alpha or self.mi_beta:
            params += list(self.disc_global.parameters())
        if self.mi_delta:
            params += list(self.disc_local.parameters())
        self.opt = torch.optim.Adam(params, lr=lr, betas=adam_betas, fused=True)

    def optimizers(self):
        return {"net": self.opt}

    def encode(self, x):
        out = self.net(x)
        return F.softmax(out.logits, dim=1), out.z

    # -- pseudo-similarity ------------------------------------------------------------------------------
    @torch.no_grad()
    def refresh_centres(self, images_u8: torch.Tensor, generator) -> None:
        """k-means (K clusters) on l of a random sample of the original images, in evaluation mode.

        A sample of `kmeans_sample` images (10,000 by default) places K centres in a K-dimensional space as well as
        all of them would, and keeps the refresh cheap on large sets; every image is then assigned when its batch
        comes, from its current l."""
        n = images_u8.shape[0]
        pick = torch.randperm(n, generator=generator, device=images_u8.device)[: self.kmeans_sample]
        l, _ = self.embed(images_u8[pick], averaged=False)  # training's own pseudo-labels: the raw weights
        self.centres.copy_(kmeans(l, self.k, self.kmeans_iters, generator)[1])

    def pseudo_similarity(self, l_clean: torch.Tensor, generator) -> torch.Tensor:
        """r for the batch: nearest dataset-wide k-means centre, a k-means of this batch's l, or a threshold."""
        if self.similarity == "threshold":
            return L.similarity_from_threshold(l_clean, self.similarity_threshold)
        if self.kmeans_scope == "batch":
            return L.similarity_from_assignments(kmeans(l_clean, self.k, self.kmeans_iters, generator)[0])
        assign = torch.cdist(l_clean, self.centres).argmin(1)
        if self.kmeans_track and self.training:
            self.track_centres(l_clean, assign)
        return L.similarity_from_assignments(assign)

    @torch.no_grad()
    def track_centres(self, l: torch.Tensor, assign: torch.Tensor) -> None:
        """Move each centre a step `kmeans_track` towards the mean of the batch's points assigned to it (online
        k-means between refreshes), so that the centres follow l as the network changes; centres with no point in
        the batch stay where they are."""
        k = self.k
        sums = torch.zeros(k, l.shape[1], device=l.device, dtype=l.dtype).index_add_(0, assign, l)
        counts = torch.bincount(assign, minlength=k).to(l.dtype)[:, None]
        target = torch.where(counts > 0, sums / counts.clamp_min(1), self.centres)
        self.centres.lerp_(target, self.kmeans_track)

    # -- training ---------------------------------------------------------------------------------------
    def update(self, x: torch.Tensor, x_aug: torch.Tensor, generator) -> dict[str, torch.Tensor]:
        """One optimiser step on a batch of network inputs x and their transformed views x_aug."""
        m = x.shape[0]
        out = self.net(torch.cat([x, x_aug]))
        l_all = F.softmax(out.logits, dim=1)
        l, l_t = l_all[:m], l_all[m:]
        fmap, fmap_t = out.fmap[:m], out.fmap[m:]
        z_t = out.z[m:]
        r = self.pseudo_similarity(l.detach(), generator)
        stats: dict[str, torch.Tensor] = {}
        dt = L.dt_loss(r, L.estimated_similarity(l_t))
        ent = L.entropy_loss(l_t)
        total = self.eps_dt * dt + self.lambda_entropy * ent
        stats["dt_loss"], stats["entropy"] = dt.detach(), -ent.detach()
        ft, share = L.ft_loss(l_t, self.standard_threshold)
        stats["standard_share"] = share
        if self.use_ft:
            total = total + ft
            stats["ft_loss"] = ft.detach()
        if self.mi_alpha or self.mi_beta or self.mi_delta:
            neg_idx, valid = L.pick_negatives(r, self.mi_negatives, generator)
            if self.mi_alpha or self.mi_beta:
                lmi = L.mi_pairs(self.disc_global, z_t, fmap, neg_idx, valid)
                lmit = L.mi_pairs(self.disc_global, z_t, fmap_t, neg_idx, valid)
                total = total + self.mi_alpha * lmi + self.mi_beta * lmit
                stats.update(lmi_loss=lmi.detach(), lmit_loss=lmit.detach(),
                             mi_global=L.LOG4 - (lmi.detach() + lmit.detach()) / 2)
            if self.mi_delta:
                lmic = L.mi_pairs(self.disc_local, fmap_t, fmap, neg_idx, valid)
                total = total + self.mi_delta * lmic
                stats.update(lmic_loss=lmic.detach(), mi_local=L.LOG4 - lmic.detach())
        self.opt.zero_grad(set_to_none=True)
        total.backward()
        self.opt.step()
        stats["loss"] = total.detach()
        stats["same_cluster_share"] = r.mean()
        return stats

    def train_step(self, batches) -> dict[str, torch.Tensor]:
        gen, pipe = batches.generator, self.pipeline
        if self.similarity == "kmeans" and self.kmeans_scope == "dataset" and \
                batches.batches_seen % self.kmeans_every == 0:
            self.refresh_centres(batches.images, gen)
        u8 = batches.next()
        x = pipe.clean(u8)
        updates = [self.update(x, pipe.augment(u8, gen), gen) for _ in range(self.repeats)]
        return {key: torch.stack([u[key] for u in updates]).mean() for key in updates[0]}
