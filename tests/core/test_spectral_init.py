import math

import pytest
import torch
from inrkit.errors import ConfigError
from inrkit.lattice import in_half_space, sample_lattice_frequencies
from inrkit.signal import Signal
from inrkit.spectral_init import (
    sample_spectral_frequencies,
    signal_frequencies,
    spectral_magnitude,
    spectrum_fits,
)

PERIOD = 4.0


def cosines(shape, frequencies, amplitudes=None, seed=0):
    """A grid signal made of known lattice frequencies: sum_k a_k cos(2 pi q_k . x / p + phi_k)."""
    axes = [torch.linspace(-1, 1, n, dtype=torch.float64) for n in shape]
    grid = torch.stack(torch.meshgrid(*axes, indexing="ij"), dim=-1)
    phases = torch.rand(len(frequencies), generator=torch.Generator().manual_seed(seed), dtype=torch.float64) * 6.28
    values = torch.zeros(shape, dtype=torch.float64)
    for k, q in enumerate(frequencies):
        a = 1.0 if amplitudes is None else amplitudes[k]
        values += a * torch.cos(2 * math.pi * (grid @ torch.tensor(q, dtype=torch.float64)) / PERIOD + phases[k])
    return Signal.from_grid(values.reshape(-1, 1).float(), shape)


KNOWN_2D = [(15, 3), (4, -17), (11, 11), (18, -9), (-0, 16)]


def check_valid(freqs, count, bandlimit, low):
    dims = len(bandlimit)
    assert freqs.shape == (count, dims) and freqs.dtype == torch.long
    assert in_half_space(freqs).all()
    assert len({tuple(r) for r in freqs.tolist()}) == count, "duplicates"
    assert (freqs.abs() <= torch.tensor(bandlimit)).all(), "outside the bandlimit"
    assert torch.equal(freqs[:dims], torch.eye(dims, dtype=torch.long)), "canonical basis first"
    reference = sample_lattice_frequencies(count, bandlimit, low, generator=torch.Generator().manual_seed(5))
    in_low = lambda f: int((f.abs() <= torch.tensor(low)).all(dim=1).sum())
    assert in_low(freqs) == in_low(reference), "the low block keeps the box sampler's share"


@pytest.mark.parametrize("spectral_low", [False, True])
def test_spectral_frequencies_are_valid_lattice_draws(spectral_low):
    signal = cosines((64, 64), KNOWN_2D)
    bandlimit, low = (20, 20), (6, 6)
    vectors, magnitude = spectral_magnitude(signal, bandlimit, PERIOD)
    for seed in range(3):
        freqs = sample_spectral_frequencies(60, bandlimit, low, vectors, magnitude, 0.7,
                                            torch.Generator().manual_seed(seed), spectral_low=spectral_low)
        check_valid(freqs, 60, bandlimit, low)


def test_dense_low_block_stays_whole():
    # 1-D low block 1..5 is smaller than the low share: all of it is taken, as by the box sampler.
    signal = cosines((256,), [(40,), (77,)])
    vectors, magnitude = spectral_magnitude(signal, (100,), PERIOD)
    freqs = sample_spectral_frequencies(20, (100,), (5,), vectors, magnitude, 0.7, spectral_low=True)
    assert set(range(1, 6)) <= {int(f) for f in freqs[:, 0]}
    check_valid(freqs, 20, (100,), (5,))


def test_magnitude_peaks_at_the_known_frequencies():
    signal = cosines((64, 64), KNOWN_2D)
    vectors, magnitude = spectral_magnitude(signal, (20, 20), PERIOD, smoothing=0.0)
    top = {tuple(v) for v in vectors[torch.argsort(magnitude, descending=True)[:5]].tolist()}
    expected = {q if next(c for c in q if c) > 0 else tuple(-c for c in q) for q in KNOWN_2D}
    assert top == expected
    assert in_half_space(vectors).all() and (vectors.abs() <= 20).all()


