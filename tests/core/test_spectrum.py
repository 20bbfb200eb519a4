import math

import numpy as np
import pytest
import torch

from inrkit.config import ModelConfig
from inrkit.errors import ConfigError, TooManyTerms
from inrkit.fourier import (
    centered,
    energy_fraction_above,
    lattice_fft,
    model_spectrum,
    radial_profile,
    reachable_energy_fraction,
    suggest_bandlimit,
)
from inrkit.model import SinusoidalINR, build_model
from inrkit.signal import Signal, grid_coordinates, grid_extent
from inrkit.spectrum import bessel_j, enumerate_terms, predict_spectrum, term_amplitudes


def series_j(n, x, terms=40):
    """J_n(x) from its power series (independent of scipy), n >= 0."""
    return sum((-1) ** s * (x / 2) ** (2 * s + n) / (math.factorial(s) * math.factorial(s + n)) for s in range(terms))


@pytest.mark.parametrize("order", [0, 1, 2, 3, 5, -1, -4])
def test_bessel_matches_series_and_integral(order):
    xs = np.linspace(-3, 3, 13)
    n = abs(order)
    expected = np.array([series_j(n, x) for x in xs]) * ((-1) ** n if order < 0 else 1)
    assert np.allclose(bessel_j(order, xs), expected, atol=1e-13)
    # Bessel's integral J_n(x) = 1/pi int_0^pi cos(n t - x sin t) dt, at a large argument
    t = np.linspace(0, np.pi, 200001)
    for x in (7.5, 20.0):
        integral = np.trapezoid(np.cos(order * t - x * np.sin(t)), t) / np.pi
        assert bessel_j(order, x) == pytest.approx(integral, abs=1e-9)


def test_bessel_series_range_matches_scipy_elementwise():
    """Inside SERIES_REACH bessel_j sums its own series; scipy's Amos routines are the independent check."""
    from scipy.special import jv

    from inrkit.spectrum import SERIES_REACH

    rng = np.random.default_rng(3)
    x = rng.uniform(-SERIES_REACH, SERIES_REACH, size=(64, 9))
    order = rng.integers(-6, 7, size=(64, 9))
    assert np.allclose(bessel_j(order, x), jv(order.astype(float), x), rtol=1e-13, atol=1e-16)
    assert bessel_j(0, np.zeros(3)).tolist() == [1.0, 1.0, 1.0] and bessel_j(-3, np.zeros(2)).tolist() == [0.0, 0.0]


def small_model(dims, freqs, width=5, c=1.0, seed=0, channels=2):
    cfg = ModelConfig(dims=dims, out_channels=channels, input_frequencies=len(freqs), width=width,
                      bandlimit=(40,) * dims, low_bandlimit=(40,) * dims, c_low=c, c_high=c, seed=seed,
                      output_offset=(0.5,) * channels, output_scale=(2.0,) * channels)
    model = SinusoidalINR(cfg, torch.tensor(freqs)).double()
    with torch.no_grad():
        model.head.weight.normal_(0, 0.5)
        model.head.bias.fill_(0.1)
    return model


@pytest.mark.parametrize(
    "dims, freqs, samples",
    [(1, [[1], [4], [9]], 512), (2, [[1, 0], [0, 1], [3, -2], [2, 5]], 128)],
)
def test_predicted_spectrum_equals_fft_of_the_network(dims, freqs, samples):
    """Tolerance: max |F_pred - F_fft| < 1e-9 (float64; terms up to order 12 above 1e-14)."""
    model = small_model(dims, freqs)
    predicted = predict_spectrum(model, max_order=12, tol=1e-14)
    measured = model_spectrum(model, spacing=4.0 / samples, dims=dims)
    radius = samples // 2 - 1
    dense_pred = predicted.dense(radius)
    dense_fft = centered(measured, radius)
    assert np.abs(dense_pred - dense_fft).max() < 1e-9
    assert np.abs(dense_fft).max() > 0.05  # not trivially zero
    # Hermitian: F(-q) = conj F(q)
    flipped = dense_pred[tuple([slice(None, None, -1)] * dims)]
    assert np.allclose(flipped, np.conj(dense_pred))


