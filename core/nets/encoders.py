"""DCCS encoders (supplement A, Tables 6–8): image → (z_c logits, z_s, features read by the discriminator)."""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import nn

from ..errors import ConfigError
from .blocks import FirstResBlockDown, ResBlock, init_weights

SUPPORTED_SIZES = (28, 32, 96)


class EncoderOutput(NamedTuple):
    logits: torch.Tensor  # (N, K): z_c = softmax(logits)
    z_s: torch.Tensor  # (N, dim_zs), linear
    features: torch.Tensor  # (N, F): flattened intermediate map for the MI discriminator


class _Heads(nn.Module):
    """One dense layer giving K logits for z_c and dim_zs linear outputs for z_s."""

    def __init__(self, width: int, k: int, dim_zs: int):
        super().__init__()
        self.k = k
        self.fc = nn.Linear(width, k + dim_zs)

    def forward(self, h):
        out = self.fc(h)
        return out[:, : self.k], out[:, self.k :]


class Encoder28(nn.Module):
    """Table 6: conv4×4/2 64 BN lReLU → conv4×4/2 128 BN lReLU → dense 1024 BN lReLU → heads.

    Convolutions are unpadded as in the authors' code (28 → 13 → 5), so the discriminator reads 5·5·128 = 3200
    features from the last convolution."""

    input_size = 28

    def __init__(self, in_channels: int, k: int, dim_zs: int = 50):
        super().__init__()
        self.conv = nn.Sequential(
            nn.Conv2d(in_channels, 64, 4, stride=2, bias=False), nn.BatchNorm2d(64), nn.LeakyReLU(0.2),
            nn.Conv2d(64, 128, 4, stride=2, bias=False), nn.BatchNorm2d(128), nn.LeakyReLU(0.2),
        )
        self.feature_dim = 5 * 5 * 128
        self.fc = nn.Sequential(nn.Linear(self.feature_dim, 1024, bias=False), nn.BatchNorm1d(1024), nn.LeakyReLU(0.2))
        self.heads = _Heads(1024, k, dim_zs)
        init_weights(self)

    def forward(self, x) -> EncoderOutput:
        features = self.conv(x).flatten(1)
        logits, z_s = self.heads(self.fc(features))
        return EncoderOutput(logits, z_s, features)


class ResNetEncoder(nn.Module):
    """Tables 7 and 8: ResBlock-down stages, one plain ResBlock, BN-ReLU-global-average-pool, heads.

    The discriminator reads the output of the second-last ResBlock (the last down-sampling one), flattened."""

    def __init__(self, in_channels: int, k: int, dim_zs: int, widths: tuple[int, ...], input_size: int):
        super().__init__()
        self.input_size = input_size
        stages = [FirstResBlockDown(in_channels, widths[0])]
        stages += [ResBlock(a, b, down=True) for a, b in zip(widths[:-1], widths[1:])]
        self.down = nn.Sequential(*stages)
        self.last = ResBlock(widths[-1], widths[-1])
        self.pool = nn.Sequential(nn.BatchNorm2d(widths[-1]), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten())
        side = input_size // 2 ** len(widths)
        self.feature_dim = widths[-1] * side * side
        self.heads = _Heads(widths[-1], k, dim_zs)
        init_weights(self)

    def forward(self, x) -> EncoderOutput:
        h = self.down(x)
        logits, z_s = self.heads(self.pool(self.last(h)))
        return EncoderOutput(logits, z_s, h.flatten(1))


def build_encoder(input_size: int, in_channels: int, k: int, dim_zs: int = 50) -> nn.Module:
    """The paper's encoder for 28×28, 32×32 or 96×96 inputs; any other size is refused with the fix."""
    if input_size == 28:
        return Encoder28(in_channels, k, dim_zs)
    if input_size == 32:
        return ResNetEncoder(in_channels, k, dim_zs, (128, 256, 512), 32)
    if input_size == 96:
        return ResNetEncoder(in_channels, k, dim_zs, (64, 128, 256, 512), 96)
    raise ConfigError(
        f"images are {input_size}×{input_size}, but the encoders take 28×28, 32×32 or 96×96 images. "
        "Set an image size (--image-size 28, 32 or 96) to resize them"
    )
