"""DCSM losses (Peng & Li 2023, Eqs. 1–12), each a small pure function so it can be checked by hand.

Notation: l_i the class-level output (softmax over K) of an image, z_i the instance-level output of the IR-block,
C(x) an intermediate feature map of the backbone, T the 1×1-convolution discriminator (logits), sp = softplus.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

LOG4 = 2 * math.log(2.0)  # 2·log 2: the JSD bound's value at chance is −LOG4; MI curves add it back
_EPS = 1e-7


def similarity_from_assignments(assign: torch.Tensor) -> torch.Tensor:
    """r_ij = 1 where i and j share a k-means cluster (and on the diagonal), else 0 (Eq. 2)."""
    return (assign[:, None] == assign[None, :]).float()


def similarity_from_threshold(l: torch.Tensor, threshold: float) -> torch.Tensor:
    """DCCM's rule, for the paper's Table 4 comparison: r_ij = 1 where the cosine of l_i and l_j exceeds a high
    threshold, or i = j. Not transitive in general."""
    ln = F.normalize(l, dim=1)
    r = (ln @ ln.T > threshold).float()
    return torch.maximum(r, torch.eye(l.shape[0], device=l.device))


def estimated_similarity(l: torch.Tensor) -> torch.Tensor:
    """g(x_i, x_j) = l_i · l_j with every l_i scaled to unit L2 norm (Eq. 3's constraint), clamped inside (0, 1)."""
    ln = F.normalize(l, dim=1)
    return (ln @ ln.T).clamp(_EPS, 1 - _EPS)


def dt_loss(r: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    """L_DT: binary cross-entropy between r_ij and g_ij, averaged over all m² pairs (Eq. 1 up to a 1/m² scale)."""
    return F.binary_cross_entropy(g, r)


def standard_mask(l: torch.Tensor, threshold: float) -> torch.Tensor:
    """W_i = 1 where the largest entry of l_i is at least the threshold (Eq. 4): the cluster-standard samples."""
    return (l.max(dim=1).values >= threshold).float()


def ft_loss(l: torch.Tensor, threshold: float) -> tuple[torch.Tensor, torch.Tensor]:
    """L_FT (Eq. 5): for cluster-standard samples, −Σ_k [s_k log l_k + (1 − s_k) log(1 − l_k)] with s the one-hot
    of l's own argmax (a fixed target), averaged over the batch. Returns (loss, share of standard samples)."""
    w = standard_mask(l.detach(), threshold)
    s = F.one_hot(l.detach().argmax(1), l.shape[1]).float()
    lc = l.clamp(_EPS, 1 - _EPS)
    per_sample = -(s * lc.log() + (1 - s) * (1 - lc).log()).sum(dim=1)
    return (w * per_sample).mean(), w.mean()


def entropy_loss(l: torch.Tensor) -> torch.Tensor:
    """L_E = Σ_k q_k log q_k with q the batch mean of l (Eq. 11); minimising it spreads the batch over clusters."""
    q = l.mean(dim=0)
    return (q * q.clamp_min(_EPS).log()).sum()


def pick_negatives(r: torch.Tensor, count: int, generator=None) -> tuple[torch.Tensor, torch.Tensor]:
    """For each image i, `count` other images j drawn at random among those with r_ij = 0 (never i itself, never
    an image of the same pseudo-cluster). Returns (index (m, count), valid (m, count)); a draw is invalid when
    image i has fewer than `count` admissible partners, and invalid draws are left out of the loss."""
    m = r.shape[0]
    allowed = r < 0.5
    scores = torch.rand(m, m, generator=generator, device=r.device).masked_fill(~allowed, -1.0)
    count = min(count, m)
    idx = scores.topk(count, dim=1).indices
    return idx, allowed.gather(1, idx)


def jsd_mi_loss(pos_scores: torch.Tensor, neg_scores: torch.Tensor, neg_valid: torch.Tensor) -> torch.Tensor:
    """−(E_J[−sp(−T)] − E_M[sp(T)]) (Eqs. 6–9): positives are an image's own pairs at every position, negatives
    the pairs with other images' maps at every position; `neg_valid` (one flag per negative pair) masks pairs
    that must not count as negatives.

    pos_scores: (m, H, W); neg_scores: (m, n, H, W); neg_valid: (m, n)."""
    pos = F.softplus(-pos_scores).mean()
    w = neg_valid.float()[:, :, None, None].expand_as(neg_scores)
    neg = (F.softplus(neg_scores) * w).sum() / w.sum().clamp_min(1.0)
    return pos + neg


def mi_pairs(disc, other: torch.Tensor, fmap: torch.Tensor, neg_idx: torch.Tensor,
             neg_valid: torch.Tensor) -> torch.Tensor:
    """Score own pairs (other_i, map_i) and negative pairs (other_i, map_j for j in neg_idx[i]) with the 1×1-conv
    discriminator `disc` (a `ConvDiscriminator`), and return the JSD MI loss. `other` is a vector per image
    (global-local) or a map (local-local)."""
    m, n = neg_idx.shape
    pm, po = disc.project_map(fmap), disc.project_other(other)
    pos = disc.score(pm + po)
    # other images' maps picked by a one-hot matrix product rather than indexing: indexing's backward adds into
    # shared rows in a thread-dependent order, and those rounding differences would make a resumed run drift
    pick = F.one_hot(neg_idx.reshape(-1), m).to(pm.dtype)
    pm_neg = (pick @ pm.flatten(1)).view(m * n, *pm.shape[1:])
    po_rep = po.unsqueeze(1).expand(m, n, *po.shape[1:]).reshape(m * n, *po.shape[1:])
    neg = disc.score(pm_neg + po_rep)
    return jsd_mi_loss(pos, neg.view(m, n, *neg.shape[1:]), neg_valid)
