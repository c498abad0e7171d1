"""DCCS on Fashion-MNIST (all 70,000 images) or CIFAR-10 (all 60,000): ACC/NMI/ARI against epochs and wall time,
seconds per epoch, images per second, on whatever device it is given; optionally within a wall-time budget.

Speed is printed as a ratio to a baseline measured in the same run: the same networks and losses fed the way the
authors' code feeds them (per-image PIL augmentation in a torch DataLoader, host-to-device copies each batch).
Accuracy is printed beside the paper's figures (Fashion-MNIST 0.756 / 0.704 / 0.623, CIFAR-10 0.656 / 0.569 / 0.469).

    python benchmarks/dccs_fashion_mnist.py                       # GPU if there is one, 25 epochs
    python benchmarks/dccs_fashion_mnist.py --epochs 3000 --minutes 30 --seed 1       # ACC after 30 minutes
    python benchmarks/dccs_fashion_mnist.py --dataset cifar10 --data-path ../shared/data/cifar10-images.zip \
        --beta-aug 4 --epochs 3000 --minutes 30
    python benchmarks/dccs_fashion_mnist.py --device cpu --epochs 0.5 --baseline-batches 40
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from core import TrainConfig, load_dataset  # noqa: E402
from core.runtime import resolve_device  # noqa: E402
from core.trainer import Trainer  # noqa: E402


PAPER = {"fashion-mnist": (0.756, 0.704, 0.623), "cifar10": (0.656, 0.569, 0.469)}  # ACC, NMI, ARI (Table 2)
DEFAULT_FILES = {"fashion-mnist": "fashion-mnist.npz", "cifar10": "cifar10-images.zip"}


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class _AuthorsStyleData(torch.utils.data.Dataset):
    """Per-image torchvision transforms on PIL images, as the authors' DataLoader does: (x, T(x)) pairs."""

    def __init__(self, images: np.ndarray, flip: bool):
        import torchvision.transforms as T

        # (N, C, H, W) uint8 → what PIL takes: (N, H, W) for grey, (N, H, W, 3) for colour
        self.images = images[:, 0] if images.shape[1] == 1 else images.transpose(0, 2, 3, 1)
        self.mode = "L" if images.shape[1] == 1 else "RGB"
        half = [0.5] * images.shape[1]
        aug = [T.RandomResizedCrop(images.shape[-1], scale=(0.4, 1.0), ratio=(3 / 4, 4 / 3))]
        if flip:
            aug.append(T.RandomHorizontalFlip())
        aug += [T.ColorJitter(0.4, 0.4, 0.4, 0.125), T.ToTensor(), T.Normalize(half, half)]
        self.clean = T.Compose([T.ToTensor(), T.Normalize(half, half)])
        self.aug = T.Compose(aug)

    def __len__(self):
        return len(self.images)

    def __getitem__(self, i):
        from PIL import Image

        img = Image.fromarray(np.ascontiguousarray(self.images[i]), self.mode)
        return self.clean(img), self.aug(img)


def baseline_images_per_second(trainer: Trainer, n_batches: int, workers: int) -> float:
    """Images per second of the authors' data path driving our DCCS networks and losses."""
    device = trainer.device
    method = trainer.method
    cfg = trainer.config
    data = _AuthorsStyleData(trainer.data.images.numpy(), flip=bool(cfg.flip))
    loader = torch.utils.data.DataLoader(data, batch_size=cfg.batch_size, shuffle=True, drop_last=True,
                                         num_workers=workers, pin_memory=device.type == "cuda",
                                         persistent_workers=workers > 0)
    gen = trainer.generator
    pipeline = method.pipeline

    def to_net(t):  # colour images for a grey/Sobel network input: through the engine's own conversion
        if pipeline.out_channels == t.shape[1]:
            return t
        return pipeline.clean((t * 127.5 + 127.5).round().clamp(0, 255).to(torch.uint8))

    it = iter(loader)
    warm = 5
    for i in range(n_batches + warm):
        if i == warm:
            _sync(device)
            t0 = time.perf_counter()
        x, x_aug = (to_net(t.to(device, non_blocking=True)) for t in next(it))
        if i % (cfg.n_critic + 1) == cfg.n_critic:
            method.encoder_step(x, x_aug, gen)
        else:
            method.critic_step(x, gen)
    _sync(device)
    return n_batches * cfg.batch_size / (time.perf_counter() - t0)


