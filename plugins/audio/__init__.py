"""Built-in audio signal: WAV/FLAC/OGG in and out, via soundfile (libsndfile).

Registers the signal type ``audio`` (one network output per channel, time in
``[-1, 1]``), its metrics (PSNR with full-scale peak-to-peak 2, SNR,
log-spectral distance), a waveform/spectrogram comparison picture, the
``mse-stft`` loss and the ``wav``, ``flac`` and ``ogg`` exporters, which
write any sample rate. Uses only the public plugin API.
"""

from __future__ import annotations

from pathlib import Path

import soundfile

from inrkit.plugin import (
    AssessRequest, ConfigError, ExporterType, ExportRequest, FitContext, FitDefaults, InputError, LossType, Option,
    Signal, SignalType, atomic_output, grid_coordinates, hookimpl, lazy_import
)
from inrkit.plugins.audio.io import FORMATS, load_audio, output_subtype, write_audio
from inrkit.plugins.audio.quality import comparison_picture, log_spectral_distance, snr_db

torch = lazy_import("torch")  # imported at first use: registering plugins must not import torch

EXTENSIONS = (".wav", ".flac", ".ogg", ".oga", ".aiff", ".aif", ".au", ".w64", ".rf64", ".caf") + (
    (".mp3",) if "MP3" in soundfile.available_formats() else ()
)
#: The exporters' one option: ``inrkit export run -o x.wav --option sample_rate=48000``.
SAMPLE_RATE = Option("sample_rate", int, help="output sample rate in Hz (default: the source's; same time span)",
                     minimum=1, maximum=1_536_000)
#: Samples of the contiguous window the spectral loss looks at each step.
STFT_WINDOW = 8192


def audio_metrics(signal: Signal, reconstruction: torch.Tensor) -> dict[str, float]:
    """SNR and log-spectral distance over the whole recording (the PSNR comes from the core)."""
    return {"snr": snr_db(reconstruction, signal.values), "lsd": log_spectral_distance(reconstruction, signal.values)}


def audio_previews(signal: Signal, reconstruction: torch.Tensor, run_dir: Path) -> list[Path]:
    """``comparison.png``: waveforms and spectrograms of target, reconstruction and error."""
    path = run_dir / "comparison.png"
    with atomic_output(path) as temporary:
        comparison_picture(signal.values, reconstruction).save(temporary, format="PNG")
    return [path]


def assess_audio(request: AssessRequest) -> dict[str, float]:
    """SNR and log-spectral distance, and ``comparison.png`` in the run directory."""
    audio_previews(request.signal, request.reconstruction, request.run_dir)
    return audio_metrics(request.signal, request.reconstruction)


