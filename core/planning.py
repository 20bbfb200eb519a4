"""Planning a model for a signal: size, bandlimit per axis, widths and output map.

:func:`plan_model` turns a :class:`~inrkit.signal.Signal`, its
:class:`~inrkit.plugin_types.SignalType` and the user's
:class:`~inrkit.config.ModelOptions` into a :class:`~inrkit.config.ModelConfig`.
"""

from __future__ import annotations

import math
from dataclasses import replace

import torch

from inrkit.config import (
    ARCHITECTURES,
    DEEP_INPUT_RATIO,
    DEEP_SKIP,
    DEEP_SKIP_BY_DIMS,
    DEPTH_NEEDS_SKIP,
    SKIP_MIN_WIDTH,
    DEFAULT_HIDDEN_LAYERS,
    INPUT_SAMPLINGS,
    LATTICE_ARCHITECTURES,
    LATTICE_HIDDEN_LAYERS,
    PEER_ARCHITECTURES,
    ModelConfig,
    ModelOptions,
)
from inrkit.errors import ConfigError, InputError, PluginError
from inrkit.lattice import half_space_count, lattice_nyquist
from inrkit.plugin_types import SignalType
from inrkit.signal import Signal
from inrkit.sizing import DEFAULT_INPUT_RATIO, plan_hashgrid, stored_count, widths_for_params

#: Smallest default model, whatever the signal's size.
MIN_DEFAULT_PARAMS = 2000


def default_params(signal: Signal, signal_type: SignalType) -> int:
    """Default size: ``params_fraction`` of the sample values, at least :data:`MIN_DEFAULT_PARAMS`."""
    return max(MIN_DEFAULT_PARAMS, int(signal_type.defaults.params_fraction * signal.samples * signal.channels))


def plan_model(signal: Signal, signal_type: SignalType, options: ModelOptions) -> ModelConfig:
    """Choose a model configuration for ``signal``.

    Raises
    ------
    ConfigError
        For impossible combinations (a budget too small, a bandlimit above
        Nyquist, explicit widths over the budget...).
    """
    layers = _check_options(options)
    direct, options = _direct(signal, signal_type, options)
    layers, options = _shape(signal, signal_type, options, layers)
    if options.architecture in PEER_ARCHITECTURES:
        return _plan_peer(signal, signal_type, options, layers)
    siren = options.architecture == "siren"
    if options.bandlimit is None and signal_type.defaults.bandlimit_fraction is None and not siren:
        options = replace(options, bandlimit="auto")
    _check_not_constant(signal)
    bandlimit = _bandlimit(signal, signal_type, options)
    low = _low_bandlimit(options, bandlimit)
    inputs, width = _widths(signal, signal_type, options, layers)
    if not siren and options.input_frequencies is None:
        _check_lattice_holds(signal, options, bandlimit, inputs, layers)
    offset, scale = output_map(signal)
    return ModelConfig(
        output_offset=offset,
        output_scale=scale,
        dims=signal.dims,
        out_channels=signal.channels,
        input_frequencies=inputs,
        width=width,
        hidden_layers=layers,
        architecture=options.architecture,
        bandlimit=() if siren else bandlimit,
        low_bandlimit=() if siren else low,
        low_fraction=options.low_fraction,
        c_low=options.c_low,
        c_high=options.c_high,
        omega_g=options.omega_g,
        bound_mode=options.bound_mode,
        input_sampling=_sampling(signal, options, bandlimit, layers),
        skip=_skip(options, layers, width, signal.dims),
        direct=direct,
        siren_omega0=_model_default(signal_type, options, "siren_omega0"),
        seed=options.seed,
    )


def _direct(signal: Signal, signal_type: SignalType, options: ModelOptions) -> tuple[int, ModelOptions]:
    """The lattice model's direct lines (:mod:`inrkit.direct`), and the options with their cost taken off ``params``.

    ``--direct K`` as given; unset: :func:`~inrkit.direct.planned_lines` with the signal type's ``direct_share``
    (``FitDefaults.model_defaults``; none without it, or with explicit widths).
    """
    from inrkit.direct import line_cost, planned_lines

    explicit = options.width is not None or options.input_frequencies is not None
    if options.architecture != "lattice" or (options.direct is None and explicit):
        return 0, options
    budget = options.params if options.params is not None or explicit else default_params(signal, signal_type)
    count = options.direct
    if count is None:
        share = getattr(signal_type.defaults, "model_defaults", {}).get("direct_share", 0.0)
        if isinstance(share, bool) or not isinstance(share, (int, float)) or not 0.0 <= share < 1.0:
            raise PluginError(f"signal type {signal_type.name!r}: model_defaults['direct_share'] must be a number in "
                              f"[0, 1) (the share of the budget for direct lines), got {share!r}; fix the plugin, "
                              "or pass --direct K to choose the lines yourself")
        count = planned_lines(signal, budget, share)
    if not count or budget is None:
        return count, options
    left = budget - count * line_cost(signal.dims, signal.channels)
    if left < 1:
        raise ConfigError(f"--direct {count} lines store {count * line_cost(signal.dims, signal.channels):,} numbers, "
                          f"the whole --params {budget:,}; give fewer lines or a larger --params")
    return count, replace(options, params=left)


