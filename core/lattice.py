"""Integer-lattice frequencies for the input layer.

An input neuron is ``sin(omega_j . x + phi_j)`` with ``omega_j = 2 pi f_j / p``
where ``f_j`` is an integer vector (the *lattice frequency*) and ``p`` the
period. Every frequency the network generates is then an integer combination
``sum_j k_j f_j`` of the input frequencies, so it lies on the same lattice and
the network is ``p``-periodic (METHOD.md section 2).

Conventions used throughout:

* Coordinates live in ``[-1, 1]`` per axis (the longest axis spans it).
* A lattice frequency ``f`` (integer) means ``f / p`` cycles per unit length.
* ``sin(w x + phi)`` and ``sin(-w x + phi')`` span the same functions, so
  frequencies are drawn from one half-space: the first non-zero coordinate is
  positive.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from inrkit.config import DEFAULT_PERIOD  # the period p of the lattice, omega = 2 pi f / p
from inrkit.errors import ConfigError



def lattice_nyquist(nyquist: Sequence[float], period: float = DEFAULT_PERIOD) -> tuple[int, ...]:
    """Convert a per-axis Nyquist frequency to the integer lattice.

    Parameters
    ----------
    nyquist:
        Nyquist frequency per axis in cycles per unit length of the
        coordinate domain (``N / 4`` for ``N`` samples spanning ``[-1, 1]``).
    period:
        Period ``p`` of the network.

    Returns
    -------
    tuple of int
        The largest integer frequency per axis that is still below Nyquist,
        ``floor(nyquist * p)``.
    """
    return tuple(max(1, int(math.floor(n * period + 1e-9))) for n in nyquist)


def in_half_space(frequencies: torch.Tensor) -> torch.Tensor:
    """Whether each integer vector lies in the canonical half-space.

    Parameters
    ----------
    frequencies:
        Integer tensor of shape ``[m, d]``.

    Returns
    -------
    torch.Tensor
        Bool tensor ``[m]``: true where the first non-zero coordinate is
        positive (the zero vector is not in the half-space).
    """
    nonzero = frequencies != 0
    has_nonzero = nonzero.any(dim=1)
    first = torch.argmax(nonzero.to(torch.int8), dim=1)
    lead = frequencies.gather(1, first.unsqueeze(1)).squeeze(1)
    return has_nonzero & (lead > 0)


def half_space_count(bandlimit: Sequence[int]) -> int:
    """Number of non-zero integer vectors of the box ``|f_i| <= bandlimit_i`` in one half-space."""
    total = 1
    for b in bandlimit:
        total *= 2 * int(b) + 1
    return (total - 1) // 2


def _canonical(dims: int) -> torch.Tensor:
    return torch.eye(dims, dtype=torch.long)


def _to_half_space(vectors: torch.Tensor) -> torch.Tensor:
    """Flip each vector that lies in the negative half-space (a bijection of the box)."""
    flip = ~in_half_space(vectors)
    return torch.where(flip.unsqueeze(1), -vectors, vectors)


def _draw_unique(
    count: int,
    bandlimit: Sequence[int],
    exclude: set[tuple[int, ...]],
    reject_inside: Sequence[int] | None,
    generator: torch.Generator,
) -> list[tuple[int, ...]]:
    """Draw ``count`` distinct half-space vectors of a box, uniformly, by rejection.

    Vectors in ``exclude`` and, when ``reject_inside`` is given, vectors inside
    the box ``|f_i| <= reject_inside_i`` are rejected.
    """
    bounds = torch.tensor([int(b) for b in bandlimit], dtype=torch.long)
    inner = None if reject_inside is None else torch.tensor([int(b) for b in reject_inside])
    chosen: list[tuple[int, ...]] = []
    seen = set(exclude)
    while len(chosen) < count:
        batch = max(64, 4 * (count - len(chosen)))
        raw = torch.randint(0, 1 << 30, (batch, len(bounds)), generator=generator)
        vectors = raw % (2 * bounds + 1) - bounds
        vectors = _to_half_space(vectors)
        keep = vectors.abs().sum(dim=1) > 0
        if inner is not None:
            keep &= ~(vectors.abs() <= inner).all(dim=1)
        for row in vectors[keep].tolist():
            key = tuple(row)
            if key not in seen:
                seen.add(key)
                chosen.append(key)
                if len(chosen) == count:
                    break
    return chosen


def _check(count: int, bandlimit: Sequence[int]) -> None:
    if count < len(bandlimit):
        raise ConfigError(
            f"need at least {len(bandlimit)} input frequencies for a {len(bandlimit)}-D signal "
            f"(the canonical basis), got {count}; raise --input-frequencies or --params"
        )
    if any(int(b) < 1 for b in bandlimit):
        raise ConfigError(f"bandlimit must be at least 1 on every axis, got {tuple(bandlimit)}")
    available = half_space_count(bandlimit)
    if count > available:
        raise ConfigError(
            f"{count} input frequencies requested but the lattice box with bandlimit "
            f"{tuple(int(b) for b in bandlimit)} holds only {available} distinct ones; "
            "use fewer input frequencies or a larger bandlimit"
        )


def sample_lattice_frequencies(
    count: int,
    bandlimit: Sequence[int],
    low_bandlimit: Sequence[int],
    low_fraction: float = 0.7,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """The lattice initializer: a dense low block plus spread high frequencies.

    Parameters
    ----------
    count:
        Number of input frequencies ``m``.
    bandlimit:
        Largest allowed ``|f_i|`` per axis (``B``); every frequency lies in the
        box ``|f_i| <= bandlimit_i``.
    low_bandlimit:
        Per-axis extent ``L`` of the dense low block ``|f_i| <= L_i``.
    low_fraction:
        Fraction of ``count`` drawn from the low block (the canonical basis
        ``e_1 .. e_d`` is always included and counts towards it). When the
        low block is smaller than its share, the rest comes from the high set.
    generator:
        Source of randomness (seeded for reproducibility).

    Returns
    -------
    torch.Tensor
        ``[count, d]`` int64, distinct, all in one half-space, canonical basis
        first, then the rest of the low block, then the high frequencies.

    Raises
    ------
    ConfigError
        If the box holds fewer than ``count`` distinct half-space vectors.
    """
    dims = len(bandlimit)
    _check(count, bandlimit)
    if not 0.0 <= low_fraction <= 1.0:
        raise ConfigError(f"low_fraction must be in [0, 1], got {low_fraction}")
    low = tuple(max(1, min(int(lo), int(b))) for lo, b in zip(low_bandlimit, bandlimit, strict=True))
    generator = generator or torch.Generator().manual_seed(0)
    basis = _canonical(dims)
    taken = {tuple(row) for row in basis.tolist()}

    low_total = half_space_count(low)
    high_total = half_space_count(bandlimit) - low_total
    n_low = min(low_total, max(dims, round(low_fraction * count)))
    n_high = count - n_low
    if n_high > high_total:
        n_high = high_total
        n_low = count - n_high
    low_extra = _draw_unique(n_low - dims, low, taken, None, generator)
    taken.update(low_extra)
    high = _draw_unique(n_high, bandlimit, taken, low, generator)
    rows = [*basis.tolist(), *low_extra, *high]
    return torch.tensor(rows, dtype=torch.long).reshape(count, dims)


def sample_uniform_frequencies(
    count: int,
    bandlimit: Sequence[int],
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Baseline initializer: distinct half-space integer vectors uniform in the box.

    Parameters and return value as :func:`sample_lattice_frequencies`, without
    the low block: apart from the canonical basis (always included, for a fair
    comparison) every frequency is uniform in ``|f_i| <= bandlimit_i``.
    """
    dims = len(bandlimit)
    _check(count, bandlimit)
    generator = generator or torch.Generator().manual_seed(0)
    basis = _canonical(dims)
    rest = _draw_unique(count - dims, bandlimit, {tuple(r) for r in basis.tolist()}, None, generator)
    rows = [*basis.tolist(), *rest]
    return torch.tensor(rows, dtype=torch.long).reshape(count, dims)
