"""The network's spectrum: predicted from the weights, measured by FFT, bounded, shown.

For one hidden layer, hidden neuron ``i`` is ``sin(z_i)`` with
``z_i = sum_j a_ij sin(theta_j) + c_i``, ``theta_j = omega_j . x + phi_j``,
``a_ij = omega_g W_ij`` and ``c_i = omega_g b_i``. The Jacobi-Anger identity
``exp(i a sin t) = sum_k J_k(a) exp(i k t)`` gives (METHOD.md section 2)

    sin(z_i) = sum_{k in Z^m} alpha_k(i) sin(beta_k . x + lambda_k + c_i)
    alpha_k(i) = prod_j J_{k_j}(a_ij),  beta_k = sum_j k_j omega_j,  lambda_k = sum_j k_j phi_j

with ``|alpha_k(i)| <= prod_j (|a_ij|/2)^|k_j| / |k_j|!``. With lattice
frequencies ``omega_j = 2 pi f_j / p`` every ``beta_k`` is ``2 pi / p`` times
the integer vector ``sum_j k_j f_j``, so the network is a Fourier series on
the lattice whose coefficients this module computes.

Convention: a spectrum maps an integer lattice frequency ``q`` (``[d]``) to
the complex coefficient ``F(q)`` of ``exp(2 pi i q . x / p)`` per channel, so
``f(x) = sum_q F(q) exp(2 pi i q . x / p)``. ``F(-q) = conj(F(q))`` for real
signals.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import numpy as np
import torch

from inrkit.errors import ConfigError
from inrkit.model import SinusoidalINR
from inrkit.signal import Signal


def bessel_j(order: np.ndarray | int, x: np.ndarray) -> np.ndarray:
    """Bessel functions of the first kind ``J_n(x)`` of integer order, float64.

    Any integer order (negative: ``J_{-n} = (-1)^n J_n``) and any real argument,
    via :func:`scipy.special.jv` (Amos' algorithms).
    """
    from scipy.special import jv

    return jv(np.asarray(order, dtype=np.float64), np.asarray(x, dtype=np.float64))


def term_bound(values: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """``prod_t (|a_t|/2)^|v_t| / |v_t|!``: the bound on ``|prod_t J_{v_t}(a_t)|`` (last axis is t)."""
    orders = np.abs(values)
    factorials = np.vectorize(math.factorial, otypes=[np.float64])(orders)
    return np.prod((np.abs(weights) / 2.0) ** orders / factorials, axis=-1)


def _value_patterns(support: int, max_order: int) -> np.ndarray:
    """All vectors of ``support`` non-zero integers with ``sum |v| <= max_order``."""
    choices = [v for v in range(-max_order, max_order + 1) if v]
    rows = [p for p in itertools.product(choices, repeat=support) if sum(abs(v) for v in p) <= max_order]
    return np.array(rows, dtype=np.int64).reshape(-1, support)


@dataclass
class Terms:
    """Enumerated multi-indices ``k`` (sparse) of one support size.

    Attributes
    ----------
    columns:
        ``[T, s]`` input-neuron indices ``j`` with ``k_j != 0``.
    values:
        ``[T, s]`` the non-zero ``k_j``.
    """

    columns: np.ndarray
    values: np.ndarray


def enumerate_terms(column_max: np.ndarray, max_order: int, tol: float, max_terms: int) -> list[Terms]:
    """Multi-indices ``k`` with ``|k|_1 <= max_order`` whose bound can reach ``tol``.

    The bound used for pruning is ``prod_j (c_j/2)^|k_j| / |k_j|!`` with
    ``c_j = max_i |a_ij|``, which bounds every neuron's ``|alpha_k(i)|``.
    The empty multi-index (``k = 0``) is always included.

    Raises
    ------
    ConfigError
        When more than ``max_terms`` terms pass (raise ``tol`` or lower ``max_order``).
    """
    m = len(column_max)
    found = [Terms(np.zeros((1, 0), np.int64), np.zeros((1, 0), np.int64))]
    total = 1
    half = column_max / 2.0
    for support in range(1, max_order + 1):
        if support > m:
            break
        patterns = _value_patterns(support, max_order)
        best = np.prod(half ** np.abs(patterns).min(), dtype=np.float64)  # smallest orders give the largest bound
        combos = np.array(list(itertools.combinations(np.flatnonzero(half > 0), support)), dtype=np.int64)
        if combos.size == 0:
            continue
        loose = np.prod(half[combos], axis=1)  # bound with every |k_j| = 1
        combos = combos[loose >= tol * min(1.0, best / max(best, 1e-300))]
        for start in range(0, len(combos), 20000):
            chunk = combos[start : start + 20000]
            cols = np.repeat(chunk, len(patterns), axis=0)
            vals = np.tile(patterns, (len(chunk), 1))
            keep = term_bound(vals, column_max[cols]) >= tol
            if keep.any():
                found.append(Terms(cols[keep], vals[keep]))
                total += int(keep.sum())
                if total > max_terms:
                    raise ConfigError(
                        f"more than {max_terms} spectrum terms pass tolerance {tol:g}; "
                        "raise --tol or lower --max-order"
                    )
    return found


@dataclass
class PredictedSpectrum:
    """The Fourier coefficients of a model predicted from its weights.

    Attributes
    ----------
    frequencies:
        ``[K, d]`` int64 lattice frequencies with a non-zero coefficient.
    amplitudes:
        ``[K, channels]`` complex128 coefficients ``F(q)`` (both signs of ``q``).
    bound:
        ``[K, channels]`` float64: the sum over the enumerated terms of their
        amplitude bounds, ``|F(q)| <= bound`` up to the omitted terms.
    terms:
        Number of multi-indices ``k`` enumerated.
    omitted_bound:
        Largest possible ``|alpha_k(i)|`` of any multi-index left out (order
        above ``max_order`` or bound under ``tol``), times ``max |C|``.
    max_order, tol:
        The truncation used.
    """

    frequencies: np.ndarray
    amplitudes: np.ndarray
    bound: np.ndarray
    terms: int
    omitted_bound: float
    max_order: int
    tol: float

    def dense(self, radius: int) -> np.ndarray:
        """Coefficients on the box ``|q_i| <= radius`` as ``[(2r+1)]*d + [channels]`` (index ``q + r``)."""
        return _to_dense(self.frequencies, self.amplitudes, radius)


def _to_dense(frequencies: np.ndarray, values: np.ndarray, radius: int) -> np.ndarray:
    dims = frequencies.shape[1]
    grid = np.zeros((2 * radius + 1,) * dims + values.shape[1:], dtype=values.dtype)
    inside = (np.abs(frequencies) <= radius).all(axis=1)
    index = tuple((frequencies[inside] + radius).T)
    np.add.at(grid, index, values[inside])
    return grid


def _first_layer(model: SinusoidalINR) -> tuple[np.ndarray, ...]:
    if not isinstance(model, SinusoidalINR):
        raise ConfigError("spectrum prediction needs a lattice or uniform model (SIREN's first layer is not on a lattice)")
    if len(model.hidden) != 1:
        raise ConfigError(
            f"spectrum prediction supports models with one hidden layer, this one has {len(model.hidden)}; "
            "use the measured (FFT) spectrum instead"
        )
    layer = model.hidden[0]
    with torch.no_grad():
        a = layer.scaled_weight().double().cpu().numpy()  # [n, m]
        c = (layer.omega_g * layer.bias).double().cpu().numpy()  # [n]
        head = model.head.weight.double().cpu().numpy()  # [channels, n]
        head_bias = model.head.bias.double().cpu().numpy()
        offset = model.output.offset.double().cpu().numpy()
        scale = model.output.scale.double().cpu().numpy()
    freqs = model.input.frequencies.long().cpu().numpy()
    phases = model.input.phases.detach().double().cpu().numpy()
    return a, c, head, head_bias, offset, scale, freqs, phases


def term_amplitudes(model: SinusoidalINR, terms: Terms) -> tuple[np.ndarray, np.ndarray]:
    """Exact ``alpha_k(i)`` and their bounds for a set of multi-indices.

    Returns
    -------
    (alpha, bound):
        Both ``[T, n]`` float64: ``prod_j J_{k_j}(a_ij)`` over all ``m`` columns,
        and ``prod_j (|a_ij|/2)^|k_j| / |k_j|!``.
    """
    a = _first_layer(model)[0]
    n = a.shape[0]
    j0 = bessel_j(0, a)  # [n, m]
    alpha = np.broadcast_to(np.prod(j0, axis=1), (len(terms.columns), n)).copy()
    bound = np.ones((len(terms.columns), n))
    for t in range(terms.columns.shape[1]):
        col, val = terms.columns[:, t], terms.values[:, t]
        weights = a[:, col].T  # [T, n]
        alpha *= bessel_j(val[:, None], weights) / j0[:, col].T
        bound *= term_bound(val[:, None, None], weights[..., None])
    return alpha, bound


def predict_spectrum(model: SinusoidalINR, max_order: int = 3, tol: float = 1e-6, max_terms: int = 2_000_000) -> PredictedSpectrum:
    """Predict a one-hidden-layer model's Fourier coefficients from its weights.

    Parameters
    ----------
    model:
        A :class:`~inrkit.model.SinusoidalINR` with one hidden layer.
    max_order:
        Largest ``|k|_1`` enumerated.
    tol:
        Multi-indices whose amplitude bound is below ``tol`` are skipped.
    max_terms:
        Refuse (ConfigError) to enumerate more multi-indices than this.

    Returns
    -------
    PredictedSpectrum
    """
    if max_order < 0 or not tol > 0:
        raise ConfigError(f"max order must be >= 0 and tol > 0, got {max_order} and {tol}")
    a, c, head, head_bias, offset, scale, freqs, phases = _first_layer(model)
    if np.abs(a).max(initial=0) >= 2.4048:
        raise ConfigError("hidden weights exceed the first zero of J_0 (2.405); the spectrum cannot be factored")
    column_max = np.abs(a).max(axis=0)
    all_terms = enumerate_terms(column_max, max_order, tol, max_terms)
    dims, channels = freqs.shape[1], head.shape[0]
    out_freqs, out_amps, out_bounds = [], [], []
    rotate = np.exp(1j * c)  # [n]
    for terms in all_terms:
        for start in range(0, len(terms.columns), 50000):
            part = Terms(terms.columns[start : start + 50000], terms.values[start : start + 50000])
            alpha, bound = term_amplitudes(model, part)
            beta = (part.values[..., None] * freqs[part.columns]).sum(axis=1) if part.columns.shape[1] else np.zeros((len(alpha), dims), np.int64)
            lam = (part.values * phases[part.columns]).sum(axis=1)
            coefficient = ((alpha * rotate) @ head.T) * (np.exp(1j * lam) / 2j)[:, None]  # [T, channels] at +beta
            limit = (bound @ np.abs(head).T) / 2.0
            out_freqs += [beta, -beta]
            out_amps += [coefficient, np.conj(coefficient)]
            out_bounds += [limit, limit]
    frequencies = np.concatenate(out_freqs).astype(np.int64)
    unique, inverse = np.unique(frequencies, axis=0, return_inverse=True)
    inverse = inverse.reshape(-1)
    amplitudes = np.zeros((len(unique), channels), dtype=np.complex128)
    bounds = np.zeros((len(unique), channels))
    np.add.at(amplitudes, inverse, np.concatenate(out_amps))
    np.add.at(bounds, inverse, np.concatenate(out_bounds))
    amplitudes *= scale
    bounds *= scale
    zero = np.flatnonzero((unique == 0).all(axis=1))
    if len(zero):
        amplitudes[zero[0]] += offset + scale * head_bias
    else:
        unique = np.vstack([unique, np.zeros((1, dims), np.int64)])
        amplitudes = np.vstack([amplitudes, (offset + scale * head_bias)[None].astype(np.complex128)])
        bounds = np.vstack([bounds, np.zeros((1, channels))])
    largest_left = max(tol, float(np.max(column_max / 2.0) ** (max_order + 1) / math.factorial(max_order + 1)))
    omitted = largest_left * float(np.abs(head).sum(axis=1).max()) * float(scale.max())
    terms = sum(len(t.columns) for t in all_terms)
    return PredictedSpectrum(unique, amplitudes, bounds, terms, omitted, max_order, tol)


def period_grid(spacing: float, dims: int, period: float) -> tuple[int, torch.Tensor]:
    """Samples per axis ``P`` and coordinates ``[P^d, d]`` of one full period ``[-p/2, p/2)``."""
    samples = int(round(period / spacing))
    axis = torch.arange(samples, dtype=torch.float64) * (period / samples) - period / 2
    mesh = torch.meshgrid(*([axis] * dims), indexing="ij")
    return samples, torch.stack([g.reshape(-1) for g in mesh], dim=1)


def lattice_fft(values: np.ndarray) -> np.ndarray:
    """Fourier coefficients on the lattice from samples of one period.

    Parameters
    ----------
    values:
        ``[P]*d + [channels]`` samples at ``x_n = -p/2 + n p / P``.

    Returns
    -------
    np.ndarray
        Same shape, complex: ``F(q)`` at index ``q mod P`` (``numpy.fft`` order),
        ``F(q) = DFT[q] (-1)^{sum q} / P^d``.
    """
    dims = values.ndim - 1
    samples = values.shape[0]
    spectrum = np.fft.fftn(values, axes=tuple(range(dims))) / samples**dims
    q = np.fft.fftfreq(samples, 1.0 / samples).astype(np.int64)
    sign = np.ones([samples] * dims)
    for axis in range(dims):
        shape = [1] * dims
        shape[axis] = samples
        sign = sign * ((-1.0) ** q).reshape(shape)
    return spectrum * sign[..., None]


def centered(spectrum: np.ndarray, radius: int) -> np.ndarray:
    """Crop an ``numpy.fft``-ordered spectrum to ``|q_i| <= radius`` with index ``q + radius``."""
    dims = spectrum.ndim - 1
    samples = spectrum.shape[0]
    radius = min(radius, samples // 2 - 1)
    index = np.arange(-radius, radius + 1) % samples
    return spectrum[np.ix_(*([index] * dims))]


def grid_spectrum(values: np.ndarray, extent: tuple[float, ...], period: float = 4.0) -> np.ndarray:
    """Lattice spectrum of samples on a signal's grid, zero-padded to one period (``numpy.fft`` order).

    Parameters
    ----------
    values:
        ``[*grid_shape, channels]`` samples on the grid of half-extent ``extent``.

    The samples sit at their coordinates inside ``[-p/2, p/2)``; the rest of
    the period is zero, and the mean is removed first so the padding adds no
    DC step. Target and reconstruction treated alike compare bin by bin.
    """
    shape, channels = values.shape[:-1], values.shape[-1]
    spacing = 2.0 * max(e / (n - 1) for n, e in zip(shape, extent) if n > 1)
    samples = int(round(period / spacing))
    values = values - values.reshape(-1, channels).mean(axis=0)
    grid = np.zeros([samples] * len(shape) + [channels])
    starts = [int(round((-e + period / 2) / spacing)) for e in extent]
    grid[tuple(slice(s, s + n) for s, n in zip(starts, shape))] = values
    return lattice_fft(grid)


def signal_spectrum(signal: Signal, period: float = 4.0) -> np.ndarray:
    """:func:`grid_spectrum` of a gridded signal's own values."""
    if signal.grid_shape is None:
        raise ConfigError("the measured spectrum needs a gridded signal")
    values = signal.values.double().numpy().reshape(*signal.grid_shape, signal.channels)
    return grid_spectrum(values, signal.extent, period)


def model_spectrum(model: torch.nn.Module, spacing: float, dims: int, period: float = 4.0) -> np.ndarray:
    """Lattice spectrum of a model sampled on one full period with the given spacing (``numpy.fft`` order)."""
    from inrkit.train import evaluate

    samples, coords = period_grid(spacing, dims, period)
    values = evaluate(model, coords).double().numpy()
    return lattice_fft(values.reshape([samples] * dims + [values.shape[1]]))


def radial_profile(power: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean of a centred ``[(2r+1)]*d`` power array over shells of integer radius ``round(|q|_2)``."""
    radius = power.shape[0] // 2
    axes = np.meshgrid(*([np.arange(-radius, radius + 1)] * power.ndim), indexing="ij")
    distance = np.rint(np.sqrt(sum(a.astype(np.float64) ** 2 for a in axes))).astype(np.int64).reshape(-1)
    totals = np.bincount(distance, weights=power.reshape(-1))
    counts = np.bincount(distance)
    keep = counts > 0
    return np.flatnonzero(keep), totals[keep] / counts[keep]


def energy_fraction_above(spectrum: np.ndarray, cutoff: int) -> float:
    """Share of the AC energy of a centred spectrum at ``|q|_inf > cutoff`` (channels summed)."""
    radius = spectrum.shape[0] // 2
    dims = spectrum.ndim - 1
    axes = np.meshgrid(*([np.arange(-radius, radius + 1)] * dims), indexing="ij")
    norm = np.max(np.abs(np.stack(axes)), axis=0)
    power = (np.abs(spectrum) ** 2).sum(axis=-1)
    ac = power[norm > 0].sum()
    return float(power[norm > cutoff].sum() / ac) if ac > 0 else 0.0


def energy_by_frequency(signal: Signal, period: float = 4.0) -> tuple[np.ndarray, np.ndarray]:
    """The signal's AC energy per lattice frequency band ``|q|_inf``, from its mirrored spectrum.

    Each axis is extended by even reflection, which removes the border
    discontinuity (no leakage from the edges) and makes axis ``i`` periodic
    with period ``4 e_i``; DFT bin ``b`` of that axis is the lattice frequency
    ``q = b p / (4 e_i)``.

    Returns
    -------
    (frequency, energy):
        Sorted ``|q|_inf`` values (float) and the energy at each.
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
    norm = np.max(np.stack(np.meshgrid(*lattice, indexing="ij")), axis=0).reshape(-1)
    order = np.argsort(norm, kind="stable")
    return norm[order], power.reshape(-1)[order]


def suggest_bandlimit(signal: Signal, energy: float = 0.999, period: float = 4.0, minimum: int = 4) -> int:
    """A bandlimit ``B`` for the input frequencies, from the signal's own spectrum.

    Finds the smallest lattice frequency ``Q`` such that ``|q|_inf <= Q``
    holds ``energy`` of the signal's AC energy (:func:`energy_by_frequency`),
    and returns ``Q / 2``: the hidden layer generates sums ``f_j + f_k`` of
    input frequencies, so inputs need only reach half the band. Clamped to
    ``[minimum, Nyquist]``.
    """
    frequency, power = energy_by_frequency(signal, period)
    ac = frequency > 0
    frequency, power = frequency[ac], power[ac]
    nyquist = int(math.floor(max(signal.nyquist) * period))
    if power.sum() <= 0:
        return min(minimum, nyquist)
    cumulative = np.cumsum(power) / power.sum()
    needed = float(frequency[min(int(np.searchsorted(cumulative, energy)), len(frequency) - 1)])
    return int(min(max(minimum, math.ceil(needed / 2)), nyquist))


def reachable_energy_fraction(signal: Signal, reach: float, period: float = 4.0) -> float:
    """Share of the signal's AC energy at lattice frequencies ``|q|_inf <= reach``."""
    frequency, power = energy_by_frequency(signal, period)
    ac = frequency > 0
    total = power[ac].sum()
    return float(power[ac & (frequency <= reach)].sum() / total) if total > 0 else 1.0
