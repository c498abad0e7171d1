"""From a resolved config and a data set to a method ready to train: the input pipeline (augmentation T and
colour handling, shared by every method) and the method's own networks."""

from __future__ import annotations

import torch

from .augment import AugmentSettings, InputPipeline
from .errors import ConfigError


def build_pipeline(cfg, data) -> InputPipeline:
    aug = AugmentSettings(
        crop_area=(cfg.crop_area_min, cfg.crop_area_max), crop_ratio=(cfg.crop_ratio_min, cfg.crop_ratio_max),
        flip=bool(cfg.flip), brightness=cfg.brightness, contrast=cfg.contrast, saturation=cfg.saturation,
        hue=cfg.hue, channel_shuffle=cfg.channel_shuffle, jitter_before_grey=cfg.jitter_before_grey,
        rotation=cfg.rotation)
    return InputPipeline(data.channels, cfg.colour_mode, aug)


def build_method(cfg, data, device: torch.device):
    """The method of a resolved `TrainConfig` for an `ImageSet`, on `device`."""
    height, width = data.size
    if height != width:
        raise ConfigError(f"images are {height}×{width}; the encoders take square images: set --image-size")
    method = cfg.method_class.from_config(cfg, data, build_pipeline(cfg, data), device)
    method.accelerate(cfg.compile, cfg.precision)
    method.configure_levers(cfg)
    return method
