"""Whole jobs: fit a file into a run directory, prune a run, export a run, draw a run's spectrum.

These tie the pieces together for the CLI and for scripts. Planning lives in
:mod:`inrkit.planning`, writing a run directory in :mod:`inrkit.runwriter`.
Every entry point takes its options by keyword.
"""

from __future__ import annotations

import os
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import torch

from inrkit.checkpoint import Run, check_new_run_dir, load_run, probe_writable
from inrkit.config import ModelOptions, TrainConfig
from inrkit.errors import ConfigError
from inrkit.host import Host, get_host
from inrkit.model import build_model, stored_parameter_count
from inrkit.options import parse_options
from inrkit.planning import default_params, plan_model
from inrkit.plugin_types import ExportRequest, SignalType
from inrkit.progress import evaluate_reporting
from inrkit.prune import PruneOptions
from inrkit.runwriter import (
    FinishedFit,
    FitSummary,
    prune_path_figure,
    write_run,
    write_spectrum,
)
from inrkit.signal import Signal
from inrkit.sources import (  # noqa: F401 - re-exported
    _with_seed,
    load_signal,
    load_with,
    reload_source,
    source_facts,
)
from inrkit.train import fit, resolve_device, rows_for

#: Signals with more samples than this train on mini-batches unless a batch size is given,
#: so memory stays bounded (a minute of stereo audio has millions of samples).
FULL_BATCH_LIMIT = 1 << 18
#: The largest batch size used then, with the stratified sampler (fewer rows for wide
#: models: see inrkit.train.rows_for).
LARGE_SIGNAL_BATCH = 1 << 15
#: Options hook version 1.0 handed to every exporter (from ``--sample-rate``); exporters that declare none still get them.
_LEGACY_EXPORT_OPTIONS = ("sample_rate",)


def fit_file(
    path: Path,
    output: Path,
    *,
    model_options: ModelOptions | None = None,
    train_config: TrainConfig | None = None,
    signal_name: str | None = None,
    loss_name: str | None = None,
    overwrite: bool = False,
    host: Host | None = None,
    spectrum_every: int | None = None,
    prune: PruneOptions | None = None,
    load_options: dict[str, Any] | None = None,
    checkpoint_every: str | None = None,
) -> FitSummary:
    """Load ``path``, fit a model, and write a complete run directory at ``output``.

    Everything that can be checked is checked before training: the output
    place, the input, the options, the exporter. The run directory is
    staged and renamed into place only when complete; an interrupted fit
    (Ctrl-C) still writes the model trained so far (see
    :func:`inrkit.runwriter.write_run`). For gridded signals it also writes
    ``spectrum.png`` and ``spectrum.json`` and, with ``spectrum_every``,
    ``spectrum_steps.png``: the reconstruction's spectrum every N steps.
    With ``prune`` (:class:`~inrkit.prune.PruneOptions`), the fit uses L1,
    add-prune and/or shrinking rounds, and ``metrics.json`` gets the path it
    took (``prune_path``), drawn in ``prune_path.png``. With
    ``checkpoint_every`` (``N`` steps, ``Ns`` or ``Nm``; plain fits only) the
    fit writes checkpoints that :func:`inrkit.resume.resume_fit` continues
    from. A checkpoint of an unfinished fit at ``output`` is
    replaced only with ``overwrite``.
    """
    return prepare_fit(path, output, model_options=model_options, train_config=train_config, signal_name=signal_name,
                       loss_name=loss_name, overwrite=overwrite, host=host, spectrum_every=spectrum_every, prune=prune,
                       load_options=load_options, checkpoint_every=checkpoint_every).run()


