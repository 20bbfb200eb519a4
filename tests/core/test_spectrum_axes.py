"""Spectra of grids whose axes have different sample spacings (``Signal.from_grid(..., spacing=...)``)."""

import math

import numpy as np
import pytest
import torch

from inrkit.config import ModelConfig
from inrkit.fourier import (
    centered,
    energy_fraction_above,
    grid_spacing,
    model_spectrum,
    noise_energy_fraction,
    nyquist_cutoffs,
    reachable_energy_fraction,
    signal_spectrum,
)
from inrkit.model import build_model
from inrkit.signal import Signal
from inrkit.spectrum_report import SpectrumRecorder, spectrum_report

PERIOD = 4.0


class LatticeCosine(torch.nn.Module):
    """``0.7 cos(2 pi q . x / p + 0.3)`` for one integer lattice frequency ``q``: one bin pair of the spectrum."""

    def __init__(self, q):
        super().__init__()
        self.q = torch.tensor(q, dtype=torch.float64)
        self.amplitude = torch.nn.Parameter(torch.tensor(0.7, dtype=torch.float64))

    def forward(self, x):
        return (self.amplitude * torch.cos(2 * math.pi * (x @ self.q) / PERIOD + 0.3))[:, None]


def anisotropic(shape=(32, 16), spacing=(1.0, 2.0), seed=0):
    values = torch.rand(math.prod(shape), 1, generator=torch.Generator().manual_seed(seed))
    return Signal.from_grid(values, shape, spacing=spacing)


def test_per_axis_spacing_and_nyquist_cutoffs():
    signal = anisotropic()
    # lengths 31 and 2 * 15 = 30: axis 0 spans [-1, 1] with h0 = 2/31, axis 1 has h1 = 4/31
    assert grid_spacing(signal.grid_shape, signal.extent) == pytest.approx((2 / 31, 4 / 31), rel=1e-12)
    # Nyquist 1 / (2 h) in lattice units p / (2 h): 31 and 15.5
    assert nyquist_cutoffs(signal) == (31, 15)
    square = Signal.from_grid(torch.zeros(32 * 16, 1), (32, 16))
    assert nyquist_cutoffs(square) == (31, 31)


def test_lattice_sine_lands_in_its_own_bin_with_per_axis_spacing():
    q = (5, -3)
    spectrum = model_spectrum(LatticeCosine(q), spacing=(PERIOD / 32, PERIOD / 16), dims=2)
    assert spectrum.shape == (32, 16, 1)
    expected = np.zeros((32, 16), dtype=np.complex128)
    expected[q[0] % 32, q[1] % 16] = 0.35 * np.exp(0.3j)
    expected[-q[0] % 32, -q[1] % 16] = 0.35 * np.exp(-0.3j)
    assert np.abs(spectrum[..., 0] - expected).max() < 1e-12


def test_grid_spectrum_of_an_anisotropic_grid_is_the_direct_fourier_sum():
    """The padded FFT is ``sum_x (v(x) - mean) exp(-2 pi i q . x / p) / (P0 P1)`` over the samples' coordinates."""
    shape = (33, 17)  # lengths 32 and 2 * 16: both axes span [-1, 1], h = (1/16, 1/8), on the period grid exactly
    signal = anisotropic(shape, seed=1)
    spectrum = signal_spectrum(signal)
    samples = (64, 32)  # p / h per axis
    assert spectrum.shape == (*samples, 1)
    x0, x1 = np.meshgrid(np.linspace(-1, 1, shape[0]), np.linspace(-1, 1, shape[1]), indexing="ij")
    values = signal.values.double().numpy()[:, 0].reshape(shape)
    values = values - values.mean()
    radius = (20, 10)
    direct = np.zeros((2 * radius[0] + 1, 2 * radius[1] + 1), dtype=np.complex128)
    for a in range(-radius[0], radius[0] + 1):
        for b in range(-radius[1], radius[1] + 1):
            phase = np.exp(-2j * np.pi * (a * x0 + b * x1) / PERIOD)
            direct[a + radius[0], b + radius[1]] = (values * phase).sum() / math.prod(samples)
    assert np.abs(centered(spectrum, radius)[..., 0] - direct).max() < 1e-13
    assert np.abs(direct).max() > 1e-3  # not trivially zero


