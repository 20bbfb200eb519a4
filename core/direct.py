"""Direct sinusoids: lattice frequencies that reach the linear head without the bounded layers.

In ``L(S(D(x)))`` every input frequency feeds every neuron of the first bounded
layer, so each one costs ``n`` weights. A signal whose energy sits in a few
hundred sharp spectral lines (the partials of sustained notes) is cheaper as
those lines themselves: ``a_j sin(omega_j . x) + b_j cos(omega_j . x)`` costs
``d + 2 C`` stored numbers (the frequency and one sine and one cosine weight per
channel). :class:`DirectSines` adds such a path beside the network,
``f(x) = out(L(S(D(x))) + V [sin(Omega x); cos(Omega x)])``:

* The frequencies are the signal's strongest lattice bins
  (:func:`strongest_bins`). They lie on the sublattice of the grid's own DFT
  bins (every second lattice frequency when the domain is half the period) and
  under the signal's Nyquist limit. A line passes no nonlinearity, so it adds
  exactly its own frequency to the model's spectrum and nothing else: the
  spectrum stays known and band-limited.
* ``V`` starts at the target's projection on each line (:func:`project_`),
  nearly the least-squares fit, since the lines are nearly orthogonal on the
  grid; it then trains with the rest of the model.

Domain-agnostic: only gridded signals have the spectrum this needs.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from inrkit.config import DEFAULT_PERIOD
from inrkit.lattice import in_half_space
from inrkit.signal import Signal

#: Largest lattice spectrum (bins x channels) searched for lines; a larger signal gets none.
MAX_LINE_SEARCH_BINS = 1 << 25
#: ``--direct auto`` gives lines only where they alone would reconstruct the signal to at least this SNR (dB):
#: where its energy sits in few sharp lines. Measured (benchmarks/README.md, "Direct lines"): a melody's strongest
#: 2,000 bins hold 21.1 dB of it, speech's 9.1 dB.
LINES_MIN_SNR_DB = 15.0
#: Largest samples x lines of an automatic choice: the lines' basis (sin and cos, float32) stays within 1 GiB and a
#: step's cost within that of the network it sits beside (2 s at 16 kHz: up to 4,096 lines).
MAX_LINE_ENTRIES = 1 << 27


class DirectSines(nn.Module):
    """``V [sin(Omega x); cos(Omega x)]``: ``k`` lattice lines straight to the head (``[N, channels]``).

    Parameters
    ----------
    frequencies:
        ``[k, d]`` integer lattice frequencies, ``Omega = 2 pi f / period``.
    channels:
        Outputs; ``weight`` is ``[channels, 2 k]`` (the sine weights, then the cosine weights), zero at first.
    """

    def __init__(self, frequencies: torch.Tensor, period: float, channels: int):
        super().__init__()
        self.period = period
        self.register_buffer("frequencies", frequencies.to(torch.long).clone())
        self.weight = nn.Parameter(torch.zeros(channels, 2 * frequencies.shape[0]))

    @property
    def omega(self) -> torch.Tensor:
        """Angular frequencies ``[k, d]`` in the weight's dtype."""
        return self.frequencies.to(self.weight.dtype) * (2.0 * math.pi / self.period)

    def basis(self, coords: torch.Tensor) -> torch.Tensor:
        """``[sin(Omega x), cos(Omega x)]``, ``[N, 2 k]``: fixed, so a trainer caches it."""
        angle = coords.to(self.weight.dtype) @ self.omega.T
        return torch.cat([torch.sin(angle), torch.cos(angle)], dim=1)

    def from_basis(self, rows: torch.Tensor) -> torch.Tensor:
        return rows @ self.weight.T

    def forward(self, coords: torch.Tensor) -> torch.Tensor:
        return self.from_basis(self.basis(coords))


def line_cost(dims: int, channels: int) -> int:
    """Stored numbers per direct line: its ``dims`` integer coordinates, and a sine and a cosine weight per channel."""
    return dims + 2 * channels


