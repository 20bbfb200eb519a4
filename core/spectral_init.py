"""Data-driven input frequencies: draw the lattice where the target's spectrum has its energy.

The box sampler (:func:`inrkit.lattice.sample_lattice_frequencies`) spreads
the high input frequencies uniformly over the bandlimit box. A signal whose
energy sits at a few places of the box (the harmonics of a note, the
orientation of a texture) wastes most of those draws. This sampler keeps the
lattice's rules (the canonical basis first, one half-space, no duplicates,
everything within the bandlimit, the low block dense) and draws the high
frequencies with a probability that follows the target's own spectral
magnitude, smoothed over neighbouring bins, mixed with a little of the
uniform law so that no part of the box is ruled out.

The spectrum is the signal's lattice spectrum (:func:`inrkit.fourier.grid_spectrum`:
the samples at their coordinates in one period, the rest zero), so bin ``q``
is the integer lattice frequency ``q`` on every axis, whatever the grid's
per-axis spacing. Only gridded signals have one; others (an SDF's point bank)
keep the box sampler.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
from inrkit.config import DEFAULT_PERIOD
from inrkit.errors import ConfigError
from inrkit.lattice import half_space_count, in_half_space, sample_lattice_frequencies
from inrkit.signal import Signal

#: Standard deviation, in lattice bins, of the Gaussian that smooths the spectral magnitude.
SMOOTHING_BINS = 1.0
#: Share of the uniform law in the high frequencies' probability (the rest follows the spectrum).
UNIFORM_SHARE = 0.1
#: Largest lattice spectrum (bins x channels) computed; a larger signal keeps the box sampler.
MAX_SPECTRUM_BINS = 1 << 25
#: ``--input-sampling auto`` draws from the spectrum when its effective support (:func:`spectral_support`) is
#: below this share of the box. Measured (benchmarks/levers.py, 300 steps): the spectrum gained on a synthetic
#: chord (support 0.01), a melody (0.09), the rocket (0.10) and brick (0.24) photos and lost 0.1-0.3 dB on
#: speech (0.49) and four photos (0.30-0.36).
AUTO_SUPPORT = 0.27
#: The same threshold for a model of more than one hidden layer. Measured on the four-layer image default
#: (2026-11-30, 1,500 steps, same seed): the spectrum gained +1.08 dB PSNR on astronaut (support 0.32) and
#: +0.22 dB on chelsea (0.30), +0.30 dB on coffee (0.33, 60 s) and lost 0.27 dB on camera (0.36).
DEEP_AUTO_SUPPORT = 0.35


def _smooth(values: np.ndarray, sigma: float) -> np.ndarray:
    """Separable Gaussian smoothing of a d-dimensional array (zero outside it)."""
    if sigma <= 0:
        return values
    radius = max(1, math.ceil(3 * sigma))
    offsets = np.arange(-radius, radius + 1)
    kernel = np.exp(-0.5 * (offsets / sigma) ** 2)
    kernel /= kernel.sum()
    for axis in range(values.ndim):
        padded = np.pad(values, [(radius, radius) if a == axis else (0, 0) for a in range(values.ndim)])
        size = values.shape[axis]
        values = sum(w * np.take(padded, np.arange(k, k + size), axis=axis) for k, w in enumerate(kernel))
    return values


def spectrum_fits(signal: Signal, period: float = DEFAULT_PERIOD) -> bool:
    """Whether :func:`spectral_magnitude` can be computed for ``signal`` (gridded, not too large)."""
    if signal.grid_shape is None or signal.extent is None:
        return False
    from inrkit.fourier import grid_spacing

    try:
        spacing = grid_spacing(signal.grid_shape, signal.extent)
    except Exception:  # noqa: BLE001 - a degenerate grid simply has no usable spectrum
        return False
    bins = math.prod(round(period / h) for h in spacing)
    return bins * signal.channels <= MAX_SPECTRUM_BINS


def spectral_magnitude(signal: Signal, bandlimit: Sequence[int], period: float = DEFAULT_PERIOD,
                       smoothing: float = SMOOTHING_BINS) -> tuple[torch.Tensor, torch.Tensor]:
    """The signal's smoothed spectral magnitude on the half-space of the bandlimit box.

    The samples are tapered by a Hann window per axis before the transform
    (:func:`inrkit.fourier.grid_spectrum`), so a peak's leakage falls off as
    ``1/k^3`` instead of ``1/k``.

    Returns
    -------
    (vectors, magnitude):
        ``[K, d]`` int64 lattice vectors (every half-space vector with
        ``|q_i| <= min(B_i, P_i // 2 - 1)``) and ``[K]`` float64 magnitudes
        ``sqrt(sum_channels |F(q)|^2)``, smoothed by a Gaussian of ``smoothing`` bins.

    Raises
    ------
    ConfigError
        When the signal is not gridded.
    """
    from inrkit.fourier import centered, grid_spectrum

    if signal.grid_shape is None:
        raise ConfigError("spectral input frequencies need a gridded signal; use the box sampler for point sets")
    shape = signal.grid_shape
    values = signal.values.double().numpy().reshape(*shape, signal.channels)
    for axis, n in enumerate(shape):  # a Hann taper: the border's jump would smear every peak over the whole box
        taper = np.hanning(n + 2)[1:-1] if n > 2 else np.ones(n)
        values = values * taper.reshape([n if a == axis else 1 for a in range(len(shape))] + [1])
    spectrum = grid_spectrum(values, signal.extent, period)
    radius = [min(int(b), n // 2 - 1) for b, n in zip(bandlimit, spectrum.shape[:-1], strict=True)]
    box = centered(spectrum, radius)
    magnitude = _smooth(np.sqrt((np.abs(box) ** 2).sum(axis=-1)), smoothing)
    axes = np.meshgrid(*[np.arange(-r, r + 1) for r in radius], indexing="ij")
    vectors = torch.from_numpy(np.stack([a.reshape(-1) for a in axes], axis=1).astype(np.int64))
    keep = in_half_space(vectors)
    return vectors[keep], torch.from_numpy(magnitude.reshape(-1))[keep]


def sample_spectral_frequencies(
    count: int,
    bandlimit: Sequence[int],
    low_bandlimit: Sequence[int],
    vectors: torch.Tensor,
    magnitude: torch.Tensor,
    low_fraction: float = 0.7,
    generator: torch.Generator | None = None,
    uniform_share: float = UNIFORM_SHARE,
    spectral_low: bool = False,
) -> torch.Tensor:
    """The lattice initializer with high frequencies drawn where the spectrum has its energy.

    Parameters
    ----------
    count, bandlimit, low_bandlimit, low_fraction, generator:
        As :func:`inrkit.lattice.sample_lattice_frequencies`, which draws the
        canonical basis and the low block (the same vectors it would draw).
    vectors, magnitude:
        Candidate half-space vectors ``[K, d]`` and their weights ``[K]``
        (:func:`spectral_magnitude`); vectors outside the box or in the low block are ignored.
    uniform_share:
        Share of the uniform law in the high frequencies' probability.
    spectral_low:
        When the low block holds more vectors than its share (so it cannot be
        dense anyway, as for audio), draw its share by the spectrum too.

    Returns
    -------
    torch.Tensor
        ``[count, d]`` int64: distinct, in the half-space, within the bandlimit;
        the canonical basis first, then the low block, then the high frequencies
        drawn without replacement with probability ``(1 - u) |F| / sum |F| + u / K``.
    """
    if not 0.0 <= uniform_share <= 1.0:
        raise ConfigError(f"uniform share must be in [0, 1], got {uniform_share}")
    generator = generator or torch.Generator().manual_seed(0)
    box = sample_lattice_frequencies(count, bandlimit, low_bandlimit, low_fraction, generator)
    dims = len(bandlimit)
    low = torch.tensor([max(1, min(int(lo), int(b))) for lo, b in zip(low_bandlimit, bandlimit, strict=True)])
    in_low = (box.abs() <= low).all(dim=1)
    limit = torch.tensor([int(b) for b in bandlimit])
    usable = (vectors.abs() <= limit).all(dim=1) & in_half_space(vectors)
    vectors, magnitude = vectors[usable], magnitude[usable].double().clamp(min=0)
    candidate_low = (vectors.abs() <= low).all(dim=1)
    parts = [box[:dims]]
    low_rest = box[dims:][in_low[dims:]]
    if spectral_low and low_rest.shape[0] < half_space_count(low) - dims:
        basis = (vectors.abs().sum(dim=1) == 1) & (vectors.max(dim=1).values == 1)
        pool = candidate_low & ~basis
        low_rest = _draw(vectors[pool], magnitude[pool], low_rest.shape[0], uniform_share, generator, low_rest)
    parts.append(low_rest)
    high = box[~in_low]
    if high.shape[0]:
        high = _draw(vectors[~candidate_low], magnitude[~candidate_low], high.shape[0], uniform_share, generator, high)
    parts.append(high)
    return torch.cat(parts, dim=0)


def _draw(pool: torch.Tensor, weight: torch.Tensor, count: int, uniform_share: float,
          generator: torch.Generator, fallback: torch.Tensor) -> torch.Tensor:
    """``count`` distinct rows of ``pool`` with probability ``(1 - u) w / sum w + u / K``; ``fallback`` if too few."""
    if pool.shape[0] < count:  # the measured spectrum covers too little of the box: keep the box draw
        return fallback
    total = float(weight.sum())
    uniform = torch.full_like(weight, 1.0 / weight.numel())
    probability = uniform if total <= 0 else (1 - uniform_share) * weight / total + uniform_share * uniform
    return pool[torch.multinomial(probability, count, replacement=False, generator=generator)]


def spectral_support(signal: Signal, bandlimit: Sequence[int], period: float = DEFAULT_PERIOD) -> float | None:
    """Share of the box that carries the signal's spectral magnitude: ``(sum |F|)^2 / (K sum |F|^2)``.

    The inverse participation ratio of the magnitude over the ``K`` half-space
    vectors of the box (the canonical basis left out), divided by ``K``: 1 for
    a flat spectrum, ``k / K`` for one spread evenly over ``k`` bins. None when
    the signal has no usable spectrum (:func:`spectrum_fits`) or none in the box.
    """
    if not spectrum_fits(signal, period):
        return None
    vectors, magnitude = spectral_magnitude(signal, bandlimit, period)
    weight = magnitude[vectors.abs().sum(dim=1) > 1].double()
    total = float((weight ** 2).sum())
    if weight.numel() == 0 or total <= 0:
        return None
    return float(weight.sum()) ** 2 / (weight.numel() * total)


def choose_sampling(signal: Signal, bandlimit: Sequence[int], period: float = DEFAULT_PERIOD,
                    hidden_layers: int = 1) -> str:
    """``spectrum`` when the signal's spectrum is concentrated, else ``box``.

    Concentrated: support under :data:`AUTO_SUPPORT` for one hidden layer, under
    :data:`DEEP_AUTO_SUPPORT` for more.
    """
    support = spectral_support(signal, bandlimit, period)
    threshold = DEEP_AUTO_SUPPORT if hidden_layers > 1 else AUTO_SUPPORT
    return "spectrum" if support is not None and support < threshold else "box"


def signal_frequencies(
    signal: Signal,
    count: int,
    bandlimit: Sequence[int],
    low_bandlimit: Sequence[int],
    low_fraction: float = 0.7,
    generator: torch.Generator | None = None,
    period: float = DEFAULT_PERIOD,
) -> torch.Tensor:
    """Input frequencies for ``signal``: spectral for a gridded signal, the box sampler otherwise.

    The high frequencies, and the low block's share where the low block
    holds more vectors than that share, follow the spectrum
    (:func:`sample_spectral_frequencies` with ``spectral_low=True``: on a
    synthetic chord it gained 3.0 dB SNR at 300 steps where the high
    frequencies alone gained 0.4 dB, ``benchmarks/levers.py``).
    The box sampler is also used for a signal too large for its spectrum
    (:data:`MAX_SPECTRUM_BINS`) and for a box whose high part is too small to choose from.
    """
    generator = generator or torch.Generator().manual_seed(0)
    if not spectrum_fits(signal, period) or half_space_count(bandlimit) <= count:
        return sample_lattice_frequencies(count, bandlimit, low_bandlimit, low_fraction, generator)
    vectors, magnitude = spectral_magnitude(signal, bandlimit, period)
    return sample_spectral_frequencies(count, bandlimit, low_bandlimit, vectors, magnitude, low_fraction, generator,
                                       spectral_low=True)


__all__ = ["AUTO_SUPPORT", "DEEP_AUTO_SUPPORT", "choose_sampling", "sample_spectral_frequencies", "signal_frequencies", "spectral_magnitude",
           "spectral_support", "spectrum_fits"]
