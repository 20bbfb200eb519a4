"""Image quality: SSIM and a side-by-side comparison picture."""

from __future__ import annotations

import math

import numpy as np
from PIL import Image

from inrkit.plugin import stack, titled, lazy_import

torch = lazy_import("torch")  # imported at first use: registering plugins must not import torch


def _gaussian_window(sigma: float, truncate: float = 3.5) -> torch.Tensor:
    radius = int(truncate * sigma + 0.5)
    offsets = torch.arange(-radius, radius + 1, dtype=torch.float64)
    weights = torch.exp(-0.5 * (offsets / sigma) ** 2)
    return weights / weights.sum()


def ssim(reconstruction: torch.Tensor, target: torch.Tensor, data_range: float, sigma: float = 1.5) -> float:
    """Structural similarity (Wang et al. 2004) with an 11x11 Gaussian window.

    Parameters
    ----------
    reconstruction, target:
        ``[H, W, C]`` images on the same scale.
    data_range:
        Peak-to-peak range of that scale.
    sigma:
        Standard deviation of the Gaussian window (1.5 px as in the paper,
        truncated at 3.5 sigma).

    Returns
    -------
    float
        Mean SSIM over the pixels whose window lies inside the image, averaged
        over channels (population covariances, ``K1 = 0.01``, ``K2 = 0.03``).

    References
    ----------
    Z. Wang, A. C. Bovik, H. R. Sheikh, E. P. Simoncelli, "Image quality
    assessment: from error visibility to structural similarity", IEEE TIP 2004.
    """
    window = _gaussian_window(sigma)
    size = window.numel()
    x = reconstruction.double().permute(2, 0, 1).unsqueeze(1)
    y = target.double().permute(2, 0, 1).unsqueeze(1)
    if x.shape[-1] < size or x.shape[-2] < size:
        raise ValueError(f"SSIM needs images of at least {size}x{size} pixels")
    rows, cols = window.view(1, 1, size, 1), window.view(1, 1, 1, size)

    def blur(image: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.conv2d(torch.nn.functional.conv2d(image, rows), cols)

    mu_x, mu_y = blur(x), blur(y)
    var_x = blur(x * x) - mu_x**2
    var_y = blur(y * y) - mu_y**2
    cov = blur(x * y) - mu_x * mu_y
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    index = ((2 * mu_x * mu_y + c1) * (2 * cov + c2)) / ((mu_x**2 + mu_y**2 + c1) * (var_x + var_y + c2))
    return float(index.mean(dim=(1, 2, 3)).mean())


def _heat(error: np.ndarray) -> np.ndarray:
    """Map ``[H, W]`` values in ``[0, 1]`` to an RGB black-red-yellow-white ramp."""
    t = error.clip(0.0, 1.0)
    red = (3 * t).clip(0, 1)
    green = (3 * t - 1).clip(0, 1)
    blue = (3 * t - 2).clip(0, 1)
    return (np.stack([red, green, blue], axis=-1) * 255).astype(np.uint8)


def _colour_bar(height: int, top: float, width: int = 14) -> Image.Image:
    """A vertical scale of :func:`_heat` from 0 (bottom) to ``top`` (white), with both values written beside it."""
    from PIL import ImageDraw

    ramp = _heat(np.repeat(np.linspace(1.0, 0.0, height)[:, None], width, axis=1))
    bar = Image.new("RGB", (width + 44, height), "white")
    bar.paste(Image.fromarray(ramp), (0, 0))
    draw = ImageDraw.Draw(bar)
    draw.rectangle([0, 0, width - 1, height - 1], outline=(0, 0, 0))
    draw.text((width + 3, 0), f"{top:.3g}", fill=(0, 0, 0))
    draw.text((width + 3, height - 11), "0", fill=(0, 0, 0))
    return bar


def comparison_picture(target: np.ndarray, reconstruction: np.ndarray, min_height: int = 256) -> Image.Image:
    """Target | reconstruction | error with a colour bar, each panel labelled.

    Parameters
    ----------
    target, reconstruction:
        ``[H, W, C]`` arrays in ``[0, 1]``.
    min_height:
        Small images are enlarged (nearest neighbour) to at least this height.

    The error panel shows ``|reconstruction - target|`` (mean over channels,
    on the images' 0-1 scale) times a gain that makes its 99th percentile
    white; the colour bar beside it gives the error each colour stands for.
    """

    def as_rgb(array: np.ndarray) -> np.ndarray:
        colour = array[..., :3] if array.shape[-1] >= 3 else np.repeat(array[..., :1], 3, axis=-1)
        return (colour.clip(0, 1) * 255).round().astype(np.uint8)

    error = np.abs(reconstruction - target).mean(axis=-1)
    scale = float(np.percentile(error, 99)) or 1.0
    factor = max(1, math.ceil(min_height / target.shape[0]))

    def enlarged(pixels: np.ndarray) -> Image.Image:
        picture = Image.fromarray(pixels)
        size = (pixels.shape[1] * factor, pixels.shape[0] * factor)
        return picture.resize(size, Image.Resampling.NEAREST) if factor > 1 else picture

    heat = enlarged(_heat(error / scale))
    panels = [
        titled(enlarged(as_rgb(target)), "target"),
        titled(enlarged(as_rgb(reconstruction)), "reconstruction"),
        titled(stack([heat, _colour_bar(heat.height, scale)], gap=4), f"|error| x {1 / scale:.3g}"),
    ]
    return stack(panels, gap=4)
