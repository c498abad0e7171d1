"""DCSM's network (Peng & Li 2023, section 4.3): a VGG-style backbone with ReLU shared by the C-block (class-level
l, softmax over K) and the IR-block (instance-level z, 30 dims), plus the 1×1-convolution MI discriminator.

The paper gives neither the depth nor the widths of its VGG. Ours: stages of `convs_per_stage` 3×3 conv-BN-ReLU
layers with widths width·(1, 2, 4[, 8]), 2×2 max-pooling after every stage but the last (three stages for 28 and
32 pixels, four for 96), then global average pooling and one dense 512 BN ReLU layer that both blocks read. The
local feature map C(x) used by the MI terms is the output of the second-last stage (7×7 for 28 px, 8×8 for 32 px,
12×12 for 96 px): local enough to have many positions, deep enough to carry shape.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import nn

from ..errors import ConfigError
from .blocks import init_weights


class DCSMOutput(NamedTuple):
    logits: torch.Tensor  # (N, K): l = softmax(logits)
    z: torch.Tensor  # (N, dim_z), the IR-block's instance-level representation
    fmap: torch.Tensor  # (N, C, H, W), the local feature map C(x)


def _stage(cin: int, cout: int, convs: int, pool: bool) -> nn.Sequential:
    layers = []
    for i in range(convs):
        layers += [nn.Conv2d(cin if i == 0 else cout, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout),
                   nn.ReLU(inplace=True)]
    if pool:
        layers.append(nn.MaxPool2d(2))
    return nn.Sequential(*layers)


class VGGBackboneNet(nn.Module):
    def __init__(self, in_channels: int, k: int, input_size: int, dim_z: int = 30, width: int = 64,
                 convs_per_stage: int = 1, hidden: int = 512):
        super().__init__()
        if input_size in (28, 32):
            n_stages = 3
        elif input_size == 96:
            n_stages = 4
        else:
            raise ConfigError(f"images are {input_size}×{input_size}, but the DCSM backbone takes 28×28, 32×32 or "
                              "96×96 images. Set an image size (--image-size 28, 32 or 96) to resize them")
        widths = [width * 2 ** i for i in range(n_stages)]
        stages, cin = [], in_channels
        for i, w in enumerate(widths):
            stages.append(_stage(cin, w, convs_per_stage, pool=i < n_stages - 1))
            cin = w
        self.local = nn.Sequential(*stages[:-1])
        self.top = stages[-1]
        self.map_channels = widths[-2]
        self.shared = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(widths[-1], hidden, bias=False),
                                    nn.BatchNorm1d(hidden), nn.ReLU(inplace=True))
        self.c_block = nn.Linear(hidden, k)
        self.ir_block = nn.Linear(hidden, dim_z)
        self.dim_z = dim_z
        init_weights(self)

    def forward(self, x: torch.Tensor) -> DCSMOutput:
        fmap = self.local(x)
        h = self.shared(self.top(fmap))
        return DCSMOutput(self.c_block(h), self.ir_block(h), fmap)


class ConvDiscriminator(nn.Module):
    """DIM's local discriminator: on the concatenation [map_j, other_i] at every position (other_i a vector
    broadcast to all positions, or a second map), 1×1 conv → ReLU → 1×1 conv → ReLU → 1×1 conv to one score.

    The first layer is linear in the concatenation, so it is split into a projection of the map and one of the
    other input, each computed once per image; a pair (i, j) then costs one addition instead of a convolution over
    the concatenated channels. `forward(fmap, other)` scores own pairs and is exactly the concatenated network.
    """

    def __init__(self, map_channels: int, other_channels: int, hidden: int = 256):
        super().__init__()
        self.map_proj = nn.Conv2d(map_channels, hidden, 1)
        self.other_proj = nn.Conv2d(other_channels, hidden, 1, bias=False)
        self.head = nn.Sequential(nn.ReLU(), nn.Conv2d(hidden, hidden, 1), nn.ReLU(), nn.Conv2d(hidden, 1, 1))
        init_weights(self)

    def project_map(self, fmap: torch.Tensor) -> torch.Tensor:
        return self.map_proj(fmap)

    def project_other(self, other: torch.Tensor) -> torch.Tensor:
        """Vector (N, D) → (N, hidden, 1, 1), broadcastable over positions; map (N, C, H, W) → (N, hidden, H, W)."""
        if other.dim() == 2:
            other = other[:, :, None, None]
        return self.other_proj(other)

    def score(self, first_layer: torch.Tensor) -> torch.Tensor:
        """Scores (N, H, W) from summed first-layer projections."""
        return self.head(first_layer).squeeze(1)

    def forward(self, fmap: torch.Tensor, other: torch.Tensor) -> torch.Tensor:
        return self.score(self.project_map(fmap) + self.project_other(other))
