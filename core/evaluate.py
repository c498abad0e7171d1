"""Evaluate a run's checkpoint on its whole data set (`python -m core eval RUN`)."""

from __future__ import annotations

import numpy as np
import torch

from .config import TrainConfig
from .data import load_dataset
from .metrics import aligned_confusion, cluster_statistics, evaluate
from .rundir import Run


def load_trained(run: str | Run, checkpoint: str | int = "latest", data_path: str | None = None,
                 device: str = "auto"):
    """(method, config, data) of a run with the checkpoint's weights loaded, ready for `method.embed`."""
    from .trainer import build_method, resolve_device

    run = run if isinstance(run, Run) else Run(run)
    cfg = TrainConfig.from_dict(run.config["settings"])
    if data_path is not None:
        cfg = cfg.replace(data_path=data_path)
    dev = resolve_device(device)
    data = load_dataset(cfg.dataset, cfg.data_path, download=False, image_size=cfg.image_size,
                        progress=cfg.progress)
    method = build_method(cfg, data, dev)
    state = torch.load(run.checkpoint_path(checkpoint), map_location="cpu", weights_only=True)
    method.load_state_dict(state["method"])
    method.eval()
    return method, cfg, data, int(state["step"])


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