def _stft_magnitudes(samples: torch.Tensor, size: int) -> torch.Tensor:
    window = torch.hann_window(size, device=samples.device, dtype=samples.dtype)
    return torch.stft(samples, n_fft=size, hop_length=size // 4, window=window, return_complex=True).abs()


def mse_stft_loss(context: FitContext, batch) -> torch.Tensor:
    """MSE on the batch plus ``loss_weight`` times a multi-resolution STFT loss.

    The spectral term (spectral convergence plus log-magnitude distance at
    FFT sizes 512, 1024 and 2048) is computed on a random contiguous window of
    the recording, evaluated through the model, so it sees the waveform's
    local structure whatever the sampler.
    """
    mse = torch.mean((context.predict(batch) - batch.target) ** 2)
    signal = context.signal
    frames = signal.values.shape[0]
    length = min(STFT_WINDOW, frames)
    generator = torch.Generator().manual_seed(context.step)
    start = int(torch.randint(0, frames - length + 1, (1,), generator=generator))
    coords = grid_coordinates((frames,), signal.extent)[start : start + length].to(signal.values.device)
    output = context.model(coords)
    target = signal.values[start : start + length]
    spectral = output.new_zeros(())
    for size in (512, 1024, 2048):
        if size > length:
            continue
        for channel in range(target.shape[1]):
            a, b = _stft_magnitudes(output[:, channel], size), _stft_magnitudes(target[:, channel], size)
            convergence = torch.linalg.norm(a - b) / torch.linalg.norm(b).clamp(min=1e-8)
            log_distance = torch.mean(torch.abs(torch.log(a + 1e-7) - torch.log(b + 1e-7)))
            spectral = spectral + convergence + log_distance
    weight = getattr(context.config, "loss_weight", 1.0) if context.config is not None else 1.0
    return mse + weight * spectral


def _recorded(request: ExportRequest) -> tuple[int, int]:
    """The source's sample rate and frame count as the run recorded them, checked (run directories are untrusted)."""

    def fail(key: str, value, valid: str) -> InputError:
        return InputError(f"the run's signal {key} is {value!r:.60}, it must be {valid} for an audio run; "
                          "the run directory is not an audio fit, is damaged or was edited by hand")

    metadata, geometry = request.metadata, request.geometry
    rate, frames = metadata.get("sample_rate"), metadata.get("frames")
    if not isinstance(rate, int) or isinstance(rate, bool) or rate < 1:
        raise fail("metadata sample_rate", rate, "a whole number of Hz >= 1")
    if not isinstance(frames, int) or isinstance(frames, bool) or frames < 2:
        raise fail("metadata frames", frames, "a whole number >= 2")
    shape = geometry.get("grid_shape")
    if shape is not None and (not isinstance(shape, (list, tuple)) or list(shape) != [frames]):
        raise fail("grid_shape", shape, f"[{frames}] (one axis of metadata frames samples)")
    extent = geometry.get("extent")
    if not isinstance(extent, (list, tuple)) or len(extent) != 1 or not isinstance(extent[0], (int, float)):
        raise fail("extent", extent, "a list of one number (the time axis)")
    subtype = metadata.get("subtype", "PCM_16")
    if not isinstance(subtype, str):
        raise fail("metadata subtype", subtype, "a libsndfile subtype name such as 'PCM_16'")
    return rate, frames


def _frames_at(request: ExportRequest) -> tuple[int, int]:
    source_rate, frames = _recorded(request)
    rate = request.options.get("sample_rate") or source_rate
    if not isinstance(rate, int) or rate < 1 or rate > 1_536_000:
        raise ConfigError(f"--sample-rate must be a whole number of Hz between 1 and 1536000, got {rate}")
    # Same time span: the first and last sample stay where they were.
    return rate, max(2, round((frames - 1) * rate / source_rate) + 1)


def export_audio(request: ExportRequest) -> None:
    """Render the recording at the source's or any sample rate and write it (chunked evaluation)."""
    rate, frames = _frames_at(request)
    container = FORMATS.get(request.path.suffix.lower())
    if container is None:
        raise ConfigError(f"cannot write {request.path.name}: audio exports to {', '.join(FORMATS)}")
    coords = grid_coordinates((frames,), request.geometry["extent"])
    samples = request.evaluate(coords).numpy()
    write_audio(samples, rate, request.path, output_subtype(container, request.metadata.get("subtype", "PCM_16")))


@hookimpl
def inrkit_register_signals(register):
    register(
        SignalType(
            name="audio",
            load=load_audio,
            extensions=EXTENSIONS,
            description="audio via libsndfile (WAV 8/16/24/32-bit and float, FLAC, OGG; any rate, any channels)",
            exporter="wav",
            # Bandlimit from the recording's spectrum: speech at 16 kHz gets ~3.8k, not Nyquist/3 = 10.7k.
            # Baselines: SIREN's paper uses a first-layer omega_0 of 3000 for audio (30 for images); FFN's paper has
            # no audio, so its sigma is scaled from the image value (10) by the same factor of 100.
            # Half the lattice model's budget goes to direct lines where they pay (inrkit.direct.planned_lines):
            # on the melody 1,000 / 1,500 / 2,000 lines at 8,000 numbers gave 23.2 / 23.5 / 23.3 dB SNR against
            # 16.9 without (60 s; 1,333, half the budget: 23.6 in benchmarks/peers.py). The speech's 1,333
            # strongest lines alone reach 7.7 dB (the melody's 18.5), so it keeps none (500 lost 1.4 dB).
            defaults=FitDefaults(bandlimit_fraction=None, params_fraction=0.25,
                                 model_defaults={"siren_omega0": 3000.0, "ffn_sigma": 1000.0, "direct_share": 0.5}),
            assess=assess_audio,
            show={"snr": "SNR {value:.2f} dB", "lsd": "LSD {value:.2f} dB"},
        )
    )


@hookimpl
def inrkit_register_losses(register):
    register(LossType("mse-stft", mse_stft_loss, "MSE plus loss-weight x multi-resolution STFT loss (audio)",
                      signals=("audio",)))


@hookimpl
def inrkit_register_exporters(register):
    options = (SAMPLE_RATE,)
    register(ExporterType("wav", "audio", (".wav",), export_audio, "WAV, source bit depth, any sample rate", options))
    register(ExporterType("flac", "audio", (".flac",), export_audio, "FLAC (16/24-bit), any sample rate", options))
    register(ExporterType("ogg", "audio", (".ogg",), export_audio, "Ogg Vorbis, any sample rate", options))


@hookimpl
def inrkit_rate_distortion(signal, signal_type, reconstructions):
    """``inrkit rd``: packed reconstructions against Ogg Vorbis, Opus and FLAC (see :mod:`inrkit.plugins.audio.codecs`)."""
    if signal_type != "audio":
        return None
    from inrkit.plugins.audio.codecs import rate_distortion_rows

    return rate_distortion_rows(signal, reconstructions)