def test_noise_above_nyquist_is_counted_per_axis():
    signal = anisotropic()  # lattice Nyquist (31, 15)
    # q1 = 20 is above axis 1's Nyquist but would be below the finer axis 0's
    assert noise_energy_fraction(LatticeCosine((0, 20)), signal) == pytest.approx(1.0, abs=1e-12)
    assert noise_energy_fraction(LatticeCosine((20, 0)), signal) == pytest.approx(0.0, abs=1e-12)
    assert noise_energy_fraction(LatticeCosine((0, 12)), signal) == pytest.approx(0.0, abs=1e-12)


class Cosines(torch.nn.Module):
    """``sum_k a_k cos(2 pi q_k . x / p + k)``: one bin pair per term, energy ``a_k^2 / 2`` each."""

    def __init__(self, terms):
        super().__init__()
        self.q = torch.tensor([q for q, _ in terms], dtype=torch.float64)
        self.a = torch.nn.Parameter(torch.tensor([a for _, a in terms], dtype=torch.float64))

    def forward(self, x):
        phase = 2 * math.pi * (x @ self.q.T) / PERIOD + torch.arange(len(self.a), dtype=torch.float64)
        return (self.a * torch.cos(phase)).sum(dim=1, keepdim=True)


@pytest.mark.parametrize("shape, high", [
    ((32, 16), (0, 16)), ((32, 16), (0, 30)), ((32, 16), (0, 31)), ((32, 16), (32, 0)), ((32, 16), (62, 0)),
    ((32, 16), (63, 5)),  # cutoffs (31, 15): odd, P = 3c + 2
    ((33, 17), (0, 17)), ((33, 17), (0, 33)), ((33, 17), (65, 0)), ((33, 17), (-40, 33)),  # (32, 16): even, 3c + 3
])
def test_noise_share_is_the_closed_form_up_to_twice_nyquist(shape, high):
    """A term anywhere up to ``2 c_i + 1`` on an axis is noise, and the share is its energy's."""
    signal = anisotropic(shape)
    c0, c1 = nyquist_cutoffs(signal)
    assert (c0, c1) == ((31, 15) if shape == (32, 16) else (32, 16))
    model = Cosines([((3, 2), 0.8), ((c0, c1), 0.5), (high, 0.3)])
    expected = 0.3**2 / (0.8**2 + 0.5**2 + 0.3**2)
    assert noise_energy_fraction(model, signal) == pytest.approx(expected, rel=1e-9)


def test_per_axis_cutoffs_and_reach():
    spectrum = np.zeros((11, 7, 1))  # centred, radii (5, 3)
    spectrum[5 + 4, 3, 0] = spectrum[5 - 4, 3, 0] = 1.0  # q = (+-4, 0)
    spectrum[5, 3 + 2, 0] = spectrum[5, 3 - 2, 0] = 2.0  # q = (0, +-2)
    assert energy_fraction_above(spectrum, (3, 3)) == pytest.approx(2 / 10)
    assert energy_fraction_above(spectrum, (4, 1)) == pytest.approx(8 / 10)
    assert energy_fraction_above(spectrum, 1) == pytest.approx(1.0)
    signal = anisotropic()
    assert reachable_energy_fraction(signal, (100, 100)) == pytest.approx(1.0)
    assert reachable_energy_fraction(signal, (100, 0.5)) < reachable_energy_fraction(signal, (100, 100))
    assert reachable_energy_fraction(signal, (0.5, 100)) < reachable_energy_fraction(signal, (100, 100))


def test_report_and_recorder_on_an_anisotropic_grid():
    signal = anisotropic()
    model = build_model(ModelConfig(dims=2, out_channels=1, input_frequencies=6, width=8, bandlimit=(6, 6),
                                    low_bandlimit=(3, 3), seed=0))
    figure, summary = spectrum_report(model, signal, bandlimit=(6, 6))
    assert summary["nyquist"] == 31 and "omitted_bound" in summary["predicted"]
    assert 0.0 <= summary["noise_energy_fraction"] <= 1.0
    assert figure.width > 3 * 256  # three square heat maps
    recorder = SpectrumRecorder(signal, every=1, max_frames=2)

    class Step:
        def __init__(self, step):
            self.step, self.model = step, model

    for index in range(3):
        recorder.inrkit_step_end(Step(index))
    # radius per axis: min(Nyquist, P // 2 - 1) with P = (62, 31) bins on the period
    assert [i for i, _ in recorder.frames] == [0, 1] and recorder.frames[0][1].shape == (61, 29)
    assert recorder.figure().height > 200
