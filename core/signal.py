"""The contract between signal plugins and the core.

A signal plugin's loader returns a :class:`Signal`: sample values, where they
are, how fine the sampling is (its Nyquist frequency per axis) and the
metadata its exporter needs. The core never looks inside ``metadata``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from inrkit.errors import InputError


def grid_extent(shape: Sequence[int]) -> tuple[float, ...]:
    """Half-extent per axis of a grid whose longest axis spans ``[-1, 1]``.

    Samples are equally spaced with the same spacing ``h = 2 / (N_max - 1)``
    on every axis, so the aspect ratio is kept: axis ``i`` spans
    ``[-e_i, e_i]`` with ``e_i = h (N_i - 1) / 2``.
    """
    longest = max(shape)
    spacing = 2.0 / max(longest - 1, 1)
    return tuple(spacing * (n - 1) / 2.0 for n in shape)


def grid_coordinates(shape: Sequence[int], extent: Sequence[float]) -> torch.Tensor:
    """Coordinates of a regular grid, flattened in row-major (C) order.

    Parameters
    ----------
    shape:
        Samples per axis ``(N_0, ..., N_{d-1})``.
    extent:
        Half-extent per axis; axis ``i`` is sampled with ``linspace(-e_i, e_i, N_i)``.

    Returns
    -------
    torch.Tensor
        ``[prod(shape), d]`` float32; column ``i`` is the coordinate along grid axis ``i``.
    """
    axes = [torch.linspace(-e, e, n) if n > 1 else torch.zeros(1) for n, e in zip(shape, extent, strict=True)]
    mesh = torch.meshgrid(*axes, indexing="ij")
    return torch.stack([m.reshape(-1) for m in mesh], dim=1)


def grid_nyquist(shape: Sequence[int], extent: Sequence[float]) -> tuple[float, ...]:
    """Nyquist frequency per axis in cycles per unit length: ``1 / (2 h_i)``."""
    result = []
    for n, e in zip(shape, extent, strict=True):
        spacing = 2.0 * e / (n - 1) if n > 1 else 2.0
        result.append(1.0 / (2.0 * spacing))
    return tuple(result)


@dataclass
class Signal:
    """A signal ready to fit.

    Attributes
    ----------
    kind:
        Name of the signal type that loaded it (``image``, ``audio``, ...).
    values:
        ``[N, channels]`` float32 target values.
    nyquist:
        Nyquist frequency per axis in cycles per unit length of the
        coordinate domain; the lattice bandlimit derives from it. For
        scattered signals, the Nyquist frequency of the working resolution.
    data_range:
        Peak-to-peak range of the values, the peak of the PSNR.
    grid_shape:
        Samples per axis when the signal is a regular grid (``values`` then
        reshapes to ``[*grid_shape, channels]`` in row-major order), else None.
    extent:
        Half-extent per axis of a gridded signal's domain ``[-e_i, e_i]``.
    points:
        ``[N, d]`` coordinates of a scattered (non-grid) signal; a gridded
        signal computes them on demand with :func:`grid_coordinates`.
    metadata:
        JSON-serialisable facts its exporters need (sample rate, bit depth,
        colour mode...). Saved in the run directory's ``config.json``.
    source:
        Path of the file it came from, if any.
    attributes:
        Further per-sample tensors (``[N, k]``, aligned with ``values``) that
        samplers hand on to losses in :attr:`Batch.extra`, e.g. surface
        normals of a point cloud. The trainer moves them to its device.
    """

    kind: str
    values: torch.Tensor
    nyquist: tuple[float, ...]
    data_range: float
    grid_shape: tuple[int, ...] | None = None
    extent: tuple[float, ...] | None = None
    points: torch.Tensor | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    source: str | None = None
    attributes: dict[str, torch.Tensor] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.values.ndim != 2 or self.values.shape[0] == 0 or self.values.shape[1] == 0:
            raise InputError(f"{self.kind} signal has no samples (values of shape {tuple(self.values.shape)})")
        if not torch.isfinite(self.values).all():
            raise InputError(f"{self.kind} signal contains NaN or infinite values; clean the input first")
        if self.grid_shape is not None:
            self.grid_shape = tuple(int(n) for n in self.grid_shape)
            if math.prod(self.grid_shape) != self.values.shape[0]:
                raise InputError(f"grid {self.grid_shape} does not match {self.values.shape[0]} samples")
            if self.extent is None:
                self.extent = grid_extent(self.grid_shape)
        elif self.points is None:
            raise InputError(f"{self.kind} signal needs either a grid shape or sample points")
        for name, tensor in self.attributes.items():
            if tensor.shape[0] != self.values.shape[0]:
                raise InputError(f"signal attribute {name!r} has {tensor.shape[0]} rows for {self.values.shape[0]} samples")
        if len(self.nyquist) != self.dims:
            raise InputError(f"nyquist needs one value per axis ({self.dims}), got {self.nyquist}")

    @property
    def dims(self) -> int:
        """Input dimension ``d``."""
        if self.grid_shape is not None:
            return len(self.grid_shape)
        return int(self.points.shape[1])

    @property
    def channels(self) -> int:
        """Output channels."""
        return int(self.values.shape[1])

    @property
    def samples(self) -> int:
        """Number of samples ``N``."""
        return int(self.values.shape[0])

    def coordinates(self) -> torch.Tensor:
        """``[N, d]`` coordinates of every sample, aligned with ``values``."""
        if self.points is not None:
            return self.points
        return grid_coordinates(self.grid_shape, self.extent)

    def geometry(self) -> dict[str, Any]:
        """The JSON-serialisable description exporters get with the metadata."""
        return {
            "kind": self.kind,
            "dims": self.dims,
            "channels": self.channels,
            "grid_shape": list(self.grid_shape) if self.grid_shape else None,
            "extent": list(self.extent) if self.extent else None,
            "nyquist": list(self.nyquist),
            "data_range": self.data_range,
        }


@dataclass
class Batch:
    """One training batch.

    Attributes
    ----------
    coords:
        ``[B, d]`` coordinates.
    target:
        ``[B, channels]`` target values.
    index:
        ``[B]`` int64 indices into the signal's samples when the batch is a
        subset of them (lets the trainer reuse a cached input-layer basis);
        None for off-sample coordinates.
    extra:
        Whatever else a plugin's loss needs (normals, weights...).
    """

    coords: torch.Tensor
    target: torch.Tensor
    index: torch.Tensor | None = None
    extra: dict[str, torch.Tensor] = field(default_factory=dict)
