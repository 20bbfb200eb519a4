"""Whole jobs: fit a file into a run directory, export a run directory.

These tie the pieces together for the CLI and for scripts:
:func:`plan_model` turns a signal and size options into a
:class:`~inrkit.config.ModelConfig`; :func:`fit_file` loads, fits, measures
and writes a run directory atomically; :func:`export_run` re-renders a saved
model through an exporter.
"""

from __future__ import annotations

import math
import os
import platform
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from inrkit import __version__
from inrkit.checkpoint import (
    Run,
    atomic_output,
    check_new_run_dir,
    deferred_interrupt,
    file_sha256,
    interrupted_path,
    load_run,
    probe_writable,
    save_run,
    staged_run_dir,
    write_json,
)
from inrkit.config import ARCHITECTURES, ModelConfig, TrainConfig
from inrkit.errors import ConfigError, InputError, InrkitWarning
from inrkit.host import Host, get_host
from inrkit.lattice import lattice_nyquist
from inrkit.metrics import psnr
from inrkit.model import build_model, stored_parameter_count
from inrkit.plugin_types import ExportRequest, SignalType
from inrkit.prune import PruneOptions
from inrkit.signal import Signal
from inrkit.spectrum_report import SpectrumRecorder, spectrum_report
from inrkit.sizing import DEFAULT_INPUT_RATIO, stored_count, widths_for_params
from inrkit.train import FitResult, evaluate, fit, resolve_device, rows_for

#: Smallest default model, whatever the signal's size.
MIN_DEFAULT_PARAMS = 2000
#: Signals with more samples than this train on mini-batches unless a batch size is given,
#: so memory stays bounded (a minute of stereo audio has millions of samples).
FULL_BATCH_LIMIT = 1 << 18
#: The largest batch size used then, with the stratified sampler (fewer rows for wide
#: models: see inrkit.train.rows_for).
LARGE_SIGNAL_BATCH = 1 << 15
#: Most predicted-spectrum terms computed for the spectrum.png of a fit.
FIT_SPECTRUM_TERMS = 50_000


@dataclass
class ModelOptions:
    """User-facing model options (CLI flags); None means "choose for me".

    Attributes
    ----------
    architecture:
        ``lattice`` (default), ``uniform`` or ``siren``.
    params:
        Upper bound on stored numbers (widths follow from it).
    width, input_frequencies, hidden_layers:
        Explicit sizes; override ``params``.
    input_ratio:
        ``m / n`` when widths follow from ``params``.
    bandlimit:
        Largest integer lattice frequency per axis, or ``"auto"`` to derive
        it from the signal's spectrum (:func:`inrkit.spectrum.suggest_bandlimit`);
        default a fraction of the lattice Nyquist frequency set by the signal type.
    low_bandlimit:
        Extent of the dense low block; default ``max(1, bandlimit / 3)``.
    """

    architecture: str = "lattice"
    params: int | None = None
    width: int | None = None
    input_frequencies: int | None = None
    hidden_layers: int | None = None
    input_ratio: float = DEFAULT_INPUT_RATIO
    bandlimit: int | str | None = None
    low_bandlimit: int | None = None
    low_fraction: float = 0.7
    c_low: float = 1.0
    c_high: float = 0.6
    omega_g: float = 30.0
    bound_mode: str = "project"
    siren_omega0: float = 30.0
    seed: int = 0


def default_params(signal: Signal, signal_type: SignalType) -> int:
    """Default size: ``params_fraction`` of the sample values, at least :data:`MIN_DEFAULT_PARAMS`."""
    return max(MIN_DEFAULT_PARAMS, int(signal_type.params_fraction * signal.samples * signal.channels))