def prepare_fit(
    path: Path,
    output: Path,
    *,
    model_options: ModelOptions | None = None,
    train_config: TrainConfig | None = None,
    signal_name: str | None = None,
    loss_name: str | None = None,
    overwrite: bool = False,
    host: Host | None = None,
    spectrum_every: int | None = None,
    prune: PruneOptions | None = None,
    load_options: dict[str, Any] | None = None,
    checkpoint_every: str | None = None,
) -> FitJob:
    """Everything :func:`fit_file` does before training: the checks, the signal, the plan, the untrained model.

    ``prepare_fit(...).run()`` is :func:`fit_file`; :mod:`inrkit.batched` trains several prepared jobs at once.
    """
    from inrkit.config import FIT_STEPS
    from inrkit.resume import check_no_checkpoint, checkpointing, parse_every

    host = host or get_host()
    model_options = model_options or ModelOptions()
    if prune is not None and prune.active and model_options.hidden_layers is None:
        # Pruning removes hidden neurons of one-hidden-layer models: a pruned fit keeps the one-layer default.
        model_options = replace(model_options, hidden_layers=1)
    train_config = train_config or TrainConfig(steps=FIT_STEPS)
    every = parse_every(checkpoint_every) if checkpoint_every is not None else None
    if every is not None and prune is not None and prune.active:
        raise ConfigError("--checkpoint-every is not supported with --prune, --add-prune-every or --l1 yet; "
                          "drop --checkpoint-every, or fit without pruning")
    check_new_run_dir(output, overwrite)
    check_no_checkpoint(output, overwrite)
    probe_writable(output)
    device = resolve_device(train_config.device)
    load_options = _with_seed(host, path, signal_name, load_options, train_config.seed)
    signal, signal_type = load_signal(path, signal_name, host, load_options)
    source = source_facts(Path(path), signal, load_options)
    _check_exporter(host, signal_type)
    model_config = plan_model(signal, signal_type, model_options)
    train_config = _batching(train_config.for_model(model_config, signal_type.defaults.lr), signal, signal_type,
                            model_config)
    loss = host.loss(loss_name or signal_type.defaults.loss)
    if loss.signals and signal_type.name not in loss.signals:
        usable = sorted(name for name, other in host.registry["loss"].items()
                        if not other.signals or signal_type.name in other.signals)
        raise ConfigError(f"--loss {loss.name} works for {', '.join(loss.signals)} signals, not {signal_type.name}; "
                          f"for {signal_type.name} use one of: {', '.join(usable)}")
    model = build_model(model_config, signal)
    if getattr(model, "direct", None) is not None and train_config.holdout:  # the lines must not see held-out samples
        from inrkit.direct import start_lines
        from inrkit.train import holdout_split

        start_lines(model, signal, holdout_split(signal.samples, train_config.holdout, train_config.seed)[0])
    job = FitJob(signal, signal_type, source, model, train_config, loss, device, Path(output), overwrite, host,
                  spectrum_every, prune, model_options)
    if every is not None:
        job.checkpointing = checkpointing(job, every, checkpoint_every, load_options)
    return job


@dataclass
class FitJob:
    """A fit ready to train (fresh or resumed): what :meth:`run` trains and writes."""

    signal: Signal
    signal_type: SignalType
    source: dict[str, Any]
    model: torch.nn.Module
    train_config: TrainConfig
    loss: Any
    device: torch.device
    output: Path
    overwrite: bool
    host: Host
    spectrum_every: int | None = None
    prune: PruneOptions | None = None
    model_options: ModelOptions | None = None
    start: Any = None
    checkpointing: Any = None

    def run(self) -> FitSummary:
        """Train, write the run directory, and then remove the checkpoint (unless Ctrl-C stopped training)."""
        host, signal, signal_type, train_config, prune = self.host, self.signal, self.signal_type, self.train_config, \
            self.prune
        sampler = host.sampler(train_config.sampler)
        recorder = _spectrum_recorder(signal, self.spectrum_every)
        if recorder is not None:
            host.pm.register(recorder, name="inrkit-spectrum-recorder")
        started = time.perf_counter()
        path_taken = None
        try:
            if prune is not None and prune.active:
                from inrkit.prune import pruned_fit

                def grow(params: int) -> torch.nn.Module:
                    bigger = replace(self.model_options, params=params, width=None, input_frequencies=None)
                    return build_model(plan_model(signal, signal_type, bigger), signal)

                pruned = pruned_fit(self.model, signal, train_config, self.loss.fn, sampler.make, prune, host.pm.hook,
                                    self.device, grow)
                result, path_taken = pruned.result, pruned.path
            else:
                result = fit(self.model, signal, train_config, self.loss.fn, sampler.make, hook=host.pm.hook,
                             device=self.device, start=self.start, checkpoint=self.checkpointing)
        finally:
            if recorder is not None:
                host.pm.unregister(recorder)
        fitted = FinishedFit(signal, signal_type, self.source, result, self.loss.name, train_config, self.device,
                             started, recorder, path_taken, {"prune": asdict(prune)} if prune and prune.active else {})
        summary = write_run(self.output, fitted, host, self.overwrite)
        if result.stop_reason != "interrupted":
            from inrkit.resume import remove_checkpoint

            remove_checkpoint(self.output)
        return summary


