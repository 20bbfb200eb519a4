"""Model and training configuration.

:class:`ModelConfig` holds everything needed to rebuild a model's tensors
(their shapes and the meaning of each); the tensors themselves live in
``model.safetensors``. :class:`TrainConfig` holds the optimisation settings.
Both validate on construction and round-trip through plain JSON dicts.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

from inrkit.errors import ConfigError

#: Period p of the lattice on the domain [-1, 1]^d: integer frequency f means omega = 2 pi f / p. With p = 4
#: the domain is half a period, so the signal need not wrap at the border.
DEFAULT_PERIOD = 4.0

#: ``lattice`` is the method; the others are baselines: ``uniform``, ``siren`` (Sitzmann et al. 2020) and the
#: peers of :mod:`inrkit.peers`: ``finer`` (Liu et al., CVPR 2024), ``ffn`` (Tancik et al., NeurIPS 2020) and
#: ``hashgrid`` (Mueller et al., SIGGRAPH 2022).
ARCHITECTURES = ("lattice", "uniform", "siren", "finer", "ffn", "hashgrid")
#: Architectures with a frozen integer-lattice input layer (they need a bandlimit).
LATTICE_ARCHITECTURES = ("lattice", "uniform")
#: Peer architectures (:mod:`inrkit.peers`).
PEER_ARCHITECTURES = ("finer", "ffn", "hashgrid")
BOUND_MODES = ("project", "tanh")
#: How a lattice model draws its input frequencies: uniformly in the bandlimit box, or following the signal's
#: spectrum (:mod:`inrkit.spectral_init`). ``--input-sampling auto`` (an option, never a saved config) chooses
#: one of them from the signal.
INPUT_SAMPLINGS = ("box", "spectrum")

# The training policy: what a job does when the user sets no budget. The CLI
# reads these (and every dataclass default below) instead of repeating them.
#: Steps of a fit when none of steps, max seconds or target PSNR is given.
FIT_STEPS = 2000
#: Fine-tuning steps of ``inrkit prune`` when no budget is given.
PRUNE_STEPS = 1000
#: L1 weight on the hidden weights of a shrinking fit (``--prune``) when ``--l1`` is not given.
PRUNE_L1 = 1e-7
#: The learning rate decays geometrically to ``lr / LR_DECAY_DIVISOR`` over the budget unless ``lr_final`` is given.
LR_DECAY_DIVISOR = 10
#: Initial learning rate when none is given (:func:`default_lr`): every model but a deep lattice one.
DEFAULT_LR = 2e-3
#: Initial learning rate of a lattice (or uniform) model with more than two bounded hidden layers when none is
#: given. With four layers, 2e-3 lost 1.5-4.2 dB against 1e-3 on four of five photos after 20 s (camera gained
#: 1.1 dB); with two layers the two rates are within 0.15 dB (benchmarks/README.md, "Peers").
DEEP_LATTICE_LR = 1e-3


def _positive_int(name: str, value: Any, *, minimum: int = 1) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigError(f"{name} must be a whole number >= {minimum}, got {value!r}")


def _positive_float(name: str, value: Any, *, allow_zero: bool = False) -> None:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    ok = ok and (value >= 0 if allow_zero else value > 0)
    if not ok:
        bound = ">= 0" if allow_zero else "> 0"
        raise ConfigError(f"{name} must be a finite number {bound}, got {value!r}")


@dataclass
class ModelConfig:
    """Shape and initialisation of a sinusoidal INR ``f = L(S(D(x)))``.

    Attributes
    ----------
    dims:
        Input dimension ``d`` (1 audio, 2 image, 3 SDF).
    out_channels:
        Number of outputs (rows of the linear head ``C``).
    input_frequencies:
        Number ``m`` of input neurons (for ``siren``: width of its first layer).
    width:
        Number ``n`` of neurons per hidden layer.
    hidden_layers:
        Number of bounded sine hidden layers ``S`` (the method uses 1).
    architecture:
        ``lattice`` (the method), ``uniform`` (integer frequencies uniform in
        the bandlimit box, a baseline), ``siren`` (Sitzmann et al. 2020,
        a baseline with a trainable first layer scaled by ``siren_omega0``),
        or a peer of :mod:`inrkit.peers`: ``finer``, ``ffn``, ``hashgrid``.
    bandlimit:
        Largest integer frequency ``B`` per axis of the input layer.
    low_bandlimit:
        Extent ``L`` per axis of the dense low block; columns of ``W`` whose
        frequency lies in it get the bound ``c_low``, others ``c_high``.
    low_fraction:
        Share of input frequencies drawn from the low block.
    period:
        Period ``p``: ``omega_j = 2 pi f_j / p``.
    c_low, c_high:
        Bounds on ``|omega_g * W_ij|`` per column (METHOD.md section 4).
    omega_g:
        Scale of the hidden pre-activation ``sin(omega_g (W y + b))``.
    input_sampling:
        How the ``lattice`` model drew its input frequencies: ``box`` (the
        low block, then uniform in the bandlimit box) or ``spectrum`` (where
        the low block cannot be whole, and above it, with probability from the
        target's smoothed spectral magnitude: :mod:`inrkit.spectral_init`).
        The frequencies themselves are saved with the model.
    bound_mode:
        ``project`` (clamp after every optimiser step) or ``tanh``
        (``omega_g W = c tanh(V)`` with trainable per-column ``c``).
    skip:
        Share ``s`` of its input that each bounded layer after the first carries past it:
        ``y <- s y + (1 - s) sin(omega_g (W y + b))`` (lattice and uniform models; the layers after the first
        have equal widths). 0 is the plain stack, and the value of every model saved before the option existed.
    direct:
        Number ``k`` of direct lines (:mod:`inrkit.direct`, lattice models): the signal's strongest lattice
        frequencies, added to the head's output as ``a sin + b cos``. 0 (none) for every model saved before.
    siren_omega0:
        First-layer frequency scale of the ``siren`` baseline (30 for images; the SIREN paper uses 3000 for audio).
    siren_hidden_omega0:
        Scale of SIREN's later layers (30 in the SIREN reference code, whatever the first layer's); FINER alike.
    finer_first_bias:
        ``k`` of FINER's first-layer bias initialisation ``b ~ U(-k, k)``.
    ffn_sigma:
        Standard deviation of ``ffn``'s Gaussian frequencies ``B`` (cycles per unit of ``[0, 1]^d``; Tancik et al.: 10).
    hash_levels, hash_table_size, hash_features, hash_min_resolution, hash_max_resolution:
        ``hashgrid``: levels ``L``, largest table per level ``T``, features per entry ``F``, grid resolutions.
    output_offset, output_scale:
        Per-channel affine map applied after the head, ``f = offset + scale * L(S(D(x)))``, so the network works
        on values of order one whatever the signal's units (default: identity).
    seed:
        Seed of the initialisation.
    """

    dims: int
    out_channels: int
    input_frequencies: int
    width: int
    hidden_layers: int = 1
    architecture: str = "lattice"
    bandlimit: tuple[int, ...] = ()
    low_bandlimit: tuple[int, ...] = ()
    low_fraction: float = 0.7
    period: float = DEFAULT_PERIOD
    c_low: float = 1.0
    c_high: float = 0.6
    omega_g: float = 30.0
    bound_mode: str = "project"
    input_sampling: str = "box"
    skip: float = 0.0
    direct: int = 0
    siren_omega0: float = 30.0
    siren_hidden_omega0: float = 30.0
    finer_first_bias: float = 1.0
    ffn_sigma: float = 10.0
    hash_levels: int = 16
    hash_table_size: int = 1 << 14
    hash_features: int = 2
    hash_min_resolution: int = 16
    hash_max_resolution: int = 512
    output_offset: tuple[float, ...] = ()
    output_scale: tuple[float, ...] = ()
    seed: int = 0

    def __post_init__(self) -> None:
        self.output_offset = tuple(float(v) for v in self.output_offset) or (0.0,) * self.out_channels
        self.output_scale = tuple(float(v) for v in self.output_scale) or (1.0,) * self.out_channels
        if len(self.output_offset) != self.out_channels or len(self.output_scale) != self.out_channels:
            raise ConfigError(f"output offset and scale need {self.out_channels} values (one per channel)")
        if not all(math.isfinite(v) for v in (*self.output_offset, *self.output_scale)) or min(self.output_scale) <= 0:
            raise ConfigError("output offset must be finite and output scale finite and positive")
        self.bandlimit = tuple(int(b) for b in self.bandlimit)
        self.low_bandlimit = tuple(int(b) for b in self.low_bandlimit)
        _positive_int("dims", self.dims)
        _positive_int("out_channels", self.out_channels)
        _positive_int("input frequencies", self.input_frequencies)
        _positive_int("width", self.width)
        _positive_int("hidden layers", self.hidden_layers)
        if self.architecture not in ARCHITECTURES:
            raise ConfigError(
                f"architecture must be one of {', '.join(ARCHITECTURES)}, got {self.architecture!r}"
            )
        if self.bound_mode not in BOUND_MODES:
            raise ConfigError(f"bound mode must be one of {', '.join(BOUND_MODES)}, got {self.bound_mode!r}")
        if self.input_sampling not in INPUT_SAMPLINGS:
            raise ConfigError(f"input sampling must be one of {', '.join(INPUT_SAMPLINGS)}, got {self.input_sampling!r}")
        if self.input_sampling != "box" and self.architecture != "lattice":
            raise ConfigError(f"--input-sampling {self.input_sampling} applies to the lattice architecture, not "
                              f"{self.architecture}; drop it or use --architecture lattice")
        for name in ("period", "omega_g", "siren_omega0", "siren_hidden_omega0", "c_low", "c_high", "finer_first_bias",
                     "ffn_sigma"):
            _positive_float(name.replace("_", "-"), getattr(self, name))
        for name in ("hash_levels", "hash_table_size", "hash_features", "hash_min_resolution", "hash_max_resolution"):
            _positive_int(name.replace("_", " "), getattr(self, name))
        if not 0.0 <= self.low_fraction <= 1.0:
            raise ConfigError(f"low fraction must be in [0, 1], got {self.low_fraction}")
        if not 0.0 <= self.skip < 1.0 or (self.skip and self.architecture not in LATTICE_ARCHITECTURES):
            raise ConfigError(f"skip must be in [0, 1), and 0 for {self.architecture}, got {self.skip}")
        if not (isinstance(self.direct, int) and self.direct >= 0) or (self.direct and self.architecture != "lattice"):
            raise ConfigError(f"direct lines must be a whole number >= 0, and 0 for {self.architecture}, got {self.direct}")
        if self.architecture == "hashgrid" and (self.dims > 4 or self.hash_max_resolution < self.hash_min_resolution):
            raise ConfigError("a hashgrid model takes 1 to 4 input axes and needs hash max resolution >= min resolution")
        if self.architecture in LATTICE_ARCHITECTURES:
            for name in ("bandlimit", "low_bandlimit"):
                value = getattr(self, name)
                if len(value) != self.dims or any(b < 1 for b in value):
                    raise ConfigError(
                        f"{name} needs {self.dims} whole numbers >= 1 (one per axis), got {value}"
                    )

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-serialisable dict."""
        data = asdict(self)
        data["bandlimit"] = list(self.bandlimit)
        data["low_bandlimit"] = list(self.low_bandlimit)
        data["output_offset"] = list(self.output_offset)
        data["output_scale"] = list(self.output_scale)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelConfig:
        """Inverse of :meth:`to_dict`; unknown keys are an error."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(f"unknown model config keys {unknown}; valid keys: {sorted(known)}")
        return cls(**data)


@dataclass
class TrainConfig:
    """Optimisation settings of :func:`inrkit.train.fit`.

    Training stops at whichever comes first of ``steps``, ``max_seconds`` and
    ``target_psnr``; at least one must be set.

    Attributes
    ----------
    steps, max_seconds, target_psnr:
        Most optimiser steps; wall-clock budget of the training loop; the training PSNR (dB) that stops it.
    lr:
        Initial Adam learning rate. None: the model's default (:func:`default_lr`), set by
        :meth:`for_model`, which :func:`inrkit.train.fit` applies.
    lr_final:
        Learning rate at the end of the budget; the rate decays geometrically from ``lr`` to ``lr_final`` with
        the progress ``max(step / steps, seconds / max_seconds)``. Equal to ``lr``: constant. None:
        ``lr / LR_DECAY_DIVISOR``.
    batch_size:
        Coordinates per step; ``None`` trains on the full signal each step.
    sampler:
        Name of the registered sampler (``full``, ``uniform``, ``stratified``), or None for the signal type's.
    holdout:
        Fraction of the samples held out of training to report a test PSNR.
    seed:
        Seed of sampling and hold-out selection.
    device:
        ``auto`` (CUDA when present), ``cpu``, ``cuda`` or ``cuda:N``.
    loss_weight:
        Weight of the secondary term of composite losses (e.g. the spectral term of ``mse-stft``).
    beta2:
        Adam's second-moment decay. 0.99 rather than PyTorch's 0.999: at equal steps the lattice model gains
        0.4-1.2 dB on the sample photos (``benchmarks/option_sweep.py``); baselines can ask for 0.999.
    phase_lr_scale:
        Learning-rate multiplier of the input phases (parameters a model lists in ``phase_parameters()``); 10
        gains 0.1-0.3 dB at equal steps.
    """

    steps: int | None = None
    max_seconds: float | None = None
    target_psnr: float | None = None
    lr: float | None = None
    lr_final: float | None = None
    batch_size: int | None = None
    sampler: str | None = "full"
    holdout: float = 0.0
    seed: int = 0
    device: str = "auto"
    loss_weight: float = 1.0
    beta2: float = 0.99
    phase_lr_scale: float = 10.0

    def __post_init__(self) -> None:
        if self.steps is None and self.max_seconds is None and self.target_psnr is None:
            raise ConfigError("no stopping rule: set steps, max seconds or target PSNR")
        if self.lr_final is None and isinstance(self.lr, (int, float)):
            self.lr_final = self.lr / LR_DECAY_DIVISOR
        if self.steps is not None:
            _positive_int("steps", self.steps)
        if self.max_seconds is not None:
            _positive_float("max seconds", self.max_seconds)
        if self.target_psnr is not None:
            _positive_float("target PSNR", self.target_psnr)
        if self.lr is not None:
            _positive_float("learning rate", self.lr)
        if self.lr_final is not None:
            _positive_float("final learning rate", self.lr_final)
        _positive_float("loss weight", self.loss_weight, allow_zero=True)
        if not (isinstance(self.beta2, (int, float)) and 0.0 < self.beta2 < 1.0):
            raise ConfigError(f"Adam beta2 must be in (0, 1), e.g. 0.99 or 0.999, got {self.beta2!r}")
        _positive_float("phase learning-rate scale", self.phase_lr_scale)
        if self.batch_size is not None:
            _positive_int("batch size", self.batch_size)
        if not (isinstance(self.holdout, (int, float)) and 0.0 <= self.holdout < 1.0):
            raise ConfigError(f"holdout must be a fraction in [0, 1), got {self.holdout!r}")

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-serialisable dict."""
        return asdict(self)

    def for_model(self, model_config: ModelConfig | None, signal_lr: float | None = None) -> TrainConfig:
        """This config with the learning rate the model gets by default when ``lr`` is None (else itself);
        ``signal_lr`` is the signal type's default for inrkit's own models (``FitDefaults.lr``), if any."""
        if self.lr is not None:
            return self
        lr = default_lr(model_config, signal_lr)
        return replace(self, lr=lr, lr_final=self.lr_final if self.lr_final is not None else lr / LR_DECAY_DIVISOR)

    @classmethod
    def with_budget(cls, default_steps: int, **settings: Any) -> TrainConfig:
        """A config whose budget is ``default_steps`` steps when ``settings`` set no stopping rule.

        ``None`` values in ``settings`` mean "the default" and are dropped.
        """
        settings = {name: value for name, value in settings.items() if value is not None}
        if not {"steps", "max_seconds", "target_psnr"} & set(settings):
            settings["steps"] = default_steps
        return cls(**settings)


