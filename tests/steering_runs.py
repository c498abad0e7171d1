"""Three short digits runs that change β_Aug 2 → 3 in the middle of a logging window, each another way: through
the API, through control.json, and by branching from the first run's step-10 checkpoint. Run in one process by
tests/test_steering.py, and as `torchrun --nproc-per-node 2 tests/steering_runs.py ROOT` for two processes."""

import sys

from core import Run, TrainConfig
from core.trainer import Trainer

BASE = dict(dataset="digits", steps=15, batch_size=16, log_every=5, eval_every=0, snapshot_every=1000,
            checkpoint_every=10, probe_size=100, progress=False, seed=0, threads=1, device="cpu")
ASK_AT = 7  # during step 7: the window of steps 6–10, whose record is written at step 10


def train_asking(run_dir: str, ask) -> dict:
    """Train BASE, calling `ask(trainer)` on rank 0 while step ASK_AT is computed."""
    trainer = Trainer(TrainConfig(run_dir=run_dir, **BASE))
    step = trainer.method.train_step
    calls = [0]

    def train_step(batches):
        calls[0] += 1
        if calls[0] == ASK_AT and trainer.dist.is_main:
            ask(trainer)
        return step(batches)

    trainer.method.train_step = train_step
    return trainer.fit()


def main(root: str) -> None:
    train_asking(f"{root}/api", lambda t: t.set_beta_aug(3.0))
    train_asking(f"{root}/file", lambda t: Run(t.run_dir).set_beta_aug(3.0))
    Trainer.branch(f"{root}/api", f"{root}/branch", step=10, beta_aug=3.0, steps=BASE["steps"], threads=1,
                   device="cpu").fit()


if __name__ == "__main__":
    main(sys.argv[1])
