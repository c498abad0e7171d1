"""The batch augmentation T: parameter ranges, per-image randomness, and exactness of each operation."""

import math

import pytest
import torch

from core.augment import (AugmentSettings, InputPipeline, colour_jitter, crop_flip, hsv_to_rgb, rgb_to_hsv,
                          sample_params, shuffle_channels, to_grey)


def _batch(n=64, c=1, size=28, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, c, size, size), generator=g, dtype=torch.uint8)


def test_parameters_stay_in_the_papers_ranges():
    g = torch.Generator().manual_seed(0)
    s = AugmentSettings()
    p = sample_params(4096, s, 32, 32, 3, g, "cpu")
    area = p["w"] * p["h"]
    ratio = p["w"] / p["h"]
    full = (p["w"] == 1) & (p["h"] == 1)  # the rare fallback when no draw fits
    assert full.float().mean() < 0.01
    assert torch.all(area[~full] >= 0.4 - 1e-6) and torch.all(area <= 1 + 1e-6)
    assert torch.all(ratio[~full] >= 3 / 4 - 1e-6) and torch.all(ratio[~full] <= 4 / 3 + 1e-6)
    assert torch.all(p["x0"] >= 0) and torch.all(p["x0"] + p["w"] <= 1 + 1e-6)
    assert torch.all(p["y0"] >= 0) and torch.all(p["y0"] + p["h"] <= 1 + 1e-6)
    for key in ("brightness", "contrast", "saturation"):
        assert p[key].min() >= 0.6 and p[key].max() <= 1.4
        assert p[key].min() < 0.62 and p[key].max() > 1.38  # the whole range is used
    assert p["hue"].abs().max() <= 0.125 and p["hue"].abs().max() > 0.12
    assert 0.45 < p["flip"].float().mean() < 0.55
    assert set(p["perm"].unique().tolist()) == set(range(6))
    no_flip = sample_params(1000, AugmentSettings(flip=False), 28, 28, 1, g, "cpu")
    assert not no_flip["flip"].any() and "perm" not in no_flip


def test_images_in_a_batch_get_different_transforms():
    x = _batch(1, 1).expand(16, -1, -1, -1).contiguous()  # the same image 16 times
    pipe = InputPipeline(1, "grey", AugmentSettings())
    out = pipe.augment(x, torch.Generator().manual_seed(0))
    assert out.shape == (16, 1, 28, 28)
    flat = out.flatten(1)
    distinct = {tuple(row.round(decimals=4).tolist()) for row in flat}
    assert len(distinct) == 16
    assert out.min() >= -1 and out.max() <= 1


def test_augmentation_is_reproducible_from_the_generator():
    x = _batch(8, 3, 32)
    pipe = InputPipeline(3, "grey", AugmentSettings())
    a = pipe.augment(x, torch.Generator().manual_seed(5))
    b = pipe.augment(x, torch.Generator().manual_seed(5))
    assert torch.equal(a, b)


def _identity(n):
    one, zero = torch.ones(n), torch.zeros(n)
    return {"w": one, "h": one, "x0": zero, "y0": zero, "flip": torch.zeros(n, dtype=torch.bool),
            "brightness": one, "contrast": one, "saturation": one, "hue": zero, "perm": torch.zeros(n, dtype=torch.long)}


def test_identity_parameters_leave_images_unchanged():
    x = _batch(4, 3, 32).float() / 255
    p = _identity(4)
    assert torch.allclose(crop_flip(x, p), x, atol=1e-5)
    assert torch.allclose(colour_jitter(x, p), x, atol=1e-5)
    pipe = InputPipeline(3, "rgb", AugmentSettings())
    u8 = _batch(4, 3, 32)
    assert torch.allclose(pipe.apply(u8, p), pipe.clean(u8), atol=1e-5)


def test_flip_and_crop_are_exact():
    x = _batch(2, 1, 28).float() / 255
    p = _identity(2)
    p["flip"] = torch.tensor([True, False])
    out = crop_flip(x, p)
    assert torch.allclose(out[0], x[0].flip(-1), atol=1e-4)
    assert torch.allclose(out[1], x[1], atol=1e-4)
    # the left half of a ramp image, stretched back to full width: output column j samples the input at pixel
    # coordinate 0.5 j - 0.25 (pixel centres, as a continuous crop does); the first sample clamps to the border
    x = torch.arange(28.0).view(1, 1, 1, 28).expand(1, 1, 28, 28).contiguous()
    p = _identity(1)
    p["w"] = torch.tensor([0.5])
    row = crop_flip(x, p)[0, 0, 0]
    expected = (0.5 * torch.arange(28.0) - 0.25).clamp(min=0)
    assert torch.allclose(row, expected, atol=1e-4)