def default_lr(model_config: ModelConfig | None, signal_lr: float | None = None) -> float:
    """The initial learning rate of a model when the user gives none.

    A lattice or uniform model takes ``signal_lr``, its signal type's default
    (:attr:`~inrkit.plugin_types.FitDefaults.lr`), when there is one; otherwise
    :data:`DEEP_LATTICE_LR` with more than two hidden layers, else
    :data:`DEFAULT_LR`. Baselines always take the core's rule.
    """
    lattice = model_config is not None and model_config.architecture in LATTICE_ARCHITECTURES
    if lattice and signal_lr is not None:
        return signal_lr
    return DEEP_LATTICE_LR if lattice and model_config.hidden_layers > 2 else DEFAULT_LR


@dataclass
class ModelOptions:
    """User-facing model options (the CLI's flags); None means "choose for me" (see :func:`inrkit.planning.plan_model`).

    Attributes
    ----------
    architecture:
        ``lattice`` (default), or a baseline: ``uniform``, ``siren``, ``finer``, ``ffn``, ``hashgrid``.
    params:
        Upper bound on stored numbers (widths follow from it).
    width, input_frequencies, hidden_layers:
        Explicit sizes; override ``params``. Hidden layers: the lattice model's from
        :data:`LATTICE_HIDDEN_LAYERS` by the signal's number of dimensions (1 where none is listed); a
        baseline's from :data:`DEFAULT_HIDDEN_LAYERS` (SIREN: :data:`SIREN_HIDDEN_LAYERS`).
    input_ratio:
        ``m / n`` when widths follow from ``params``; None: 1 for one hidden layer, :data:`DEEP_INPUT_RATIO` deeper.
    bandlimit:
        Largest integer lattice frequency, one for every axis or one per axis, or ``"auto"`` to derive it from
        the signal's spectrum; default a fraction of the lattice Nyquist frequency set by the signal type.
    low_bandlimit:
        Extent of the dense low block; default ``max(1, bandlimit / 3)``.
    low_fraction, c_low, c_high, omega_g, bound_mode, seed:
        As in :class:`ModelConfig` (same defaults).
    input_sampling:
        As in :class:`ModelConfig`, or ``auto`` (the default): ``spectrum`` for a lattice model of a signal whose
        spectrum is concentrated (:func:`inrkit.spectral_init.choose_sampling`), else ``box``.
    skip:
        As in :class:`ModelConfig`; None: :data:`DEEP_SKIP_BY_DIMS` for deep models at least :data:`SKIP_MIN_WIDTH` wide.
    direct:
        As in :class:`ModelConfig`; None: :func:`inrkit.direct.planned_lines` (for a signal whose spectrum is
        concentrated in few lines).
    siren_omega0:
        First-layer omega_0 of ``siren`` and ``finer``; None follows the signal type (``FitDefaults.model_defaults``,
        e.g. 3000 for audio as in the SIREN paper), else :attr:`ModelConfig.siren_omega0` (30).
    ffn_sigma:
        Frequency scale of ``ffn``; None follows the signal type likewise, else :attr:`ModelConfig.ffn_sigma` (10).
    """

    architecture: str = "lattice"
    params: int | None = None
    width: int | None = None
    input_frequencies: int | None = None
    hidden_layers: int | None = None
    input_ratio: float | None = None
    bandlimit: int | tuple[int, ...] | str | None = None
    low_bandlimit: int | None = None
    low_fraction: float = ModelConfig.low_fraction
    c_low: float = ModelConfig.c_low
    c_high: float = ModelConfig.c_high
    omega_g: float = ModelConfig.omega_g
    bound_mode: str = ModelConfig.bound_mode
    input_sampling: str = "auto"
    skip: float | None = None
    direct: int | None = None
    siren_omega0: float | None = None
    ffn_sigma: float | None = None
    seed: int = ModelConfig.seed


