"""The in-memory data set every method trains on."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from ..errors import DataError


@dataclass
class ImageSet:
    """Images as one uint8 tensor (N, C, H, W), with optional integer labels and class names.

    Kept as uint8 so that a whole data set fits on the device (70,000 Fashion-MNIST images are 55 MB); conversion to
    float happens per batch, inside the augmentation.
    """

    images: torch.Tensor
    labels: np.ndarray | None = None
    class_names: list[str] | None = None
    name: str = "images"
    source: str = ""
    info: dict = field(default_factory=dict)
    names: list[str] | None = None  # each image's file name inside its folder or zip (None: index it)

    def __post_init__(self):
        if not isinstance(self.images, torch.Tensor):
            self.images = torch.as_tensor(np.ascontiguousarray(self.images))
        if self.images.dtype != torch.uint8 or self.images.dim() != 4:
            raise DataError(
                f"{self.name}: images must be uint8 with shape (N, C, H, W), got {self.images.dtype} "
                f"{tuple(self.images.shape)}"
            )
        if self.images.shape[1] not in (1, 3):
            raise DataError(f"{self.name}: images must have 1 or 3 channels, got {self.images.shape[1]}")
        if len(self.images) == 0:
            raise DataError(f"{self.name}: the data set holds no images")
        if self.names is not None and len(self.names) != len(self.images):
            raise DataError(f"{self.name}: {len(self.images)} images but {len(self.names)} file names")
        if self.labels is not None:
            self.labels = _check_labels(np.asarray(self.labels), self.name)
            if len(self.labels) != len(self.images):
                raise DataError(
                    f"{self.name}: {len(self.images)} images but {len(self.labels)} labels"
                )
            if self.class_names is None:
                self.class_names = [str(c) for c in range(int(self.labels.max()) + 1)]

    def __len__(self) -> int:
        return len(self.images)

    @property
    def channels(self) -> int:
        return int(self.images.shape[1])

    @property
    def size(self) -> tuple[int, int]:
        return int(self.images.shape[2]), int(self.images.shape[3])

    @property
    def num_classes(self) -> int | None:
        if self.labels is None:
            return None
        return len(self.class_names) if self.class_names else int(self.labels.max()) + 1

    def describe(self) -> dict:
        """A JSON-ready summary for `config.json`."""
        return {
            "name": self.name,
            "source": self.source,
            "num_images": len(self),
            "channels": self.channels,
            "height": self.size[0],
            "width": self.size[1],
            "has_labels": self.labels is not None,
            "num_classes": self.num_classes,
            "class_names": self.class_names,
            **self.info,
        }


def _check_labels(labels: np.ndarray, name: str) -> np.ndarray:
    """Labels as int64 class indices 0, 1, …; DataError for text, NaN, fractions or negative values (which would
    give a wrong K and a wrong ACC)."""
    if labels.dtype.kind not in "iub":
        if labels.dtype.kind != "f":
            raise DataError(f"{name}: labels must be whole numbers 0, 1, 2, …, got {labels.dtype} values "
                            f"such as {labels.reshape(-1)[:3].tolist()}")
        if not np.isfinite(labels).all():
            raise DataError(f"{name}: labels hold NaN or infinite values")
        if (labels != np.round(labels)).any():
            raise DataError(f"{name}: labels must be whole numbers, got fractions such as "
                            f"{labels[labels != np.round(labels)][:3].tolist()}")
    labels = labels.astype(np.int64).reshape(-1)
    if len(labels) and labels.min() < 0:
        raise DataError(f"{name}: labels must be 0 or more (class indices), got {int(labels.min())}")
    return labels
