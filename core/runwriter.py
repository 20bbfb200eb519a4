"""Writing a run directory from a finished fit: metrics, config, model, reconstruction, pictures.

:func:`write_run` measures the fit (the core's PSNR and hold-out PSNR, then
the signal type's ``assess``), stages every file and renames the directory
into place. An interrupted fit never replaces an existing run (it goes to
``DIR.interrupted-N``), and a Ctrl-C during the writing is held back until
the run is complete.
"""

from __future__ import annotations

import platform
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from inrkit import __version__
from inrkit.atomic import atomic_output, deferred_interrupt, write_json
from inrkit.checkpoint import interrupted_path, save_run, staged_run_dir
from inrkit.config import ModelConfig, TrainConfig
from inrkit.host import Host
from inrkit.metrics import psnr
from inrkit.model import stored_parameter_count
from inrkit.plugin_types import AssessRequest, ExportRequest, SignalType
from inrkit.progress import Stages, evaluate_reporting
from inrkit.signal import Signal
from inrkit.spectrum_report import SpectrumRecorder, spectrum_report
from inrkit.train import FitResult, evaluate

#: Most predicted-spectrum terms computed for the spectrum.png of a fit.
FIT_SPECTRUM_TERMS = 50_000
#: The stages of :func:`write_run`, reported as the phase "writing the run".
_stage = Stages("writing the run", ("evaluating the model", "assessing", "saving the model",
                                    "writing the reconstruction", "drawing pictures"))


@dataclass
class FitSummary:
    """What a fit (or a prune) wrote: where, how big, how good."""

    run_dir: Path
    parameters: int
    metrics: dict[str, Any]
    result: FitResult
    model_config: ModelConfig
    #: The signal type that was fitted (its ``show`` says how to display the metrics).
    signal_type: SignalType | None = None
    #: The ``-o`` asked for, when an interrupted fit was written beside it instead (``DIR.interrupted-N``).
    requested_dir: Path | None = None
    #: True when Ctrl-C arrived while the run was being written (the writing was finished first).
    interrupted_while_writing: bool = False

    @property
    def interrupted(self) -> bool:
        """True when Ctrl-C stopped training or arrived during the writing."""
        return self.result.stop_reason == "interrupted" or self.interrupted_while_writing


@dataclass
class FinishedFit:
    """Everything a run directory is written from.

    Attributes
    ----------
    signal, signal_type:
        What was fitted.
    source:
        Where it came from (:func:`inrkit.sources.source_facts`), plus the loader options used.
    result:
        The trainer's result (model, curve, steps, stop reason, hold-out split).
    loss_name, train_config, device:
        How it was trained.
    started:
        ``time.perf_counter()`` when the job started (for ``total_seconds``).
    recorder:
        The spectrum recorder of ``--spectrum-every``, if any.
    path_taken:
        The phases of a pruned fit, if any.
    extra:
        More ``config.json`` sections (``prune``, ``pruned_from``).
    """

    signal: Signal
    signal_type: SignalType
    source: dict[str, Any]
    result: FitResult
    loss_name: str
    train_config: TrainConfig
    device: torch.device
    started: float
    recorder: SpectrumRecorder | None = None
    path_taken: list[dict[str, Any]] | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def write_run(output: Path, fitted: FinishedFit, host: Host, overwrite: bool = False) -> FitSummary:
    """Measure ``fitted`` and write its run directory at ``output`` (see the module docstring)."""
    requested = None
    output = Path(output)
    if fitted.result.stop_reason == "interrupted" and output.is_dir() and any(output.iterdir()):
        requested, output, overwrite = output, interrupted_path(output), False
    with deferred_interrupt() as held:
        summary = _measure_and_write(output, fitted, host, overwrite)
    summary.requested_dir = requested
    summary.interrupted_while_writing = held.received
    return summary


def core_metrics(signal: Signal, reconstruction: torch.Tensor, train_mask: torch.Tensor) -> dict[str, float]:
    """The metrics inrkit computes for every signal: PSNR on the trained samples and, with a hold-out, on the rest."""
    metrics = {"psnr": psnr(reconstruction[train_mask], signal.values[train_mask], signal.data_range)}
    if (~train_mask).any():
        metrics["test_psnr"] = psnr(reconstruction[~train_mask], signal.values[~train_mask], signal.data_range)
    return metrics


