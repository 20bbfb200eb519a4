"""The types of the public plugin API (re-exported by :mod:`inrkit.plugin`).

Plugins import these names from :mod:`inrkit.plugin`, never from here: this
module is the engine's, and may be reorganised. Everything a stable hook
hands out is defined here: registration records (``SignalType``,
``SamplerType``, ``LossType``, ``ExporterType``), the contexts losses,
samplers and exporters receive, and the frozen events observers receive
(``FitStarted``, ``StepEnded``, ``FitEnded``).
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import torch

from inrkit.errors import ConfigError
from inrkit.signal import Batch, Signal

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
        The training settings, a read-only :class:`TrainSettings` (e.g.
        ``loss_weight`` for composite losses), or None.
    """

    model: torch.nn.Module
    signal: Signal
    predict: Callable[[Batch], torch.Tensor]
    step: int
    config: TrainSettings | None = None


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


@dataclass(frozen=True)
class TrainSettings:
    """A read-only view of the training settings, for losses and observers.

    Plugins read it; they never see the trainer's own configuration object,
    so the trainer may change without breaking them.

    Attributes
    ----------
    steps, max_seconds, target_psnr:
        The stopping rules (None: not set).
    lr, lr_final:
        Learning rate at the start and at the end of the budget.
    batch_size:
        Coordinates per step (None: the whole training set).
    sampler:
        Name of the sampler in use.
    holdout:
        Fraction of the samples held out of training.
    seed:
        Seed of initialisation, sampling and hold-out.
    loss_weight:
        Weight of a composite loss's second term (e.g. ``mse-stft``'s spectral term).
    """

    steps: int | None = None
    max_seconds: float | None = None
    target_psnr: float | None = None
    lr: float = 2e-3
    lr_final: float = 2e-4
    batch_size: int | None = None
    sampler: str | None = None
    holdout: float = 0.0
    seed: int = 0
    loss_weight: float = 1.0
    _source: Any = field(default=None, repr=False, compare=False)

    @classmethod
    def of(cls, config: Any) -> TrainSettings:
        """The view of any object with these attribute names (the trainer's configuration)."""
        if config is None or isinstance(config, cls):
            return config if config is not None else cls()
        names = [f.name for f in fields(cls) if not f.name.startswith("_")]
        return cls(**{name: getattr(config, name) for name in names if hasattr(config, name)}, _source=config)

    def __getattr__(self, name: str) -> Any:
        # Only called for names the view does not have: hook version 1.0 handed out
        # the trainer's whole configuration, so its other attributes still answer, with a warning.
        source = self.__dict__.get("_source")
        if name.startswith("_") or source is None or not hasattr(source, name):
            raise AttributeError(f"{type(self).__name__} has no attribute {name!r}")
        warnings.warn(
            f"FitContext.config.{name} is not part of the plugin API since hook version 1.1 "
            f"(it will be removed in inrkit 0.3); the stable settings are: "
            f"{', '.join(f.name for f in fields(self) if not f.name.startswith('_'))}",
            DeprecationWarning,
            stacklevel=2,
        )
        return getattr(source, name)


class _DictAccess:
    """Lets observers written for hook version 1.0 (which received dicts) read events as before, with a warning."""

    def _legacy(self, key: str) -> Any:
        warnings.warn(
            f"inrkit observer hooks receive a {type(self).__name__} since hook version 1.1; "
            f"read event.{key} instead of event[{key!r}] (dict access will be removed in inrkit 0.3)",
            DeprecationWarning,
            stacklevel=3,
        )
        return getattr(self, key)

    def __getitem__(self, key: str) -> Any:
        if key not in self.keys():
            raise KeyError(key)
        return self._legacy(key)

    def get(self, key: str, default: Any = None) -> Any:
        return self._legacy(key) if key in self.keys() else default

    def keys(self) -> list[str]:
        return [f.name for f in fields(self)]

    def __contains__(self, key: object) -> bool:
        return key in self.keys()


@dataclass(frozen=True)
class FitStarted(_DictAccess):
    """What ``inrkit_fit_start`` observers receive, once, before the first step.

    Attributes
    ----------
    signal:
        The signal being fitted.
    model:
        The model (``[B, d] -> [B, channels]``); observers must not change it.
    config:
        The training settings (:class:`TrainSettings`).
    device:
        The training device.
    parameters:
        Stored numbers of the model (frozen frequencies included).
    """

    signal: Signal
    model: torch.nn.Module
    config: TrainSettings
    device: torch.device
    parameters: int


@dataclass(frozen=True)
class StepEnded(_DictAccess):
    """What ``inrkit_step_end`` observers receive after every recorded step.

    Attributes
    ----------
    step:
        Steps taken before this one (0-based), counted over the whole fit.
    seconds:
        Seconds of training so far.
    loss:
        The loss of this step.
    psnr:
        Training PSNR of this step's batch in dB (NaN when the loss did not evaluate the model on the batch).
    lr:
        Learning rate of this step.
    progress:
        Fraction of the budget used, in [0, 1].
    model:
        The model; observers may evaluate it, never change it.
    phase:
        Label of the phase of a fit in phases (``"2: prune + fine-tune"``), else "".
    """

    step: int
    seconds: float
    loss: float
    psnr: float
    lr: float
    progress: float
    model: torch.nn.Module
    phase: str = ""


@dataclass(frozen=True)
class FitEnded(_DictAccess):
    """What ``inrkit_fit_end`` observers receive, once, when training stopped.

    Attributes
    ----------
    model:
        The trained model.
    curve:
        One dict per recorded step: ``step``, ``seconds``, ``loss``, ``psnr``, ``lr``.
    steps:
        Optimiser steps taken.
    seconds:
        Seconds of training.
    stop_reason:
        ``steps``, ``max_seconds``, ``target_psnr`` or ``interrupted``.
    """

    model: torch.nn.Module
    curve: tuple[Mapping[str, float], ...]
    steps: int
    seconds: float
    stop_reason: str

    @classmethod
    def of(cls, result: Any) -> FitEnded:
        """The event for a trainer's result object."""
        return cls(model=result.model, curve=tuple(result.curve), steps=result.steps, seconds=result.seconds,
                   stop_reason=result.stop_reason)
