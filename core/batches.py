"""Batches drawn from a data set that lives on the device as uint8: one shuffled pass after another."""

from __future__ import annotations

import torch

from .errors import ConfigError


class BatchStream:
    """Hands out batches of `batch_size` images of a shuffled epoch; a new permutation starts the next epoch.

    The last incomplete batch of an epoch is dropped (as the authors' loader does). All randomness comes from
    `generator`, whose state is saved with the stream, so a resumed run draws exactly the batches it would have.
    `order` drives the permutations (`generator` itself here; a distributed stream keeps them apart).
    """

    def __init__(self, images: torch.Tensor, batch_size: int, generator: torch.Generator,
                 order: torch.Generator | None = None, batches_per_epoch: int | None = None):
        n = images.shape[0]
        if batch_size > n:
            raise ConfigError(f"batch size {batch_size} is larger than the data set ({n} images)")
        self.images = images
        self.batch_size = batch_size
        self.generator = generator
        self.order = order if order is not None else generator
        self.batches_per_epoch = batches_per_epoch or n // batch_size
        self.perm = torch.randperm(n, generator=self.order, device=images.device)
        self.position = 0  # batches taken from the current permutation
        self.batches_seen = 0

    def slot(self) -> int:
        """Where the next batch starts in the permutation, in batches."""
        return self.position

    def next(self) -> torch.Tensor:
        if self.position == self.batches_per_epoch:
            self.perm = torch.randperm(self.images.shape[0], generator=self.order, device=self.images.device)
            self.position = 0
        start = self.slot() * self.batch_size
        idx = self.perm[start:start + self.batch_size]
        self.position += 1
        self.batches_seen += 1
        return self.images[idx]

    @property
    def epoch(self) -> float:
        """Passes over the data so far (fractional)."""
        return self.batches_seen / self.batches_per_epoch

    def state_dict(self) -> dict:
        return {"perm": self.perm.cpu(), "position": self.position, "batches_seen": self.batches_seen,
                "generator": self.order.get_state()}

    def load_state_dict(self, state: dict) -> None:
        self.perm = state["perm"].to(self.images.device)
        self.position = int(state["position"])
        self.batches_seen = int(state["batches_seen"])
        self.order.set_state(state["generator"])