#: Hidden layers of each baseline when none are given, from its paper: SIREN and FINER 3 (after the first sine
#: layer), FFN 3 ReLU layers (its "4-layer" MLP counts the output), hashgrid 2 (Instant-NGP's tiny MLP).
SIREN_HIDDEN_LAYERS = 3
DEFAULT_HIDDEN_LAYERS = {"siren": SIREN_HIDDEN_LAYERS, "finer": 3, "ffn": 3, "hashgrid": 2}
#: Bounded hidden layers of the lattice (and uniform) model when none are given, by the signal's number of
#: dimensions (others get 1). At a quarter of the sample values in parameters (benchmarks/README.md, "Levers",
#: "Peers"): on photos a second layer gained 0.2-3.0 dB PSNR at equal steps, four (at :data:`DEEP_LATTICE_LR`)
#: another -0.1 to +2.3 dB at 60 s on six photos; on audio three with the skip gained (a plain stack lost).
LATTICE_HIDDEN_LAYERS: dict[int, int] = {1: 3, 2: 4}
#: Dimensions whose deep default holds only with the skip (audio: a plain second layer lost 1-10 dB SNR); a model
#: too narrow for :data:`DEEP_SKIP` (under :data:`SKIP_MIN_WIDTH`) keeps one hidden layer there.
DEPTH_NEEDS_SKIP = (1,)
#: ``m / n`` of a deep lattice model when ``--input-ratio`` is not given (one layer: ``sizing.DEFAULT_INPUT_RATIO``).
#: With two layers 1.5 beat 1.0 on four photos (+0.1 to +0.8 dB at equal steps), 0.7 lost; one layer keeps 1.0.
DEEP_INPUT_RATIO = 1.5
#: ``ModelConfig.skip`` of a wide deep lattice model without ``--skip``, by dimensions (others 0.5): on photos 0.5
#: gained 0.8-1.7 dB over none and 0.6 another 0.01-0.86 (0.7 lost on coffee); on speech 0.6 lost 0.6 dB to 0.5.
DEEP_SKIP, DEEP_SKIP_BY_DIMS = 0.5, {2: 0.6}
SKIP_MIN_WIDTH = 40  # narrower deep models keep the plain stack: at 28-29 neurons the skip gave -1.4 to +0.1 dB
