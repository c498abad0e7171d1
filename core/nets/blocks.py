"""Building blocks: the ResBlock of DCCS Fig. 7 (pre-activation, WGAN-GP style) and a leaky-ReLU MLP."""

from __future__ import annotations

import torch
from torch import nn


def init_weights(module: nn.Module) -> None:
    """Xavier-normal weights and zero biases, unit BN scales: the authors' initialisation."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            nn.init.xavier_normal_(m.weight)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


class ResBlock(nn.Module):
    """BN-ReLU-conv3×3-BN-ReLU-conv3×3 (+2×2 average pool when downsampling), with a 1×1-conv shortcut when the
    shape changes."""

    def __init__(self, in_channels: int, out_channels: int, down: bool = False):
        super().__init__()
        layers = [
            nn.BatchNorm2d(in_channels), nn.ReLU(),
            nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False),
            nn.BatchNorm2d(out_channels), nn.ReLU(),
            nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False),
        ]
        if down:
            layers.append(nn.AvgPool2d(2))
        self.block = nn.Sequential(*layers)
        if down or in_channels != out_channels:
            shortcut = [nn.Conv2d(in_channels, out_channels, 1)]
            if down:
                shortcut.append(nn.AvgPool2d(2))
            self.shortcut = nn.Sequential(*shortcut)
        else:
            self.shortcut = nn.Identity()

    def forward(self, x):
        return self.block(x) + self.shortcut(x)


class FirstResBlockDown(nn.Module):
    """The first down-sampling block reads the image directly, so it has no pre-activation (WGAN-GP's
    'optimized' block, as in the authors' code)."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.block = nn.Sequential(
            nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False),
            nn.BatchNorm2d(out_channels), nn.ReLU(),
            nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False),
            nn.AvgPool2d(2),
        )
        self.shortcut = nn.Sequential(nn.AvgPool2d(2), nn.Conv2d(in_channels, out_channels, 1))

    def forward(self, x):
        return self.block(x) + self.shortcut(x)


class LeakyMLP(nn.Module):
    """Dense 1024 lReLU → dense 512 lReLU → dense 1 (DCCS Tables 9 and 10)."""

    def __init__(self, in_features: int, hidden: tuple[int, ...] = (1024, 512), slope: float = 0.2):
        super().__init__()
        layers, width = [], in_features
        for h in hidden:
            layers += [nn.Linear(width, h), nn.LeakyReLU(slope)]
            width = h
        layers.append(nn.Linear(width, 1))
        self.net = nn.Sequential(*layers)
        init_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x).squeeze(-1)