def plan_model(signal: Signal, signal_type: SignalType, options: ModelOptions) -> ModelConfig:
    """Choose a model configuration for ``signal``.

    Raises
    ------
    ConfigError
        For impossible combinations (a budget too small, a bandlimit above
        Nyquist, explicit widths over the budget...).
    """
    if options.architecture not in ARCHITECTURES:
        raise ConfigError(f"unknown architecture {options.architecture!r}; valid: {', '.join(ARCHITECTURES)}")
    siren = options.architecture == "siren"
    layers = options.hidden_layers if options.hidden_layers is not None else (3 if siren else 1)
    if layers < 1:
        raise ConfigError(f"--hidden-layers must be at least 1, got {layers}")
    for name in ("params", "width", "input_frequencies"):
        value = getattr(options, name)
        if value is not None and value < 1:
            raise ConfigError(f"--{name.replace('_', '-')} must be at least 1, got {value}")
    if not (options.input_ratio > 0 and math.isfinite(options.input_ratio)):
        raise ConfigError(f"--input-ratio must be a positive number, got {options.input_ratio}")

    nyquist = lattice_nyquist(signal.nyquist)
    if options.bandlimit is None and signal_type.bandlimit_fraction is None and not siren:
        options = replace(options, bandlimit="auto")
    if options.bandlimit == "auto":
        if siren:
            raise ConfigError("--bandlimit auto applies to lattice and uniform models, not SIREN")
        params = options.params or default_params(signal, signal_type)
        if signal_type.suggest_bandlimit is not None:
            suggested = int(signal_type.suggest_bandlimit(signal, params))
        elif signal.grid_shape is None:
            raise ConfigError(f"--bandlimit auto needs a gridded signal or a rule from the {signal_type.name!r} plugin; "
                              "pass a whole number")
        else:
            from inrkit.spectrum import suggest_bandlimit

            suggested = suggest_bandlimit(signal, params)
        bandlimit = tuple(min(max(1, suggested), n) for n in nyquist)
    elif isinstance(options.bandlimit, str):
        raise ConfigError(f"--bandlimit must be a whole number or 'auto', got {options.bandlimit!r}")
    elif options.bandlimit is not None:
        if options.bandlimit < 1:
            raise ConfigError(f"--bandlimit must be at least 1, got {options.bandlimit}")
        if options.bandlimit > max(nyquist):
            raise ConfigError(
                f"--bandlimit {options.bandlimit} is above this signal's Nyquist frequency {max(nyquist)} "
                "(lattice units); choose a value up to it (a third of it is typical)"
            )
        bandlimit = tuple(min(options.bandlimit, n) for n in nyquist)
    else:
        fraction = signal_type.bandlimit_fraction or 1.0 / 3.0  # SIREN ignores it
        bandlimit = tuple(max(1, round(fraction * n)) for n in nyquist)
    if options.low_bandlimit is not None:
        if options.low_bandlimit < 1:
            raise ConfigError(f"--low-bandlimit must be at least 1, got {options.low_bandlimit}")
        low = tuple(min(options.low_bandlimit, b) for b in bandlimit)
    else:
        low = tuple(max(1, round(b / 3)) for b in bandlimit)

    explicit = options.width is not None or options.input_frequencies is not None
    budget = options.params
    if explicit:
        if options.width is None or (options.input_frequencies is None and not siren):
            raise ConfigError("pass both --width and --input-frequencies (or --params alone)")
        width = options.width
        inputs = width if siren else options.input_frequencies
        if budget is not None:
            count = stored_count(options.architecture, signal.dims, signal.channels, inputs, width, layers, options.bound_mode)
            if count > budget:
                raise ConfigError(f"--width {width} and --input-frequencies {inputs} store {count} numbers, over --params {budget}")
    else:
        if budget is None:
            budget = default_params(signal, signal_type)
        inputs, width = widths_for_params(
            budget, options.architecture, signal.dims, signal.channels, layers, options.input_ratio, options.bound_mode
        )
    low_values, high_values = signal.values.min(dim=0).values, signal.values.max(dim=0).values
    half_range = ((high_values - low_values) / 2).clamp(min=1e-12)
    half_range = torch.where(high_values > low_values, half_range, torch.ones_like(half_range))
    return ModelConfig(
        output_offset=tuple(((low_values + high_values) / 2).tolist()),
        output_scale=tuple(half_range.tolist()),
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
        siren_omega0=options.siren_omega0,
        seed=options.seed,
    )


