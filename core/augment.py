"""The paper's augmentation T (DCCS supplement B) on whole uint8 batches on the device.

Every image gets its own random parameters; a batch is transformed by a handful of tensor kernels:
crop, resize and flip are one `grid_sample`; channel shuffle is one gather; the colour jitter is elementwise.
No PIL and no per-image Python loop.

Order, following the authors' code: random resized crop → horizontal flip → channel shuffle (colour data) →
grey conversion (grey or Sobel mode) → colour jitter (brightness, contrast, saturation, hue, in that fixed order;
torchvision shuffles the order per call, we keep one order so the whole batch is one pass). With
`jitter_before_grey` the jitter runs on the colour image before grey conversion, so saturation and hue act too.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

GREY_WEIGHTS = (0.2989, 0.587, 0.114)  # torchvision's rgb_to_grayscale
_PERMUTATIONS = torch.tensor([[0, 1, 2], [0, 2, 1], [1, 0, 2], [1, 2, 0], [2, 0, 1], [2, 1, 0]])
_CROP_TRIES = 10


@dataclass(frozen=True)
class AugmentSettings:
    crop_area: tuple[float, float] = (0.4, 1.0)
    crop_ratio: tuple[float, float] = (3 / 4, 4 / 3)
    flip: bool = True
    brightness: float = 0.4  # factor drawn from [1 - b, 1 + b]
    contrast: float = 0.4
    saturation: float = 0.4
    hue: float = 0.125  # shift drawn from [-h, h] (fraction of the colour wheel)
    channel_shuffle: bool = True
    jitter_before_grey: bool = False
    rotation: float = 0.0  # largest rotation, degrees, drawn from [-r, r] (not in the paper; 0: none, no draw)


def to_grey(x: torch.Tensor) -> torch.Tensor:
    """(N, 3, H, W) → (N, 1, H, W) with the ITU-R 601 weights torchvision uses (no tensor built per call, so no
    host-to-device copy in the hot loop)."""
    r, g, b = x.unbind(1)
    return (GREY_WEIGHTS[0] * r + GREY_WEIGHTS[1] * g + GREY_WEIGHTS[2] * b).unsqueeze(1)


def _uniform(n: int, lo: float, hi: float, generator, device) -> torch.Tensor:
    return lo + (hi - lo) * torch.rand(n, generator=generator, device=device)


def sample_params(n: int, settings: AugmentSettings, height: int, width: int, channels: int, generator,
                  device) -> dict[str, torch.Tensor]:
    """Draw per-image parameters for a batch of n images.

    Crop: area fraction and log-aspect drawn as torchvision's RandomResizedCrop does; of `_CROP_TRIES` draws the
    first that fits inside the image is kept, and an image with none that fits gets the whole image (torchvision's
    fallback is a centre crop of clamped ratio; the difference only touches rare draws). Returned sizes `w`, `h`
    and corner `x0`, `y0` are fractions of the image side.
    """
    s = settings
    area = _uniform(n * _CROP_TRIES, s.crop_area[0], s.crop_area[1], generator, device).view(n, _CROP_TRIES)
    log_r = _uniform(n * _CROP_TRIES, math.log(s.crop_ratio[0]), math.log(s.crop_ratio[1]), generator, device)
    ratio = log_r.exp().view(n, _CROP_TRIES)
    aspect = width / height
    w = torch.sqrt(area * ratio / aspect)  # fraction of the width
    h = torch.sqrt(area / ratio * aspect)  # fraction of the height
    ok = (w <= 1) & (h <= 1)
    first = torch.where(ok.any(1), ok.float().argmax(1), torch.zeros_like(ok[:, 0], dtype=torch.long))
    pick = lambda t: t.gather(1, first[:, None]).squeeze(1)  # noqa: E731
    any_ok = ok.any(1)
    w = torch.where(any_ok, pick(w), torch.ones(n, device=device))
    h = torch.where(any_ok, pick(h), torch.ones(n, device=device))
    x0 = torch.rand(n, generator=generator, device=device) * (1 - w)
    y0 = torch.rand(n, generator=generator, device=device) * (1 - h)
    flip = (torch.rand(n, generator=generator, device=device) < 0.5) & s.flip
    params = {
        "w": w, "h": h, "x0": x0, "y0": y0, "flip": flip,
        "brightness": _uniform(n, 1 - s.brightness, 1 + s.brightness, generator, device),
        "contrast": _uniform(n, 1 - s.contrast, 1 + s.contrast, generator, device),
        "saturation": _uniform(n, 1 - s.saturation, 1 + s.saturation, generator, device),
        "hue": _uniform(n, -s.hue, s.hue, generator, device),
    }
    if s.rotation > 0:  # drawn only when asked for, so runs without it keep their random stream
        params["angle"] = _uniform(n, -math.radians(s.rotation), math.radians(s.rotation), generator, device)
    if channels == 3:
        params["perm"] = torch.randint(0, 6, (n,), generator=generator, device=device)
        if not s.channel_shuffle:
            params["perm"].zero_()
    return params


def crop_flip(x: torch.Tensor, p: dict[str, torch.Tensor]) -> torch.Tensor:
    """Random resized crop + horizontal flip (+ rotation, where asked for) as one bilinear resampling of the batch.

    An output point u (normalised coordinates) samples the input at diag(±w, h) · R(angle) · u + centre: the output
    is rotated about its centre, then laid over the crop."""
    n = x.shape[0]
    sx = p["w"] * torch.where(p["flip"], -1.0, 1.0)
    cx = 2 * (p["x0"] + p["w"] / 2) - 1
    cy = 2 * (p["y0"] + p["h"] / 2) - 1
    angle = p.get("angle")  # absent: no rotation (cos 1 and sin 0 leave the crop's matrix exactly as it was)
    cos, sin = (1.0, 0.0) if angle is None else (angle.cos().to(x.dtype), angle.sin().to(x.dtype))
    theta = torch.zeros(n, 2, 3, device=x.device, dtype=x.dtype)
    theta[:, 0, 0], theta[:, 0, 1], theta[:, 0, 2] = sx * cos, -sx * sin, cx
    theta[:, 1, 0], theta[:, 1, 1], theta[:, 1, 2] = p["h"] * sin, p["h"] * cos, cy
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)


_PERMUTATIONS_ON: dict[torch.device, torch.Tensor] = {}


def _permutations(device) -> torch.Tensor:
    """The six RGB orders, copied to each device once (not once per batch)."""
    device = torch.device(device)
    if device not in _PERMUTATIONS_ON:
        _PERMUTATIONS_ON[device] = _PERMUTATIONS.to(device)
    return _PERMUTATIONS_ON[device]


def shuffle_channels(x: torch.Tensor, perm_index: torch.Tensor) -> torch.Tensor:
    perms = _permutations(x.device)[perm_index]  # (N, 3)
    idx = perms[:, :, None, None].expand(-1, -1, x.shape[2], x.shape[3])
    return x.gather(1, idx)


def _blend(a: torch.Tensor, b: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    return (factor.view(-1, 1, 1, 1) * a + (1 - factor.view(-1, 1, 1, 1)) * b).clamp_(0, 1)


def rgb_to_hsv(x: torch.Tensor) -> torch.Tensor:
    r, g, b = x.unbind(1)
    maxc, _ = x.max(1)
    minc, _ = x.min(1)
    delta = maxc - minc
    s = delta / torch.where(maxc > 0, maxc, torch.ones_like(maxc))
    safe = torch.where(delta > 0, delta, torch.ones_like(delta))
    rc, gc, bc = (maxc - r) / safe, (maxc - g) / safe, (maxc - b) / safe
    h = torch.where(maxc == r, bc - gc, torch.where(maxc == g, 2.0 + rc - bc, 4.0 + gc - rc))
    h = torch.where(delta > 0, (h / 6.0) % 1.0, torch.zeros_like(h))
    return torch.stack([h, s, maxc], 1)


def hsv_to_rgb(x: torch.Tensor) -> torch.Tensor:
    h, s, v = x.unbind(1)
    i = torch.floor(h * 6.0)
    f = h * 6.0 - i
    i = i.to(torch.long) % 6
    p = v * (1 - s)
    q = v * (1 - s * f)
    t = v * (1 - s * (1 - f))
    choices = torch.stack([
        torch.stack([v, q, p, p, t, v], 1),
        torch.stack([t, v, v, q, p, p], 1),
        torch.stack([p, p, t, v, v, q], 1),
    ], 1)  # (N, 3, 6, H, W)
    idx = i[:, None, None].expand(-1, 3, 1, -1, -1)
    return choices.gather(2, idx).squeeze(2)


def colour_jitter(x: torch.Tensor, p: dict[str, torch.Tensor]) -> torch.Tensor:
    """Brightness, contrast, saturation, hue with per-image factors (torchvision's formulas, images in [0, 1])."""
    x = (x * p["brightness"].view(-1, 1, 1, 1)).clamp_(0, 1)
    grey = to_grey(x) if x.shape[1] == 3 else x
    mean = grey.mean(dim=(1, 2, 3), keepdim=True)
    x = _blend(x, mean, p["contrast"])
    if x.shape[1] == 3:
        x = _blend(x, to_grey(x), p["saturation"])
        hsv = rgb_to_hsv(x)
        hsv = torch.stack([(hsv[:, 0] + p["hue"].view(-1, 1, 1)) % 1.0, hsv[:, 1], hsv[:, 2]], 1)
        x = hsv_to_rgb(hsv)
    return x


class SobelFilter(torch.nn.Module):
    """Fixed Sobel gradients (x and y) of a grey image, scaled by 1/8 as in the authors' code."""

    def __init__(self):
        super().__init__()
        k = torch.tensor([[[[1, 0, -1], [2, 0, -2], [1, 0, -1]]], [[[1, 2, 1], [0, 0, 0], [-1, -2, -1]]]],
                         dtype=torch.float32) / 8
        self.register_buffer("weight", k, persistent=False)

    def forward(self, x):
        return F.conv2d(x, self.weight, padding=1)


class InputPipeline(torch.nn.Module):
    """uint8 batches → network inputs in [-1, 1]: the clean view x and the augmented view T(x).

    `colour_mode`: 'grey' (colour data converted to grey; the paper's default), 'rgb', or 'sobel' (grey, then
    Sobel gradients: 2 channels). Grey data stays grey whatever the mode, except Sobel.
    """

    def __init__(self, in_channels: int, colour_mode: str, settings: AugmentSettings):
        super().__init__()
        if colour_mode not in ("grey", "rgb", "sobel"):
            raise ValueError(f"colour mode must be grey, rgb or sobel, got {colour_mode!r}")
        self.in_channels = in_channels
        self.colour_mode = colour_mode
        self.settings = settings
        self.sobel = SobelFilter() if colour_mode == "sobel" else None

    @property
    def out_channels(self) -> int:
        if self.colour_mode == "sobel":
            return 2
        return 3 if (self.colour_mode == "rgb" and self.in_channels == 3) else 1

    def _finish(self, x: torch.Tensor, grey_done: bool) -> torch.Tensor:
        if not grey_done and x.shape[1] == 3 and self.colour_mode != "rgb":
            x = to_grey(x)
        x = x * 2 - 1
        return self.sobel(x) if self.sobel is not None else x

    def clean(self, u8: torch.Tensor) -> torch.Tensor:
        return self._finish(u8.float().div_(255), grey_done=False)

    def apply(self, u8: torch.Tensor, p: dict[str, torch.Tensor]) -> torch.Tensor:
        x = crop_flip(u8.float().div_(255), p)
        grey_done = False
        if x.shape[1] == 3:
            x = shuffle_channels(x, p["perm"])
            if self.colour_mode != "rgb" and not self.settings.jitter_before_grey:
                x = to_grey(x)
                grey_done = True
        x = colour_jitter(x, p)
        return self._finish(x, grey_done)

    def augment(self, u8: torch.Tensor, generator) -> torch.Tensor:
        p = sample_params(u8.shape[0], self.settings, u8.shape[2], u8.shape[3], u8.shape[1], generator, u8.device)
        return self.apply(u8, p)
