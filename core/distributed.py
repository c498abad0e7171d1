"""Data-parallel training over several processes (DistributedDataParallel), launched by `torchrun`.

    torchrun --nproc-per-node 2 -m core train --dataset fashion-mnist --data-path ... --batch-size 64

Each process (rank) holds the whole data set on its device, trains on its own share of every global batch
(`batch_size` images per rank, so a step sees `batch_size × world_size` images) and averages gradients with the
others through DDP: the encoder, the critic and the MI discriminator are each wrapped. What must differ per rank
does: the augmentation parameters, the prior samples z̃, the interpolation weights of the gradient penalty and the
in-batch negatives come from a per-rank generator, and negatives are always other images of the rank's own batch.
Rank 0 alone writes the run directory (records averaged over the ranks, evaluations, snapshots, checkpoints) and
reads control.json; a β_Aug change or a stop request reaches every rank at the same step.

On GPUs the backend is NCCL (one GPU per rank, `cuda:LOCAL_RANK`); on the CPU it is gloo (the tests run 2 processes
on digits this way).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from .batches import BatchStream
from .errors import ConfigError

# Offsets the per-rank noise seed away from the shared data-order seed.
NOISE_SEED_STRIDE = 1_000_003


@dataclass(frozen=True)
class Context:
    """Where this process stands: rank, number of ranks, and whether a process group is in use."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def active(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


SINGLE = Context()


def launched_by_torchrun() -> bool:
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def setup(device_name: str) -> tuple[Context, str]:
    """Join the process group torchrun set up in the environment (once per process); returns the context and
    the device this rank trains on. Without torchrun: the single-process context and the device unchanged."""
    if not launched_by_torchrun():
        return SINGLE, device_name
    rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    local = int(os.environ.get("LOCAL_RANK", rank))
    use_cuda = device_name in ("auto", "cuda") and torch.cuda.is_available() or device_name.startswith("cuda")
    if use_cuda:
        if not torch.cuda.is_available():
            raise ConfigError("device cuda was asked for, but no CUDA GPU is available here; use --device cpu")
        if local >= torch.cuda.device_count():
            raise ConfigError(f"rank {rank} (local rank {local}) has no GPU: this machine has "
                              f"{torch.cuda.device_count()}; start at most that many processes per node")
        device_name = f"cuda:{local}"
        torch.cuda.set_device(local)
    else:
        device_name = "cpu"
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if use_cuda else "gloo")
    return Context(rank=rank, world_size=world, local_rank=local), device_name


def backend() -> str | None:
    """The process group's backend (nccl, gloo), or None without one."""
    return dist.get_backend() if dist.is_initialized() else None


def wrap(module: torch.nn.Module, ctx: Context, device: torch.device) -> torch.nn.Module:
    """The module as DDP (rank 0's weights and buffers are broadcast to the others now; BatchNorm's running
    statistics are rank 0's, broadcast at every forward) — or the module itself in a single process."""
    if not ctx.active:
        return module
    from torch.nn.parallel import DistributedDataParallel as DDP

    ids = [device.index] if device.type == "cuda" else None
    return DDP(module, device_ids=ids, forward_sync_buffers=True)


def average(values: torch.Tensor, ctx: Context) -> torch.Tensor:
    """The mean of a tensor over the ranks (a copy; the tensor itself in a single process)."""
    if not ctx.active:
        return values
    out = values.clone()
    dist.all_reduce(out, op=dist.ReduceOp.SUM)
    return out / ctx.world_size


def broadcast_object(obj, ctx: Context):
    """Rank 0's `obj` on every rank."""
    if not ctx.active:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def spread(tensors, ctx: Context) -> float:
    """The largest absolute difference of any element of `tensors` between any rank and rank 0 (0.0 when they
    agree exactly, as DDP promises for the weights). A collective: every rank must call it."""
    if not ctx.active:
        return 0.0
    flat = torch.cat([t.detach().reshape(-1).double() for t in tensors])
    ref = flat.clone()
    dist.broadcast(ref, src=0)
    worst = (flat - ref).abs().max()
    dist.all_reduce(worst, op=dist.ReduceOp.MAX)
    return float(worst)


def noise_seed(seed: int, rank: int, step: int = 0) -> int:
    """The seed of a rank's generator for augmentation, prior samples and negatives (a resumed run reseeds it
    from the step it continues at)."""
    return (seed + 1 + rank * NOISE_SEED_STRIDE + step * 7919) % (2 ** 63 - 1)


class ShardedBatchStream(BatchStream):
    """Every rank's share of one shuffled global batch after another.

    The order of the data comes from a generator seeded the same on every rank, so the ranks agree on each global
    batch of `batch_size × world_size` images and each takes its own `batch_size`; `generator` (the one methods
    draw their noise from) is the rank's own."""

    def __init__(self, images: torch.Tensor, batch_size: int, seed: int, ctx: Context):
        n = images.shape[0]
        global_batch = batch_size * ctx.world_size
        if global_batch > n:
            raise ConfigError(f"batch size {batch_size} × {ctx.world_size} processes is larger than the data set "
                              f"({n} images)")
        self.ctx, self.seed = ctx, seed
        order = torch.Generator(device=images.device)
        order.manual_seed(seed)
        noise = torch.Generator(device=images.device)
        noise.manual_seed(noise_seed(seed, ctx.rank))
        super().__init__(images, batch_size, noise, order=order, batches_per_epoch=n // global_batch)

    def slot(self) -> int:
        return self.position * self.ctx.world_size + self.ctx.rank

    def state_dict(self) -> dict:
        return {**super().state_dict(), "world_size": self.ctx.world_size}

    def load_state_dict(self, state: dict) -> None:
        """Continue a checkpoint's data order. The noise generators are reseeded per rank from the step (only
        rank 0's state is in a checkpoint), so a resumed distributed run's random draws differ from an
        uninterrupted one's."""
        old_world = int(state.get("world_size", 1))
        if old_world != self.ctx.world_size:
            # another number of ranks (or a single-process checkpoint): same amount of data seen, new order
            self.batches_seen = int(state["batches_seen"]) * old_world // self.ctx.world_size
            self.order.manual_seed(self.seed + self.batches_seen)
            self.perm = torch.randperm(self.images.shape[0], generator=self.order, device=self.images.device)
            self.position = 0
        else:
            super().load_state_dict(state)
        self.generator.manual_seed(noise_seed(self.seed, self.ctx.rank, self.batches_seen))


def cleanup() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


__all__ = ["Context", "SINGLE", "setup", "backend", "wrap", "average", "broadcast_object", "spread",
           "ShardedBatchStream", "launched_by_torchrun", "cleanup"]
