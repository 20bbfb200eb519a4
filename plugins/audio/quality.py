"""Audio quality: SNR, log-spectral distance, spectrograms and the comparison picture."""

from __future__ import annotations

import math

import numpy as np
import torch
from PIL import Image

from inrkit.plugin import colour_ramp, stack, titled


def snr_db(reconstruction: torch.Tensor, target: torch.Tensor) -> float:
    """Signal-to-noise ratio ``10 log10(sum x^2 / sum (x - y)^2)`` in dB over all channels."""
    signal = float((target.double() ** 2).sum())
    noise = float(((reconstruction.double() - target.double()) ** 2).sum())
    return math.inf if noise == 0 else 10 * math.log10(max(signal, 1e-300) / noise)


def power_spectrogram(samples: torch.Tensor, window: int = 512, hop: int = 128) -> torch.Tensor:
    """``|STFT|^2`` with a Hann window, ``[frames_t, window // 2 + 1]`` for a 1D tensor."""
    window = min(window, max(8, 2 ** int(math.floor(math.log2(max(len(samples), 8))))))
    hop = max(1, min(hop, window // 4))
    stft = torch.stft(samples.double(), n_fft=window, hop_length=hop, window=torch.hann_window(window, dtype=torch.float64),
                      center=True, return_complex=True)
    return (stft.abs() ** 2).T


def log_spectral_distance(reconstruction: torch.Tensor, target: torch.Tensor, eps: float = 1e-10) -> float:
    """Log-spectral distance in dB: per STFT frame ``sqrt(mean_f (10 log10 P_x - 10 log10 P_y)^2)``, averaged.

    Averaged over frames and channels; ``eps`` floors the powers (silence).
    """
    distances = []
    for channel in range(target.shape[1]):
        px = power_spectrogram(target[:, channel]) + eps
        py = power_spectrogram(reconstruction[:, channel]) + eps
        difference = 10 * torch.log10(px) - 10 * torch.log10(py)
        distances.append(torch.sqrt((difference**2).mean(dim=1)).mean())
    return float(torch.stack(distances).mean())


def _spectrogram_image(samples: torch.Tensor, title: str, reference: float, size: tuple[int, int]) -> Image.Image:
    power = power_spectrogram(samples).numpy().T[::-1]  # frequency up
    level = 10 * np.log10(np.maximum(power, 1e-20) / max(reference, 1e-20))
    picture = Image.fromarray(colour_ramp(1 + level / 90.0)).resize(size, Image.Resampling.BILINEAR)
    return titled(picture, title)


def _waveform_image(target: np.ndarray, recon: np.ndarray, size: tuple[int, int]) -> Image.Image:
    from PIL import ImageDraw

    width, height = size
    picture = Image.new("RGB", size, "white")
    draw = ImageDraw.Draw(picture)
    columns = np.array_split(np.arange(len(target)), width)
    for series, colour in ((target, (150, 150, 150)), (recon, (30, 80, 220)), (recon - target, (220, 30, 30))):
        for x, index in enumerate(columns):
            if len(index):
                low, high = float(series[index].min()), float(series[index].max())
                draw.line([x, (1 - high) * height / 2, x, (1 - low) * height / 2], fill=colour)
    return titled(picture, "waveform: target (grey), reconstruction (blue), error (red)")


def comparison_picture(target: torch.Tensor, reconstruction: torch.Tensor) -> Image.Image:
    """Waveforms, then spectrograms of target, reconstruction and error (first channel), shared dB scale."""
    x, y = target[:, 0], reconstruction[:, 0]
    reference = float(power_spectrogram(x).max())
    size = (520, 220)
    spectrograms = stack([
        _spectrogram_image(x, "target spectrogram", reference, size),
        _spectrogram_image(y, "reconstruction", reference, size),
        _spectrogram_image(y - x, "error", reference, size),
    ])
    waveform = _waveform_image(x.numpy(), y.numpy(), (spectrograms.width, 200))
    return stack([waveform, spectrograms], horizontal=False)
