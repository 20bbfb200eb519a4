"""Spectra measured by FFT on the model's lattice: of a sampled signal, of a model, and what follows from them.

Convention (as in :mod:`inrkit.spectrum`): a spectrum maps an integer lattice
frequency ``q`` to the complex coefficient ``F(q)`` of ``exp(2 pi i q . x / p)``
per channel.

Sampled spectra are per axis: a grid whose axes have different sample
spacings (``Signal.from_grid(..., spacing=...)``) is placed on one period with
each axis's own spacing, so axis ``i`` of the FFT has its own number of
samples ``P_i`` and resolves ``|q_i| < P_i / 2``; radii and cutoffs (Nyquist,
bandlimit) may be given per axis. From them: the energy above a cutoff (noise
above Nyquist), the energy the hidden layer can reach, and the suggested
bandlimit of ``--bandlimit auto``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch

from inrkit.errors import ConfigError, InputError
from inrkit.lattice import DEFAULT_PERIOD
from inrkit.signal import Signal


def per_axis(value, dims: int) -> tuple:
    """``value`` once per axis: a single number is repeated, a sequence must have one entry per axis."""
    if np.ndim(value) == 0:
        return (value,) * dims
    value = tuple(value)
    if len(value) != dims:
        raise ConfigError(f"need one value per axis ({dims}), got {len(value)}: {value}")
    return value


def grid_spacing(shape: Sequence[int], extent: Sequence[float]) -> tuple[float, ...]:
    """Sample spacing ``h_i = 2 e_i / (N_i - 1)`` per axis of a grid of half-extent ``extent``.

    Equal spacings (up to rounding: every grid made without ``spacing=``) come
    back as one value, the largest, on every axis. An axis with a single
    sample takes the coarsest spacing of the others.

    Raises
    ------
    InputError
        When no axis has two samples.
    """
    steps = [2.0 * (e / (n - 1)) if n > 1 else None for n, e in zip(shape, extent, strict=True)]
    known = [h for h in steps if h is not None]
    if not known:
        raise InputError(f"a grid of shape {tuple(shape)} has one sample per axis; its spectrum needs two on some axis")
    coarsest = max(known)
    if min(known) >= coarsest * (1 - 1e-9):
        return (coarsest,) * len(steps)
    return tuple(coarsest if h is None else h for h in steps)


def nyquist_cutoffs(signal: Signal, period: float = DEFAULT_PERIOD) -> tuple[int, ...]:
    """The largest lattice frequency per axis under the signal's Nyquist frequency, ``floor(nyquist_i p)``.

    Equal Nyquist frequencies (up to rounding) give ``floor(max(nyquist) p)`` on
    every axis; unequal ones (a grid with per-axis spacing) get each axis's
    own, an axis with a single sample the coarsest of the others.
    """
    shape = signal.grid_shape or (2,) * signal.dims
    nyquist = signal.nyquist
    sampled = [f for f, n in zip(nyquist, shape) if n > 1] or list(nyquist)
    if min(sampled) >= max(sampled) * (1 - 1e-9):
        return (int(math.floor(max(nyquist) * period)),) * len(nyquist)
    return tuple(int(math.floor((f if n > 1 else min(sampled)) * period + 1e-9)) for f, n in zip(nyquist, shape))


def period_grid(spacing: float | Sequence[float], dims: int, period: float) -> tuple[tuple[int, ...], torch.Tensor]:
    """Samples per axis ``P_i`` and coordinates ``[prod P_i, d]`` of one full period ``[-p/2, p/2)``.

    ``spacing``: one sample spacing for every axis, or one per axis.
    """
    samples = tuple(int(round(period / h)) for h in per_axis(spacing, dims))
    axes = [torch.arange(n, dtype=torch.float64) * (period / n) - period / 2 for n in samples]
    mesh = torch.meshgrid(*axes, indexing="ij")
    return samples, torch.stack([g.reshape(-1) for g in mesh], dim=1)


def lattice_fft(values: np.ndarray) -> np.ndarray:
    """Fourier coefficients on the lattice from samples of one period.

    Parameters
    ----------
    values:
        ``[P_0, ..., P_{d-1}, channels]`` samples at ``x_n = -p/2 + n p / P_i`` on axis ``i``.

    Returns
    -------
    np.ndarray
        Same shape, complex: ``F(q)`` at index ``q_i mod P_i`` (``numpy.fft`` order),
        ``F(q) = DFT[q] (-1)^{sum q} / prod P_i``.
    """
    shape = values.shape[:-1]
    spectrum = np.fft.fftn(values, axes=tuple(range(len(shape)))) / math.prod(shape)
    sign = np.ones(shape)
    for axis, samples in enumerate(shape):
        q = np.fft.fftfreq(samples, 1.0 / samples).astype(np.int64)
        broadcast = [1] * len(shape)
        broadcast[axis] = samples
        sign = sign * ((-1.0) ** q).reshape(broadcast)
    return spectrum * sign[..., None]


def centered(spectrum: np.ndarray, radius: int | Sequence[int]) -> np.ndarray:
    """Crop an ``numpy.fft``-ordered spectrum to ``|q_i| <= r_i`` with index ``q + r_i``.

    ``radius``: one ``r`` for every axis, or one per axis; axis ``i`` keeps at
    most ``(P_i - 1) // 2`` (an even ``P_i`` loses its ambiguous bin ``P_i / 2``).
    """
    shape = spectrum.shape[:-1]
    index = []
    for r, samples in zip(per_axis(radius, len(shape)), shape):
        r = min(r, (samples - 1) // 2)
        index.append(np.arange(-r, r + 1) % samples)
    return spectrum[np.ix_(*index)]


def grid_spectrum(values: np.ndarray, extent: tuple[float, ...], period: float = DEFAULT_PERIOD) -> np.ndarray:
    """Lattice spectrum of samples on a signal's grid, zero-padded to one period (``numpy.fft`` order).

    Parameters
    ----------
    values:
        ``[*grid_shape, channels]`` samples on the grid of half-extent ``extent``.

    The samples sit at their coordinates inside ``[-p/2, p/2)``, axis ``i``
    sampled with its own spacing (:func:`grid_spacing`), so the result has
    ``P_i = round(p / h_i)`` bins on axis ``i``; the rest of the period is
    zero, and the mean is removed first so the padding adds no DC step.
    Target and reconstruction treated alike compare bin by bin.
    """
    shape, channels = values.shape[:-1], values.shape[-1]
    spacing = grid_spacing(shape, extent)
    samples = [int(round(period / h)) for h in spacing]
    values = values - values.reshape(-1, channels).mean(axis=0)
    grid = np.zeros(samples + [channels])
    starts = [int(round((-e + period / 2) / h)) for e, h in zip(extent, spacing)]
    grid[tuple(slice(s, s + n) for s, n in zip(starts, shape))] = values
    return lattice_fft(grid)


def signal_spectrum(signal: Signal, period: float = DEFAULT_PERIOD) -> np.ndarray:
    """:func:`grid_spectrum` of a gridded signal's own values."""
    if signal.grid_shape is None:
        raise ConfigError("the measured spectrum needs a gridded signal")
    values = signal.values.double().numpy().reshape(*signal.grid_shape, signal.channels)
    return grid_spectrum(values, signal.extent, period)


