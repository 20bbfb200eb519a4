import json
from pathlib import Path

import numpy as np
import pytest
import soundfile
import torch
from typer.testing import CliRunner

from inrkit.cli.main import app
from inrkit.errors import InputError
from inrkit.plugin import ExportRequest
from inrkit.plugins.audio import export_audio
from inrkit.plugins.audio.io import load_audio
from inrkit.plugins.audio.quality import log_spectral_distance, snr_db

DATASETS = Path(__file__).resolve().parents[3] / "datasets"
runner = CliRunner()


def tone(frames=4000, rate=8000, channels=1):
    t = np.arange(frames) / rate
    columns = [0.5 * np.sin(2 * np.pi * (220 * (c + 1)) * t) + 0.1 * np.sin(2 * np.pi * 1234 * t) for c in range(channels)]
    return np.stack(columns, axis=1)


@pytest.mark.parametrize(
    "suffix, subtype, tolerance",
    [(".wav", "PCM_U8", 1 / 64), (".wav", "PCM_16", 1e-4), (".wav", "PCM_24", 1e-6), (".wav", "PCM_32", 1e-7),
     (".wav", "FLOAT", 1e-7), (".flac", "PCM_16", 1e-4), (".flac", "PCM_24", 1e-6), (".ogg", "VORBIS", None)],
)
def test_formats_round_trip(tmp_path, suffix, subtype, tolerance):
    data = tone(channels=2)
    path = tmp_path / f"x{suffix}"
    soundfile.write(path, data, 8000, subtype=subtype)
    signal = load_audio(path)
    assert signal.channels == 2 and signal.metadata["sample_rate"] == 8000 and signal.metadata["subtype"] == subtype
    if tolerance is None:  # lossy: only the level and the length
        assert signal.grid_shape[0] >= 3900 and float(signal.values.abs().max()) > 0.4
    else:
        assert np.abs(signal.values.numpy() - data).max() < tolerance
        out = tmp_path / f"back{suffix}"
        request = ExportRequest(
            evaluate=lambda coords: signal.values.to(torch.float64),  # the identity "model"
            geometry=signal.geometry(), metadata=signal.metadata, path=out,
        )
        export_audio(request)
        info = soundfile.info(out)
        assert (info.samplerate, info.channels, info.frames, info.subtype) == (8000, 2, 4000, subtype if subtype != "PCM_U8" else "PCM_U8")


def test_bandlimit_follows_the_sample_rate(tmp_path):
    from inrkit.lattice import lattice_nyquist

    for rate in (8000, 16000):
        path = tmp_path / f"r{rate}.wav"
        soundfile.write(path, tone(frames=rate, rate=rate), rate)
        signal = load_audio(path)
        # one second of audio at `rate` spans [-1, 1]: Nyquist = (rate - 1) / 4 cycles per unit
        assert lattice_nyquist(signal.nyquist) == (rate - 1,)


def test_export_at_another_sample_rate_and_chunking(tmp_path):
    signal = load_audio(DATASETS / "speech-16k.wav")

    def model(coords):  # a smooth known function of time
        return torch.sin(7.0 * coords) * 0.5

    request = ExportRequest(evaluate=model, geometry=signal.geometry(), metadata=signal.metadata,
                            path=tmp_path / "up.wav", options={"sample_rate": 48000})
    export_audio(request)
    info = soundfile.info(tmp_path / "up.wav")
    assert info.samplerate == 48000 and info.frames == (32000 - 1) * 3 + 1 and info.channels == 1
    data, _ = soundfile.read(tmp_path / "up.wav")
    x = np.linspace(-1, 1, info.frames)
    assert np.abs(data - 0.5 * np.sin(7 * x)).max() < 1e-4


def test_chunked_export_equals_unchunked(tmp_path):
    from inrkit.config import ModelConfig
    from inrkit.model import build_model
    from inrkit.train import evaluate

    model = build_model(ModelConfig(dims=1, out_channels=1, input_frequencies=16, width=16, bandlimit=(400,), low_bandlimit=(40,)))
    coords = torch.linspace(-1, 1, 10_001).unsqueeze(1)
    whole = model.eval()(coords).detach()
    chunked = evaluate(model, coords, chunk=777)
    assert chunked.shape == whole.shape
    assert torch.allclose(chunked, whole, rtol=0, atol=1e-6)


def test_metrics_closed_form():
    x = torch.tensor(tone(frames=2000), dtype=torch.float32)
    noise = 0.01 * torch.sin(torch.arange(2000.0)).unsqueeze(1)
    expected = 10 * np.log10(float((x.double() ** 2).sum()) / float((noise.double() ** 2).sum()))
    assert snr_db(x + noise, x) == pytest.approx(expected)
    assert log_spectral_distance(x, x) == pytest.approx(0.0, abs=1e-9)
    noise = torch.tensor(np.random.default_rng(0).normal(0, 0.1, (4000, 1)), dtype=torch.float32)
    # doubling every sample raises every STFT power by 6.02 dB
    assert log_spectral_distance(noise * 2, noise) == pytest.approx(20 * np.log10(2), rel=1e-4)


