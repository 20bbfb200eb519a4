"""Rate-distortion rows for ``inrkit rd``: packed reconstructions against JPEG, WebP and AVIF (Pillow).

Everything is measured the same way: the image as 8-bit pixels (a packed
model's output is rounded to 8 bits, as ``inrkit export`` writes it), PSNR
with peak 255 over every pixel and channel, rate in bits per pixel
(file bytes x 8 / (width x height)). Codecs run at a sweep of their quality
setting with Pillow's defaults otherwise (JPEG 4:2:0 chroma subsampling,
optimised Huffman tables; WebP method 6; AVIF speed 4 where Pillow has it).
"""

from __future__ import annotations

import io
import math
from typing import Any

import numpy as np
from inrkit.plugin import Signal, lazy_import
from inrkit.plugins.image.io import to_pixels
from PIL import Image, features

torch = lazy_import("torch")

#: Quality settings swept per codec.
JPEG_QUALITIES = (1, 3, 5, 8, 10, 15, 20, 30, 40, 50, 60, 70, 80, 90, 95)
WEBP_QUALITIES = (0, 5, 10, 20, 30, 40, 50, 60, 70, 80, 90, 95)
AVIF_QUALITIES = (0, 5, 10, 20, 30, 40, 50, 60, 70, 80, 90)


def _psnr8(decoded: np.ndarray, reference: np.ndarray) -> float:
    mse = float(np.mean((decoded.astype(np.float64) - reference.astype(np.float64)) ** 2))
    return math.inf if mse == 0 else 10 * math.log10(255.0 ** 2 / mse)


def available_codecs() -> dict[str, tuple[str, tuple[int, ...], dict[str, Any]]]:
    """Codec name -> (Pillow format, qualities, save options), for the codecs this Pillow can write."""
    codecs = {"JPEG": ("JPEG", JPEG_QUALITIES, {"optimize": True})}
    if features.check("webp"):
        codecs["WebP"] = ("WEBP", WEBP_QUALITIES, {"method": 6})
    if features.check("avif"):
        codecs["AVIF"] = ("AVIF", AVIF_QUALITIES, {"speed": 4})
    return codecs


def codec_rows(image: Image.Image) -> list[dict[str, Any]]:
    """One row per codec and quality: bytes, bits per pixel and PSNR of the decoded image."""
    reference = np.asarray(image)
    pixels = image.width * image.height
    rows = []
    for name, (fmt, qualities, options) in available_codecs().items():
        for quality in qualities:
            buffer = io.BytesIO()
            image.save(buffer, format=fmt, quality=quality, **options)
            size = buffer.tell()
            buffer.seek(0)
            with Image.open(buffer) as decoded:
                array = np.asarray(decoded.convert(image.mode))
            rows.append({"method": name, "setting": f"quality {quality}", "bytes": size, "rate": 8 * size / pixels,
                         "rate_unit": "bits per pixel", "metrics": {"psnr": _psnr8(array, reference)}})
    return rows


def rate_distortion_rows(signal: Signal, reconstructions: list) -> list[dict[str, Any]] | None:
    """The hook's answer for an 8-bit image: inrkit's packed reconstructions, then each codec's sweep."""
    metadata = signal.metadata
    if metadata.get("mode") not in ("L", "RGB") or signal.grid_shape is None:
        return None  # 16-bit and float images: the codecs above are 8-bit
    shape = tuple(signal.grid_shape)
    image = to_pixels(signal.values.cpu(), shape, metadata)
    reference = np.asarray(image)
    pixels = image.width * image.height
    rows = []
    for setting, size, values in reconstructions:
        array = np.asarray(to_pixels(values.detach().cpu(), shape, metadata))
        rows.append({"method": "inrkit", "setting": setting, "bytes": int(size), "rate": 8 * size / pixels,
                     "rate_unit": "bits per pixel", "metrics": {"psnr": _psnr8(array, reference)}})
    return rows + codec_rows(image)