def _batching(train_config: TrainConfig, signal: Signal, signal_type: SignalType, model_config) -> TrainConfig:
    """The signal type's sampler and batch size unless the user chose; mini-batches for very large signals."""
    if train_config.sampler is None:
        defaults = signal_type.defaults
        train_config = replace(train_config, sampler=defaults.sampler,
                               batch_size=train_config.batch_size or defaults.batch_size)
    if train_config.batch_size is None and signal.samples > FULL_BATCH_LIMIT:
        sampler_choice = "stratified" if train_config.sampler == "full" else train_config.sampler
        batch = rows_for(model_config, most=LARGE_SIGNAL_BATCH, least=4096)
        train_config = replace(train_config, batch_size=batch, sampler=sampler_choice)
    return train_config


def _spectrum_recorder(signal: Signal, every: int | None):
    if every is None:
        return None
    from inrkit.spectrum_report import SpectrumRecorder

    return SpectrumRecorder(signal, every)


def prune_run(
    run_dir: Path,
    output: Path,
    *,
    target_params: int,
    train_config: TrainConfig | None = None,
    source: Path | None = None,
    overwrite: bool = False,
    host: Host | None = None,
    options: PruneOptions | None = None,
    strict: bool = False,
) -> FitSummary:
    """Prune a fitted run to at most ``target_params`` stored numbers, fine-tuning between cuts.

    The signal is reloaded from the path the run recorded (or ``source``);
    the loss and sampler are the run's. Writes a new run directory at
    ``output`` with the path taken in ``metrics.json``. A source whose
    SHA-256 differs from the recorded one is a warning, or with ``strict``
    an error (see :func:`reload_source`).
    """
    from inrkit.config import PRUNE_STEPS
    from inrkit.prune import pruned_fit

    host = host or get_host()
    train_config = train_config or TrainConfig(steps=PRUNE_STEPS)
    check_new_run_dir(output, overwrite)
    probe_writable(output)
    run = load_run(run_dir)
    signal, signal_type, facts = reload_source(run, source, host, strict)
    _check_exporter(host, signal_type)
    before = stored_parameter_count(run.model)
    if target_params >= before:
        raise ConfigError(f"--target-params {target_params} is not below the model's {before} stored numbers; "
                          "choose a smaller target")
    train_config = _as_trained(train_config, run).for_model(run.model_config, signal_type.defaults.lr)
    loss = host.loss(run.config.get("loss") or signal_type.defaults.loss)
    sampler = host.sampler(train_config.sampler)
    device = resolve_device(train_config.device)
    options = replace(options or PruneOptions(), target_params=target_params)
    started = time.perf_counter()
    model = run.model.to(device).train()
    pruned = pruned_fit(model, signal, train_config, loss.fn, sampler.make, options, host.pm.hook, device,
                        pretrained=True)
    extra = {"prune": asdict(options), "pruned_from": {"run": str(Path(run_dir).resolve()), "parameters": before}}
    fitted = FinishedFit(signal, signal_type, facts, pruned.result, loss.name, train_config, device, started, None,
                         pruned.path, extra)
    return write_run(output, fitted, host, overwrite)


