"""DCCS losses (Eqs. 6, 7, 10, 11), each a small pure function so it can be checked by hand.

Notation: z = (z_c, z_s) from the encoder, z̃ from the prior, ẑ on the segment between them, C the critic,
D the mutual-information discriminator (logits; S = sigmoid).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def sample_prior(n: int, k: int, dim_zs: int, std: float, generator=None, device=None) -> torch.Tensor:
    """z̃ = (one-hot z̃_c uniform over K, z̃_s ~ N(0, std² I)), concatenated as [z_c, z_s]."""
    idx = torch.randint(0, k, (n,), generator=generator, device=device)
    z_c = F.one_hot(idx, k).float()
    z_s = std * torch.randn(n, dim_zs, generator=generator, device=device)
    return torch.cat([z_c, z_s], dim=1)


def interpolate(z: torch.Tensor, z_prior: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
    """ẑ = ε z + (1 − ε) z̃ (Algorithm 1, line 5), a leaf that requires its gradient."""
    return (eps[:, None] * z.detach() + (1 - eps[:, None]) * z_prior.detach()).requires_grad_(True)


def penalty_at(critic, z_hat: torch.Tensor) -> torch.Tensor:
    """E[(‖∇C(ẑ)‖₂ − 1)²] at given points ẑ (which require their gradient), differentiable w.r.t. the critic."""
    out = critic(z_hat)
    (grad,) = torch.autograd.grad(out.sum(), z_hat, create_graph=True)
    norm = torch.sqrt(grad.pow(2).sum(dim=1) + 1e-12)
    return (norm - 1).pow(2).mean()


def gradient_penalty(critic, z: torch.Tensor, z_prior: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
    """E[(‖∇C(ẑ)‖₂ − 1)²] with ẑ = ε z + (1 − ε) z̃ (Algorithm 1, line 5), differentiable w.r.t. the critic."""
    return penalty_at(critic, interpolate(z, z_prior, eps))


def critic_loss(c_z: torch.Tensor, c_prior: torch.Tensor, penalty: torch.Tensor, lambda_gp: float,
                beta_adv: float) -> torch.Tensor:
    """L^C = β_Adv · (E[C(z)] − E[C(z̃)] + λ·GP)   (Eqs. 11 and 14)."""
    return beta_adv * (c_z.mean() - c_prior.mean() + lambda_gp * penalty)


def wasserstein_estimate(c_z: torch.Tensor, c_prior: torch.Tensor) -> torch.Tensor:
    """The raw estimate E[C(z̃)] − E[C(z)] of W(Q_Z, P_Z) (Eq. 8), without the penalty."""
    return c_prior.mean() - c_z.mean()


def mi_loss(pos_logits: torch.Tensor, neg_logits: torch.Tensor, pair_mean: bool = False) -> torch.Tensor:
    """L_MI = −(E_pos[log S(D)] + E_neg[log(1 − S(D))])   (Eq. 6, the JSD estimate of I(X, Z)).

    `pair_mean=True` gives the authors' code instead: the mean binary cross-entropy over all 2m pairs, which is
    half of Eq. 6.
    """
    loss = F.softplus(-pos_logits).mean() + F.softplus(neg_logits).mean()
    return loss / 2 if pair_mean else loss


def augmentation_loss(logits: torch.Tensor, logits_aug: torch.Tensor) -> torch.Tensor:
    """L_Aug = KL(Q(Z_c|X) ‖ Q(Z_c|T(X))) = Σ_k p_k (log p_k − log q_k), averaged over the batch (Eq. 7).

    Gradients flow through both views, as in the authors' code."""
    log_p = F.log_softmax(logits, dim=1)
    log_q = F.log_softmax(logits_aug, dim=1)
    return (log_p.exp() * (log_p - log_q)).sum(dim=1).mean()


def encoder_adversarial_loss(c_z: torch.Tensor) -> torch.Tensor:
    """L_Adv^Q = −E[C(z)]   (Eq. 10)."""
    return -c_z.mean()


def in_batch_negatives(n: int, generator=None, device=None, derangement: bool = True) -> torch.Tensor:
    """Index of the z paired with each image as a negative.

    `derangement=True` (default): a random cyclic permutation, so no image is ever paired with its own z (a plain
    random permutation, the authors' choice, leaves about one image per batch paired with itself and labelled
    negative)."""
    sigma = torch.randperm(n, generator=generator, device=device)
    if not derangement:
        return sigma
    partner = torch.empty_like(sigma)
    partner[sigma] = sigma.roll(-1)
    return partner
