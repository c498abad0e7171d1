"""Evaluating a method on a data set: while training (`Evaluator`: the whole set's statistics and ACC/NMI/ARI,
the probe subset's snapshot) and afterwards from a run's checkpoint (`python -m core eval RUN`)."""

from __future__ import annotations

import numpy as np
import torch

from .config import TrainConfig
from .data import load_dataset
from .metrics import aligned_confusion, cluster_statistics, evaluate
from .rundir import Run


class Evaluator:
    """Embeds images with a method in evaluation mode and scores the clusters; labels only ever score.

    The whole set's embedding at a step is kept for that step, so a snapshot due at an evaluation step takes its
    probe rows from it instead of embedding them again."""

    def __init__(self, method, data, images_on_device: torch.Tensor, probe_indices: np.ndarray,
                 batch_size: int = 1024):
        self.method, self.data, self.images = method, data, images_on_device
        self.probe_indices, self.batch_size = probe_indices, batch_size
        self._whole: tuple[int, np.ndarray, np.ndarray] | None = None  # (step, z_c, z_s) of every image

    def predict(self, images: torch.Tensor | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(z_c, z_s) as numpy arrays for uint8 images (default: the whole data set)."""
        z_c, z_s = self.method.embed(self.images if images is None else images.to(self.images.device),
                                     batch_size=self.batch_size)
        return z_c.float().cpu().numpy(), z_s.float().cpu().numpy()

    def evaluate(self, step: int | None = None) -> dict:
        """Label-free statistics of the whole data set, plus ACC/NMI/ARI when labels exist."""
        z_c, z_s = self.predict()
        if step is not None:
            self._whole = (step, z_c, z_s)
        stats = cluster_statistics(z_c)
        out = {"cluster_sizes": stats["sizes"], "empty_clusters": stats["empty"],
               "size_entropy": stats["size_entropy"], "mean_max_prob": stats["mean_max_prob"]}
        if self.data.labels is not None:
            out.update(evaluate(self.data.labels, z_c.argmax(1)))
        return out

    def probe(self, step: int | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, dict]:
        """(z_c, z_s, labels, metrics) of the probe subset: what a snapshot holds."""
        if step is not None and self._whole is not None and self._whole[0] == step:
            z_c, z_s = self._whole[1][self.probe_indices], self._whole[2][self.probe_indices]
        else:
            z_c, z_s = self.predict(self.data.images[torch.from_numpy(self.probe_indices)])
        labels = None if self.data.labels is None else self.data.labels[self.probe_indices]
        metrics = cluster_statistics(z_c)
        if labels is not None:
            metrics.update(evaluate(labels, z_c.argmax(1)))
        return z_c, z_s, labels, metrics


def load_trained(run: str | Run, checkpoint: str | int = "latest", data_path: str | None = None,
                 device: str = "auto", data: bool = True):
    """(method, config, data, step) of a run with the checkpoint's weights loaded, ready for `method.embed`.
    `data=False`: the run's data set is not loaded (None is returned for it); the method is built for the image
    shape config.json records."""
    from .build import build_method
    from .checkpoints import load as load_checkpoint
    from .checkpoints import split_live
    from .data import ImageSet
    from .runtime import resolve_device

    run = run if isinstance(run, Run) else Run(run)
    cfg = TrainConfig.from_dict(run.config["settings"])
    if data_path is not None:
        cfg = cfg.replace(data_path=data_path)
    dev = resolve_device(device)
    if data:
        images = load_dataset(cfg.dataset, cfg.data_path, download=False, image_size=cfg.image_size,
                              progress=cfg.progress)
        shape_of = images
    else:
        d = run.config.get("dataset", {})
        images = None
        shape_of = ImageSet(torch.zeros((1, d["channels"], d["height"], d["width"]), dtype=torch.uint8))
    method = build_method(cfg, shape_of, dev)
    state = load_checkpoint(run, checkpoint)
    weights, live = split_live(state, method.live_settings)
    method.load_state_dict(weights)
    for name, value in live.items():
        method.set_live(name, value)
    method.eval()
    return method, cfg, images, int(state["step"])


def evaluate_run(run: str | Run, checkpoint: str | int = "latest", data_path: str | None = None) -> dict:
    run = run if isinstance(run, Run) else Run(run)
    method, cfg, data, step = load_trained(run, checkpoint, data_path)
    device = next(method.parameters()).device
    z_c, _ = method.embed(data.images.to(device))
    z_c = z_c.float().cpu().numpy()
    pred = z_c.argmax(1)
    stats = cluster_statistics(z_c)
    report = {"run": str(run.path), "checkpoint": str(checkpoint), "step": step, "num_images": len(data),
              "k": cfg.num_clusters, "cluster_sizes": stats["sizes"], "mean_max_prob": stats["mean_max_prob"],
              "empty_clusters": stats["empty"], "class_names": data.class_names, "confusion": None}
    if data.labels is not None:
        report.update(evaluate(data.labels, pred))
        matrix, order = aligned_confusion(data.labels, pred, data.num_classes, cfg.num_clusters)
        report["confusion"], report["cluster_order"] = matrix, order
    return report


def format_confusion(matrix: np.ndarray, class_names: list[str] | None, cluster_order: list[int]) -> str:
    names = class_names or [str(i) for i in range(matrix.shape[0])]
    width = max(6, max(len(str(v)) for v in matrix.ravel()) + 1)
    label_w = max(len(n) for n in names) + 1
    head = " " * label_w + "".join(f"{'c' + str(k):>{width}}" for k in cluster_order)
    rows = [head] + [f"{n:<{label_w}}" + "".join(f"{v:>{width}}" for v in row) for n, row in zip(names, matrix)]
    return "\n".join(rows)
