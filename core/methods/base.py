"""What the trainer needs from a clustering method, so DCCS and DCSM share data, trainer, run directory and views."""

from __future__ import annotations

import torch
from torch import nn

from ..augment import InputPipeline


class ClusteringMethod(nn.Module):
    """A method owns its networks and optimizers and knows how to take one training step.

    `train_step(batches)` draws what it needs from the batch stream and returns detached 0-d tensors (no host
    synchronisation); `embed(images)` gives (z_c, z_s) for uint8 images, z_c being the soft cluster assignment.
    Settings that may change while training (β_Aug) live in device tensors so that changing them never retraces
    or recaptures anything.
    """

    name: str = "method"
    #: settings that can be changed while training, with their current values in device tensors
    live_settings: tuple[str, ...] = ()

    def __init__(self, pipeline: InputPipeline, k: int):
        super().__init__()
        self.pipeline = pipeline
        self.k = k

    # -- training ---------------------------------------------------------------------------------------
    @property
    def batches_per_step(self) -> int:
        """Batches one `train_step` draws from the stream (for epochs and throughput)."""
        return 1

    def train_step(self, batches) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        raise NotImplementedError

    def distribute(self, ctx, device: torch.device) -> None:
        """Wrap the networks for data-parallel training (`core.distributed`); inference keeps using the plain
        modules, so rank 0 can evaluate alone."""
        from ..errors import ConfigError

        raise ConfigError(f"distributed training (torchrun) is implemented for DCCS, not for {self.name.upper()}")

    def set_live(self, name: str, value: float) -> None:
        if name not in self.live_settings:
            raise KeyError(f"{name} cannot be changed while training (changeable: {', '.join(self.live_settings)})")
        getattr(self, name).fill_(float(value))

    def get_live(self, name: str) -> float:
        return float(getattr(self, name))

    # -- inference --------------------------------------------------------------------------------------
    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(z_c, z_s) for network inputs x (already through the pipeline)."""
        raise NotImplementedError

    @torch.no_grad()
    def embed(self, images_u8: torch.Tensor, batch_size: int = 1024) -> tuple[torch.Tensor, torch.Tensor]:
        """z_c and z_s of uint8 images in evaluation mode (BatchNorm running statistics), in chunks."""
        was_training = self.training
        self.eval()
        try:
            zc, zs = [], []
            for chunk in images_u8.split(batch_size):
                a, b = self.encode(self.pipeline.clean(chunk))
                zc.append(a)
                zs.append(b)
            return torch.cat(zc), torch.cat(zs)
        finally:
            self.train(was_training)