def strongest_bins(signal: Signal, count: int, period: float = DEFAULT_PERIOD) -> torch.Tensor | None:
    """The ``count`` lattice frequencies (``[count, d]``, long) where the signal's spectrum is strongest.

    Candidates are the canonical half-space's non-zero bins on the sublattice of the grid's own DFT
    bins (stride ``round(P_i / N_i)`` per axis, ``P_i`` the period's samples) within the signal's
    Nyquist cutoffs (:func:`inrkit.fourier.nyquist_cutoffs`, exclusive). None for a signal without a
    grid, or a spectrum larger than :data:`MAX_LINE_SEARCH_BINS`; fewer than ``count`` when fewer exist.
    """
    from inrkit.fourier import grid_spacing, grid_spectrum, nyquist_cutoffs

    if signal.grid_shape is None or count <= 0:
        return None
    shape = tuple(signal.grid_shape)
    samples = [int(round(period / h)) for h in grid_spacing(shape, signal.extent)]
    if math.prod(samples) * signal.channels > MAX_LINE_SEARCH_BINS:
        return None
    values = signal.values.double().numpy().reshape(*shape, signal.channels)
    power = (np.abs(grid_spectrum(values, signal.extent, period)) ** 2).sum(axis=-1)
    axes = []
    for size, n, cutoff in zip(samples, shape, nyquist_cutoffs(signal, period)):
        stride = max(1, int(round(size / max(n, 1))))
        reach = min(cutoff, size // 2 - 1) // stride * stride
        axes.append(np.arange(-reach, reach + 1, stride))
    grid = np.stack([g.reshape(-1) for g in np.meshgrid(*axes, indexing="ij")], axis=1)
    grid = grid[in_half_space(torch.from_numpy(grid)).numpy()]  # a line and its mirror are one
    strength = power[tuple((grid % np.array(samples)).T)]
    count = min(count, len(grid))
    chosen = np.argpartition(-strength, count - 1)[:count] if count < len(grid) else np.arange(len(grid))
    chosen = chosen[np.lexsort(grid[chosen].T[::-1])]  # in lattice order, for a reproducible file
    return torch.from_numpy(grid[chosen].astype(np.int64))


@torch.no_grad()
def project_(direct: DirectSines, coords: torch.Tensor, target: torch.Tensor, chunk: int = 1 << 14) -> None:
    """Set ``direct.weight`` to ``target``'s projection on each basis function (``target``: ``[N, channels]``,
    in the units before the output map), accumulated over row chunks in float64."""
    width = direct.weight.shape[1]
    dot = torch.zeros(width, target.shape[1], dtype=torch.float64)
    norm = torch.zeros(width, dtype=torch.float64)
    for start in range(0, coords.shape[0], chunk):
        rows = direct.basis(coords[start:start + chunk]).double()
        dot += rows.T @ target[start:start + chunk].double()
        norm += (rows**2).sum(dim=0)
    direct.weight.copy_((dot / norm.clamp_min(1e-12)[:, None]).T.to(direct.weight.dtype))


def lines_snr(signal: Signal, count: int, period: float = DEFAULT_PERIOD, chunk: int = 1 << 14,
              lines: torch.Tensor | None = None) -> float | None:
    """The SNR (dB, against the signal less its mean) of the signal's ``count`` strongest lines alone, at their
    projection (:func:`project_`); None where it has no spectrum to search. ``lines``: those lines, when the
    caller has already searched them (:func:`strongest_bins`)."""
    if lines is None:
        lines = strongest_bins(signal, count, period)
    if lines is None or len(lines) == 0:
        return None
    direct = DirectSines(lines, period, signal.channels)
    coords, values = signal.coordinates(), signal.values.double()
    target = values - values.mean(dim=0)
    project_(direct, coords, target, chunk)
    error = 0.0
    with torch.no_grad():
        for start in range(0, coords.shape[0], chunk):
            error += float(((target[start:start + chunk] - direct(coords[start:start + chunk]).double()) ** 2).sum())
    total = float((target**2).sum())
    if total <= 0:
        return None
    return 10 * math.log10(total / max(error, total * 1e-12))


def planned_lines(signal: Signal, params: int, share: float, period: float = DEFAULT_PERIOD) -> int:
    """How many direct lines a lattice model of ``params`` stored numbers gets: ``share`` of its budget spent on
    lines (:func:`line_cost` each, at most :data:`MAX_LINE_ENTRIES` over the samples) when those lines alone reach
    :data:`LINES_MIN_SNR_DB`, else none."""
    if share <= 0 or signal.grid_shape is None:
        return 0
    count = min(int(share * params) // line_cost(signal.dims, signal.channels), MAX_LINE_ENTRIES // signal.samples)
    found = strongest_bins(signal, count, period) if count > 0 else None
    count = 0 if found is None else len(found)  # a short signal has fewer lines under Nyquist than asked for
    snr = lines_snr(signal, count, period, lines=found) if count > 0 else None
    return count if snr is not None and snr >= LINES_MIN_SNR_DB else 0


def attach_lines(config, frequencies: torch.Tensor, signal: Signal | None):
    """A :class:`~inrkit.model.SinusoidalINR` of ``config`` with its ``config.direct`` lines at the signal's
    strongest bins, their weights at the target's projection (:func:`project_`)."""
    from inrkit.errors import ConfigError
    from inrkit.model import SinusoidalINR

    if signal is None:
        raise ConfigError("direct lines are drawn from the signal's spectrum: pass the signal to build_model")
    lines = strongest_bins(signal, config.direct, config.period)
    if lines is None or lines.shape[0] < config.direct:
        found = 0 if lines is None else lines.shape[0]
        raise ConfigError(f"--direct {config.direct} asks for more lines than this signal has ({found}: a gridded "
                          "signal's bins under its Nyquist frequency); give fewer, or --direct 0")
    model = SinusoidalINR(config, frequencies, lines)
    start_lines(model, signal)
    return model


def start_lines(model, signal: Signal, rows: torch.Tensor | None = None) -> None:
    """Set a model's line weights to the projection of its target (the signal before the output map), on the
    samples ``rows`` (default: all; a fit with a hold-out passes its training samples)."""
    config = model.config
    offset = torch.tensor(config.output_offset, dtype=torch.float64)
    scale = torch.tensor(config.output_scale, dtype=torch.float64)
    coords, values = signal.coordinates(), signal.values
    if rows is not None:
        coords, values = coords[rows], values[rows]
    project_(model.direct, coords, (values.double() - offset) / scale)


def with_lines(model, unique: np.ndarray, amplitudes: np.ndarray, bound: np.ndarray):
    """A predicted spectrum (:func:`inrkit.spectrum.predict_spectrum`) with the model's direct lines added:
    ``a sin(t) + b cos(t)`` is ``(b - i a) / 2`` at ``+q`` (and
    its conjugate at ``-q``), times the output scale; exact, so its bound is its magnitude."""
    from inrkit.spectrum import unique_rows

    if getattr(model, "direct", None) is None:
        return unique, amplitudes, bound
    lines = model.direct.frequencies.cpu().numpy().astype(np.int64)
    weight = model.direct.weight.detach().double().cpu().numpy()
    count = lines.shape[0]
    scale = model.output.scale.detach().double().cpu().numpy()
    coefficient = ((weight[:, count:] - 1j * weight[:, :count]) / 2).T * scale  # [k, channels]
    rows, inverse = unique_rows(np.concatenate([unique, lines, -lines]))
    total = np.zeros((len(rows), amplitudes.shape[1]), np.complex128)
    limit = np.zeros((len(rows), amplitudes.shape[1]))
    np.add.at(total, inverse, np.concatenate([amplitudes, coefficient, np.conj(coefficient)]))
    np.add.at(limit, inverse, np.concatenate([bound, np.abs(coefficient), np.abs(coefficient)]))
    return rows, total, limit


__all__ = ["LINES_MIN_SNR_DB", "MAX_LINE_ENTRIES", "MAX_LINE_SEARCH_BINS", "DirectSines", "attach_lines", "line_cost", "lines_snr",
           "planned_lines", "project_", "start_lines", "strongest_bins", "with_lines"]