def load_signal(path: Path, signal_name: str | None, host: Host | None = None) -> tuple[Signal, SignalType]:
    """Load a file with the named signal type, or the one its extension selects."""
    host = host or get_host()
    path = Path(path)
    signal_type = host.signal(signal_name) if signal_name else host.signal_for_path(path)
    if not path.exists():
        raise InputError(f"input file {path} does not exist; check the path")
    return load_with(signal_type, path), signal_type


def load_with(signal_type: SignalType, path: Path) -> Signal:
    """``signal_type.load(path)``, checked; the signal's ``kind`` is the type's name."""
    signal = signal_type.load(path)
    if not isinstance(signal, Signal):
        raise InputError(f"the {signal_type.name!r} loader returned {type(signal).__name__}, not a Signal")
    signal.kind = signal_type.name
    return signal


@dataclass
class FitSummary:
    """What :func:`fit_file` did: where, how big, how good."""

    run_dir: Path
    parameters: int
    metrics: dict[str, Any]
    result: FitResult
    model_config: ModelConfig
    #: The ``-o`` asked for, when an interrupted fit was written beside it instead (``DIR.interrupted-N``).
    requested_dir: Path | None = None
    #: True when Ctrl-C arrived while the run was being written (the writing was finished first).
    interrupted_while_writing: bool = False

    @property
    def interrupted(self) -> bool:
        """True when Ctrl-C stopped training or arrived during the writing."""
        return self.result.stop_reason == "interrupted" or self.interrupted_while_writing


def fit_file(
    path: Path,
    output: Path,
    model_options: ModelOptions,
    train_config: TrainConfig,
    signal_name: str | None = None,
    loss_name: str | None = None,
    overwrite: bool = False,
    host: Host | None = None,
    spectrum_every: int | None = None,
    prune: PruneOptions | None = None,
) -> FitSummary:
    """Load ``path``, fit a model, and write a complete run directory at ``output``.

    The run directory is staged and renamed into place only when complete.
    An interrupted fit (Ctrl-C) still writes the model trained so far.
    For gridded signals it also writes ``spectrum.png`` and ``spectrum.json``
    (:func:`inrkit.spectrum.spectrum_report`) and, with ``spectrum_every``,
    ``spectrum_steps.png``: the reconstruction's spectrum every N steps.
    With ``prune`` (:class:`~inrkit.prune.PruneOptions`), the fit uses L1,
    add-prune and/or shrinking rounds, and ``metrics.json`` gets the path it
    took (``prune_path``), drawn in ``prune_path.png``.
    """
    host = host or get_host()
    check_new_run_dir(output, overwrite)
    probe_writable(output)
    device = resolve_device(train_config.device)
    signal, signal_type = load_signal(path, signal_name, host)
    source = source_facts(Path(path), signal)
    _check_exporter(host, signal_type)
    model_config = plan_model(signal, signal_type, model_options)
    if train_config.sampler is None:
        train_config = replace(train_config, sampler=signal_type.sampler,
                               batch_size=train_config.batch_size or signal_type.batch_size)
    if train_config.batch_size is None and signal.samples > FULL_BATCH_LIMIT:
        sampler_choice = "stratified" if train_config.sampler == "full" else train_config.sampler
        batch = rows_for(model_config, most=LARGE_SIGNAL_BATCH, least=4096)
        train_config = replace(train_config, batch_size=batch, sampler=sampler_choice)
    loss = host.loss(loss_name or signal_type.loss)
    sampler = host.sampler(train_config.sampler)
    model = build_model(model_config)
    recorder = SpectrumRecorder(signal, spectrum_every) if spectrum_every is not None else None
    if recorder is not None:
        host.pm.register(recorder, name="inrkit-spectrum-recorder")
    started = time.perf_counter()
    path_taken = None
    try:
        if prune is not None and prune.active:
            from inrkit.prune import pruned_fit

            def grow(params: int) -> torch.nn.Module:
                bigger = replace(model_options, params=params, width=None, input_frequencies=None)
                return build_model(plan_model(signal, signal_type, bigger))

            pruned = pruned_fit(model, signal, train_config, loss.fn, sampler.make, prune, host.pm.hook, device, grow)
            result, path_taken = pruned.result, pruned.path
        else:
            result = fit(model, signal, train_config, loss.fn, sampler.make, hook=host.pm.hook, device=device)
    finally:
        if recorder is not None:
            host.pm.unregister(recorder)
    return _write_run(output, overwrite, host, signal, signal_type, source, result, loss.name, train_config,
                      device, started, recorder, path_taken, {"prune": asdict(prune)} if prune and prune.active else {})


