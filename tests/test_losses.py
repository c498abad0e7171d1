"""Each DCCS loss against a value worked out by hand on a tiny tensor."""

import math

import pytest
import torch

from core import losses


def test_augmentation_kl_by_hand():
    # p = (1/2, 1/2) for x, q = (1/4, 3/4) for T(x):
    # KL(p||q) = 1/2 ln(0.5/0.25) + 1/2 ln(0.5/0.75) = 1/2 ln 2 + 1/2 ln(2/3) = 0.14384...
    logits = torch.log(torch.tensor([[0.5, 0.5]]))
    logits_aug = torch.log(torch.tensor([[0.25, 0.75]]))
    expected = 0.5 * math.log(2) + 0.5 * math.log(2 / 3)
    assert losses.augmentation_loss(logits, logits_aug).item() == pytest.approx(expected, abs=1e-6)
    # batch mean: a second identical pair (KL 0) halves it
    two = losses.augmentation_loss(torch.cat([logits, logits]), torch.cat([logits_aug, logits]))
    assert two.item() == pytest.approx(expected / 2, abs=1e-6)
    # KL is not symmetric: the direction of Eq. 7 matters
    reverse = 0.25 * math.log(0.25 / 0.5) + 0.75 * math.log(0.75 / 0.5)
    assert losses.augmentation_loss(logits_aug, logits).item() == pytest.approx(reverse, abs=1e-6)


def test_augmentation_kl_gradients_reach_both_views():
    a = torch.tensor([[0.3, -0.2, 1.0]], requires_grad=True)
    b = torch.tensor([[1.0, 0.5, -1.0]], requires_grad=True)
    losses.augmentation_loss(a, b).backward()
    assert a.grad.abs().sum() > 0 and b.grad.abs().sum() > 0


def test_mi_loss_by_hand():
    # positives: D = 0 and ln 3, S = 1/2 and 3/4 -> -ln S = ln 2 and ln 4/3
    # negatives: D = 0 and -ln 3, 1 - S = 1/2 and 3/4 -> the same
    pos = torch.tensor([0.0, math.log(3)])
    neg = torch.tensor([0.0, -math.log(3)])
    half = (math.log(2) + math.log(4 / 3)) / 2
    assert losses.mi_loss(pos, neg).item() == pytest.approx(2 * half, abs=1e-6)  # Eq. 6: sum of expectations
    assert losses.mi_loss(pos, neg, pair_mean=True).item() == pytest.approx(half, abs=1e-6)  # authors' code
    # a perfect discriminator drives it to 0; a blind one (all 0) to 2 ln 2
    assert losses.mi_loss(torch.tensor([50.0]), torch.tensor([-50.0])).item() == pytest.approx(0, abs=1e-6)
    assert losses.mi_loss(torch.zeros(3), torch.zeros(3)).item() == pytest.approx(2 * math.log(2), abs=1e-6)


def test_critic_loss_and_wasserstein_by_hand():
    c_z = torch.tensor([1.0, 3.0])  # E[C(z)] = 2
    c_prior = torch.tensor([2.0, 6.0])  # E[C(z~)] = 4
    gp = torch.tensor(0.5)
    # L^C = beta (E[C(z)] - E[C(z~)] + lambda GP) = 1 * (2 - 4 + 10 * 0.5) = 3
    assert losses.critic_loss(c_z, c_prior, gp, lambda_gp=10.0, beta_adv=1.0).item() == pytest.approx(3.0)
    assert losses.critic_loss(c_z, c_prior, gp, lambda_gp=10.0, beta_adv=2.0).item() == pytest.approx(6.0)
    assert losses.wasserstein_estimate(c_z, c_prior).item() == pytest.approx(2.0)
    assert losses.encoder_adversarial_loss(c_z).item() == pytest.approx(-2.0)


class Linear(torch.nn.Module):
    """C(z) = w . z: its gradient is w everywhere."""

    def __init__(self, w):
        super().__init__()
        self.w = torch.nn.Parameter(torch.tensor(w))

    def forward(self, z):
        return z @ self.w


class HalfSquare(torch.nn.Module):
    """C(z) = a/2 |z|^2: its gradient at z is a z."""

    def __init__(self, a=1.0):
        super().__init__()
        self.a = torch.nn.Parameter(torch.tensor(a))

    def forward(self, z):
        return 0.5 * self.a * (z * z).sum(1)


def test_gradient_penalty_on_critics_with_known_gradients():
    z = torch.randn(5, 2)
    prior = torch.randn(5, 2)
    eps = torch.rand(5)
    # |grad| = |(3, 4)| = 5 everywhere -> (5 - 1)^2 = 16
    assert losses.gradient_penalty(Linear([3.0, 4.0]), z, prior, eps).item() == pytest.approx(16.0, rel=1e-5)
    # a 1-Lipschitz linear critic has no penalty
    assert losses.gradient_penalty(Linear([0.6, 0.8]), z, prior, eps).item() == pytest.approx(0.0, abs=1e-6)
    # C = |z|^2 / 2 at z^ = eps z + (1 - eps) z~:  z = (3, 4), z~ = (0, 0), eps = 1 -> z^ = (3, 4), |grad| = 5;
    # z = (2, 0), z~ = (0, 0), eps = 1/2 -> z^ = (1, 0), |grad| = 1.  Mean of 16 and 0 is 8.
    z = torch.tensor([[3.0, 4.0], [2.0, 0.0]])
    prior = torch.zeros(2, 2)
    eps = torch.tensor([1.0, 0.5])
    critic = HalfSquare()
    gp = losses.gradient_penalty(critic, z, prior, eps)
    assert gp.item() == pytest.approx(8.0, rel=1e-5)
    # differentiable w.r.t. the critic: with C = a/2 |z|^2, GP = mean((a|z^| - 1)^2), dGP/da = mean(2 (a|z^| - 1)|z^|)
    gp.backward()
    assert critic.a.grad.item() == pytest.approx((2 * 4 * 5 + 2 * 0 * 1) / 2, rel=1e-5)


def test_prior_samples_are_one_hot_and_gaussian():
    g = torch.Generator().manual_seed(0)
    z = losses.sample_prior(20000, 10, 50, 0.1, generator=g)
    z_c, z_s = z[:, :10], z[:, 10:]
    assert torch.all(z_c.sum(1) == 1) and torch.all((z_c == 0) | (z_c == 1))
    counts = z_c.sum(0)
    assert counts.min() > 1800 and counts.max() < 2200  # uniform over K
    assert z_s.std().item() == pytest.approx(0.1, rel=0.02)
    assert z_s.mean().abs().item() < 0.002


def test_in_batch_negatives():
    g = torch.Generator().manual_seed(1)
    for n in (2, 3, 64):
        p = losses.in_batch_negatives(n, g)
        assert sorted(p.tolist()) == list(range(n))  # a permutation: every z used once
        assert not torch.any(p == torch.arange(n))  # never an image's own z
    p = losses.in_batch_negatives(64, g, derangement=False)
    assert sorted(p.tolist()) == list(range(64))
