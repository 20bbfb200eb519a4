"""Small, dependency-free charts (Pillow) for run-directory pictures.

Only what inrkit draws: heat maps of log-magnitude spectra with optional
dots, and line charts with a log or linear y axis. Signal plugins draw their
own pictures; these are for the core's spectrum and training views.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from PIL import Image, ImageDraw

_STOPS = np.array([[0, 0, 4], [40, 11, 84], [101, 21, 110], [159, 42, 99], [212, 72, 66], [245, 125, 21], [250, 193, 39], [252, 255, 164]], dtype=np.float64)


def colour_ramp(values: np.ndarray) -> np.ndarray:
    """Map values in ``[0, 1]`` to RGB uint8 along a perceptually ordered dark-to-light ramp."""
    t = np.clip(values, 0.0, 1.0) * (len(_STOPS) - 1)
    low = np.floor(t).astype(int).clip(0, len(_STOPS) - 2)
    frac = (t - low)[..., None]
    return (_STOPS[low] * (1 - frac) + _STOPS[low + 1] * frac).astype(np.uint8)


def heatmap(magnitude: np.ndarray, title: str, size: int = 256, dynamic_range_db: float = 80.0,
            dots: np.ndarray | None = None, reference: float | None = None) -> Image.Image:
    """A centred 2D magnitude array as a log heat map with a title.

    Parameters
    ----------
    magnitude:
        ``[2r+1, 2r+1]`` non-negative values, index ``q + r`` (row = axis 0).
    dynamic_range_db:
        Values more than this many dB under ``reference`` are black.
    dots:
        ``[K, 2]`` integer frequencies to mark (e.g. the input frequencies).
    reference:
        The 0 dB level (default: this array's maximum), so panels can share a scale.
    """
    radius = magnitude.shape[0] // 2
    top = reference if reference is not None else float(magnitude.max(initial=0.0))
    level = 20 * np.log10(np.maximum(magnitude, 1e-300) / max(top, 1e-300))
    image = Image.fromarray(colour_ramp(1 + level / dynamic_range_db)).resize((size, size), Image.Resampling.NEAREST)
    draw = ImageDraw.Draw(image)
    if dots is not None:
        scale = size / (2 * radius + 1)
        for q in np.asarray(dots):
            for sign in (1, -1):
                row, col = (sign * q[0] + radius + 0.5) * scale, (sign * q[1] + radius + 0.5) * scale
                draw.ellipse([col - 1.5, row - 1.5, col + 1.5, row + 1.5], outline=(0, 230, 230))
    return titled(image, title)


def line_chart(series: Sequence[tuple[np.ndarray, np.ndarray, tuple[int, int, int], str]], title: str,
               x_label: str, log_y: bool = True, size: tuple[int, int] = (760, 300),
               marks: np.ndarray | None = None, floor_db: float = -120.0) -> Image.Image:
    """Curves ``(x, y, colour, label)`` on shared axes; ``log_y`` plots ``20 log10(y)`` (dB).

    ``marks``: x positions drawn as short ticks under the axis (e.g. input frequencies).
    """
    width, height = size
    left, right, top, bottom = 56, 12, 24, 34
    image = Image.new("RGB", size, "white")
    draw = ImageDraw.Draw(image)
    transformed = []
    for x, y, colour, label in series:
        x, y = _envelope(np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64), 2 * width)
        if log_y:
            y = np.maximum(20 * np.log10(np.maximum(y, 1e-300)), floor_db)
        transformed.append((x, y, colour, label))
    xs = np.concatenate([t[0] for t in transformed]) if transformed else np.zeros(1)
    ys = np.concatenate([t[1] for t in transformed]) if transformed else np.zeros(1)
    x_low, x_high = float(xs.min()), float(max(xs.max(), xs.min() + 1e-9))
    y_low, y_high = float(ys.min()), float(max(ys.max(), ys.min() + 1e-9))

    def to_pixel(x, y):
        px = left + (x - x_low) / (x_high - x_low) * (width - left - right)
        py = top + (y_high - y) / (y_high - y_low) * (height - top - bottom)
        return px, py

    draw.rectangle([left, top, width - right, height - bottom], outline=(0, 0, 0))
    for x, y, colour, _ in transformed:
        points = [to_pixel(a, b) for a, b in zip(x, y)]
        if len(points) > 1:
            draw.line(points, fill=colour, width=1)
        else:
            draw.point(points, fill=colour)
    if marks is not None:
        for x in np.asarray(marks, dtype=np.float64):
            px, _ = to_pixel(x, y_low)
            draw.line([px, height - bottom, px, height - bottom + 5], fill=(0, 150, 150))
    unit = " dB" if log_y else ""
    draw.text((4, top), f"{y_high:.0f}{unit}", fill=(0, 0, 0))
    draw.text((4, height - bottom - 10), f"{y_low:.0f}{unit}", fill=(0, 0, 0))
    draw.text((left, height - bottom + 8), f"{x_low:g}", fill=(0, 0, 0))
    draw.text((width - right - 40, height - bottom + 8), f"{x_high:g}", fill=(0, 0, 0))
    draw.text((width // 2 - 40, height - 14), x_label, fill=(0, 0, 0))
    draw.text((left + 4, 4), title, fill=(0, 0, 0))
    legend_x = width - right - 200
    for row, (_, _, colour, label) in enumerate(transformed):
        draw.line([legend_x, top + 10 + 12 * row, legend_x + 16, top + 10 + 12 * row], fill=colour, width=2)
        draw.text((legend_x + 20, top + 4 + 12 * row), label, fill=(0, 0, 0))
    return image


def _envelope(x: np.ndarray, y: np.ndarray, points: int) -> tuple[np.ndarray, np.ndarray]:
    """At most ``points`` samples: the maximum of ``y`` over equal runs of a long series.

    Keeps drawing cheap for series of millions of points (a minute of audio
    has millions of spectral bins) while every peak stays visible.
    """
    if len(x) <= points:
        return x, y
    edges = np.linspace(0, len(x), points + 1).astype(np.int64)
    return x[edges[:-1]], np.maximum.reduceat(y, edges[:-1])


def titled(image: Image.Image, title: str) -> Image.Image:
    """The image with a one-line title above it."""
    canvas = Image.new("RGB", (image.width, image.height + 16), "white")
    canvas.paste(image, (0, 16))
    ImageDraw.Draw(canvas).text((4, 2), title, fill=(0, 0, 0))
    return canvas


def stack(images: Sequence[Image.Image], horizontal: bool = True, gap: int = 6) -> Image.Image:
    """Place images side by side (or one under another) on white."""
    if horizontal:
        size = (sum(i.width for i in images) + gap * (len(images) - 1), max(i.height for i in images))
    else:
        size = (max(i.width for i in images), sum(i.height for i in images) + gap * (len(images) - 1))
    canvas = Image.new("RGB", size, "white")
    offset = 0
    for image in images:
        canvas.paste(image, (offset, 0) if horizontal else (0, offset))
        offset += (image.width if horizontal else image.height) + gap
    return canvas
