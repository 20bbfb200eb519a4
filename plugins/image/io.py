"""Reading and writing images with Pillow.

Values are stored in the signal as floats in ``[-1, 1]`` (``2 v / peak - 1``
with ``peak`` 255 for 8-bit and 65535 for 16-bit images; float images are
scaled by their own range), channels last, rows first: pixel ``(r, c)`` sits at
coordinate ``(y, x)`` with ``y`` along the rows.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, UnidentifiedImageError

from inrkit.plugin import InputError, Signal, atomic_output, check_fits_in_memory, lazy_import

torch = lazy_import("torch")  # imported at first use: registering plugins must not import torch

#: Pillow modes kept as they are, with their channel count and bit depth.
_KEEP = {"L": (1, 8), "LA": (2, 8), "RGB": (3, 8), "RGBA": (4, 8)}
_SIXTEEN_BIT = {"I;16", "I;16L", "I;16B", "I;16N", "I"}


def _open(path: Path) -> Image.Image:
    if not path.exists():
        raise InputError(f"image file {path} does not exist; check the path")
    if path.is_dir():
        raise InputError(f"{path} is a directory, not an image file; pass an image such as a PNG")
    if path.stat().st_size == 0:
        raise InputError(f"image file {path} is empty (0 bytes); pass a PNG, JPEG, TIFF, BMP or WebP image")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(path)
            bands = len(image.getbands())
            check_fits_in_memory(image.width * image.height * max(bands, 3) * 8,
                                 f"{path}: {image.width}x{image.height} pixels x {bands} channels",
                                 "downscale it (e.g. with Pillow or ImageMagick) or fit it in tiles")
            image.load()
    except UnidentifiedImageError:
        raise InputError(f"{path} is not an image Pillow can read; pass a PNG, JPEG, TIFF, BMP or WebP image") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise InputError(f"{path} is too large to load safely (decompression-bomb limit); downscale it first") from None
    except (OSError, SyntaxError, ValueError) as error:
        raise InputError(f"{path} is truncated or damaged ({error}); re-export or re-download it") from None
    return image


def _pixels(image: Image.Image) -> tuple[np.ndarray, dict[str, Any]]:
    """Array ``[H, W, C]`` float64 in ``[0, 1]`` and the facts needed to write it back."""
    mode = image.mode
    if mode in _SIXTEEN_BIT:
        array = np.asarray(image, dtype=np.float64)
        if mode == "I" and array.max(initial=0) > 65535:
            raise InputError(f"32-bit integer image (max {array.max():.0f}) is not supported; save it as 16-bit")
        return (array / 65535.0)[..., None], {"mode": "I;16", "bit_depth": 16, "peak": 65535}
    if mode == "F":
        array = np.asarray(image, dtype=np.float64)
        if not np.isfinite(array).all():
            raise InputError("float image contains NaN or infinite pixels; clean it first")
        low, high = float(array.min()), float(array.max())
        span = high - low if high > low else 1.0
        meta = {"mode": "F", "bit_depth": 32, "float_low": low, "float_high": low + span}
        return ((array - low) / span)[..., None], meta
    if mode == "1":
        image = image.convert("L")
    elif mode == "P":
        image = image.convert("RGBA" if "transparency" in image.info else "RGB")
    elif mode == "PA":
        image = image.convert("RGBA")
    elif mode not in _KEEP:
        image = image.convert("RGB")
    channels, depth = _KEEP[image.mode]
    array = np.asarray(image, dtype=np.float64).reshape(image.height, image.width, channels)
    return array / 255.0, {"mode": image.mode, "bit_depth": depth, "peak": 255}


def load_image(path: Path) -> Signal:
    """Load an image file as a 2D signal on ``[-1, 1]^2`` (aspect ratio kept).

    Raises
    ------
    InputError
        Missing, empty, unreadable, truncated or absurd files.
    """
    path = Path(path)
    image = _open(path)
    source_mode = image.mode
    array, meta = _pixels(image)
    height, width, channels = array.shape
    if height < 2 or width < 2:
        raise InputError(f"{path} is {width}x{height} pixels; an image needs at least 2x2 pixels")
    values = torch.from_numpy(array.reshape(-1, channels) * 2.0 - 1.0).to(torch.float32)
    metadata = {**meta, "source_mode": source_mode, "height": height, "width": width}
    return Signal.from_grid(values, (height, width), data_range=2.0, metadata=metadata, source=str(path))


def to_pixels(values: torch.Tensor, shape: tuple[int, int], metadata: dict[str, Any]) -> Image.Image:
    """Turn ``[H*W, C]`` values in ``[-1, 1]`` back into a Pillow image of the source's mode."""
    array = ((values.double().numpy() + 1.0) / 2.0).clip(0.0, 1.0).reshape(*shape, -1)
    mode = metadata.get("mode", "RGB")
    if mode == "I;16":
        return Image.fromarray(np.round(array[..., 0] * 65535).astype(np.uint16))
    if mode == "F":
        low, high = metadata["float_low"], metadata["float_high"]
        return Image.fromarray((array[..., 0] * (high - low) + low).astype(np.float32), mode="F")
    quantised = np.round(array * 255).astype(np.uint8)
    if quantised.shape[-1] == 1:
        return Image.fromarray(quantised[..., 0], mode="L")
    return Image.fromarray(quantised, mode=mode)


#: Formats Pillow registers before it imports its other plugins (``Image.preinit``); anything else asks
#: ``Image.registered_extensions``, which imports all of them (20-40 ms, the AVIF plugin among them).
_EARLY_FORMATS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".bmp": "BMP", ".gif": "GIF", ".ppm": "PPM"}


def save_image(image: Image.Image, path: Path) -> None:
    """Write ``image`` atomically; the format follows the extension."""
    suffix = Path(path).suffix.lower()
    image_format = _EARLY_FORMATS.get(suffix) or Image.registered_extensions().get(suffix, "PNG")
    with atomic_output(path) as temporary:
        image.save(temporary, format=image_format)
