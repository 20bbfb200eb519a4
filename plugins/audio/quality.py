"""Audio quality: SNR, log-spectral distance, spectrograms and the comparison picture."""

from __future__ import annotations

import math

import numpy as np
from PIL import Image

from inrkit.plugin import colour_ramp, stack, titled, lazy_import

torch = lazy_import("torch")  # imported at first use: registering plugins must not import torch


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


#: Dynamic range of the spectrograms, in dB under the target's peak.
SPECTROGRAM_RANGE_DB = 90.0
#: Waveform colours: the target is drawn last, as a thin dark outline over the reconstruction's band.
TARGET_COLOUR, RECONSTRUCTION_COLOUR, ERROR_COLOUR = (0, 0, 0), (110, 160, 245), (220, 30, 30)


def _spectrogram_image(samples: torch.Tensor, title: str, reference: float, size: tuple[int, int]) -> Image.Image:
    power = power_spectrogram(samples).numpy().T[::-1]  # frequency up
    level = 10 * np.log10(np.maximum(power, 1e-20) / max(reference, 1e-20))
    picture = Image.fromarray(colour_ramp(1 + level / SPECTROGRAM_RANGE_DB)).resize(size, Image.Resampling.BILINEAR)
    return titled(picture, title)


def _colour_bar(height: int, width: int = 14) -> Image.Image:
    """The spectrograms' scale: 0 dB (the target's peak, top) to -SPECTROGRAM_RANGE_DB (bottom)."""
    from PIL import ImageDraw

    ramp = colour_ramp(np.repeat(np.linspace(1.0, 0.0, height)[:, None], width, axis=1))
    bar = Image.new("RGB", (width + 30, height), "white")
    bar.paste(Image.fromarray(ramp), (0, 0))
    draw = ImageDraw.Draw(bar)
    draw.text((width + 3, 0), "0", fill=(0, 0, 0))
    draw.text((width + 3, height - 11), f"-{SPECTROGRAM_RANGE_DB:.0f}", fill=(0, 0, 0))
    return titled(bar, "dB")


def _envelope(series: np.ndarray, columns: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Per pixel column, the lowest and highest sample."""
    kept = [index for index in columns if len(index)]
    return np.array([series[i].min() for i in kept]), np.array([series[i].max() for i in kept])


def _waveform_image(target: np.ndarray, recon: np.ndarray, size: tuple[int, int]) -> Image.Image:
    """Two lanes on one scale: the reconstruction's band with the target's outline drawn over it, then the error."""
    from PIL import ImageDraw

    width, lane = size[0], size[1] // 2
    columns = np.array_split(np.arange(len(target)), width)
    lanes = []
    for drawn in (((recon, RECONSTRUCTION_COLOUR, "band"), (target, TARGET_COLOUR, "outline")),
                  ((recon - target, ERROR_COLOUR, "band"),)):
        picture = Image.new("RGB", (width, lane), "white")
        draw = ImageDraw.Draw(picture)
        draw.line([0, lane / 2, width, lane / 2], fill=(225, 225, 225))
        for series, colour, style in drawn:
            low, high = _envelope(series, columns)
            low, high = (1 - low) * lane / 2, (1 - high) * lane / 2
            if style == "band":
                for x, (top, bottom) in enumerate(zip(high, low)):
                    draw.line([x, top, x, bottom], fill=colour)
            else:
                for edge in (high, low):
                    draw.line(list(zip(range(len(edge)), edge)), fill=colour, width=1)
        lanes.append(picture)
    return stack([titled(lanes[0], "waveform: target (black outline) over reconstruction (blue)"),
                  titled(lanes[1], "error: reconstruction - target (red), same scale")], horizontal=False, gap=2)


def comparison_picture(target: torch.Tensor, reconstruction: torch.Tensor) -> Image.Image:
    """Waveforms, then spectrograms of target, reconstruction and error (first channel), shared dB scale."""
    x, y = target[:, 0], reconstruction[:, 0]
    reference = float(power_spectrogram(x).max())
    size = (500, 220)
    spectrograms = stack([
        _spectrogram_image(x, "target spectrogram", reference, size),
        _spectrogram_image(y, "reconstruction spectrogram", reference, size),
        _spectrogram_image(y - x, "error spectrogram (reconstruction - target)", reference, size),
        _colour_bar(size[1]),
    ])
    waveform = _waveform_image(x.numpy(), y.numpy(), (spectrograms.width, 240))
    return stack([waveform, spectrograms], horizontal=False)