def test_rotation_is_exact_and_drawn_only_when_asked_for():
    # a quarter turn maps pixel centres onto pixel centres: output (i, j) samples the input at (j, 27 - i), torch.rot90 with k = 1
    x = _batch(2, 1, 28).float() / 255
    p = _identity(2)
    p["angle"] = torch.tensor([math.pi / 2, 0.0])
    out = crop_flip(x, p)
    assert torch.allclose(out[0], x[0].rot90(1, dims=(1, 2)), atol=1e-4)
    assert torch.allclose(out[1], x[1], atol=1e-5)
    # rotation and flip compose as flip after rotation: a flipped quarter turn is the transpose
    p["flip"] = torch.tensor([True, False])
    assert torch.allclose(crop_flip(x, p)[0], x[0].transpose(1, 2), atol=1e-4)
    # angles stay within ±r; with r = 0 nothing is drawn, so every other parameter is the same as without it
    drawn = sample_params(500, AugmentSettings(rotation=15), 28, 28, 1, torch.Generator().manual_seed(0), "cpu")
    assert drawn["angle"].abs().max() <= math.radians(15) + 1e-6
    assert drawn["angle"].abs().max() > math.radians(14)
    off = sample_params(8, AugmentSettings(rotation=0), 28, 28, 1, torch.Generator().manual_seed(1), "cpu")
    plain = sample_params(8, AugmentSettings(), 28, 28, 1, torch.Generator().manual_seed(1), "cpu")
    assert "angle" not in off and all(torch.equal(off[k], plain[k]) for k in plain)


def test_jitter_formulas():
    x = torch.full((1, 1, 4, 4), 0.5)
    x[0, 0, 0, 0] = 0.1
    p = _identity(1)
    p["brightness"] = torch.tensor([1.2])
    assert torch.allclose(colour_jitter(x, p), (x * 1.2).clamp(0, 1))
    p = _identity(1)
    p["contrast"] = torch.tensor([0.5])
    mean = x.mean()
    assert torch.allclose(colour_jitter(x, p), 0.5 * x + 0.5 * mean)
    # saturation 0 turns a colour image grey
    rgb = torch.rand(2, 3, 5, 5)
    p = _identity(2)
    p["saturation"] = torch.zeros(2)
    out = colour_jitter(rgb, p)
    assert torch.allclose(out[:, 0], out[:, 1], atol=1e-5) and torch.allclose(out[:, 1], out[:, 2], atol=1e-5)


def test_hue_shift_rotates_the_colour_wheel():
    rgb = torch.rand(3, 3, 6, 6)
    assert torch.allclose(hsv_to_rgb(rgb_to_hsv(rgb)), rgb, atol=1e-5)
    red = torch.tensor([1.0, 0.0, 0.0]).view(1, 3, 1, 1)
    p = _identity(1)
    p["hue"] = torch.tensor([1 / 3])  # a third of the wheel: red -> green
    assert torch.allclose(colour_jitter(red, p), torch.tensor([0.0, 1.0, 0.0]).view(1, 3, 1, 1), atol=1e-5)


def test_channel_shuffle_and_grey():
    x = torch.stack([torch.full((2, 2), v) for v in (0.1, 0.2, 0.3)]).unsqueeze(0).expand(6, -1, -1, -1)
    out = shuffle_channels(x, torch.arange(6))
    firsts = sorted(round(v, 3) for v in out[:, :, 0, 0].flatten().tolist())
    assert firsts == sorted([0.1, 0.2, 0.3] * 6)
    assert len({tuple(round(v, 3) for v in r) for r in out[:, :, 0, 0].tolist()}) == 6  # all 6 orders
    assert to_grey(x[:1])[0, 0, 0, 0].item() == pytest.approx(0.2989 * 0.1 + 0.587 * 0.2 + 0.114 * 0.3, abs=1e-6)


def test_pipeline_channels_per_colour_mode():
    rgb = _batch(4, 3, 32)
    g = torch.Generator().manual_seed(0)
    for mode, channels in (("grey", 1), ("rgb", 3), ("sobel", 2)):
        pipe = InputPipeline(3, mode, AugmentSettings())
        assert pipe.out_channels == channels
        assert pipe.clean(rgb).shape == (4, channels, 32, 32)
        assert pipe.augment(rgb, g).shape == (4, channels, 32, 32)
    grey = _batch(4, 1, 28)
    assert InputPipeline(1, "rgb", AugmentSettings()).clean(grey).shape == (4, 1, 28, 28)
    with pytest.raises(ValueError):
        InputPipeline(3, "hsv", AugmentSettings())


def test_channel_shuffle_changes_grey_brightness():
    # supplement B: shuffling before graying changes the grey level because the channel weights differ
    x = torch.zeros(6, 3, 4, 4, dtype=torch.uint8)
    x[:, 0] = 255  # pure red
    pipe = InputPipeline(3, "grey", AugmentSettings())
    p = _identity(6)
    p["perm"] = torch.arange(6)
    levels = {round(v, 3) for v in pipe.apply(x, p)[:, 0, 0, 0].tolist()}
    assert len(levels) == 3  # red, green or blue grey levels
