"""Reading and writing audio with soundfile (libsndfile).

Samples are floats in ``[-1, 1]`` (full scale), one channel per column; time
maps to ``[-1, 1]``, so the Nyquist frequency follows from the number of
frames (and so from the sample rate and the duration).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np
import soundfile

from inrkit.plugin import ConfigError, InputError, Signal, atomic_output, check_fits_in_memory, lazy_import

torch = lazy_import("torch")  # imported at first use: registering plugins must not import torch

#: Subtypes written back as they were read; anything else (compressed or exotic) becomes 16-bit PCM on export.
PCM_SUBTYPES = ("PCM_U8", "PCM_S8", "PCM_16", "PCM_24", "PCM_32", "FLOAT", "DOUBLE")
#: Container written for each extension.
FORMATS = {".wav": "WAV", ".flac": "FLAC", ".ogg": "OGG"}
FLAC_SUBTYPES = ("PCM_S8", "PCM_16", "PCM_24")


def _fail(path: Path, problem: str) -> InputError:
    return InputError(f"{path}: {problem}")


def _check_fits_in_memory(path: Path, frames: int, channels: int) -> None:
    """Refuse, before reading, a recording whose samples would not fit: the header says how many there are."""
    check_fits_in_memory(int(frames) * int(channels) * 4, f"{path}: {frames:,} frames x {channels} channels",
                         "cut it into shorter pieces (e.g. `sox in.flac part.flac trim 0 60`) and fit each")


def load_audio(path: Path) -> Signal:
    """Load WAV/FLAC/OGG (anything libsndfile reads) as a 1D signal, one output per channel.

    Raises
    ------
    InputError
        Missing, empty, not audio, truncated, zero-length, or NaN/Inf samples.
    """
    path = Path(path)
    if not path.exists():
        raise _fail(path, "file does not exist; check the path")
    if path.is_dir():
        raise _fail(path, "is a directory; pass an audio file (WAV, FLAC, OGG)")
    if path.stat().st_size == 0:
        raise _fail(path, "file is empty (0 bytes); pass a WAV, FLAC or OGG recording")
    try:
        with soundfile.SoundFile(str(path)) as handle:
            info, log = soundfile.info(str(path)), handle.extra_info
            _check_fits_in_memory(path, handle.frames, handle.channels)
            data = handle.read(dtype="float32", always_2d=True)
            rate = handle.samplerate
    except (soundfile.LibsndfileError, RuntimeError, ValueError, TypeError) as error:
        detail = str(error).split(":")[-1].strip() or type(error).__name__
        raise _fail(path, f"not readable audio ({detail}); pass WAV, FLAC or OGG (libsndfile {soundfile.__libsndfile_version__})") from None
    # libsndfile reads what is there and notes a short data chunk in its log as "data : N (should be M)".
    short = re.search(r"^data\s*:\s*(\d+)\s*\(should be (\d+)\)", log, re.M)
    if short and int(short.group(2)) < int(short.group(1)):
        raise _fail(path, f"is truncated: its header promises {short.group(1)} bytes of audio, the file holds {short.group(2)}; re-export or re-download it")
    if data.shape[0] < 2:
        raise _fail(path, f"has {data.shape[0]} sample frames; a recording needs at least 2")
    if not np.isfinite(data).all():
        raise _fail(path, "contains NaN or infinite samples; clean the recording first")
    frames, channels = data.shape
    metadata: dict[str, Any] = {
        "sample_rate": int(rate),
        "channels": int(channels),
        "frames": int(frames),
        "format": info.format,
        "subtype": info.subtype,
        "duration_seconds": frames / rate,
    }
    return Signal.from_grid(torch.from_numpy(np.ascontiguousarray(data)), (frames,), data_range=2.0,
                            metadata=metadata, source=str(path))


def output_subtype(container: str, source_subtype: str) -> str:
    """The subtype to write: the source's when the container supports it, else the nearest PCM."""
    if container == "OGG":
        return "VORBIS"
    if container == "FLAC":
        return source_subtype if source_subtype in FLAC_SUBTYPES else "PCM_24"
    return source_subtype if source_subtype in PCM_SUBTYPES else "PCM_16"


def write_audio(samples: np.ndarray, rate: int, path: Path, subtype: str) -> None:
    """Write ``[frames, channels]`` floats atomically (clipped to full scale)."""
    container = FORMATS.get(Path(path).suffix.lower())
    if container is None:
        raise ConfigError(f"cannot write {Path(path).name}: audio exports to {', '.join(FORMATS)}")
    with atomic_output(Path(path)) as temporary:
        soundfile.write(str(temporary), np.clip(samples, -1.0, 1.0), rate, subtype=subtype, format=container)
