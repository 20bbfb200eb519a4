"""Rate-distortion rows for ``inrkit rd``: packed reconstructions against Ogg Vorbis, Opus and FLAC (soundfile).

Measured the same way on both sides: SNR (dB) and log-spectral distance
(dB) of the decoded samples against the source, rate in kbit/s (file bytes
x 8 / duration). Vorbis and Opus run at a sweep of libsndfile's
``compression_level`` (0 = best quality, 1 = smallest); Opus only where the
installed libsndfile writes it and the sample rate is one Opus takes; FLAC is
lossless (one point, at 16 bits).
"""

from __future__ import annotations

import io
from typing import Any

import numpy as np
import soundfile
from inrkit.plugin import Signal, lazy_import
from inrkit.plugins.audio.quality import log_spectral_distance, snr_db

torch = lazy_import("torch")

LEVELS = (0.0, 0.2, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)
OPUS_RATES = (8000, 12000, 16000, 24000, 48000)


def _row(method: str, setting: str, size: int, seconds: float, decoded, target) -> dict[str, Any]:
    decoded = torch.as_tensor(np.asarray(decoded, dtype=np.float64)).reshape(-1, target.shape[1])
    frames = target.shape[0]
    if decoded.shape[0] < frames:  # codecs may drop or add a few frames at the ends
        decoded = torch.cat([decoded, torch.zeros(frames - decoded.shape[0], decoded.shape[1], dtype=decoded.dtype)])
    decoded = decoded[:frames]
    return {"method": method, "setting": setting, "bytes": int(size), "rate": 8 * size / seconds / 1000,
            "rate_unit": "kbit/s", "metrics": {"snr": snr_db(decoded, target),
                                                "lsd": log_spectral_distance(decoded, target)}}


def _encoded(samples: np.ndarray, rate: int, fmt: str, subtype: str, **options) -> tuple[int, np.ndarray]:
    buffer = io.BytesIO()
    soundfile.write(buffer, samples, rate, format=fmt, subtype=subtype, **options)
    size = len(buffer.getvalue())  # not tell(): FLAC seeks back to rewrite its header, tell() then says 18
    buffer.seek(0)
    decoded, _ = soundfile.read(buffer, dtype="float64", always_2d=True)
    return size, decoded


def codec_rows(samples: np.ndarray, rate: int, target) -> list[dict[str, Any]]:
    """Vorbis and Opus sweeps and FLAC, for ``samples`` ``[frames, channels]`` at ``rate`` Hz."""
    seconds = samples.shape[0] / rate
    rows = []
    codecs = [("Ogg Vorbis", "VORBIS")]
    if "OPUS" in soundfile.available_subtypes("OGG") and rate in OPUS_RATES:
        codecs.append(("Opus", "OPUS"))
    for name, subtype in codecs:
        for level in LEVELS:
            try:
                size, decoded = _encoded(samples, rate, "OGG", subtype, compression_level=level)
            except (soundfile.LibsndfileError, RuntimeError, ValueError):
                continue  # this libsndfile cannot write it at this setting
            rows.append(_row(name, f"compression level {level:g}", size, seconds, decoded, target))
    size, decoded = _encoded(samples, rate, "FLAC", "PCM_16")
    rows.append(_row("FLAC", "lossless, 16 bits", size, seconds, decoded, target))
    return rows


def rate_distortion_rows(signal: Signal, reconstructions: list) -> list[dict[str, Any]]:
    """The hook's answer for audio: inrkit's packed reconstructions, then each codec's sweep."""
    rate = int(signal.metadata["sample_rate"])
    target = signal.values.detach().cpu().double()
    seconds = target.shape[0] / rate
    rows = [_row("inrkit", setting, size, seconds, values.detach().cpu().clamp(-1, 1), target)
            for setting, size, values in reconstructions]
    return rows + codec_rows(target.numpy().astype(np.float32), rate, target)
