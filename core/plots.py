"""Small, dependency-free charts (Pillow) for run-directory pictures.

Only what inrkit draws: heat maps of log-magnitude spectra with optional
dots, and line charts with a log or linear y axis. Signal plugins draw their
own pictures; these are for the core's spectrum and training views.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFont

_STOPS = np.array([[0, 0, 4], [40, 11, 84], [101, 21, 110], [159, 42, 99], [212, 72, 66], [245, 125, 21], [250, 193, 39], [252, 255, 164]], dtype=np.float64)


#: Pillow's default font (a 10 px FreeType face when Pillow has FreeType, else a bitmap font).
_FONT = ImageFont.load_default()
#: Least pixels between two words. The default face advances a space by 2 px only, which
#: anti-aliasing swallows ("PSNRafter each phase"), so words are placed one by one with this gap.
WORD_GAP = 4
#: Height of one line of text.
LINE_HEIGHT = 13


def _text_width(text: str) -> float:
    return float(_FONT.getlength(text))


def layout_text(text: str, max_width: float | None = None,
                measure: Callable[[str], float] = _text_width) -> list[list[tuple[float, str]]]:
    """Lines of ``(x, word)``: words split at spaces, at least :data:`WORD_GAP` apart, wrapped at ``max_width``.

    Every space of ``text`` stays a gap (two spaces: two gaps); a line breaks
    only at a space, and a word wider than ``max_width`` gets a line of its own.
    """
    lines: list[list[tuple[float, str]]] = []
    for paragraph in text.split("\n"):
        line: list[tuple[float, str]] = []
        x = 0.0
        for word in paragraph.split(" "):
            width = measure(word)
            if line and max_width is not None and x + width > max_width:
                lines.append(line)
                line, x = [], 0.0
            line.append((x, word))
            x += width + max(WORD_GAP, measure(" "))
        lines.append(line)
    return lines


def draw_text(draw: ImageDraw.ImageDraw, xy: tuple[float, float], text: str, fill=(0, 0, 0),
              max_width: float | None = None) -> int:
    """Draw ``text`` word by word (see :func:`layout_text`); returns the number of lines drawn."""
    lines = layout_text(text, max_width)
    for row, line in enumerate(lines):
        for x, word in line:
            if word:
                draw.text((xy[0] + x, xy[1] + row * LINE_HEIGHT), word, fill=fill, font=_FONT)
    return len(lines)


def axis_range(values: np.ndarray) -> tuple[float, float]:
    """The ``(low, high)`` an axis spans for ``values``; a single value or a constant series gets room around it.

    A span too small to draw (one phase, a PSNR that did not change) is
    widened to 5% of the value on each side, or 0.5 for values near zero.
    """
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return 0.0, 1.0
    low, high = float(finite.min()), float(finite.max())
    if high - low > 1e-9 * max(1.0, abs(low), abs(high)):
        return low, high
    pad = max(0.05 * abs(low), 0.5)
    return low - pad, high + pad


def _tick(value: float, span: float) -> str:
    """An axis label with as many decimals as the axis's span needs."""
    decimals = 0 if span >= 10 else 1 if span >= 1 else 2 if span >= 0.1 else 3
    return f"{value:.{decimals}f}" if abs(value) < 1e6 else f"{value:.3g}"


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
               marks: np.ndarray | None = None, floor_db: float = -120.0,
               x_window: tuple[float, float] | None = None, dots: bool = False,
               scattered: Sequence[int] = ()) -> Image.Image:
    """Curves ``(x, y, colour, label)`` on shared axes; ``log_y`` plots ``20 log10(y)`` (dB).

    ``marks``: x positions drawn as short ticks under the axis (e.g. input frequencies).
    ``x_window``: draw only ``low <= x <= high`` (each curve cut where it crosses the edges); the y axis
    spans what is left. ``dots``: mark every measured point of a short curve (at most 40 points).
    ``scattered``: indices of the series drawn as points only, with no line between them.
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
        if x_window is not None:
            x, y = _clip(x, y, *x_window)
        transformed.append((x, y, colour, label))
    xs = np.concatenate([t[0] for t in transformed]) if transformed else np.zeros(1)
    ys = np.concatenate([t[1] for t in transformed]) if transformed else np.zeros(1)
    (x_low, x_high), (y_low, y_high) = axis_range(xs), axis_range(ys)
    if x_window is not None and x_window[1] > x_window[0]:
        x_low, x_high = x_window

    def to_pixel(x, y):
        px = left + (x - x_low) / (x_high - x_low) * (width - left - right)
        py = top + (y_high - y) / (y_high - y_low) * (height - top - bottom)
        return px, py

    draw.rectangle([left, top, width - right, height - bottom], outline=(0, 0, 0))
    for index, (x, y, colour, _) in enumerate(transformed):
        points = [to_pixel(a, b) for a, b in zip(x, y)]
        if index in scattered:
            for px, py in points:
                draw.ellipse([px - 2, py - 2, px + 2, py + 2], fill=colour)
            continue
        if len(points) > 1:
            draw.line(points, fill=colour, width=1)
        elif points:  # a single point: a visible dot
            px, py = points[0]
            draw.ellipse([px - 3, py - 3, px + 3, py + 3], fill=colour)
        if dots and 1 < len(points) <= 40:
            edges = {float(v) for v in x_window} if x_window is not None else set()
            for (px, py), at in zip(points, x):
                if float(at) in edges:  # a cut at the window's edge, not a measured point
                    continue
                draw.ellipse([px - 2, py - 2, px + 2, py + 2], outline=colour)
    if marks is not None:
        for x in np.asarray(marks, dtype=np.float64):
            px, _ = to_pixel(x, y_low)
            draw.line([px, height - bottom, px, height - bottom + 5], fill=(0, 150, 150))
    unit = " dB" if log_y else ""
    draw_text(draw, (4, top), f"{_tick(y_high, y_high - y_low)}{unit}")
    draw_text(draw, (4, height - bottom - 10), f"{_tick(y_low, y_high - y_low)}{unit}")
    draw_text(draw, (left, height - bottom + 8), _tick(x_low, x_high - x_low))
    draw_text(draw, (width - right - 40, height - bottom + 8), _tick(x_high, x_high - x_low))
    draw_text(draw, (width // 2 - 40, height - 14), x_label)
    draw_text(draw, (left + 4, 4), title, max_width=width - left - right)
    legend_x = width - right - 200
    for row, (_, _, colour, label) in enumerate(transformed):
        if row in scattered:
            draw.ellipse([legend_x + 6, top + 8 + 12 * row, legend_x + 10, top + 12 + 12 * row], fill=colour)
        else:
            draw.line([legend_x, top + 10 + 12 * row, legend_x + 16, top + 10 + 12 * row], fill=colour, width=2)
        draw_text(draw, (legend_x + 20, top + 4 + 12 * row), label)
    return image


def _clip(x: np.ndarray, y: np.ndarray, low: float, high: float) -> tuple[np.ndarray, np.ndarray]:
    """The part of the polyline ``(x, y)`` (x ascending) with ``low <= x <= high``, ending on the edges."""
    if len(x) < 2:
        keep = (x >= low) & (x <= high)
        return x[keep], y[keep]
    inside = (x >= low) & (x <= high)
    xs, ys = list(x[inside]), list(y[inside])
    for edge in (low, high):
        if x[0] < edge < x[-1] and edge not in xs:
            xs.append(edge)
            ys.append(float(np.interp(edge, x, y)))
    order = np.argsort(xs)
    return np.asarray(xs, dtype=np.float64)[order], np.asarray(ys, dtype=np.float64)[order]


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
    """The image with a title above it (wrapped to the image's width)."""
    header = 3 + LINE_HEIGHT * len(layout_text(title, image.width - 8))
    canvas = Image.new("RGB", (image.width, image.height + header), "white")
    canvas.paste(image, (0, header))
    draw_text(ImageDraw.Draw(canvas), (4, 2), title, max_width=image.width - 8)
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