def prune_run(run_dir: Path, output: Path, target_params: int, train_config: TrainConfig, source: Path | None = None,
              overwrite: bool = False, host: Host | None = None, options: PruneOptions | None = None,
              strict: bool = False) -> FitSummary:
    """Prune a fitted run to at most ``target_params`` stored numbers, fine-tuning between cuts.

    The signal is reloaded from the path the run recorded (or ``source``);
    the loss and sampler are the run's. Writes a new run directory at
    ``output`` with the path taken in ``metrics.json``. A source whose
    SHA-256 differs from the recorded one is a warning, or with ``strict``
    an error (see :func:`reload_source`).
    """
    from inrkit.prune import pruned_fit

    host = host or get_host()
    check_new_run_dir(output, overwrite)
    probe_writable(output)
    run = load_run(run_dir)
    signal, signal_type, path = reload_source(run, source, host, strict)
    facts = source_facts(path, signal)
    _check_exporter(host, signal_type)
    before = stored_parameter_count(run.model)
    if target_params >= before:
        raise ConfigError(f"--target-params {target_params} is not below the model's {before} stored numbers; "
                          "choose a smaller target")
    saved = run.config.get("train", {})
    # The run's seed too: the hold-out split must be the one the model never saw.
    train_config = replace(train_config, sampler=saved.get("sampler") or "full", batch_size=saved.get("batch_size"),
                           holdout=saved.get("holdout", 0.0), loss_weight=saved.get("loss_weight", 1.0),
                           seed=saved.get("seed", train_config.seed))
    loss = host.loss(run.config.get("loss") or signal_type.loss)
    sampler = host.sampler(train_config.sampler)
    device = resolve_device(train_config.device)
    options = replace(options or PruneOptions(), target_params=target_params)
    started = time.perf_counter()
    model = run.model.to(device).train()
    pruned = pruned_fit(model, signal, train_config, loss.fn, sampler.make, options, host.pm.hook, device,
                        pretrained=True)
    extra = {"prune": asdict(options), "pruned_from": {"run": str(Path(run_dir).resolve()), "parameters": before}}
    return _write_run(output, overwrite, host, signal, signal_type, facts, pruned.result, loss.name, train_config,
                      device, started, None, pruned.path, extra)


def source_facts(path: Path, signal: Signal) -> dict[str, Any]:
    """Where a signal came from, for ``config.json``: its resolved path, its SHA-256 (for a regular file) and the
    files its loader says it read (:attr:`Signal.provenance`, e.g. every frame of a folder).

    Computed before training, so that an input that cannot be read is found
    at once rather than after the training budget.
    """
    path = Path(path)
    facts = {"source": str(path.resolve()), "source_sha256": file_sha256(path) if path.is_file() else None}
    if signal.provenance:
        facts["provenance"] = dict(signal.provenance)
    return facts