def _model_default(signal_type: SignalType, options: ModelOptions, name: str) -> float:
    """The user's value of a model option, else the signal type's (``FitDefaults.model_defaults``), else ModelConfig's."""
    value = getattr(options, name, None)
    if value is not None:
        return value
    return getattr(signal_type.defaults, "model_defaults", {}).get(name, getattr(ModelConfig, name))


def _plan_peer(signal: Signal, signal_type: SignalType, options: ModelOptions, layers: int) -> ModelConfig:
    """A peer (:mod:`inrkit.peers`) sized from ``--params`` (or explicit widths), with its paper's settings."""
    name = options.architecture
    _check_not_constant(signal)
    if options.bandlimit is not None:
        raise ConfigError(f"--bandlimit applies to the lattice and uniform models, not --architecture {name}; drop it")
    tables: dict[str, int] = {}
    if name == "hashgrid":
        if options.width is not None or options.input_frequencies is not None:
            raise ConfigError("--architecture hashgrid sizes its tables and MLP from --params; drop --width and "
                              "--input-frequencies")
        if signal.dims > 4:
            raise ConfigError(f"--architecture hashgrid takes signals of 1 to 4 dimensions, this one has {signal.dims}")
        budget = options.params if options.params is not None else default_params(signal, signal_type)
        finest = max(1, round(4 * max(signal.nyquist)))  # sample spacings across the domain: Instant-NGP's N_max
        tables = plan_hashgrid(budget, signal.dims, signal.channels, layers, finest)
        width = tables.pop("width")
        inputs = tables["hash_levels"] * tables["hash_features"]
    else:
        inputs, width = _widths(signal, signal_type, options, layers)
    offset, scale = output_map(signal)
    return ModelConfig(
        output_offset=offset, output_scale=scale, dims=signal.dims, out_channels=signal.channels,
        input_frequencies=inputs, width=width, hidden_layers=layers, architecture=name,
        siren_omega0=_model_default(signal_type, options, "siren_omega0"),
        ffn_sigma=_model_default(signal_type, options, "ffn_sigma"), seed=options.seed, **tables,
    )


def _shape(signal: Signal, signal_type: SignalType, options: ModelOptions, layers: int) -> tuple[int, ModelOptions]:
    """Hidden layers and ``m / n`` where the user gave none.

    The lattice model's depth follows the signal's dimension (:data:`LATTICE_HIDDEN_LAYERS`), except that the
    dimensions of :data:`DEPTH_NEEDS_SKIP` keep one layer where the deep model would be too narrow for the skip;
    its ``m / n`` is :data:`DEFAULT_INPUT_RATIO` with one hidden layer and :data:`DEEP_INPUT_RATIO` with more.
    Baselines: 1.
    """
    lattice = options.architecture in LATTICE_ARCHITECTURES
    if lattice and options.hidden_layers is None:
        layers = LATTICE_HIDDEN_LAYERS.get(signal.dims, 1)
        if layers > 1 and signal.dims in DEPTH_NEEDS_SKIP and options.skip is None:
            ratio = DEEP_INPUT_RATIO if options.input_ratio is None else options.input_ratio
            try:
                _, width = _widths(signal, signal_type, replace(options, input_ratio=ratio), layers)
            except ConfigError:  # too small a budget for the deep model: one layer says so itself, if it must
                width = 0
            layers = layers if _skip(options, layers, width, signal.dims) else 1
    if options.input_ratio is None:
        ratio = DEEP_INPUT_RATIO if lattice and layers > 1 else DEFAULT_INPUT_RATIO
        options = replace(options, input_ratio=ratio)
    return layers, options


def deep_skip(dims: int) -> float:
    """The default skip of a wide deep lattice model of a ``dims``-dimensional signal (:data:`DEEP_SKIP_BY_DIMS`)."""
    return DEEP_SKIP_BY_DIMS.get(dims, DEEP_SKIP)


def _skip(options: ModelOptions, layers: int, width: int, dims: int) -> float:
    """The share each deeper bounded layer carries past it: the user's, else :func:`deep_skip` of the signal's
    dimensions for layers of at least :data:`SKIP_MIN_WIDTH` neurons after the first."""
    if options.skip is None:
        lattice = options.architecture in LATTICE_ARCHITECTURES
        return deep_skip(dims) if lattice and layers > 1 and width >= SKIP_MIN_WIDTH else 0.0
    if options.skip and layers == 1:
        raise ConfigError(f"--skip {options.skip:g} mixes the bounded layers after the first, and this model has one "
                          "hidden layer; drop --skip or give --hidden-layers 2 or more")
    return options.skip


