"""DCCS (Zhao et al., ECCV 2020): Algorithm 1 with the losses of Eqs. 6–14."""

from __future__ import annotations

import itertools

import torch
import torch.nn.functional as F

from .. import distributed, losses
from ..augment import InputPipeline
from ..nets import LeakyMLP, build_encoder
from .base import ClusteringMethod


class DCCS(ClusteringMethod):
    """Encoder Q, critic C (WGAN-GP on z against the prior), discriminator D (JSD mutual information).

    One training step is one outer iteration of Algorithm 1: `n_critic` critic updates, each on a fresh batch,
    then one joint update of Q and D on another batch. Q and D share one Adam optimizer (the paper: "Q and D are
    jointly optimized"); C has its own.
    """

    name = "dccs"
    live_settings = ("beta_aug",)

    def __init__(self, pipeline: InputPipeline, k: int, input_size: int, *, dim_zs=50, prior_std=0.1,
                 beta_mi=0.5, beta_adv=1.0, beta_aug=2.0, lambda_gp=10.0, n_critic=4, lr=1e-4,
                 adam_betas=(0.5, 0.9), negatives="derangement", mi_pair_mean=False, device="cpu"):
        super().__init__(pipeline, k)
        self.dim_zs = dim_zs
        self.prior_std = prior_std
        self.beta_mi = beta_mi
        self.beta_adv = beta_adv
        self.lambda_gp = lambda_gp
        self.n_critic = n_critic
        self.derangement = negatives == "derangement"
        self.mi_pair_mean = mi_pair_mean
        self.encoder = build_encoder(input_size, pipeline.out_channels, k, dim_zs)
        self.critic = LeakyMLP(k + dim_zs)
        self.discriminator = LeakyMLP(self.encoder.feature_dim + k + dim_zs)
        self.register_buffer("beta_aug", torch.tensor(float(beta_aug)))
        self.to(device)
        # fused Adam: one kernel per parameter group, on the GPU and the CPU alike (about 15 % of a CPU step)
        self.opt_q = torch.optim.Adam(
            itertools.chain(self.encoder.parameters(), self.discriminator.parameters()), lr=lr, betas=adam_betas,
            fused=True)
        self.opt_c = torch.optim.Adam(self.critic.parameters(), lr=lr, betas=adam_betas, fused=True)
        # the networks the training steps call: the modules themselves, or their DDP wrappers (a plain dict, so
        # the wrappers are not submodules and the state dict stays the same in one process and in several)
        self.train_nets = {"encoder": self.encoder, "critic": self.critic, "discriminator": self.discriminator}

    def distribute(self, ctx, device):
        """DDP for the encoder, the critic and the discriminator. Per step: the critic's update averages its
        gradients (WGAN-GP's double backward included) over the ranks; the encoder's and the discriminator's
        joint update averages theirs. The critic is called unwrapped while it is fixed (the encoder's update), and
        the encoder unwrapped under no_grad (the critic's update), so no collective waits for a gradient that
        never comes."""
        self.train_nets = {name: distributed.wrap(net, ctx, device) for name, net in self.train_nets.items()}

    @property
    def batches_per_step(self) -> int:
        return self.n_critic + 1

    def optimizers(self):
        return {"q": self.opt_q, "c": self.opt_c}

    def encode(self, x):
        out = self.encoder(x)
        return F.softmax(out.logits, dim=1), out.z_s

    def _z(self, out):
        return torch.cat([F.softmax(out.logits, dim=1), out.z_s], dim=1)

    def critic_step(self, x: torch.Tensor, gen) -> dict[str, torch.Tensor]:
        """One critic update on network inputs x (Algorithm 1, lines 3–6)."""
        m = x.shape[0]
        critic = self.train_nets["critic"]
        with torch.no_grad():
            z = self._z(self.encoder(x))
        z_prior = losses.sample_prior(m, self.k, self.dim_zs, self.prior_std, gen, x.device)
        eps = torch.rand(m, generator=gen, device=x.device)
        c_z, c_prior = critic(z), critic(z_prior)
        gp = losses.gradient_penalty(critic, z, z_prior, eps)
        loss = losses.critic_loss(c_z, c_prior, gp, self.lambda_gp, self.beta_adv)
        self.opt_c.zero_grad(set_to_none=True)
        loss.backward()
        self.opt_c.step()
        return {"critic_loss": loss.detach(), "w_raw": losses.wasserstein_estimate(c_z, c_prior).detach(),
                "gradient_penalty": gp.detach()}

    def encoder_step(self, x: torch.Tensor, x_aug: torch.Tensor, gen) -> dict[str, torch.Tensor]:
        """One joint update of Q and D on a batch and its augmented view (Algorithm 1, lines 8–12)."""
        m = x.shape[0]
        encoder = self.train_nets["encoder"]
        out_aug = encoder(x_aug)
        out = encoder(x)
        z = self._z(out)
        self.critic.requires_grad_(False)  # C is fixed during Q's update: skip its weight gradients
        try:
            c_z = self.critic(z)
        finally:
            self.critic.requires_grad_(True)
        neg = losses.in_batch_negatives(m, gen, x.device, self.derangement)
        d_in = torch.cat([torch.cat([out.features, z], 1), torch.cat([out.features, z[neg]], 1)])
        d_logits = self.train_nets["discriminator"](d_in)
        l_mi = losses.mi_loss(d_logits[:m], d_logits[m:], self.mi_pair_mean)
        l_aug = losses.augmentation_loss(out.logits, out_aug.logits)
        l_adv = losses.encoder_adversarial_loss(c_z)
        loss = self.beta_mi * l_mi + self.beta_aug * l_aug + self.beta_adv * l_adv
        self.opt_q.zero_grad(set_to_none=True)
        loss.backward()
        self.opt_q.step()
        return {"mi_loss": l_mi.detach(), "aug_loss": l_aug.detach(), "adv_loss": l_adv.detach(),
                "encoder_loss": loss.detach()}

    def train_step(self, batches) -> dict[str, torch.Tensor]:
        gen, pipe = batches.generator, self.pipeline
        critic = [self.critic_step(pipe.clean(batches.next()), gen) for _ in range(self.n_critic)]
        out = {key: torch.stack([c[key] for c in critic]).mean() for key in critic[0]}
        out["wasserstein"] = -out["critic_loss"]
        u8 = batches.next()
        out.update(self.encoder_step(pipe.clean(u8), pipe.augment(u8, gen), gen))
        return out