def trainer_records(trainer):
    from core import Run

    return Run(trainer.run_dir).metrics()[1:]  # the first window holds start-up costs


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dataset", default="fashion-mnist", choices=sorted(PAPER))
    p.add_argument("--data-path", default=None, help="default: ../shared/data/fashion-mnist.npz or "
                   "../shared/data/cifar10-images.zip beside the repository")
    p.add_argument("--minutes", type=float, default=None, help="stop after this much wall time of training")
    p.add_argument("--device", default="auto")
    p.add_argument("--epochs", type=float, default=25.0)
    p.add_argument("--eval-every-epochs", type=float, default=1.0)
    p.add_argument("--beta-aug", type=float, default=2.0)
    p.add_argument("--lr", type=float, default=1e-4)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--baseline-batches", type=int, default=200)
    p.add_argument("--workers", type=int, default=4, help="DataLoader workers of the baseline")
    p.add_argument("--run-dir", default=None, help="keep the run here (default: a temporary folder)")
    args = p.parse_args(argv)

    device = resolve_device(args.device)
    data_path = args.data_path or str(REPO.parent / "shared" / "data" / DEFAULT_FILES[args.dataset])
    dataset = args.dataset if args.dataset != "cifar10" or not data_path.endswith(".zip") else data_path
    data = load_dataset(dataset, data_path if dataset == args.dataset else None)
    n = len(data)
    batches_per_epoch = n // 64
    steps_per_epoch = batches_per_epoch / 5
    run_dir = args.run_dir or tempfile.mkdtemp(prefix="bench-dccs-")
    eval_every = max(1, round(args.eval_every_epochs * steps_per_epoch))
    cfg = TrainConfig(dataset=dataset, data_path=data_path if dataset == args.dataset else None,
                      device=str(device), epochs=args.epochs,
                      schedule="paper", beta_aug=args.beta_aug, lr=args.lr, seed=args.seed,
                      run_dir=str(Path(run_dir) / "run"),
                      eval_every=eval_every, log_every=eval_every, snapshot_every=eval_every * 10,
                      checkpoint_every=eval_every * 10, progress=False)
    print(f"device {device}; {n} images; {batches_per_epoch} batches of 64 per epoch; run in {cfg.run_dir}")

    trainer = Trainer(cfg, data=data)
    base_ips = baseline_images_per_second(trainer, args.baseline_batches, args.workers)
    # the baseline trained the networks a little: start the measured run from fresh weights
    import shutil

    shutil.rmtree(cfg.run_dir)
    trainer = Trainer(cfg, data=data)

    print(f"\n{'epoch':>7} {'time s':>8} {'ACC':>7} {'NMI':>7} {'ARI':>7} {'W':>8} {'img/s':>8}")
    t_start = time.perf_counter()
    if args.minutes is not None:  # the trainer stops after its current step, with a final evaluation
        import threading

        budget = threading.Timer(args.minutes * 60, trainer.stop, args=(f"wall-time budget of {args.minutes:g} min",))
        budget.daemon = True
        budget.start()
    for ev in trainer.events():
        if ev["type"] == "record" and "acc" in ev:
            print(f"{ev['epoch']:7.2f} {ev['time']:8.1f} {ev['acc']:7.4f} {ev['nmi']:7.4f} {ev['ari']:7.4f} "
                  f"{ev['wasserstein']:8.4f} {ev['images_per_s'] or 0:8.0f}", flush=True)
    wall = time.perf_counter() - t_start
    result = trainer.join()
    epochs = result["epoch"]
    ips = float(np.median([r["images_per_s"] for r in trainer_records(trainer) if r.get("images_per_s")]))
    print(f"\nfinal: ACC {result['acc']:.4f}  NMI {result['nmi']:.4f}  ARI {result['ari']:.4f}  after {epochs:.2f} "
          f"epochs, {result['time']:.1f} s of training ({wall:.1f} s wall)")
    paper = PAPER[args.dataset]
    print(f"paper: ACC {paper[0]:.3f}  NMI {paper[1]:.3f}  ARI {paper[2]:.3f}; ratio ACC/paper "
          f"{result['acc'] / paper[0]:.3f}  NMI/paper {result['nmi'] / paper[1]:.3f}  ARI/paper "
          f"{result['ari'] / paper[2]:.3f}")
    print(f"seconds per epoch (training + evaluation): {result['time'] / epochs:.2f}")
    print(f"images per second while training (median over logging windows): {ips:.0f}")
    print(f"baseline (authors' data path, {args.workers} loader workers, same networks): {base_ips:.0f} images/s")
    print(f"speed ratio engine / baseline: {ips / base_ips:.2f}x")


if __name__ == "__main__":
    main()