def test_draws_follow_the_known_spectrum():
    # Independent check: the signal is built from KNOWN_2D, so the high draws must land on or next to them far
    # more often than the uniform box sampler does. The samples span half a period, so the data resolve a
    # lattice frequency to about two bins: "next to" is within 2 bins on every axis.
    signal = cosines((96, 96), KNOWN_2D)
    bandlimit, low = (48, 48), (6, 6)
    known = torch.tensor([q if next(c for c in q if c) > 0 else tuple(-c for c in q) for q in KNOWN_2D])
    vectors, magnitude = spectral_magnitude(signal, bandlimit, PERIOD)

    def near(freqs):
        high = freqs[~(freqs.abs() <= torch.tensor(low)).all(dim=1)]
        distance = (high[:, None, :] - known[None]).abs().amax(dim=2).amin(dim=1)
        return float((distance <= 2).float().mean()), {tuple(r) for r in high.tolist()}

    hits, uniform_hits, exact = [], [], 0
    for seed in range(10):
        generator = torch.Generator().manual_seed(seed)
        freqs = sample_spectral_frequencies(60, bandlimit, low, vectors, magnitude, 0.7, generator)
        share, high = near(freqs)
        hits.append(share)
        exact += sum(tuple(q) in high for q in known.tolist())
        uniform_hits.append(near(sample_lattice_frequencies(60, bandlimit, low, generator=generator))[0])
    assert sum(uniform_hits) / 10 < 0.05  # 5 x 25 of ~4,600 high vectors
    assert sum(hits) / 10 > 0.6
    assert exact >= 5, "the known frequencies themselves: a uniform draw hits one of them 0.2 times in 10 seeds"


def test_seeded_and_deterministic():
    signal = cosines((48, 48), KNOWN_2D)
    a = signal_frequencies(signal, 50, (16, 16), (5, 5), generator=torch.Generator().manual_seed(2))
    b = signal_frequencies(signal, 50, (16, 16), (5, 5), generator=torch.Generator().manual_seed(2))
    c = signal_frequencies(signal, 50, (16, 16), (5, 5), generator=torch.Generator().manual_seed(3))
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_point_sets_keep_the_box_sampler():
    points = Signal(values=torch.zeros(100, 1), nyquist=(10.0, 10.0, 10.0), data_range=1.0,
                    points=torch.rand(100, 3) * 2 - 1)
    assert not spectrum_fits(points)
    drawn = signal_frequencies(points, 30, (8, 8, 8), (3, 3, 3), generator=torch.Generator().manual_seed(4))
    box = sample_lattice_frequencies(30, (8, 8, 8), (3, 3, 3), generator=torch.Generator().manual_seed(4))
    assert torch.equal(drawn, box)
    with pytest.raises(ConfigError, match="gridded"):
        spectral_magnitude(points, (8, 8, 8))


def test_bad_uniform_share_is_refused():
    signal = cosines((32,), [(9,)])
    vectors, magnitude = spectral_magnitude(signal, (20,), PERIOD)
    with pytest.raises(ConfigError, match="uniform share"):
        sample_spectral_frequencies(8, (20,), (3,), vectors, magnitude, uniform_share=1.5)


# --- the option: ModelConfig.input_sampling, build_model(config, signal), the CLI ---


def lattice_config(**overrides):
    from inrkit.config import ModelConfig

    base = {"dims": 2, "out_channels": 1, "input_frequencies": 40, "width": 16, "bandlimit": (20, 20), "low_bandlimit": (6, 6)}
    base.update(overrides)
    return ModelConfig(**base)


def test_build_model_draws_from_the_signal_with_spectrum():
    from inrkit.model import build_model

    signal = cosines((64, 64), KNOWN_2D)
    box = build_model(lattice_config()).input.frequencies.long()
    spectral = build_model(lattice_config(input_sampling="spectrum"), signal).input.frequencies.long()
    check_valid(spectral, 40, (20, 20), (6, 6))
    assert not torch.equal(spectral, box)
    assert torch.equal(spectral, signal_frequencies(signal, 40, (20, 20), (6, 6), 0.7, torch.Generator().manual_seed(0)))
    # the signal does not change a box model
    assert torch.equal(build_model(lattice_config(), signal).input.frequencies.long(), box)


@pytest.mark.parametrize("overrides, message", [
    ({"input_sampling": "fourier"}, "input sampling must be one of box, spectrum"),
    ({"input_sampling": "spectrum", "architecture": "uniform"}, "applies to the lattice architecture"),
])
def test_bad_input_sampling_is_refused(overrides, message):
    with pytest.raises(ConfigError, match=message):
        lattice_config(**overrides)


def test_spectrum_without_a_signal_is_refused():
    from inrkit.model import build_model

    with pytest.raises(ConfigError, match="pass it to build_model"):
        build_model(lattice_config(input_sampling="spectrum"))


