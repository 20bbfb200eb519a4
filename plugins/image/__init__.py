"""Built-in image signal: PNG/JPEG/TIFF/BMP/WebP in, PNG/TIFF out.

Registers the signal type ``image``, its metrics (PSNR, SSIM, hold-out PSNR),
a comparison picture for the run directory, and the ``png`` and ``tiff``
exporters. Uses only the public plugin API.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from inrkit.plugin import (
    AssessRequest, ConfigError, ExporterType, ExportRequest, FitDefaults, InputError, Signal, SignalType,
    grid_coordinates, hookimpl, lazy_import, psnr
)
from inrkit.plugins.image.io import load_image, save_image, to_pixels
from inrkit.plugins.image.quality import comparison_picture, ssim

torch = lazy_import("torch")  # imported at first use: registering plugins must not import torch

EXTENSIONS = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".webp", ".gif", ".ppm", ".pgm", ".pbm")


def image_metrics(signal: Signal, reconstruction: torch.Tensor) -> dict[str, float]:
    """PSNR on all pixels (the core reports it on the trained and held-out ones) and SSIM."""
    target = signal.values
    result = {"psnr_all": psnr(reconstruction, target, signal.data_range)}
    height, width = signal.grid_shape
    if min(height, width) >= 11:
        shape = (height, width, signal.channels)
        result["ssim"] = ssim(reconstruction.reshape(shape), target.reshape(shape), signal.data_range)
    return result


def image_previews(signal: Signal, reconstruction: torch.Tensor, run_dir: Path) -> list[Path]:
    """``comparison.png``: target, reconstruction and error side by side."""
    shape = (*signal.grid_shape, signal.channels)
    target = ((signal.values.reshape(shape).numpy() + 1) / 2).clip(0, 1)
    recon = ((reconstruction.reshape(shape).numpy() + 1) / 2).clip(0, 1)
    path = run_dir / "comparison.png"
    save_image(comparison_picture(target, recon), path)
    return [path]


def assess_image(request: AssessRequest) -> dict[str, float]:
    """SSIM and PSNR over all pixels, and ``comparison.png`` in the run directory."""
    image_previews(request.signal, request.reconstruction, request.run_dir)
    return image_metrics(request.signal, request.reconstruction)


#: Pillow modes an image run records, with their channel count.
_MODES = {"L": 1, "LA": 2, "RGB": 3, "RGBA": 4, "I;16": 1, "F": 1}


def _check_recorded(request: ExportRequest) -> None:
    """The grid and metadata the run recorded must be an image's (run directories are untrusted)."""

    def fail(key: str, value, valid: str) -> InputError:
        return InputError(f"the run's signal {key} is {value!r:.60}, it must be {valid} for an image run; "
                          "the run directory is not an image fit, is damaged or was edited by hand")

    geometry, metadata = request.geometry, request.metadata
    shape, extent = geometry.get("grid_shape"), geometry.get("extent")
    if (not isinstance(shape, (list, tuple)) or len(shape) != 2
            or not all(isinstance(n, int) and not isinstance(n, bool) and n >= 1 for n in shape)):
        raise fail("grid_shape", shape, "two whole numbers >= 1 (height, width)")
    if (not isinstance(extent, (list, tuple)) or len(extent) != 2
            or not all(isinstance(e, (int, float)) for e in extent)):
        raise fail("extent", extent, "two numbers (one per axis)")
    mode = metadata.get("mode", "RGB")
    if not isinstance(mode, str) or mode not in _MODES:
        raise fail("metadata mode", mode, f"one of {', '.join(_MODES)}")
    channels, allowed = geometry.get("channels"), (1, 3) if mode == "RGB" else (_MODES[mode],)
    if channels is not None and channels not in allowed:
        raise fail("channels", channels, f"{' or '.join(map(str, allowed))} for mode {mode}")
    if mode == "F":
        for key in ("float_low", "float_high"):
            value = metadata.get(key)
            if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
                raise fail(f"metadata {key}", value, "a finite number")


def _resolution(request: ExportRequest) -> tuple[int, int]:
    _check_recorded(request)
    requested = request.options.get("resolution")
    if requested is None:
        return tuple(request.geometry["grid_shape"])
    if len(requested) != 2 or any(int(n) < 1 for n in requested):
        raise ConfigError(f"image resolution needs two positive numbers WIDTHxHEIGHT, got {requested}")
    width, height = (int(n) for n in requested)
    return height, width


def _render(request: ExportRequest) -> tuple[torch.Tensor, tuple[int, int]]:
    shape = _resolution(request)
    if shape[0] * shape[1] > 1 << 28:
        raise ConfigError(f"resolution {shape[1]}x{shape[0]} is too large (over 268 million pixels)")
    coords = grid_coordinates(shape, request.geometry["extent"])
    return request.evaluate(coords), shape


def export_png(request: ExportRequest) -> None:
    """Render the model on a ``WIDTHxHEIGHT`` grid (default: the source's) and write a PNG.

    8-bit sources give 8-bit PNGs, 16-bit sources 16-bit PNGs; float sources
    are written as 16-bit grayscale over their original range.
    """
    values, shape = _render(request)
    metadata: dict[str, Any] = dict(request.metadata)
    if metadata.get("mode") == "F":
        metadata["mode"] = "I;16"
    save_image(to_pixels(values, shape, metadata), request.path)


def export_tiff(request: ExportRequest) -> None:
    """Like :func:`export_png` but TIFF, which keeps float images as 32-bit floats."""
    values, shape = _render(request)
    save_image(to_pixels(values, shape, dict(request.metadata)), request.path)


@hookimpl
def inrkit_register_signals(register):
    register(
        SignalType(
            name="image",
            load=load_image,
            extensions=EXTENSIONS,
            description="2D images via Pillow (grayscale, RGB, RGBA, palette, 16-bit)",
            exporter="png",
            # Bandlimit from the image's spectrum: within 0.4 dB of the best fixed value on the samples.
            defaults=FitDefaults(bandlimit_fraction=None, params_fraction=0.25),
            assess=assess_image,
            show={"ssim": "SSIM {value:.4f}"},
        )
    )


@hookimpl
def inrkit_register_exporters(register):
    register(ExporterType("png", "image", (".png",), export_png, "PNG at the native or any resolution"))
    register(ExporterType("tiff", "image", (".tif", ".tiff"), export_tiff, "TIFF (keeps float images as float)"))


@hookimpl
def inrkit_rate_distortion(signal, signal_type, reconstructions):
    """``inrkit rd``: packed reconstructions against JPEG, WebP and AVIF (see :mod:`inrkit.plugins.image.codecs`)."""
    if signal_type != "image":
        return None
    from inrkit.plugins.image.codecs import rate_distortion_rows

    return rate_distortion_rows(signal, reconstructions)