def _sampling(signal: Signal, options: ModelOptions, bandlimit: tuple[int, ...], layers: int) -> str:
    """The lattice model's input sampling: the user's, or for ``auto`` the signal's (baselines: ``box``)."""
    if options.input_sampling != "auto":
        return options.input_sampling
    if options.architecture != "lattice":
        return "box"
    from inrkit.spectral_init import choose_sampling

    return choose_sampling(signal, bandlimit, hidden_layers=layers)


def _check_options(options: ModelOptions) -> int:
    """Validate the options that need no signal; returns the number of hidden layers."""
    if options.architecture not in ARCHITECTURES:
        raise ConfigError(f"unknown architecture {options.architecture!r}; valid: {', '.join(ARCHITECTURES)}")
    layers = options.hidden_layers if options.hidden_layers is not None else DEFAULT_HIDDEN_LAYERS.get(options.architecture, 1)
    if layers < 1:
        raise ConfigError(f"--hidden-layers must be at least 1, got {layers}")
    for name in ("params", "width", "input_frequencies"):
        value = getattr(options, name)
        if value is not None and value < 1:
            raise ConfigError(f"--{name.replace('_', '-')} must be at least 1, got {value}")
    if options.input_sampling not in (*INPUT_SAMPLINGS, "auto"):
        raise ConfigError(f"--input-sampling must be box, spectrum or auto, got {options.input_sampling!r}")
    if options.skip is not None:
        if not (0.0 <= options.skip < 1.0):  # also rejects NaN
            raise ConfigError(f"--skip must be in [0, 1) (the share of a layer's input carried past it), got "
                              f"{options.skip}")
        if options.skip and options.architecture not in LATTICE_ARCHITECTURES:
            raise ConfigError(f"--skip applies to the lattice and uniform models, not --architecture "
                              f"{options.architecture}; drop it")
    if options.direct is not None and (isinstance(options.direct, bool) or not isinstance(options.direct, int)
                                       or options.direct < 0):
        raise ConfigError(f"--direct must be a whole number of lines >= 0, got {options.direct!r}")
    if options.direct and options.architecture != "lattice":
        raise ConfigError(f"--direct adds lines to the lattice model, not --architecture {options.architecture}; drop it")
    if options.input_ratio is not None and not (options.input_ratio > 0 and math.isfinite(options.input_ratio)):
        raise ConfigError(f"--input-ratio must be a positive number, got {options.input_ratio}")
    return layers


def _check_not_constant(signal: Signal) -> None:
    # Gridded signals only: an oriented point cloud is all zeros by design (its loss fits the normals).
    if signal.grid_shape is not None and bool((signal.values.max(dim=0).values == signal.values.min(dim=0).values).all()):
        value = float(signal.values[0, 0])
        raise InputError(f"the signal is constant (every sample is {value:g}{', in every channel' if signal.channels > 1 else ''}): "
                         "there is nothing to fit; check that the input is the file you meant (silence, a blank image?)")


def _check_lattice_holds(signal: Signal, options: ModelOptions, bandlimit: tuple[int, ...], inputs: int,
                         layers: int) -> None:
    """A model sized from a parameter budget must fit in the lattice below the bandlimit; say so in the signal's terms."""
    available = half_space_count(bandlimit)
    if inputs <= available:
        return
    largest = stored_count(options.architecture, signal.dims, signal.channels, available,
                           max(1, round(available / options.input_ratio)), layers, options.bound_mode)
    shape = "x".join(map(str, signal.grid_shape)) if signal.grid_shape else f"{signal.samples} points"
    asked = f"--params {options.params}" if options.params else "the default size"
    raise ConfigError(
        f"the signal ({shape}) is too small for {asked}: below its bandlimit {tuple(bandlimit)} the lattice holds "
        f"only {available} frequencies and that size needs {inputs}; pass --params {largest} or less"
        + ("" if options.bandlimit is not None else ", or a larger --bandlimit (up to the signal's Nyquist)")
    )


