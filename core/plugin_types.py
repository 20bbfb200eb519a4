"""The types of the public plugin API (re-exported by :mod:`inrkit.plugin`).

Plugins import these names from :mod:`inrkit.plugin`, never from here: this
module is the engine's, and may be reorganised. It holds the registration
records (``SignalType`` with its ``FitDefaults``, ``SamplerType``,
``LossType``, ``ExporterType``) and the contexts losses, samplers,
exporters and ``assess`` receive. The observer events are in
:mod:`inrkit.events`, declared options in :mod:`inrkit.options`.
"""

from __future__ import annotations

import math
import re
import warnings
from collections.abc import Callable, Mapping
from dataclasses import InitVar, dataclass, field, replace
from pathlib import Path
from typing import Any

from inrkit.errors import ConfigError, PluginError
from inrkit.events import TrainSettings
from inrkit.lazy import lazy_import
from inrkit.options import Option
from inrkit.signal import Batch, Signal

torch = lazy_import("torch")  # imported at first use: registering plugins must not import torch

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
        Options from the command line: the core's ``resolution`` (a list of
        samples per axis) and the exporter's declared :class:`Option` values.
    """

    evaluate: Callable[[torch.Tensor], torch.Tensor]
    geometry: Mapping[str, Any]
    metadata: Mapping[str, Any]
    path: Path
    options: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class FitDefaults:
    """How inrkit fits a signal type when the user says nothing: one home for a signal type's training defaults.

    Attributes
    ----------
    loss, sampler:
        Default loss and sampler names.
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
    model_defaults:
        This signal type's values of model options the user leaves unset, for
        the baselines whose papers set them per kind of signal, by
        :class:`~inrkit.config.ModelOptions` field name: ``siren_omega0`` (the
        first-layer omega_0 of ``siren`` and ``finer``; SIREN's paper uses 30 for
        images and 3000 for audio) and ``ffn_sigma`` (the ``ffn`` frequency scale).
        Hook version 1.1, added later: a plugin that does not set it gets the
        image settings. Also ``direct_share`` (optional): the share of the lattice model's budget
        for direct lines where they pay (:func:`~inrkit.direct.planned_lines`); absent or 0: none.
    lr:
        Initial learning rate of inrkit's own models (``lattice``, ``uniform``)
        on this signal type when the user gives none; None (the default): the
        core's rule (:func:`~inrkit.config.default_lr`). Baselines keep the
        core's rule. Hook version 1.1, added later; optional.

    Example::

        FitDefaults(loss="sdf", sampler="uniform", batch_size=16_384, params_fraction=0.2)
    """

    loss: str = "mse"
    sampler: str = "full"
    batch_size: int | None = None
    bandlimit_fraction: float | None = 1.0 / 3.0
    suggest_bandlimit: Callable[[Signal, int], int] | None = None
    params_fraction: float = 0.25
    model_defaults: Mapping[str, float] = field(default_factory=dict)
    lr: float | None = None

    def __post_init__(self) -> None:
        if self.lr is not None and not (isinstance(self.lr, (int, float)) and not isinstance(self.lr, bool)
                                        and math.isfinite(self.lr) and self.lr > 0):
            raise PluginError(f"FitDefaults.lr must be a positive number or None, got {self.lr!r}")


@dataclass(frozen=True)
class AssessRequest:
    """What a signal type's ``assess`` receives after a fit, to judge it and draw it.

    Attributes
    ----------
    signal:
        The fitted signal (CPU).
    reconstruction:
        ``[N, channels]``: the model at the signal's samples (CPU).
    train_mask:
        ``[N]`` bool: the samples trained on (False: held out).
    evaluate:
        ``evaluate(coords [N, d]) -> [N, channels]``, as in :class:`ExportRequest`,
        for judging something derived from the model (a mesh, a finer grid).
    run_dir:
        The staged run directory: write pictures and derived files here.
    """

    signal: Signal
    reconstruction: torch.Tensor
    train_mask: torch.Tensor
    evaluate: Callable[[torch.Tensor], torch.Tensor]
    run_dir: Path


#: A metric: one number, or a series (per frame, per channel) stored whole and summarised on screen.
MetricValue = float | list[float]

_UNSET: Any = object()
# Fields of hook version 1.0 that now live in ``SignalType.defaults`` or ``SignalType.assess``.
_DEFAULT_FIELDS = ("loss", "sampler", "batch_size", "bandlimit_fraction", "suggest_bandlimit", "params_fraction")
_ASSESS_FIELDS = ("metrics", "previews", "report")


@dataclass(frozen=True)
class SignalType:
    """A kind of signal: how to load it, how to fit it by default, how to judge and show a fit.

    Attributes
    ----------
    name:
        The ``--signal`` name.
    load:
        ``load(path, **options) -> Signal``; raises :class:`InputError` with
        a one-line message for any bad file. ``options`` are the parsed
        values of :attr:`options`.
    extensions:
        File extensions (lower case, with the dot) that select this signal
        when ``--signal`` is omitted.
    description:
        One line for ``inrkit plugins``.
    exporter:
        Name of the exporter that writes the run directory's reconstruction.
    defaults:
        Training defaults (:class:`FitDefaults`).
    assess:
        ``assess(AssessRequest) -> dict[str, float | list[float]]``: metrics
        beyond the core's (the core computes ``psnr`` on the trained
        samples and ``test_psnr`` on held-out ones for every signal), and
        pictures written into ``request.run_dir``; or None.
    show:
        How the CLI shows metrics: ``{name: format}``, a :meth:`str.format`
        template of ``value`` (``{"ssim": "SSIM {value:.4f}"}``). Metrics
        not named here are stored in ``metrics.json`` only; series show
        their mean.
    options:
        Loader options (:class:`Option`), set with ``inrkit fit --option``.
    extension_priority:
        When two installed signal types claim one extension, the higher
        priority wins; equal priorities make the extension ambiguous
        (``--signal`` decides), and ``inrkit plugins`` reports the clash.

    Hook version 1.0's fields ``metrics``, ``previews``, ``report``,
    ``loss``, ``sampler``, ``batch_size``, ``bandlimit_fraction``,
    ``suggest_bandlimit`` and ``params_fraction`` are still accepted (with
    a DeprecationWarning) and mapped onto ``assess`` and ``defaults``.
    """

    name: str
    load: Callable[..., Signal]
    extensions: tuple[str, ...] = ()
    description: str = ""
    exporter: str | None = None
    metrics: InitVar[Any] = _UNSET
    previews: InitVar[Any] = _UNSET
    report: InitVar[Any] = _UNSET
    loss: InitVar[Any] = _UNSET
    sampler: InitVar[Any] = _UNSET
    batch_size: InitVar[Any] = _UNSET
    bandlimit_fraction: InitVar[Any] = _UNSET
    suggest_bandlimit: InitVar[Any] = _UNSET
    params_fraction: InitVar[Any] = _UNSET
    defaults: FitDefaults = field(default_factory=FitDefaults)
    assess: Callable[[AssessRequest], Mapping[str, MetricValue]] | None = None
    show: Mapping[str, str] = field(default_factory=dict)
    options: tuple[Option, ...] = ()
    extension_priority: int = 0

    def __post_init__(self, metrics, previews, report, loss, sampler, batch_size, bandlimit_fraction,
                      suggest_bandlimit, params_fraction) -> None:
        _check_name("signal", self.name)
        legacy_defaults = dict(zip(_DEFAULT_FIELDS, (loss, sampler, batch_size, bandlimit_fraction, suggest_bandlimit,
                                                     params_fraction)))
        legacy_defaults = {k: v for k, v in legacy_defaults.items() if v is not _UNSET}
        legacy_assess = {k: v for k, v in zip(_ASSESS_FIELDS, (metrics, previews, report)) if v is not _UNSET}
        if legacy_defaults or legacy_assess:
            names = ", ".join(sorted({**legacy_defaults, **legacy_assess}))
            warnings.warn(
                f"SignalType {self.name!r}: {names} are deprecated since hook version 1.1 (removed in inrkit 0.3); "
                "pass defaults=FitDefaults(...) for training defaults and one assess(request) for metrics and pictures",
                DeprecationWarning,
                stacklevel=3,
            )
        if legacy_defaults:
            object.__setattr__(self, "defaults", replace(self.defaults, **legacy_defaults))
        if any(v is not None for v in legacy_assess.values()):
            if self.assess is not None:
                raise ConfigError(f"SignalType {self.name!r}: pass assess or the deprecated metrics/previews/report, not both")
            object.__setattr__(self, "assess", _LegacyAssess(**{k: v for k, v in legacy_assess.items() if v is not None}))
        object.__setattr__(self, "show", dict(self.show))
        object.__setattr__(self, "options", tuple(self.options))

    def __getattr__(self, name: str) -> Any:
        # Reading a field of hook version 1.0 still answers, with a warning.
        if name in _DEFAULT_FIELDS or name in _ASSESS_FIELDS:
            warnings.warn(f"SignalType.{name} is deprecated since hook version 1.1 (removed in inrkit 0.3); "
                          f"read SignalType.{'defaults.' + name if name in _DEFAULT_FIELDS else 'assess'}",
                          DeprecationWarning, stacklevel=2)
            if name in _DEFAULT_FIELDS:
                return getattr(self.defaults, name)
            assess = self.__dict__.get("assess")
            return getattr(assess, name, None) if isinstance(assess, _LegacyAssess) else None
        raise AttributeError(f"{type(self).__name__} has no attribute {name!r}")


# The InitVar defaults must not shadow __getattr__ as class attributes.
for _name in (*_DEFAULT_FIELDS, *_ASSESS_FIELDS):
    delattr(SignalType, _name)


@dataclass(frozen=True)
class _LegacyAssess:
    """``assess`` made of hook version 1.0's ``metrics``, ``report`` and ``previews`` callbacks."""

    metrics: Callable[..., Mapping[str, float]] | None = None
    previews: Callable[..., Any] | None = None
    report: Callable[..., Mapping[str, float]] | None = None

    def __call__(self, request: AssessRequest) -> dict[str, MetricValue]:
        result: dict[str, MetricValue] = {}
        if self.metrics is not None:
            result.update(self.metrics(request.signal, request.reconstruction, request.train_mask))
        if self.report is not None:
            result.update(self.report(request.signal, request.evaluate, request.run_dir))
        if self.previews is not None:
            self.previews(request.signal, request.reconstruction, request.run_dir)
        return result


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
    signals:
        Names of the signal types it works for (empty: any); ``--loss`` with
        another signal type is a one-line error before training.
    """

    name: str
    fn: Callable[[FitContext, Batch], torch.Tensor]
    description: str = ""
    signals: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        _check_name("loss", self.name)
        object.__setattr__(self, "signals", tuple(self.signals))


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
    options:
        Options it takes (:class:`Option`), set with ``inrkit export --option``
        and handed over parsed in :attr:`ExportRequest.options`. The core's
        own ``resolution`` (``--resolution``) comes to every exporter.
    """

    name: str
    signal: str
    extensions: tuple[str, ...]
    export: Callable[[ExportRequest], dict[str, Any] | None]
    description: str = ""
    options: tuple[Option, ...] = ()

    def __post_init__(self) -> None:
        _check_name("exporter", self.name)
        object.__setattr__(self, "options", tuple(self.options))