def reload_source(run: Run, source: Path | None, host: Host, strict: bool = False) -> tuple[Signal, SignalType, Path]:
    """Load the signal a saved run was fitted to again: from ``source``, else the path the run recorded.

    The file's SHA-256 is compared with the recorded one: a mismatch is an
    :class:`~inrkit.errors.InrkitWarning`, or with ``strict`` an
    :class:`~inrkit.errors.InputError`. A signal of another type or shape
    than the run's is always an error.
    """
    recorded = run.signal.get("source")
    path = Path(source) if source is not None else (Path(recorded) if recorded else None)
    if source is not None and not path.exists():
        raise InputError(f"--input {source} does not exist; pass the file the run was fitted to")
    if path is None or not path.exists():
        raise InputError(f"the signal this run was fitted to ({recorded}) is not there any more; pass it with --input FILE")
    signal_type = host.signal(run.signal.get("signal_type") or run.signal.get("kind"))
    signal = load_with(signal_type, path)
    _check_same_geometry(signal, run, path)
    expected = run.signal.get("source_sha256")
    if expected and path.is_file() and (actual := file_sha256(path)) != expected:
        message = (f"{path} is not the file this run was fitted to (SHA-256 {actual[:12]}, the run recorded "
                   f"{expected[:12]})")
        if strict:
            raise InputError(f"{message}; pass the original with --input FILE, or drop --strict")
        import warnings

        warnings.warn(f"{message}; using it as it is now (--strict refuses)", InrkitWarning, stacklevel=2)
    return signal, signal_type, path


def _check_same_geometry(signal: Signal, run: Run, path: Path) -> None:
    recorded = run.signal
    have = {"dims": signal.dims, "channels": signal.channels,
            "grid_shape": list(signal.grid_shape) if signal.grid_shape else None}
    for key, value in have.items():
        if key in recorded and recorded[key] != value:
            raise InputError(
                f"{path} has {key} {value}, but the run was fitted to a signal with {key} {recorded[key]}; "
                "pass the file the run was fitted to with --input FILE"
            )


def _check_exporter(host: Host, signal_type: SignalType) -> None:
    """Resolve the run's reconstruction exporter now, so that a missing one fails before training."""
    if signal_type.exporter:
        host.exporter(signal_type.name, signal_type.exporter)


def _write_run(output: Path, overwrite: bool, host: Host, signal: Signal, signal_type: SignalType,
               source: dict[str, Any], result: FitResult, loss_name: str, train_config: TrainConfig,
               device: torch.device, started: float, recorder: SpectrumRecorder | None, path_taken: list | None,
               extra: dict[str, Any]) -> FitSummary:
    """Measure and write the run; Ctrl-C during the writing is held back until the run is complete.

    An interrupted fit never replaces an existing run: it goes beside it,
    to ``DIR.interrupted-N``.
    """
    requested = None
    output = Path(output)
    if result.stop_reason == "interrupted" and output.is_dir() and any(output.iterdir()):
        requested, output, overwrite = output, interrupted_path(output), False
    with deferred_interrupt() as held:
        summary = _measure_and_write(output, overwrite, host, signal, signal_type, source, result, loss_name,
                                     train_config, device, started, recorder, path_taken, extra)
    summary.requested_dir = requested
    summary.interrupted_while_writing = held.received
    return summary