def _as_trained(train_config: TrainConfig, run: Run) -> TrainConfig:
    """The run's sampler, batch size, hold-out, loss weight and seed: the hold-out split must be the one the model never saw."""
    saved = run.config.get("train", {})
    return replace(train_config, sampler=saved.get("sampler") or "full", batch_size=saved.get("batch_size"),
                   holdout=saved.get("holdout", 0.0), loss_weight=saved.get("loss_weight", 1.0),
                   seed=saved.get("seed", train_config.seed))


def _check_exporter(host: Host, signal_type: SignalType) -> None:
    """Resolve the run's reconstruction exporter now, so that a missing one fails before training."""
    if signal_type.exporter:
        host.exporter(signal_type.name, signal_type.exporter)


def spectrum_of_run(run_dir: Path, picture: Path, numbers: Path | None, *, source: Path | None = None,
                    max_order: int = 2, tol: float = 1e-4, host: Host | None = None,
                    strict: bool = False) -> dict[str, Any]:
    """:func:`~inrkit.runwriter.write_spectrum` for a saved run; the signal is reloaded (:func:`reload_source`)."""
    host = host or get_host()
    run = load_run(run_dir)
    signal, signal_type, _ = reload_source(run, source, host, strict)
    if signal.grid_shape is None:
        raise ConfigError(f"{signal_type.name} signals are not gridded; spectrum pictures need a grid")
    return write_spectrum(run.model, signal, run.model_config, picture, numbers, max_order, tol)


def run_signal_type(run_dir: Path) -> str:
    """The name of the signal type a run directory holds (for commands that serve one signal type)."""
    run = load_run(run_dir)
    kind = run.signal.get("signal_type") or run.signal.get("kind")
    if not kind:
        raise ConfigError(f"{run_dir}/config.json does not say which signal type it holds")
    return kind


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
    *,
    options: dict[str, Any] | None = None,
    exporter_name: str | None = None,
    host: Host | None = None,
    device: str = "auto",
    resolution: list[int] | None = None,
) -> dict[str, Any]:
    """Re-render a saved model through an exporter chosen by name or by ``output``'s extension.

    ``options`` (name -> text or value) are checked against the exporter's
    declared :class:`~inrkit.options.Option` s; an exporter that declares
    none (written for hook version 1.0) still gets ``sample_rate`` (the
    deprecated ``--sample-rate``) as it is, and any other option is an error. ``resolution``
    is the core's own option (samples per axis). Returns what the exporter
    returns (a dict of facts about the file, e.g. a mesh's vertex count), or
    an empty dict.
    """
    host = host or get_host()
    run = load_run(run_dir)
    kind = run_signal_type(run_dir)
    _refuse_overwriting_inputs(run, Path(output))
    exporter = host.exporter(kind, exporter_name, None if exporter_name else Path(output))
    given = dict(options or {})
    legacy = {key: given.pop(key) for key in _LEGACY_EXPORT_OPTIONS if key in given and not exporter.options}
    given = {**parse_options(exporter.options, given, f"exporter {exporter.name!r}"), **legacy}
    if resolution is not None:
        given["resolution"] = list(resolution)
    model = run.model.to(resolve_device(device))
    request = ExportRequest(
        evaluate=lambda coords: evaluate_reporting(model, coords, f"rendering {Path(output).name}"),
        geometry=run.signal,
        metadata=run.signal.get("metadata", {}),
        path=Path(output),
        options=given,
    )
    return exporter.export(request) or {}


__all__ = ["FULL_BATCH_LIMIT", "FitJob", "FitSummary", "ModelOptions", "default_params", "export_run",
           "fit_file", "load_signal", "load_with", "plan_model", "prepare_fit", "prune_path_figure", "prune_run",
           "reload_source", "run_signal_type", "source_facts", "spectrum_of_run", "write_spectrum"]