def test_cli_input_sampling(tmp_path):
    import numpy as np
    from inrkit.checkpoint import load_run
    from inrkit.cli.main import app
    from PIL import Image
    from typer.testing import CliRunner

    y, x = np.mgrid[0:24, 0:32]
    path = tmp_path / "small.png"
    Image.fromarray(((np.sin(x * 1.3) + np.cos(y * 0.7 + x * 0.4)) * 60 + 128).astype(np.uint8)).save(path)
    runner = CliRunner()
    bad = runner.invoke(app, ["fit", str(path), "-o", str(tmp_path / "bad"), "--input-sampling", "fourier", "-q"])
    lines = [line for line in bad.output.splitlines() if line.strip()]
    assert bad.exit_code == 2 and len(lines) == 1 and "box, spectrum" in lines[0], bad.output
    assert not (tmp_path / "bad").exists()
    done = runner.invoke(app, ["fit", str(path), "-o", str(tmp_path / "run"), "--input-sampling", "spectrum",
                               "--steps", "3", "--params", "600", "-q"])
    assert done.exit_code == 0, done.output
    run = load_run(tmp_path / "run")
    assert run.model_config.input_sampling == "spectrum"


def test_spectral_support_of_tones_and_noise():
    from inrkit.spectral_init import AUTO_SUPPORT, choose_sampling, spectral_support

    tones = cosines((96, 96), KNOWN_2D)
    noise = Signal.from_grid(torch.randn(96 * 96, 1, generator=torch.Generator().manual_seed(0)), (96, 96))
    # White noise: |F| is Rayleigh, so (E|F|)^2 / E|F|^2 = pi / 4 before smoothing, which only flattens it further.
    assert math.pi / 4 - 0.05 < spectral_support(noise, (40, 40)) <= 1.0
    assert spectral_support(tones, (40, 40)) < 0.1  # 5 peaks, each smeared over ~40 of 3,280 bins
    assert choose_sampling(tones, (40, 40)) == "spectrum" and choose_sampling(noise, (40, 40)) == "box"
    points = Signal(values=torch.zeros(50, 1), nyquist=(5.0, 5.0), data_range=1.0, points=torch.rand(50, 2))
    assert spectral_support(points, (4, 4)) is None and choose_sampling(points, (4, 4)) == "box"
    assert 0 < AUTO_SUPPORT < math.pi / 4


def test_plan_model_resolves_auto():
    from inrkit.config import ModelOptions
    from inrkit.planning import plan_model
    from inrkit.plugin_types import SignalType

    kind = SignalType(name="test", load=lambda path: None, extensions=())
    tones = cosines((96, 96), KNOWN_2D)
    assert plan_model(tones, kind, ModelOptions(params=3000, input_sampling="auto")).input_sampling == "spectrum"
    assert plan_model(tones, kind, ModelOptions(params=3000, input_sampling="box")).input_sampling == "box"
    uniform = ModelOptions(params=3000, input_sampling="auto", architecture="uniform")
    assert plan_model(tones, kind, uniform).input_sampling == "box"
    with pytest.raises(ConfigError, match="box, spectrum or auto"):
        plan_model(tones, kind, ModelOptions(params=3000, input_sampling="fourier"))


def test_deep_models_take_the_spectrum_at_a_wider_support(monkeypatch):
    import inrkit.spectral_init as spectral_init
    from inrkit.spectral_init import AUTO_SUPPORT, DEEP_AUTO_SUPPORT, choose_sampling

    assert AUTO_SUPPORT < DEEP_AUTO_SUPPORT < math.pi / 4  # white noise (support ~pi/4) keeps the box either way
    tones = cosines((32, 32), KNOWN_2D)
    between = (AUTO_SUPPORT + DEEP_AUTO_SUPPORT) / 2
    monkeypatch.setattr(spectral_init, "spectral_support", lambda *args, **kwargs: between)
    assert choose_sampling(tones, (12, 12)) == "box"
    assert choose_sampling(tones, (12, 12), hidden_layers=4) == "spectrum"
    monkeypatch.setattr(spectral_init, "spectral_support", lambda *args, **kwargs: DEEP_AUTO_SUPPORT + 0.01)
    assert choose_sampling(tones, (12, 12), hidden_layers=4) == "box"


def test_a_bundled_photo_of_middling_support_gets_the_spectrum_only_when_deep():
    from pathlib import Path

    from inrkit.config import ModelOptions
    from inrkit.host import get_host
    from inrkit.planning import plan_model
    from inrkit.sources import load_signal
    from inrkit.spectral_init import AUTO_SUPPORT, DEEP_AUTO_SUPPORT, spectral_support

    photo = Path(__file__).resolve().parents[2] / "datasets" / "chelsea-128.png"
    signal, kind = load_signal(photo, None, get_host())
    deep = plan_model(signal, kind, ModelOptions())
    assert deep.hidden_layers > 1 and AUTO_SUPPORT < spectral_support(signal, deep.bandlimit) < DEEP_AUTO_SUPPORT
    assert deep.input_sampling == "spectrum"
    assert plan_model(signal, kind, ModelOptions(hidden_layers=1)).input_sampling == "box"
