"""The events observer hooks receive, and the read-only training settings plugins see.

Frozen dataclasses (re-exported by :mod:`inrkit.plugin`): ``FitStarted``,
``StepEnded``, ``FitEnded``, ``PhaseProgress`` and ``TrainSettings``. Observers written for hook
version 1.0, which received dicts, can still read them as dicts, with a
DeprecationWarning naming the attribute to read instead.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from inrkit.lazy import lazy_import
from inrkit.signal import Signal

torch = lazy_import("torch")  # imported at first use: registering plugins must not import torch


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


@dataclass(frozen=True)
class PhaseProgress:
    """What ``inrkit_phase_progress`` observers receive while a long phase other than training runs.

    Sent by :func:`inrkit.progress.report_progress` (building an SDF sample
    bank, extracting a mesh, writing a run, a spectrum report...), at most
    about ten times a second.

    Attributes
    ----------
    phase:
        What is being done, in a few words (``"mesh extraction"``); a new phase starts when it changes.
    done:
        Work done so far, in ``unit`` (never decreasing within a phase).
    total:
        Work of the whole phase, in ``unit``; None when unknown.
    unit:
        What ``done`` counts (``"slabs"``, ``"points"``, ``"steps"``), or "".
    detail:
        The current sub-step, or "".
    """

    phase: str
    done: float
    total: float | None = None
    unit: str = ""
    detail: str = ""

    @property
    def fraction(self) -> float | None:
        """``done / total`` in [0, 1], or None when the total is unknown."""
        if self.total is None or self.total <= 0:
            return None
        return min(1.0, max(0.0, self.done / self.total))
