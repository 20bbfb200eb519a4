"""Rate-distortion helpers (inrkit rd): envelope, interpolation, crossings, and the plugins' codec rows."""

import io
import math

import numpy as np
import pytest
import torch
from inrkit.host import get_host
from inrkit.ratedistortion import comparison, crossings, curves, interpolate, measure
from inrkit.signal import Signal
from PIL import Image


def row(method, rate, value):
    return {"method": method, "setting": "", "bytes": int(rate * 100), "rate": rate, "rate_unit": "bpp",
            "metrics": {"psnr": value}}


def test_envelope_drops_dominated_points_and_interpolates_in_log_rate():
    rows = [row("a", 1.0, 20.0), row("a", 2.0, 19.0), row("a", 4.0, 26.0), row("a", 8.0, math.inf)]
    rates, values = curves(rows)["a"]
    assert rates.tolist() == [1.0, 4.0] and values.tolist() == [20.0, 26.0]
    assert interpolate(rates, values, 2.0) == pytest.approx(23.0)  # halfway in log rate
    assert interpolate(rates, values, 0.5) is None and interpolate(rates, values, 5.0) is None


def test_crossing_of_two_lines_in_log_rate_is_found_where_algebra_puts_it():
    # inrkit: 20 + 6 log2(r); codec: 14 + 10 log2(r): equal at log2(r) = 1.5, r = 2^1.5.
    rates = np.array([0.5, 1, 2, 4, 8.0])
    mine = (rates, 20 + 6 * np.log2(rates))
    other = (rates, 14 + 10 * np.log2(rates))
    assert crossings(mine, other) == [pytest.approx(2 ** 1.5, rel=2e-3)]
    odd = np.array([0.1, 0.3, 0.7])  # rates whose exp(log(.)) is not exact: the grid must stay inside them
    assert crossings((odd, odd * 10), (odd * 1.0000001, odd * 10 + 1)) == []
    rows = [row("inrkit", r, v) for r, v in zip(*mine)] + [row("JPEG", r, v) for r, v in zip(*other)]
    at = comparison(rows, (1.0, 4.0, 1.5))["JPEG"]["at"]
    assert at["1"]["difference"] == pytest.approx(6.0) and at["4"]["difference"] == pytest.approx(-2.0)
    # 1.5 bpp buys inrkit's 1-bpp file, compared with the codec at 1 bpp (the same size)
    assert at["1.5"]["rate"] == 1.0 and at["1.5"]["difference"] == pytest.approx(6.0)


def test_a_lossless_codec_with_infinite_snr_is_compared_without_failing():
    """FLAC of a signal on the 16-bit grid measures SNR inf: its envelope is empty, and nothing crosses it."""
    rates = np.array([8.0, 16.0, 32.0])
    rows = [row("inrkit", r, v) for r, v in zip(rates, (10.0, 14.0, 17.0))] + \
        [row("FLAC", 256.0, math.inf), row("Ogg Vorbis", 16.0, 12.0), row("Ogg Vorbis", 32.0, 20.0)]
    assert len(curves(rows)["FLAC"][0]) == 0 and crossings(curves(rows)["inrkit"], curves(rows)["FLAC"]) == []
    result = comparison(rows, (16.0, 32.0))
    assert result["FLAC"]["at"]["16"]["difference"] is None and result["FLAC"]["crossings"] == []
    assert result["Ogg Vorbis"]["at"]["16"]["difference"] == pytest.approx(2.0)
    assert result["Ogg Vorbis"]["at"]["32"]["difference"] == pytest.approx(-3.0)


def test_image_rows_measure_both_sides_on_8_bit_pixels():
    rng = np.random.default_rng(0)
    pixels = (rng.random((32, 40, 3)) * 255).astype(np.uint8)
    values = torch.from_numpy(pixels.reshape(-1, 3).astype(np.float32) / 255 * 2 - 1)
    signal = Signal.from_grid(values, (32, 40), data_range=2.0, metadata={"mode": "RGB", "bit_depth": 8, "peak": 255})
    noisy = values + 0.02
    rows = measure(signal, type("T", (), {"name": "image"})(), [("test", 500, noisy)], get_host())
    ours = next(r for r in rows if r["method"] == "inrkit")
    expected = np.clip(np.round((noisy.numpy().reshape(32, 40, 3).astype(np.float64) + 1) / 2 * 255), 0, 255)
    mse = np.mean((expected - pixels) ** 2)
    assert ours["metrics"]["psnr"] == pytest.approx(10 * math.log10(255 ** 2 / mse))
    assert ours["rate"] == pytest.approx(500 * 8 / (32 * 40))
    jpeg = next(r for r in rows if r["method"] == "JPEG" and r["setting"] == "quality 50")
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="JPEG", quality=50, optimize=True)
    decoded = np.asarray(Image.open(io.BytesIO(buffer.getvalue())), dtype=np.float64)
    assert jpeg["bytes"] == len(buffer.getvalue())
    assert jpeg["metrics"]["psnr"] == pytest.approx(10 * math.log10(255 ** 2 / np.mean((decoded - pixels) ** 2)))


def test_audio_rows_include_lossless_flac_and_vorbis(tmp_path):
    t = torch.arange(8000, dtype=torch.float64) / 8000
    values = (0.5 * torch.sin(2 * math.pi * 440 * t)).float().reshape(-1, 1)
    values = torch.round(values * 32767) / 32767  # on the 16-bit grid, so FLAC is exact
    signal = Signal.from_grid(values, (8000,), data_range=2.0, metadata={"sample_rate": 8000})
    rows = measure(signal, type("T", (), {"name": "audio"})(), [("test", 1000, values)], get_host())
    flac = next(r for r in rows if r["method"] == "FLAC")
    assert flac["metrics"]["snr"] > 80
    import soundfile

    on_disk = tmp_path / "same.flac"  # the size of the same FLAC written to a file by libsndfile
    soundfile.write(on_disk, values.double().numpy(), 8000, format="FLAC", subtype="PCM_16")
    assert flac["bytes"] == on_disk.stat().st_size > 1000
    ours = next(r for r in rows if r["method"] == "inrkit")
    assert ours["rate"] == pytest.approx(1000 * 8 / 1.0 / 1000) and ours["metrics"]["snr"] > 80
    vorbis = [r for r in rows if r["method"] == "Ogg Vorbis"]
    assert len(vorbis) >= 5 and all(math.isfinite(r["metrics"]["lsd"]) for r in vorbis)