def _measure_and_write(output: Path, overwrite: bool, host: Host, signal: Signal, signal_type: SignalType,
                       source: dict[str, Any], result: FitResult, loss_name: str, train_config: TrainConfig,
                       device: torch.device, started: float, recorder: SpectrumRecorder | None,
                       path_taken: list | None, extra: dict[str, Any]) -> FitSummary:
    model = result.model
    model_config = getattr(model, "config", None)
    signal_coords = signal.coordinates()
    reconstruction = evaluate(model, signal_coords)
    train_mask = torch.zeros(signal.samples, dtype=torch.bool)
    train_mask[result.train_index] = True
    metrics: dict[str, Any] = {"psnr": psnr(reconstruction[train_mask], signal.values[train_mask], signal.data_range)}
    if signal_type.metrics is not None:
        metrics.update(signal_type.metrics(signal, reconstruction, train_mask))
    parameters = stored_parameter_count(model)
    summary_metrics = {
        "final": metrics,
        "parameters": parameters,
        "steps": result.steps,
        "train_seconds": result.seconds,
        "stop_reason": result.stop_reason,
        "device": str(device),
        "curve": result.curve,
    }
    if path_taken is not None:
        summary_metrics["prune_path"] = path_taken
    config = {
        "inrkit_version": __version__,
        "model": model_config.to_dict(),
        "train": train_config.to_dict(),
        "loss": loss_name,
        **extra,
        "signal": {
            **signal.geometry(),
            "metadata": signal.metadata,
            **source,
            "signal_type": signal_type.name,
            "exporter": signal_type.exporter,
        },
        "environment": {"python": platform.python_version(), "torch": torch.__version__, "device": str(device)},
    }
    with staged_run_dir(output, overwrite) as staging:
        if signal_type.report is not None:
            metrics.update(signal_type.report(signal, lambda coords: evaluate(model, coords), staging))
        save_run(staging, model.cpu(), config, summary_metrics)
        if signal_type.exporter:
            exporter = host.exporter(signal_type.name, signal_type.exporter)
            request = ExportRequest(
                evaluate=lambda coords: _reuse(reconstruction, signal_coords, coords, model),
                geometry=config["signal"],
                metadata=signal.metadata,
                path=staging / f"reconstruction{exporter.extensions[0]}",
            )
            exporter.export(request)
        if signal_type.previews is not None:
            signal_type.previews(signal, reconstruction, staging)
        if signal.grid_shape is not None:
            # Bounded cost inside every fit; `inrkit spectrum` can go further.
            write_spectrum(model.cpu(), signal, model_config, staging / "spectrum.png", staging / "spectrum.json",
                           max_terms=FIT_SPECTRUM_TERMS, reconstruction=reconstruction)
        if recorder is not None and (strip := recorder.figure()) is not None:
            with atomic_output(staging / "spectrum_steps.png") as temporary:
                strip.save(temporary, format="PNG")
        if path_taken:
            with atomic_output(staging / "prune_path.png") as temporary:
                prune_path_figure(path_taken).save(temporary, format="PNG")
    summary_metrics["total_seconds"] = time.perf_counter() - started
    return FitSummary(Path(output), parameters, summary_metrics, result, model_config)


def prune_path_figure(path_taken: list[dict[str, Any]]):
    """PSNR and stored parameters after each phase of a pruned fit, one above the other."""
    from inrkit.plots import line_chart, stack

    phases = np.arange(len(path_taken), dtype=np.float64)
    quality = np.array([p["psnr"] for p in path_taken], dtype=np.float64)
    size = np.array([p["parameters"] for p in path_taken], dtype=np.float64)
    marks = np.array([p["phase"] for p in path_taken if p.get("accepted") is False], dtype=np.float64)
    series = [(phases, quality, (200, 60, 40), "training PSNR (dB)")]
    goals = [p["goal"] for p in path_taken if "goal" in p]
    if goals:
        series.append((phases, np.full_like(phases, goals[0]), (150, 150, 150), "goal"))
    top = line_chart(series, "PSNR after each phase (ticks: rejected prunes; the model kept is the last accepted)",
                     "phase", log_y=False, marks=marks if marks.size else None)
    bottom = line_chart([(phases, size, (40, 90, 200), "stored parameters")], "model size after each phase",
                        "phase", log_y=False)
    return stack([top, bottom], horizontal=False)


