"""Signal-agnostic quality measures."""

from __future__ import annotations

import math

from inrkit.lazy import lazy_import

torch = lazy_import("torch")  # imported at first use: registering plugins must not import torch


def psnr_from_mse(mse: float, data_range: float) -> float:
    """Peak signal-to-noise ratio ``10 log10(data_range^2 / mse)`` in dB.

    ``data_range`` is the peak-to-peak range of the signal (the "peak" of the
    PSNR); a perfect fit gives ``inf``.
    """
    if mse <= 0:
        return math.inf
    return 10.0 * math.log10(data_range * data_range / mse)


def psnr(reconstruction: torch.Tensor, target: torch.Tensor, data_range: float) -> float:
    """PSNR in dB between two tensors of the same shape (mean over all entries)."""
    mse = float(torch.mean((reconstruction.double() - target.double()) ** 2))
    return psnr_from_mse(mse, data_range)