def model_spectrum(model: torch.nn.Module, spacing: float | Sequence[float], dims: int,
                   period: float = DEFAULT_PERIOD) -> np.ndarray:
    """Lattice spectrum of a model sampled on one full period (``numpy.fft`` order).

    ``spacing``: one sample spacing for every axis, or one per axis.
    """
    from inrkit.progress import evaluate_reporting

    samples, coords = period_grid(spacing, dims, period)
    values = evaluate_reporting(model, coords, "sampling the model over a period").double().numpy()
    return lattice_fft(values.reshape(list(samples) + [values.shape[1]]))


def _centred_axes(shape: Sequence[int]) -> list[np.ndarray]:
    """Integer frequency per axis of every bin of a centred ``[2 r_i + 1, ...]`` array."""
    return np.meshgrid(*[np.arange(-(n // 2), n // 2 + 1) for n in shape], indexing="ij")


def radial_profile(power: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean of a centred ``[2 r_i + 1, ...]`` power array over shells of integer radius ``round(|q|_2)``."""
    axes = _centred_axes(power.shape)
    distance = np.rint(np.sqrt(sum(a.astype(np.float64) ** 2 for a in axes))).astype(np.int64).reshape(-1)
    totals = np.bincount(distance, weights=power.reshape(-1))
    counts = np.bincount(distance)
    keep = counts > 0
    return np.flatnonzero(keep), totals[keep] / counts[keep]


def energy_fraction_above(spectrum: np.ndarray, cutoff: int | Sequence[int]) -> float:
    """Share of the AC energy of a centred spectrum above the cutoff (channels summed).

    ``cutoff``: one ``c`` for every axis (bins with ``|q|_inf > c``), or one
    per axis (bins with ``|q_i| > c_i`` on some axis).
    """
    axes = _centred_axes(spectrum.shape[:-1])
    above = np.zeros(spectrum.shape[:-1], dtype=bool)
    for q, c in zip(axes, per_axis(cutoff, len(axes))):
        above |= np.abs(q) > c
    power = (np.abs(spectrum) ** 2).sum(axis=-1)
    ac = power[np.any(np.stack(axes) != 0, axis=0)].sum()
    return float(power[above].sum() / ac) if ac > 0 else 0.0


def _mirrored_bands(signal: Signal, period: float) -> tuple[np.ndarray, np.ndarray]:
    """``|q_i|`` per axis ``[K, d]`` and energy ``[K]`` of the mirrored spectrum, sorted by ``|q|_inf``.

    See :func:`energy_by_frequency`.
    """
    if signal.grid_shape is None:
        raise ConfigError("the signal spectrum needs a gridded signal")
    values = signal.values.double().numpy().reshape(*signal.grid_shape, signal.channels)
    values = values - values.reshape(-1, signal.channels).mean(axis=0)
    lattice = []
    for axis, (n, e) in enumerate(zip(signal.grid_shape, signal.extent)):
        if n > 2:
            mirrored = np.flip(np.take(values, np.arange(1, n - 1), axis=axis), axis=axis)
            values = np.concatenate([values, mirrored], axis=axis)
        count = values.shape[axis]
        lattice.append(np.abs(np.fft.fftfreq(count, 1.0 / count)) * period / (4.0 * e if e > 0 else period))
    power = (np.abs(np.fft.fftn(values, axes=tuple(range(values.ndim - 1)))) ** 2).sum(axis=-1)
    bands = np.stack([a.reshape(-1) for a in np.meshgrid(*lattice, indexing="ij")], axis=1)
    order = np.argsort(bands.max(axis=1), kind="stable")
    return bands[order], power.reshape(-1)[order]


def energy_by_frequency(signal: Signal, period: float = DEFAULT_PERIOD) -> tuple[np.ndarray, np.ndarray]:
    """The signal's AC energy per lattice frequency band ``|q|_inf``, from its mirrored spectrum.

    Each axis is extended by even reflection, which removes the border
    discontinuity (no leakage from the edges) and makes axis ``i`` periodic
    with period ``4 e_i``; DFT bin ``b`` of that axis is the lattice frequency
    ``q = b p / (4 e_i)`` (each axis with its own extent).

    Returns
    -------
    (frequency, energy):
        Sorted ``|q|_inf`` values (float) and the energy at each.
    """
    bands, power = _mirrored_bands(signal, period)
    return bands.max(axis=1), power


def suggest_bandlimit(signal: Signal, params: int, quantile: float = 0.9, period: float = DEFAULT_PERIOD,
                      minimum: int = 4) -> int:
    """A bandlimit ``B`` for the input frequencies, from the signal's own spectrum and the model size.

    Takes the ``params // 4`` strongest bins of the signal's mirrored
    spectrum (:func:`energy_by_frequency`): about as many Fourier coefficients
    as a model of ``params`` stored numbers can afford. ``B`` is the
    ``quantile`` of their ``|q|_inf``, so the input frequencies cover where the
    signal's strongest affordable coefficients lie: a larger model or a signal
    whose strong coefficients sit higher gets a larger ``B``. Clamped to
    ``[minimum, Nyquist]``. Calibrated against a sweep of fixed bandlimits
    (``benchmarks/bandlimit_sweep.py``).

    One ``B`` for every axis: with per-axis spacing it is clamped to the
    finest axis's Nyquist (:func:`nyquist_cutoffs`), and the caller clamps it
    to each axis's own.
    """
    if params < 1:
        raise ConfigError(f"params must be positive, got {params}")
    frequency, power = energy_by_frequency(signal, period)
    ac = frequency > 0
    frequency, power = frequency[ac], power[ac]
    nyquist = max(nyquist_cutoffs(signal, period))
    if power.sum() <= 0:
        return min(minimum, nyquist)
    significant = power > 1e-12 * power.max()
    frequency, power = frequency[significant], power[significant]
    strongest = frequency[np.argsort(-power, kind="stable")[: max(16, params // 4)]]
    value = float(np.quantile(strongest, quantile))
    return int(min(max(minimum, round(value)), nyquist))


def reachable_energy_fraction(signal: Signal, reach: float | Sequence[float], period: float = DEFAULT_PERIOD) -> float:
    """Share of the signal's AC energy at lattice frequencies within ``reach``.

    ``reach``: one ``r`` for every axis (``|q|_inf <= r``), or one per axis
    (``|q_i| <= r_i`` on every axis).
    """
    bands, power = _mirrored_bands(signal, period)
    ac = bands.max(axis=1) > 0
    inside = (bands <= np.asarray(per_axis(reach, bands.shape[1]), dtype=np.float64)).all(axis=1)
    total = power[ac].sum()
    return float(power[ac & inside].sum() / total) if total > 0 else 1.0


def noise_energy_fraction(model: torch.nn.Module, signal: Signal, period: float = DEFAULT_PERIOD,
                          max_samples: int = 1 << 22, max_work: float = 5e10) -> float | None:
    """Share of the model's AC energy above the signal's Nyquist frequency (noise it adds).

    Measured by sampling the model over one full period on an odd ``P_i``
    (``3 c_i + 2`` or ``+ 3``) points per axis, ``c_i`` the axis's Nyquist
    cutoff (:func:`nyquist_cutoffs`), and counting the bins above the cutoff
    on some axis. A frequency ``q`` lands on bin ``q mod P_i``, which is
    above the cutoff exactly when ``q`` is, for every ``|q_i| <= 2 c_i + 1``:
    frequencies up to twice the Nyquist frequency are classified correctly
    (those up to 1.5 times it unaliased, so that two folded components can
    meet on one bin only beyond that), with about 0.56x the samples of a grid
    at twice the signal's density in 2D (0.42x in 3D). That denser grid,
    used before, classified correctly up to about ``3 c_i``; energy
    between ``2 c_i`` and ``3 c_i`` (e.g. third-order products of inputs
    above 2/3 of the cutoff) now folds below it and is missed. None when
    the grid would exceed ``max_samples`` or the evaluation ``max_work``
    (samples times stored parameters).
    """
    from inrkit.model import stored_parameter_count

    cutoffs = nyquist_cutoffs(signal, period)
    samples = [3 * c + 2 + (c + 1) % 2 for c in cutoffs]  # odd: no ambiguous bin
    count = math.prod(samples)
    if count > max_samples or count * stored_parameter_count(model) > max_work:
        return None
    spectrum = model_spectrum(model, tuple(period / n for n in samples), signal.dims, period)
    radius = [(n - 1) // 2 for n in samples]
    return energy_fraction_above(centered(spectrum, radius), cutoffs)