def test_predicted_spectrum_smoke_3d():
    model = small_model(3, [[1, 0, 0], [0, 1, 0], [0, 0, 1], [2, -1, 3]], width=3, channels=1)
    predicted = predict_spectrum(model, max_order=6, tol=1e-10)
    measured = centered(model_spectrum(model, spacing=4.0 / 48, dims=3), 23)
    # truncated at order 6: agreement to 1e-4 (largest omitted term bound ~3e-6, many of them)
    assert np.abs(predicted.dense(23) - measured).max() < 1e-4
    bins, profile = radial_profile(np.abs(measured[..., 0]) ** 2)
    assert bins[0] == 0 and len(bins) == len(profile)


def test_bound_holds_on_every_term_of_a_trained_model():
    torch.manual_seed(0)
    cfg = ModelConfig(dims=2, out_channels=1, input_frequencies=24, width=12, bandlimit=(12, 12), low_bandlimit=(4, 4))
    model = build_model(cfg)
    x = torch.rand(256, 2) * 2 - 1
    y = torch.sin(7 * x[:, :1]) * torch.cos(5 * x[:, 1:])
    optimizer = torch.optim.Adam(model.parameters(), lr=0.05)
    for _ in range(60):
        optimizer.zero_grad()
        torch.mean((model(x) - y) ** 2).backward()
        optimizer.step()
        model.project_()
    a = model.hidden[0].scaled_weight().detach().double().numpy()
    assert np.abs(a).max() > 0.5, "training moved the weights towards their bounds"
    checked = 0
    for terms in enumerate_terms(np.abs(a).max(axis=0), max_order=3, tol=1e-8, max_terms=10**7):
        alpha, bound = term_amplitudes(model, terms)
        assert (np.abs(alpha) <= bound * (1 + 1e-12) + 1e-300).all()
        checked += alpha.size
    assert checked > 10_000


def test_talk_example_high_orders_are_negligible():
    """Input frequencies (2 pi / p) [1, 15]: terms k*1 + l*15 with max(|k|, |l|) >= 5 carry negligible amplitude."""
    weights = np.array([1.0, 1.0])  # at the bound c = 1
    k = np.arange(-8, 9)
    kk, ll = np.meshgrid(k, k, indexing="ij")
    amplitude = np.abs(bessel_j(kk, weights[0]) * bessel_j(ll, weights[1]))
    high = np.maximum(np.abs(kk), np.abs(ll)) >= 5
    assert amplitude[high].max() < 3e-4 < amplitude[~high].max()
    assert amplitude[high].max() <= (0.5**5 / math.factorial(5)) * bessel_j(0, 1.0)


def test_lattice_fft_of_a_known_series():
    samples = 64
    x = np.arange(samples) * 4.0 / samples - 2.0
    f = 0.3 + np.cos(2 * np.pi * 3 * x / 4.0) + 0.5 * np.sin(2 * np.pi * 7 * x / 4.0)
    spectrum = centered(lattice_fft(f[:, None]), 10)[:, 0]
    assert spectrum[10] == pytest.approx(0.3)
    assert spectrum[13] == pytest.approx(0.5) and spectrum[7] == pytest.approx(0.5)
    assert spectrum[17] == pytest.approx(-0.25j) and spectrum[3] == pytest.approx(0.25j)


def test_energy_above_cutoff_closed_form():
    samples = 64
    x = np.arange(samples) * 4.0 / samples - 2.0
    f = np.cos(2 * np.pi * 3 * x / 4.0) + 0.5 * np.sin(2 * np.pi * 7 * x / 4.0)
    spectrum = centered(lattice_fft(f[:, None]), 20)
    # energies 2*0.25 (q=+-3) and 2*0.0625 (q=+-7)
    assert energy_fraction_above(spectrum, 5) == pytest.approx(0.125 / 0.625)


def band_signal(frequencies, samples=129, phase=0.0, decay=0.0):
    shape = (samples,)
    extent = grid_extent(shape)
    x = grid_coordinates(shape, extent)[:, 0].double()
    values = sum(q**-decay * torch.cos(2 * math.pi * q * x / 4.0 + phase * q) for q in frequencies)
    return Signal.from_grid(values.float().unsqueeze(1), shape, data_range=2.0)


