"""The contract between signal plugins and the core.

A signal plugin's loader returns a :class:`Signal`: sample values, where they
are, how fine the sampling is (its Nyquist frequency per axis) and the
metadata its exporter needs. The core never looks inside ``metadata``.
"""

from __future__ import annotations

import copy
import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from inrkit.errors import InputError
from inrkit.lazy import lazy_import

torch = lazy_import("torch")  # imported at first use: registering plugins must not import torch


def grid_extent(shape: Sequence[int], spacing: Sequence[float] | None = None) -> tuple[float, ...]:
    """Half-extent per axis of a grid whose longest axis spans ``[-1, 1]``.

    By default samples are equally spaced with the same spacing
    ``h = 2 / (N_max - 1)`` on every axis, so the aspect ratio is kept: axis
    ``i`` spans ``[-e_i, e_i]`` with ``e_i = h (N_i - 1) / 2``. With
    ``spacing`` (relative sample spacing per axis), axis ``i``'s physical
    length is ``spacing_i (N_i - 1)`` and the longest one spans ``[-1, 1]``.
    """
    if spacing is None:
        longest = max(shape)
        step = 2.0 / max(longest - 1, 1)
        return tuple(step * (n - 1) / 2.0 for n in shape)
    spacing = tuple(float(h) for h in spacing)
    if len(spacing) != len(shape) or not all(math.isfinite(h) and h > 0 for h in spacing):
        raise InputError(f"spacing needs one positive number per axis ({len(shape)}), got {spacing}")
    lengths = [h * (n - 1) for h, n in zip(spacing, shape)]
    scale = 2.0 / max(max(lengths), 1e-300) if max(lengths) > 0 else 1.0
    return tuple(scale * length / 2.0 for length in lengths)


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

    Gridded loaders build it with :meth:`from_grid`; scattered ones pass
    ``points``.

    Attributes
    ----------
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
    provenance:
        The files the loader read, as ``{path: sha256}`` (see
        :func:`file_provenance`); recorded in the run directory. None: inrkit
        hashes the input path itself if it is a regular file.
    kind:
        Name of the signal type that loaded it. inrkit sets it after loading;
        passing it is deprecated since hook version 1.1 (the
        :class:`~inrkit.plugin.SignalType`'s name is the one name).
    """

    # ``kind`` stays first, with every field optional, so that loaders written for
    # hook version 1.0 (``Signal("csv", values, nyquist, data_range, ...)``) still work.
    kind: str = ""
    values: torch.Tensor | None = None
    nyquist: tuple[float, ...] | None = None
    data_range: float | None = None
    grid_shape: tuple[int, ...] | None = None
    extent: tuple[float, ...] | None = None
    points: torch.Tensor | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    source: str | None = None
    attributes: dict[str, torch.Tensor] = field(default_factory=dict)
    provenance: dict[str, str] | None = None

    def __post_init__(self) -> None:
        if self.kind:
            warnings.warn(
                "Signal(kind=...) is deprecated since hook version 1.1 and will be removed in inrkit 0.3: "
                "inrkit records the SignalType's name; build gridded signals with Signal.from_grid(...)",
                DeprecationWarning,
                stacklevel=3,
            )
        what = f"{self.kind} signal" if self.kind else "signal"
        if not isinstance(self.values, torch.Tensor):
            raise InputError(f"{what} needs values, a [N, channels] tensor, got {type(self.values).__name__}")
        if self.nyquist is None or self.data_range is None:
            raise InputError(f"{what} needs nyquist (one value per axis) and data_range; use Signal.from_grid for grids")
        self.nyquist = tuple(float(v) for v in self.nyquist)
        if self.values.ndim != 2 or self.values.shape[0] == 0 or self.values.shape[1] == 0:
            raise InputError(f"{what} has no samples (values of shape {tuple(self.values.shape)})")
        if not torch.isfinite(self.values).all():
            raise InputError(f"{what} contains NaN or infinite values; clean the input first")
        if self.grid_shape is not None:
            self.grid_shape = tuple(int(n) for n in self.grid_shape)
            if math.prod(self.grid_shape) != self.values.shape[0]:
                raise InputError(f"grid {self.grid_shape} does not match {self.values.shape[0]} samples")
            if self.extent is None:
                self.extent = grid_extent(self.grid_shape)
        elif self.points is None:
            raise InputError(f"{what} needs either a grid shape or sample points")
        for name, tensor in self.attributes.items():
            if tensor.shape[0] != self.values.shape[0]:
                raise InputError(f"signal attribute {name!r} has {tensor.shape[0]} rows for {self.values.shape[0]} samples")
        if len(self.nyquist) != self.dims:
            raise InputError(f"nyquist needs one value per axis ({self.dims}), got {self.nyquist}")

    @classmethod
    def from_grid(
        cls,
        values: torch.Tensor,
        grid_shape: Sequence[int],
        *,
        data_range: float | None = None,
        spacing: Sequence[float] | None = None,
        metadata: dict[str, Any] | None = None,
        source: str | None = None,
        attributes: dict[str, torch.Tensor] | None = None,
        provenance: dict[str, str] | None = None,
    ) -> Signal:
        """A signal sampled on a regular grid.

        Parameters
        ----------
        values:
            ``[prod(grid_shape), channels]`` (row-major) or ``[*grid_shape, channels]``.
        grid_shape:
            Samples per axis.
        data_range:
            Peak of the PSNR; default the values' peak-to-peak range (1 for a constant signal).
        spacing:
            Relative sample spacing per axis, for grids whose axes have
            different units or resolutions (time x space, anisotropic
            volumes); default equal spacing on every axis. The longest axis
            spans ``[-1, 1]``, and each axis gets its own Nyquist frequency.
        metadata, source, attributes, provenance:
            As in the class.
        """
        shape = tuple(int(n) for n in grid_shape)
        values = values.reshape(math.prod(shape), -1) if values.ndim != 2 else values
        extent = grid_extent(shape, spacing)
        if data_range is None:
            spread = float(values.max() - values.min()) if values.numel() else 0.0
            data_range = spread if spread > 0 else 1.0
        return cls(
            values=values,
            nyquist=grid_nyquist(shape, extent),
            data_range=float(data_range),
            grid_shape=shape,
            extent=extent,
            metadata=dict(metadata or {}),
            source=source,
            attributes=dict(attributes or {}),
            provenance=provenance,
        )

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

    def to(self, device: torch.device | str) -> Signal:
        """The same signal with its tensors (values, points, attributes) on ``device``."""
        moved = copy.copy(self)  # already validated: no second __post_init__
        moved.values = self.values.to(device)
        moved.points = None if self.points is None else self.points.to(device)
        moved.attributes = {name: tensor.to(device) for name, tensor in self.attributes.items()}
        return moved

    def geometry(self) -> dict[str, Any]:
        """The JSON-serialisable description exporters get with the metadata."""
        return {
            "kind": self.kind,  # kept for runs read by inrkit 0.1; the signal type's name
            "dims": self.dims,
            "channels": self.channels,
            "grid_shape": list(self.grid_shape) if self.grid_shape else None,
            "extent": list(self.extent) if self.extent else None,
            "nyquist": list(self.nyquist),
            "data_range": self.data_range,
        }


def file_provenance(*paths: Path | str) -> dict[str, str]:
    """``{resolved path: SHA-256}`` of files a loader read, for :attr:`Signal.provenance`."""
    from inrkit.atomic import file_sha256

    return {str(Path(path).resolve()): file_sha256(Path(path)) for path in paths}


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