@pytest.mark.parametrize("case, message", [
    ("missing", "does not exist"), ("empty", "empty"), ("text", "not readable audio"),
    ("truncated", "truncated"), ("nan", "NaN"), ("zero", "sample frames"),
])
def test_bad_audio(tmp_path, case, message):
    path = tmp_path / "bad.wav"
    if case == "empty":
        path.write_bytes(b"")
    elif case == "text":
        path.write_text("this is not a wave file at all")
    elif case == "truncated":
        soundfile.write(path, tone(), 8000, subtype="PCM_16")
        path.write_bytes(path.read_bytes()[:3000])
    elif case == "nan":
        data = tone()
        data[100] = np.nan
        soundfile.write(path, data, 8000, subtype="FLOAT")
    elif case == "zero":
        soundfile.write(path, np.zeros((0, 1)), 8000, subtype="PCM_16")
    with pytest.raises(InputError, match=message) as caught:
        load_audio(path)
    assert str(path) in str(caught.value)


def test_cli_fit_and_export_audio(tmp_path):
    run = tmp_path / "run"
    result = runner.invoke(app, ["fit", "--signal", "audio", str(DATASETS / "speech-16k.wav"), "-o", str(run),
                                 "--steps", "30", "--params", "3000", "--quiet"])
    assert result.exit_code == 0, result.output
    metrics = json.loads((run / "metrics.json").read_text())["final"]
    assert {"psnr", "snr", "lsd"} <= set(metrics)
    assert (run / "comparison.png").is_file() and (run / "reconstruction.wav").is_file()
    assert soundfile.info(run / "reconstruction.wav").subtype == "PCM_16"
    out = tmp_path / "r.flac"
    result = runner.invoke(app, ["export", str(run), "--option", "sample_rate=22050", "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert soundfile.info(out).samplerate == 22050
    for rate, message in [("-5", "at least 1"), ("0", "at least 1"), ("1e9", "whole number"), ("2000000", "at most")]:
        bad = runner.invoke(app, ["export", str(run), "--option", f"sample_rate={rate}", "-o", str(tmp_path / "x.wav")])
        assert bad.exit_code == 2 and "--option sample_rate" in bad.output and message in bad.output, bad.output
    assert not (tmp_path / "x.wav").exists()
    # The deprecated flag still works, with a warning naming its replacement.
    old = runner.invoke(app, ["export", str(run), "--sample-rate", "8000", "-o", str(tmp_path / "old.wav")])
    assert old.exit_code == 0 and "--option sample_rate" in old.output
    assert soundfile.info(tmp_path / "old.wav").samplerate == 8000
    mp = tmp_path / "song.m4a"
    mp.write_bytes(b"\x00\x00\x00\x20ftypM4A " + b"\x00" * 200)
    unsupported = runner.invoke(app, ["fit", "--signal", "audio", str(mp), "-o", str(tmp_path / "r2"), "--quiet"])
    assert unsupported.exit_code == 2 and "not readable audio" in unsupported.output and str(mp) in unsupported.output


def test_a_recording_too_large_for_the_machine_is_refused_before_reading(tmp_path, monkeypatch):
    import inrkit.resources as resources
    from inrkit.plugins.audio.io import load_audio

    path = tmp_path / "long.wav"
    soundfile.write(path, np.zeros((16000, 2), dtype=np.float32) + 0.1, 16000)
    exactly = int(16000 * 2 * 4 / resources.MEMORY_SHARE)
    monkeypatch.setattr(resources, "physical_memory", lambda: exactly)  # one float32 copy fits exactly
    assert load_audio(path).samples == 16000
    monkeypatch.setattr(resources, "physical_memory", lambda: exactly - 16)
    with pytest.raises(InputError, match=r"16,000 frames x 2 channels need 0.0 GiB.*cut it into shorter pieces"):
        load_audio(path)


def test_an_image_too_large_for_the_machine_is_refused_before_decoding(tmp_path, monkeypatch):
    import inrkit.resources as resources
    from PIL import Image as PILImage

    from inrkit.plugins.image.io import load_image

    path = tmp_path / "wide.png"
    PILImage.new("RGB", (300, 200)).save(path)
    monkeypatch.setattr(resources, "physical_memory", lambda: int(300 * 200 * 3 * 8 / resources.MEMORY_SHARE) - 8)
    with pytest.raises(InputError, match=r"300x200 pixels x 3 channels need .* GiB.*downscale it"):
        load_image(path)