def _reuse(values: torch.Tensor, known: torch.Tensor, coords: torch.Tensor, model: torch.nn.Module) -> torch.Tensor:
    """``values`` when ``coords`` are the coordinates they were computed at, else a fresh evaluation."""
    if coords.shape == known.shape and torch.equal(coords, known):
        return values
    return evaluate(model, coords)


def write_spectrum(model: torch.nn.Module, signal: Signal, model_config: ModelConfig, picture: Path,
                   numbers: Path | None, max_order: int = 2, tol: float = 1e-4, max_terms: int = 2_000_000,
                   reconstruction: torch.Tensor | None = None) -> dict[str, Any]:
    """Write the spectrum picture and (optionally) its JSON (see :func:`inrkit.spectrum.spectrum_report`)."""
    bandlimit = model_config.bandlimit or None
    figure, summary = spectrum_report(model, signal, bandlimit, max_order=max_order, tol=tol,
                                      period=model_config.period, max_terms=max_terms, reconstruction=reconstruction)
    with atomic_output(Path(picture)) as temporary:
        figure.save(temporary, format="PNG")
    if numbers is not None:
        write_json(Path(numbers), summary)
    return summary


def spectrum_of_run(run_dir: Path, picture: Path, numbers: Path | None, source: Path | None = None,
                    max_order: int = 2, tol: float = 1e-4, host: Host | None = None,
                    strict: bool = False) -> dict[str, Any]:
    """:func:`write_spectrum` for a saved run; the signal is reloaded (:func:`reload_source`)."""
    host = host or get_host()
    run = load_run(run_dir)
    signal, signal_type, _ = reload_source(run, source, host, strict)
    if signal.grid_shape is None:
        raise ConfigError(f"{signal_type.name} signals are not gridded; spectrum pictures need a grid")
    return write_spectrum(run.model, signal, run.model_config, picture, numbers, max_order, tol)


def _refuse_overwriting_inputs(run: Run, output: Path) -> None:
    """An export must not replace the signal the run was fitted to, nor the run's own model files."""
    protected = [(Path(run.signal["source"]), "the signal this run was fitted to")] if run.signal.get("source") else []
    protected += [(run.path / name, f"part of the run directory {run.path}") for name in ("model.safetensors", "config.json")]
    for path, what in protected:
        same = output.resolve() == path.resolve()
        if not same and output.exists() and path.exists():
            same = os.path.samefile(output, path)
        if same:
            raise ConfigError(f"-o {output} is {what}; writing it would destroy it; choose another -o")


def export_run(
    run_dir: Path,
    output: Path,
    options: dict[str, Any] | None = None,
    exporter_name: str | None = None,
    host: Host | None = None,
    device: str = "auto",
) -> dict[str, Any]:
    """Re-render a saved model through an exporter chosen by name or by ``output``'s extension.

    Returns what the exporter returns (a dict of facts about the file, e.g.
    a mesh's vertex count), or an empty dict.
    """
    host = host or get_host()
    run = load_run(run_dir)
    signal_info = run.signal
    kind = signal_info.get("signal_type") or signal_info.get("kind")
    if not kind:
        raise ConfigError(f"{run_dir}/config.json does not say which signal type it holds")
    _refuse_overwriting_inputs(run, Path(output))
    exporter = host.exporter(kind, exporter_name, None if exporter_name else Path(output))
    model = run.model.to(resolve_device(device))
    request = ExportRequest(
        evaluate=lambda coords: evaluate(model, coords),
        geometry=signal_info,
        metadata=signal_info.get("metadata", {}),
        path=Path(output),
        options=options or {},
    )
    return exporter.export(request) or {}


__all__ = ["FitSummary", "ModelOptions", "default_params", "export_run", "fit_file", "load_signal", "plan_model", "prune_path_figure",
           "prune_run", "spectrum_of_run", "write_spectrum"]
