"""Shapes of the encoders (Tables 6–8), the critic (Table 9) and the discriminator (Table 10)."""

import pytest
import torch

from core.errors import ConfigError
from core.nets import LeakyMLP, build_encoder


@pytest.mark.parametrize("size,channels,feature_dim", [(28, 1, 5 * 5 * 128), (32, 1, 4 * 4 * 512),
                                                       (32, 3, 4 * 4 * 512), (96, 2, 6 * 6 * 512)])
def test_encoder_shapes(size, channels, feature_dim):
    enc = build_encoder(size, channels, k=10, dim_zs=50)
    out = enc(torch.randn(3, channels, size, size))
    assert out.logits.shape == (3, 10)
    assert out.z_s.shape == (3, 50)
    assert out.features.shape == (3, feature_dim) == (3, enc.feature_dim)


def test_encoder_layers_follow_the_tables():
    enc28 = build_encoder(28, 1, 10)
    convs = [m for m in enc28.modules() if isinstance(m, torch.nn.Conv2d)]
    assert [(c.out_channels, c.kernel_size, c.stride) for c in convs] == [(64, (4, 4), (2, 2)), (128, (4, 4), (2, 2))]
    assert enc28.fc[0].out_features == 1024
    enc32 = build_encoder(32, 1, 10)
    widths = [b.block[-2].out_channels if hasattr(b.block[-2], "out_channels") else b.block[-1].out_channels
              for b in list(enc32.down)]
    assert widths == [128, 256, 512] and enc32.last.block[-1].out_channels == 512
    enc96 = build_encoder(96, 1, 10)
    assert len(enc96.down) == 4  # ResBlock down 64, 128, 256, 512


def test_other_sizes_are_refused_with_the_fix():
    with pytest.raises(ConfigError, match="image-size"):
        build_encoder(64, 1, 10)


def test_critic_and_discriminator_shapes():
    critic = LeakyMLP(60)
    assert [m.out_features for m in critic.modules() if isinstance(m, torch.nn.Linear)] == [1024, 512, 1]
    assert critic(torch.randn(7, 60)).shape == (7,)
    disc = LeakyMLP(3200 + 60)
    assert disc(torch.randn(7, 3260)).shape == (7,)
    slopes = {m.negative_slope for m in critic.modules() if isinstance(m, torch.nn.LeakyReLU)}
    assert slopes == {0.2}
