"""The network's spectrum predicted from its weights, with bounds on what is left out.

For one hidden layer, hidden neuron ``i`` is ``sin(z_i)`` with
``z_i = sum_j a_ij sin(theta_j) + c_i``, ``theta_j = omega_j . x + phi_j``,
``a_ij = omega_g W_ij`` and ``c_i = omega_g b_i``. The Jacobi-Anger identity
``exp(i a sin t) = sum_k J_k(a) exp(i k t)`` gives (METHOD.md section 2)

    sin(z_i) = sum_{k in Z^m} alpha_k(i) sin(beta_k . x + lambda_k + c_i)
    alpha_k(i) = prod_j J_{k_j}(a_ij),  beta_k = sum_j k_j omega_j,  lambda_k = sum_j k_j phi_j

with ``|alpha_k(i)| <= prod_j (|a_ij|/2)^|k_j| / |k_j|!``. With lattice frequencies ``omega_j = 2 pi f_j / p``
every ``beta_k`` is ``2 pi / p`` times the integer vector ``sum_j k_j f_j``, so the network is a Fourier series
on the lattice whose coefficients this module computes.

Convention: a spectrum maps an integer lattice frequency ``q`` (``[d]``) to the complex coefficient ``F(q)`` of
``exp(2 pi i q . x / p)`` per channel, so ``f(x) = sum_q F(q) exp(2 pi i q . x / p)``; ``F(-q) = conj(F(q))``.

Spectra measured by FFT (of the signal and of the model on the lattice) are in :mod:`inrkit.fourier`; the
picture and the summary of a fitted model in :mod:`inrkit.spectrum_report`.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from inrkit.errors import ConfigError, TooManyTerms
from inrkit.fourier import per_axis
from inrkit.direct import with_lines
from inrkit.model import SinusoidalINR


#: Below this |x| (the bounded layers keep |a| under 2.405), J_n comes from its power series, without scipy.
SERIES_REACH = 2.5
#: Series terms: the 25th is below (1.25^2)^25 / (25!)^2 ~ 1e-45 of the first, far under float64's resolution.
_SERIES_TERMS = 25


def bessel_j(order: np.ndarray | int, x: np.ndarray) -> np.ndarray:
    """Bessel functions of the first kind ``J_n(x)`` of integer order, float64.

    Any integer order (negative: ``J_{-n} = (-1)^n J_n``) and any real
    argument. For ``|x| <= SERIES_REACH`` (every weight of a bounded layer)
    the power series ``sum_k (-1)^k (x/2)^(2k+n) / (k! (k+n)!)``, which
    converges to float64 accuracy in a few terms there and spares a fit the
    import of scipy; beyond, :func:`scipy.special.jv` (Amos' algorithms).
    """
    order, x = np.broadcast_arrays(np.asarray(order, dtype=np.int64), np.asarray(x, dtype=np.float64))
    if x.size and np.abs(x).max() > SERIES_REACH:
        from scipy.special import jv

        return jv(order.astype(np.float64), x)
    n = np.abs(order)
    half = x / 2.0
    factorials = np.cumprod(np.r_[1.0, np.arange(1, n.max(initial=0) + 1, dtype=np.float64)])
    term = half**n / factorials[n]
    total = term.copy()
    for k in range(1, _SERIES_TERMS):
        term = term * (-(half**2)) / (k * (k + n))
        total += term
    return np.where((order < 0) & (n % 2 == 1), -total, total)


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
    """Enumerated multi-indices ``k`` (sparse) of one support size: ``columns`` ``[T, s]`` the input-neuron
    indices ``j`` with ``k_j != 0``, ``values`` ``[T, s]`` the non-zero ``k_j``."""

    columns: np.ndarray
    values: np.ndarray


def enumerate_terms(column_max: np.ndarray, max_order: int, tol: float, max_terms: int) -> list[Terms]:
    """Multi-indices ``k`` with ``|k|_1 <= max_order`` whose bound can reach ``tol``.

    The bound used for pruning is ``prod_j (c_j/2)^|k_j| / |k_j|!`` with
    ``c_j = max_i |a_ij|``, which bounds every neuron's ``|alpha_k(i)|``.
    The empty multi-index (``k = 0``) is always included.

    Raises
    ------
    TooManyTerms
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
                    raise TooManyTerms(
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
        Size indication of the truncation, per output: the largest possible
        single omitted term (order above ``max_order`` or bound under ``tol``)
        of each layer, plus for layers after the first the amplitude of the
        frequencies not carried, propagated through the weights and the head.
        Not a rigorous bound on the total truncation error.
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

    def dense(self, radius: int | Sequence[int]) -> np.ndarray:
        """Coefficients on the box ``|q_i| <= r_i`` as ``[2 r_i + 1 for each axis] + [channels]`` (index ``q + r``).

        ``radius``: one ``r`` for every axis, or one per axis.
        """
        return _to_dense(self.frequencies, self.amplitudes, radius)


def _to_dense(frequencies: np.ndarray, values: np.ndarray, radius: int | Sequence[int]) -> np.ndarray:
    dims = frequencies.shape[1]
    radii = np.array(per_axis(radius, dims), dtype=np.int64)
    grid = np.zeros(tuple(2 * radii + 1) + values.shape[1:], dtype=values.dtype)
    inside = (np.abs(frequencies) <= radii).all(axis=1)
    index = tuple((frequencies[inside] + radii).T)
    np.add.at(grid, index, values[inside])
    return grid


def _layers(model: SinusoidalINR) -> dict:
    """The model's numbers in float64 numpy: input layer, each hidden layer, head and output map."""
    if not isinstance(model, SinusoidalINR):
        name = getattr(getattr(model, "config", None), "architecture", type(model).__name__)
        raise ConfigError(f"spectrum prediction needs a lattice or uniform model; {name} has no input layer of fixed "
                          "integer-lattice frequencies to expand (the measured spectra are still drawn)")
    with torch.no_grad():
        hidden = [(layer.scaled_weight().double().cpu().numpy(), (layer.omega_g * layer.bias).double().cpu().numpy())
                  for layer in model.hidden]
        return {
            "frequencies": model.input.frequencies.long().cpu().numpy(),
            "phases": model.input.phases.detach().double().cpu().numpy(),
            "hidden": hidden,
            "head": model.head.weight.double().cpu().numpy(),
            "head_bias": model.head.bias.double().cpu().numpy(),
            "offset": model.output.offset.double().cpu().numpy(),
            "scale": model.output.scale.double().cpu().numpy(),
        }


def term_amplitudes(model: SinusoidalINR, terms: Terms) -> tuple[np.ndarray, np.ndarray]:
    """Exact ``alpha_k(i)`` of the first hidden layer and their bounds, for a set of multi-indices.

    Returns
    -------
    (alpha, bound):
        Both ``[T, n]`` float64: ``prod_j J_{k_j}(a_ij)`` over all ``m`` columns,
        and ``prod_j (|a_ij|/2)^|k_j| / |k_j|!``.
    """
    return _alpha(_layers(model)["hidden"][0][0], terms)


def _alpha(a: np.ndarray, terms: Terms) -> tuple[np.ndarray, np.ndarray]:
    n = a.shape[0]
    j0 = bessel_j(0, a)  # [n, m]
    alpha = np.broadcast_to(np.prod(j0, axis=1), (len(terms.columns), n)).copy()
    bound = np.ones((len(terms.columns), n))
    # J_v(a) and its bound for each order v that occurs, over the whole [n, m] matrix once: the same float64
    # values as evaluating them per term, with a few Bessel calls per weight instead of one per term and neuron.
    orders = np.unique(terms.values)
    bessel = np.stack([bessel_j(int(v), a) for v in orders]) if len(orders) else None
    bounds = np.stack([term_bound(np.full(a.shape + (1,), v), a[..., None]) for v in orders]) if len(orders) else None
    for t in range(terms.columns.shape[1]):
        col, which = terms.columns[:, t], np.searchsorted(orders, terms.values[:, t])
        alpha *= bessel[which, :, col] / j0[:, col].T  # [T, n]
        bound *= bounds[which, :, col]
    return alpha, bound


def unique_rows(rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``np.unique(rows, axis=0, return_inverse=True)`` for ``[N, d]`` integer rows, by one int64 key per row (the
    row in a mixed radix, first column most significant: the same order; 1-D keys sort several times faster).
    Rows whose key would not fit in an int64 go through ``np.unique(axis=0)``."""
    low = rows.min(axis=0) if rows.ndim == 2 and len(rows) else None
    span = None if low is None else rows.max(axis=0) - low + 1
    if span is None or math.prod(int(n) for n in span) >= 1 << 62:
        unique, inverse = np.unique(rows, axis=0, return_inverse=True)
        return unique, inverse.reshape(-1)
    key = np.zeros(len(rows), dtype=np.int64)
    for column in range(rows.shape[1]):
        key = key * int(span[column]) + (rows[:, column] - low[column])
    _, first, inverse = np.unique(key, return_index=True, return_inverse=True)
    return rows[first], inverse.reshape(-1)


def _sine_layer(frequencies: np.ndarray, amplitude: np.ndarray, phase: np.ndarray, bias: np.ndarray,
                max_order: int, tol: float, max_terms: int):
    """Fourier coefficients of ``sin(sum_t r_it sin(beta_t . x + psi_it) + c_i)`` for each neuron ``i``.

    Parameters
    ----------
    frequencies:
        ``[F, d]`` integer lattice frequencies ``beta_t``.
    amplitude, phase:
        ``[n, F]`` real ``r_it`` and ``psi_it``.
    bias:
        ``[n]`` the constants ``c_i``.

    Returns
    -------
    (frequencies [Q, d], coefficients [Q, n] complex, bounds [Q, n], terms, largest omitted |alpha|)
    """
    if np.abs(amplitude).max(initial=0) >= 2.4048:
        raise ConfigError("sine-layer weights exceed the first zero of J_0 (2.405); the spectrum cannot be factored this way")
    column_max = np.abs(amplitude).max(axis=0)
    dims, neurons = frequencies.shape[1], amplitude.shape[0]
    out_freqs, out_coef, out_bound = [], [], []
    total = 0
    for terms in enumerate_terms(column_max, max_order, tol, max_terms):
        for start in range(0, len(terms.columns), 20000):
            part = Terms(terms.columns[start : start + 20000], terms.values[start : start + 20000])
            alpha, bound = _alpha(amplitude, part)
            total += len(alpha)
            if part.columns.shape[1]:
                beta = (part.values[..., None] * frequencies[part.columns]).sum(axis=1)
                lam = np.einsum("ts,tsn->tn", part.values.astype(np.float64), phase.T[part.columns])
            else:
                beta, lam = np.zeros((len(alpha), dims), np.int64), np.zeros((len(alpha), neurons))
            coefficient = alpha * np.exp(1j * (lam + bias)) / 2j  # [T, n] at +beta; conjugate at -beta
            out_freqs += [beta, -beta]
            out_coef += [coefficient, np.conj(coefficient)]
            out_bound += [bound / 2, bound / 2]
    unique, inverse = unique_rows(np.concatenate(out_freqs).astype(np.int64))
    # Sum the terms that land on each frequency (np.add.at, grouped: sort once, then one reduceat per array).
    order = np.argsort(inverse, kind="stable")
    starts = np.flatnonzero(np.r_[True, np.diff(inverse[order]) != 0])
    coefficients = np.add.reduceat(np.concatenate(out_coef)[order], starts, axis=0)
    bounds = np.add.reduceat(np.concatenate(out_bound)[order], starts, axis=0)
    omitted = max(tol, float(np.max(column_max / 2.0, initial=0.0) ** (max_order + 1) / math.factorial(max_order + 1)))
    return unique, coefficients, bounds, total, omitted


def predict_spectrum(model: SinusoidalINR, max_order: int = 3, tol: float = 1e-6, max_terms: int = 2_000_000,
                     carried: int = 48) -> PredictedSpectrum:
    """Predict a model's Fourier coefficients from its weights.

    One hidden layer: the Jacobi-Anger expansion truncated at ``|k|_1 <=
    max_order`` (terms with a bound under ``tol`` skipped). Deeper models,
    truncated: each later layer's pre-activation is a trigonometric
    polynomial (the previous layer's coefficients through its weights); its
    ``carried`` strongest frequencies become that layer's "inputs" and are
    expanded the same way, and the dropped amplitude enters
    ``omitted_bound`` (``sin`` is 1-Lipschitz, so a dropped amplitude ``delta``
    changes a neuron by at most ``delta``). A layer that carries a share of
    its input past it (``ModelConfig.skip``) adds that share of the
    previous layer's coefficients.

    Parameters
    ----------
    model:
        A :class:`~inrkit.model.SinusoidalINR`.
    max_order:
        Largest ``|k|_1`` enumerated per layer.
    tol:
        Multi-indices whose amplitude bound is below ``tol`` are skipped.
    max_terms:
        Refuse (:class:`~inrkit.errors.TooManyTerms`, a ConfigError) to
        enumerate more multi-indices than this per layer.
    carried:
        Frequencies carried into each layer after the first.

    Returns
    -------
    PredictedSpectrum
    """
    if max_order < 0 or not tol > 0:
        raise ConfigError(f"max order must be >= 0 and tol > 0, got {max_order} and {tol}")
    numbers = _layers(model)
    a, c = numbers["hidden"][0]
    phase = np.broadcast_to(numbers["phases"], a.shape)
    unique, coefficients, bounds, terms, omitted = _sine_layer(numbers["frequencies"], a, phase, c,
                                                               max_order, tol, max_terms)
    omitted_per_neuron = np.full(a.shape[0], omitted)
    skip = float(model.config.skip)
    for weight, bias in numbers["hidden"][1:]:
        before = unique, coefficients, bounds, omitted_per_neuron
        inputs, amplitude, phase, bias, dropped = _carry(unique, coefficients, weight, bias, carried)
        inherited = np.abs(weight) @ omitted_per_neuron
        unique, coefficients, bounds, layer_terms, layer_omitted = _sine_layer(
            inputs, amplitude, phase, bias, max_order, tol, max_terms,
        )
        terms += layer_terms
        omitted_per_neuron = layer_omitted + dropped + inherited
        if skip:  # y <- s y + (1 - s) sin(...): the two expansions summed on the union of their frequencies
            rows, inverse = unique_rows(np.concatenate([before[0], unique]).astype(np.int64))
            mixed = [np.zeros((len(rows), a.shape[0]), dtype) for dtype in (np.complex128, np.float64)]
            for total, old, new in zip(mixed, before[1:3], (coefficients, bounds)):
                np.add.at(total, inverse, np.concatenate([skip * old, (1 - skip) * new]))
            unique, (coefficients, bounds) = rows, mixed
            omitted_per_neuron = skip * before[3] + (1 - skip) * omitted_per_neuron
    unique, amplitudes, bound, omitted_output = _through_head(numbers, unique, coefficients, bounds,
                                                              omitted_per_neuron)
    unique, amplitudes, bound = with_lines(model, unique, amplitudes, bound)
    return PredictedSpectrum(unique, amplitudes, bound, terms, omitted_output, max_order, tol)



def _carry(unique: np.ndarray, coefficients: np.ndarray, weight: np.ndarray, bias: np.ndarray, carried: int):
    """A later layer's pre-activation as the sine "inputs" of :func:`_sine_layer`.

    The pre-activation ``u = sum_q U(q) exp(2 pi i q . x / p)`` (the previous
    layer's coefficients through ``weight``) is ``sum 2|U| sin(q x + arg U +
    pi/2)`` over the positive half of ``q``; its DC part joins ``bias``.

    Returns
    -------
    (frequencies [C, d], amplitude [n', C], phase [n', C], bias [n'], dropped [n'])
        The ``carried`` strongest frequencies, and per neuron the amplitude of
        those left out.
    """
    pre = coefficients @ weight.T  # [Q, n'] coefficients of the next pre-activation
    zero = (unique == 0).all(axis=1)
    bias = bias + (pre[zero].real.sum(axis=0) if zero.any() else 0.0)
    positive = _positive_half(unique) & ~zero
    amplitude_all = 2 * np.abs(pre[positive])  # [P, n']: u = sum 2|U| sin(q x + arg U + pi/2)
    strength = amplitude_all.max(axis=1)
    keep = np.argsort(-strength, kind="stable")[:carried]
    dropped = amplitude_all.sum(axis=0) - amplitude_all[keep].sum(axis=0)
    phase = (np.angle(pre[positive][keep]) + np.pi / 2).T
    return unique[positive][keep], amplitude_all[keep].T, phase, bias, dropped


def _through_head(numbers: dict, unique: np.ndarray, coefficients: np.ndarray, bounds: np.ndarray,
                  omitted_per_neuron: np.ndarray):
    """The last hidden layer's coefficients through the head and the output map (DC term added).

    Returns
    -------
    (frequencies [K, d], amplitudes [K, channels], bound [K, channels], omitted bound of the output)
    """
    head, scale = numbers["head"], numbers["scale"]
    amplitudes = (coefficients @ head.T) * scale
    bound = (bounds @ np.abs(head).T) * scale
    zero = np.flatnonzero((unique == 0).all(axis=1))
    dc = numbers["offset"] + scale * numbers["head_bias"]
    if len(zero):
        amplitudes[zero[0]] += dc
    else:
        unique = np.vstack([unique, np.zeros((1, unique.shape[1]), np.int64)])
        amplitudes = np.vstack([amplitudes, dc[None].astype(np.complex128)])
        bound = np.vstack([bound, np.zeros((1, head.shape[0]))])
    omitted_output = float((np.abs(head) @ omitted_per_neuron * scale).max())
    return unique, amplitudes, bound, omitted_output


def _positive_half(frequencies: np.ndarray) -> np.ndarray:
    """Rows whose first non-zero coordinate is positive."""
    nonzero = frequencies != 0
    first = np.argmax(nonzero, axis=1)
    lead = frequencies[np.arange(len(frequencies)), first]
    return nonzero.any(axis=1) & (lead > 0)