def _measure_and_write(output: Path, fitted: FinishedFit, host: Host, overwrite: bool) -> FitSummary:
    model, signal, signal_type, result = fitted.result.model, fitted.signal, fitted.signal_type, fitted.result
    coords = signal.coordinates()
    _stage("evaluating the model")
    reconstruction = evaluate_reporting(model, coords, "evaluating the model")
    train_mask = torch.zeros(signal.samples, dtype=torch.bool)
    train_mask[result.train_index] = True
    metrics: dict[str, Any] = core_metrics(signal, reconstruction, train_mask)
    parameters = stored_parameter_count(model)
    summary_metrics = {
        "final": metrics,
        "parameters": parameters,
        "steps": result.steps,
        "train_seconds": result.seconds,
        "stop_reason": result.stop_reason,
        "device": str(fitted.device),
        "curve": result.curve,
        "rollbacks": len(result.rollbacks),
    }
    if result.rollbacks:
        summary_metrics["rollback_events"] = result.rollbacks
    if fitted.path_taken is not None:
        summary_metrics["prune_path"] = fitted.path_taken
    config = _run_config(fitted, model.config)
    with staged_run_dir(output, overwrite) as staging:
        if signal_type.assess is not None:
            _stage("assessing", f"assessing ({signal_type.name})")
            request = AssessRequest(signal=signal, reconstruction=reconstruction, train_mask=train_mask,
                                    evaluate=lambda points: evaluate(model, points), run_dir=staging)
            metrics.update(_checked_metrics(signal_type.assess(request), signal_type.name))
        _stage("saving the model")
        save_run(staging, model.cpu(), config, summary_metrics)
        _stage("writing the reconstruction")
        _write_reconstruction(staging, fitted, host, config, reconstruction, coords)
        _stage("drawing pictures")
        _write_pictures(staging, fitted, model.config, reconstruction)
        _stage.finish()
    summary_metrics["total_seconds"] = time.perf_counter() - fitted.started
    return FitSummary(Path(output), parameters, summary_metrics, result, model.config, signal_type)


def _checked_metrics(values: Any, owner: str) -> dict[str, Any]:
    """A signal type's metrics: names to numbers, or to series of numbers."""
    from inrkit.errors import PluginError

    if not isinstance(values, dict):
        raise PluginError(f"the {owner!r} plugin's assess returned {type(values).__name__}, not a dict of metrics")
    checked: dict[str, Any] = {}
    for name, value in values.items():
        if isinstance(value, (list, tuple, np.ndarray, torch.Tensor)):
            checked[name] = [float(v) for v in np.asarray(value, dtype=np.float64).reshape(-1)]
        elif isinstance(value, (int, float, np.floating, np.integer)) and not isinstance(value, bool):
            checked[name] = float(value)
        else:
            raise PluginError(f"the {owner!r} plugin's metric {name!r} is {type(value).__name__}; "
                              "metrics are numbers or lists of numbers")
    return checked


def _run_config(fitted: FinishedFit, model_config: ModelConfig) -> dict[str, Any]:
    signal = fitted.signal
    return {
        "inrkit_version": __version__,
        "model": model_config.to_dict(),
        "train": fitted.train_config.to_dict(),
        "loss": fitted.loss_name,
        **fitted.extra,
        "signal": {
            **signal.geometry(),
            "metadata": signal.metadata,
            **fitted.source,
            "signal_type": fitted.signal_type.name,
            "exporter": fitted.signal_type.exporter,
        },
        "environment": {"python": platform.python_version(), "torch": torch.__version__, "device": str(fitted.device)},
    }


def _write_reconstruction(staging: Path, fitted: FinishedFit, host: Host, config: dict[str, Any],
                          reconstruction: torch.Tensor, coords: torch.Tensor) -> None:
    signal_type, model = fitted.signal_type, fitted.result.model
    if not signal_type.exporter:
        return
    exporter = host.exporter(signal_type.name, signal_type.exporter)
    request = ExportRequest(
        evaluate=lambda points: _reuse(reconstruction, coords, points, model),
        geometry=config["signal"],
        metadata=fitted.signal.metadata,
        path=staging / f"reconstruction{exporter.extensions[0]}",
        options={o.name: o.default for o in exporter.options if o.default is not None},
    )
    exporter.export(request)


def _write_pictures(staging: Path, fitted: FinishedFit, model_config: ModelConfig,
                    reconstruction: torch.Tensor) -> None:
    signal, model = fitted.signal, fitted.result.model
    if signal.grid_shape is not None:
        # Bounded cost inside every fit; `inrkit spectrum` can go further.
        write_spectrum(model.cpu(), signal, model_config, staging / "spectrum.png", staging / "spectrum.json",
                       max_terms=FIT_SPECTRUM_TERMS, reconstruction=reconstruction)
    if fitted.recorder is not None and (strip := fitted.recorder.figure()) is not None:
        with atomic_output(staging / "spectrum_steps.png") as temporary:
            strip.save(temporary, format="PNG")
    if fitted.path_taken:
        with atomic_output(staging / "prune_path.png") as temporary:
            prune_path_figure(fitted.path_taken).save(temporary, format="PNG")


def _reuse(values: torch.Tensor, known: torch.Tensor, coords: torch.Tensor, model: torch.nn.Module) -> torch.Tensor:
    """``values`` when ``coords`` are the coordinates they were computed at, else a fresh evaluation."""
    if coords.shape == known.shape and torch.equal(coords, known):
        return values
    return evaluate(model, coords)


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


__all__ = ["FIT_SPECTRUM_TERMS", "FinishedFit", "FitSummary", "core_metrics", "prune_path_figure", "write_run",
           "write_spectrum"]