def test_bandlimit_suggestion_follows_the_signal():
    low, high = band_signal([2, 6, 10]), band_signal([2, 30, 60])
    assert suggest_bandlimit(low, params=4000, minimum=1) == 10
    assert suggest_bandlimit(high, params=4000, minimum=1) == 60
    assert reachable_energy_fraction(high, 31) == pytest.approx(2 / 3, abs=0.02)
    assert reachable_energy_fraction(high, 61) == pytest.approx(1.0, abs=1e-6)
    # A broad spectrum: a bigger model affords more coefficients, so its bandlimit grows.
    broad = band_signal(list(range(1, 120)), decay=1.0)  # amplitudes 1/q, like natural signals
    sizes = [suggest_bandlimit(broad, params=p, minimum=1) for p in (64, 200, 400)]
    assert sizes == sorted(sizes) and sizes[0] < sizes[-1]
    assert suggest_bandlimit(broad, params=10**6) <= 128  # clamped to Nyquist (129 samples: 128 in lattice units)


def test_refusals():
    with pytest.raises(TooManyTerms, match="raise --tol"):
        predict_spectrum(small_model(1, [[i] for i in range(1, 40)], width=3), max_order=6, tol=1e-30, max_terms=1000)
    # the limit counts terms: k = 0 and k_j = +-1 for each of two inputs are 5, one more than 4
    with pytest.raises(TooManyTerms):
        predict_spectrum(small_model(1, [[1], [2]]), max_order=1, tol=1e-30, max_terms=4)
    first_order = predict_spectrum(small_model(1, [[1], [2]]), max_order=1, tol=1e-30, max_terms=5)
    assert first_order.terms == 5 and sorted(first_order.frequencies[:, 0]) == [-2, -1, 0, 1, 2]
    assert issubclass(TooManyTerms, ConfigError)  # callers that catch ConfigError still do
    from inrkit.model import Siren

    siren = Siren(ModelConfig(dims=1, out_channels=1, input_frequencies=4, width=4, architecture="siren"))
    with pytest.raises(ConfigError, match="lattice or uniform model; siren has no input layer"):
        predict_spectrum(siren)
    from inrkit.peers import build_peer

    for peer in ("finer", "ffn", "hashgrid"):  # every peer is named, not called SIREN
        config = ModelConfig(dims=2, out_channels=1, input_frequencies=8, width=8, hidden_layers=2, architecture=peer,
                             hash_levels=2, hash_table_size=64, hash_max_resolution=16)
        with pytest.raises(ConfigError, match=f"; {peer} has no input layer"):
            predict_spectrum(build_peer(config))


@pytest.mark.parametrize("skip", [0.0, 0.5])
def test_deeper_model_prediction_is_truncated_but_close(skip):
    """Two hidden layers (the second carrying ``skip`` of its input past it): carried frequencies and orders
    truncated; agreement with the FFT within 2e-3 of the peak."""
    cfg = ModelConfig(dims=1, out_channels=1, input_frequencies=3, width=4, hidden_layers=2, bandlimit=(12,),
                      low_bandlimit=(12,), c_low=0.6, c_high=0.6, skip=skip)
    model = SinusoidalINR(cfg, torch.tensor([[1], [3], [7]])).double()
    with torch.no_grad():
        for layer in model.hidden:
            layer.weight.mul_(0.5)
    predicted = predict_spectrum(model, max_order=6, tol=1e-12, carried=64)
    measured = centered(model_spectrum(model, spacing=4.0 / 1024, dims=1), 200)
    error = np.abs(predicted.dense(200) - measured).max()
    assert error < 2e-3 * np.abs(measured).max()
    assert error <= predicted.omitted_bound * 50 + 1e-12


def test_unique_rows_equals_numpy_unique_over_rows():
    import numpy as np

    from inrkit.spectrum import unique_rows

    rng = np.random.default_rng(3)
    for rows in (rng.integers(-40, 41, size=(5000, 2)), rng.integers(-5, 6, size=(3000, 3)),
                 rng.integers(-3, 4, size=(100, 1)), np.array([[2**40, -(2**40)], [0, 0], [2**40, -(2**40)]]),
                 np.array([[1, -2], [1, -2]]), np.zeros((0, 2), dtype=np.int64)):
        expected, expected_inverse = np.unique(rows, axis=0, return_inverse=True)
        unique, inverse = unique_rows(rows)
        assert np.array_equal(unique, expected) and np.array_equal(inverse, expected_inverse.reshape(-1))
        assert np.array_equal(unique[inverse], rows)  # every row is its unique row
