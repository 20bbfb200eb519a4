"""The public plugin API: everything a plugin may import from inrkit.

Plugins, built-in and third-party alike, import only from this module (and
:mod:`inrkit.errors`). A plugin is a module or object with functions marked
``@hookimpl`` whose names match the specifications in :mod:`inrkit.hookspecs`;
it is found through the ``inrkit`` entry-point group.

Example::

    from inrkit.plugin import SignalType, hookimpl

    @hookimpl
    def inrkit_register_signals(register):
        register(SignalType(name="csv", load=load_csv, extensions=(".csv",),
                            description="time series from a CSV column"))
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pluggy
import torch

from inrkit.checkpoint import atomic_output
from inrkit.errors import ConfigError, InputError, InrkitError, InrkitWarning
from inrkit.metrics import psnr, psnr_from_mse
from inrkit.plots import colour_ramp, heatmap, line_chart, stack, titled
from inrkit.signal import Batch, Signal, grid_coordinates, grid_extent, grid_nyquist

#: Version of the hook specifications. A plugin may declare the version it was
#: written against as ``INRKIT_HOOK_VERSION``; a different major version is
#: refused with a clear error.
HOOK_VERSION = "1.0"

hookimpl = pluggy.HookimplMarker("inrkit")

_NAME = re.compile(r"^[a-z][a-z0-9_-]*$")


def _check_name(kind: str, name: str) -> None:
    if not isinstance(name, str) or not _NAME.match(name):
        raise ConfigError(
            f"{kind} name {name!r} is invalid: use lower-case letters, digits, '-' and '_', starting with a letter"
        )


@dataclass(frozen=True)
class FitContext:
    """What a loss function sees.

    Attributes
    ----------
    model:
        The model being trained (``torch.nn.Module``, ``[B, d] -> [B, channels]``).
    signal:
        The signal being fitted.
    predict:
        ``predict(batch) -> [B, channels]``: the model's output on the batch,
        through the trainer's cached input layer when ``batch.index`` is set.
        Losses that need gradients with respect to the coordinates call
        ``model(batch.coords)`` themselves.
    step:
        Current step (0-based).
    config:
        The :class:`~inrkit.config.TrainConfig` (e.g. ``loss_weight`` for
        composite losses), or None.
    """

    model: torch.nn.Module
    signal: Signal
    predict: Callable[[Batch], torch.Tensor]
    step: int
    config: Any = None


@dataclass(frozen=True)
class SamplerContext:
    """What a sampler factory receives.

    Attributes
    ----------
    signal:
        The signal (values on ``device`` already).
    train_index:
        ``[N_train]`` int64 indices of the samples that may be trained on
        (the hold-out removed), on ``device``.
    batch_size:
        Requested coordinates per batch, or None for the whole training set.
    generator:
        Seeded generator (on the CPU) to draw from.
    device:
        Where batches must live.
    """

    signal: Signal
    train_index: torch.Tensor
    batch_size: int | None
    generator: torch.Generator
    device: torch.device


@dataclass(frozen=True)
class ExportRequest:
    """What an exporter receives.

    Attributes
    ----------
    evaluate:
        ``evaluate(coords [N, d]) -> [N, channels]``: the model, evaluated
        without gradients in bounded-memory chunks on the model's device,
        results on the CPU.
    geometry:
        The signal's :meth:`Signal.geometry` dict (grid shape, extent, Nyquist...).
    metadata:
        The signal's metadata dict, as its loader wrote it.
    path:
        Output file to write (the exporter must write it atomically).
    options:
        Exporter options from the command line (e.g. ``resolution``).
    """

    evaluate: Callable[[torch.Tensor], torch.Tensor]
    geometry: Mapping[str, Any]
    metadata: Mapping[str, Any]
    path: Path
    options: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class SignalType:
    """A kind of signal: how to load it and how to judge a reconstruction.

    Attributes
    ----------
    name:
        The ``--signal`` name.
    load:
        ``load(path) -> Signal``; raises :class:`InputError` with a one-line
        message for any bad file.
    extensions:
        File extensions (lower case, with the dot) that select this signal
        when ``--signal`` is omitted.
    description:
        One line for ``inrkit plugins``.
    exporter:
        Name of the exporter that writes the run directory's reconstruction.
    metrics:
        ``metrics(signal, reconstruction [N, channels], train_mask [N] bool) -> dict``
        of float metrics, or None for the core's PSNR only.
    previews:
        ``previews(signal, reconstruction [N, channels], run_dir) -> list[Path]``:
        pictures for the run directory, or None.
    report:
        ``report(signal, evaluate, run_dir) -> dict`` of float metrics judged
        on something derived from the model rather than on its values at the
        samples (a mesh extracted from a signed distance field, say), or
        None. ``evaluate`` is as in :class:`ExportRequest`. It may write files
        (the derived object, pictures) into ``run_dir``, the staged run
        directory, before ``metrics.json`` is written.
    loss, sampler:
        Default loss and sampler names for this signal.
    batch_size:
        Default coordinates per step with the default sampler (None: all).
    bandlimit_fraction:
        Default bandlimit as a fraction of the Nyquist frequency, or None to
        derive it from the signal and the model size (as ``--bandlimit auto``).
    suggest_bandlimit:
        ``suggest_bandlimit(signal, params) -> int``: this signal type's
        ``--bandlimit auto`` (largest lattice frequency per axis) for a model
        of ``params`` stored numbers, or None for the core's rule, which
        reads the spectrum of a gridded signal.
    params_fraction:
        Default model size as a fraction of the number of sample values
        (samples x channels).
    """

    name: str
    load: Callable[[Path], Signal]
    extensions: tuple[str, ...] = ()
    description: str = ""
    exporter: str | None = None
    metrics: Callable[..., dict[str, float]] | None = None
    previews: Callable[..., list[Path]] | None = None
    report: Callable[..., dict[str, float]] | None = None
    loss: str = "mse"
    sampler: str = "full"
    batch_size: int | None = None
    bandlimit_fraction: float | None = 1.0 / 3.0
    suggest_bandlimit: Callable[[Signal, int], int] | None = None
    params_fraction: float = 0.25

    def __post_init__(self) -> None:
        _check_name("signal", self.name)


@dataclass(frozen=True)
class SamplerType:
    """A batch sampler.

    Attributes
    ----------
    name:
        Name for ``--sampler``.
    make:
        ``make(context: SamplerContext) -> sample`` where
        ``sample(step: int) -> Batch``.
    description:
        One line for ``inrkit plugins``.
    """

    name: str
    make: Callable[[SamplerContext], Callable[[int], Batch]]
    description: str = ""

    def __post_init__(self) -> None:
        _check_name("sampler", self.name)


@dataclass(frozen=True)
class LossType:
    """A training loss.

    Attributes
    ----------
    name:
        Name for ``--loss``.
    fn:
        ``fn(context: FitContext, batch: Batch) -> scalar tensor``.
    description:
        One line for ``inrkit plugins``.
    """

    name: str
    fn: Callable[[FitContext, Batch], torch.Tensor]
    description: str = ""

    def __post_init__(self) -> None:
        _check_name("loss", self.name)


@dataclass(frozen=True)
class ExporterType:
    """Writes a fitted model back to a file format.

    Attributes
    ----------
    name:
        Name for ``--format``.
    signal:
        Name of the signal type it exports.
    extensions:
        Extensions it writes (first is the default).
    export:
        ``export(request: ExportRequest) -> dict | None``; a dict of facts
        about the written file (vertex count, duration...) is shown to the user.
    description:
        One line for ``inrkit plugins``.
    """

    name: str
    signal: str
    extensions: tuple[str, ...]
    export: Callable[[ExportRequest], dict[str, Any] | None]
    description: str = ""

    def __post_init__(self) -> None:
        _check_name("exporter", self.name)


__all__ = [
    "HOOK_VERSION",
    "Batch",
    "ConfigError",
    "ExportRequest",
    "ExporterType",
    "FitContext",
    "InputError",
    "InrkitError",
    "InrkitWarning",
    "LossType",
    "atomic_output",
    "colour_ramp",
    "heatmap",
    "line_chart",
    "stack",
    "titled",
    "psnr",
    "psnr_from_mse",
    "SamplerContext",
    "SamplerType",
    "Signal",
    "SignalType",
    "grid_coordinates",
    "grid_extent",
    "grid_nyquist",
    "hookimpl",
]
