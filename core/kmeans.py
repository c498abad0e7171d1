"""k-means in torch on the device, with a fixed number of iterations so that it never waits on the host.

DCSM builds its pseudo-similarity r_ij from k-means assignments of the class-level features l. Assignments are
an equivalence relation (same cluster or not), so r_ij is transitive by construction — the paper's reason for
preferring k-means to a similarity threshold.
"""

from __future__ import annotations

import torch


def kmeans_plus_plus(x: torch.Tensor, k: int, generator=None) -> torch.Tensor:
    """k-means++ seeding: each new centre drawn with probability proportional to the squared distance to the
    nearest centre chosen so far (all on the device; `multinomial` needs no host round trip)."""
    n = x.shape[0]
    first = torch.randint(0, n, (1,), generator=generator, device=x.device)
    centres = [x[first]]
    d2 = torch.cdist(x, centres[0]).squeeze(1).pow(2)
    for _ in range(1, k):
        # a tiny floor keeps multinomial valid when every point sits on a centre (duplicates)
        nxt = torch.multinomial(d2 + 1e-12, 1, generator=generator)
        centres.append(x[nxt])
        d2 = torch.minimum(d2, torch.cdist(x, centres[-1]).squeeze(1).pow(2))
    return torch.cat(centres)


def kmeans(x: torch.Tensor, k: int, iters: int = 20, generator=None) -> tuple[torch.Tensor, torch.Tensor]:
    """Lloyd's algorithm from a k-means++ start: (assignments (N,), centres (k, D)).

    A cluster that loses all its points keeps its previous centre. `iters` is fixed (no convergence test), which
    keeps the whole computation on the device.
    """
    x = x.float()
    if not 1 <= k <= x.shape[0]:
        raise ValueError(f"k-means needs 1 ≤ k ≤ N, got k={k} for N={x.shape[0]}")
    centres = kmeans_plus_plus(x, k, generator)
    assign = torch.cdist(x, centres).argmin(1)
    for _ in range(iters):
        sums = torch.zeros_like(centres).index_add_(0, assign, x)
        counts = torch.zeros(k, device=x.device, dtype=x.dtype).index_add_(0, assign, torch.ones_like(x[:, 0]))
        centres = torch.where(counts[:, None] > 0, sums / counts.clamp_min(1)[:, None], centres)
        assign = torch.cdist(x, centres).argmin(1)
    return assign, centres