def _bandlimit(signal: Signal, signal_type: SignalType, options: ModelOptions) -> tuple[int, ...]:
    """The largest lattice frequency per axis."""
    nyquist = lattice_nyquist(signal.nyquist)
    siren = options.architecture == "siren"
    if options.bandlimit == "auto":
        if siren:
            raise ConfigError("--bandlimit auto applies to lattice and uniform models, not SIREN")
        return _auto_bandlimit(signal, signal_type, options, nyquist)
    if isinstance(options.bandlimit, str):
        raise ConfigError(f"--bandlimit must be a whole number or 'auto', got {options.bandlimit!r}")
    if isinstance(options.bandlimit, (tuple, list)):
        return _per_axis_bandlimit(tuple(options.bandlimit), nyquist)
    if options.bandlimit is not None:
        if options.bandlimit < 1:
            raise ConfigError(f"--bandlimit must be at least 1, got {options.bandlimit}")
        if options.bandlimit > max(nyquist):
            raise ConfigError(
                f"--bandlimit {options.bandlimit} is above this signal's Nyquist frequency {max(nyquist)} "
                "(lattice units); choose a value up to it (a third of it is typical)"
            )
        return tuple(min(options.bandlimit, n) for n in nyquist)
    fraction = signal_type.defaults.bandlimit_fraction or 1.0 / 3.0  # SIREN ignores it
    return tuple(max(1, round(fraction * n)) for n in nyquist)


def _auto_bandlimit(signal: Signal, signal_type: SignalType, options: ModelOptions,
                    nyquist: tuple[int, ...]) -> tuple[int, ...]:
    params = options.params or default_params(signal, signal_type)
    rule = signal_type.defaults.suggest_bandlimit
    if rule is not None:
        suggested = rule(signal, params)
    elif signal.grid_shape is None:
        raise ConfigError(f"--bandlimit auto needs a gridded signal or a rule from the {signal_type.name!r} plugin; "
                          "pass a whole number")
    else:
        from inrkit.fourier import suggest_bandlimit

        suggested = suggest_bandlimit(signal, params)
    if isinstance(suggested, (tuple, list)):
        return tuple(min(max(1, int(b)), n) for b, n in zip(suggested, nyquist, strict=True))
    return tuple(min(max(1, int(suggested)), n) for n in nyquist)


def _per_axis_bandlimit(values: tuple[int, ...], nyquist: tuple[int, ...]) -> tuple[int, ...]:
    if len(values) != len(nyquist):
        raise ConfigError(f"--bandlimit has {len(values)} values for a signal with {len(nyquist)} axes; "
                          f"give one number, or one per axis like {','.join(str(max(1, n // 3)) for n in nyquist)}")
    for axis, (value, limit) in enumerate(zip(values, nyquist)):
        if value < 1:
            raise ConfigError(f"--bandlimit must be at least 1 on every axis, got {value} on axis {axis}")
        if value > limit:
            raise ConfigError(f"--bandlimit {value} on axis {axis} is above that axis's Nyquist frequency {limit} "
                              "(lattice units); choose a value up to it")
    return tuple(int(v) for v in values)


def _low_bandlimit(options: ModelOptions, bandlimit: tuple[int, ...]) -> tuple[int, ...]:
    if options.low_bandlimit is not None:
        if options.low_bandlimit < 1:
            raise ConfigError(f"--low-bandlimit must be at least 1, got {options.low_bandlimit}")
        return tuple(min(options.low_bandlimit, b) for b in bandlimit)
    return tuple(max(1, round(b / 3)) for b in bandlimit)


def _widths(signal: Signal, signal_type: SignalType, options: ModelOptions, layers: int) -> tuple[int, int]:
    """(input frequencies, hidden width): explicit, or the largest that fit the parameter budget."""
    siren = options.architecture in ("siren", "finer")
    budget = options.params
    if options.width is None and options.input_frequencies is None:
        budget = budget if budget is not None else default_params(signal, signal_type)
        return widths_for_params(budget, options.architecture, signal.dims, signal.channels, layers,
                                 options.input_ratio, options.bound_mode)
    if options.width is None or (options.input_frequencies is None and not siren):
        raise ConfigError("pass both --width and --input-frequencies (or --params alone)")
    width = options.width
    inputs = width if siren else options.input_frequencies
    if budget is not None:
        count = stored_count(options.architecture, signal.dims, signal.channels, inputs, width, layers,
                             options.bound_mode)
        if count > budget:
            raise ConfigError(f"--width {width} and --input-frequencies {inputs} store {count} numbers, over --params {budget}")
    return inputs, width


def output_map(signal: Signal) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel offset and scale that map the signal's range to about [-1, 1] (a constant channel gets scale 1)."""
    low_values, high_values = signal.values.min(dim=0).values, signal.values.max(dim=0).values
    half_range = ((high_values - low_values) / 2).clamp(min=1e-12)
    half_range = torch.where(high_values > low_values, half_range, torch.ones_like(half_range))
    return tuple(((low_values + high_values) / 2).tolist()), tuple(half_range.tolist())


__all__ = ["MIN_DEFAULT_PARAMS", "deep_skip", "default_params", "output_map", "plan_model"]
