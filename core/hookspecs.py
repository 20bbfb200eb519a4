"""Hook specifications of inrkit (pluggy project name ``inrkit``).

Two phases:

* **Registration** hooks run once, when the plugin manager loads. Each
  receives a ``register`` callable and calls it with small frozen dataclasses
  from :mod:`inrkit.plugin`. A name registered twice is an error that names
  both plugins.
* **Observer** hooks run during a fit. They receive frozen events
  (:class:`~inrkit.plugin.FitStarted`, :class:`~inrkit.plugin.StepEnded`,
  :class:`~inrkit.plugin.FitEnded`, and :class:`~inrkit.plugin.PhaseProgress`
  for long phases other than training), return nothing and must not change
  the model; they are for progress displays, logging, checkpoints.

Every hook here is documented with its exact signature in the README's
"Writing a plugin" section; a test fails when they drift apart.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    import typer

    from inrkit.events import FitEnded, FitStarted, PhaseProgress, StepEnded
    from inrkit.plugin_types import ExporterType, LossType, SamplerType, SignalType
    from inrkit.signal import Signal

#: Version of the hook specifications. A plugin may declare the version it was
#: written against as ``INRKIT_HOOK_VERSION``; a different major version is
#: refused with a clear error, a different minor version works (1.1 added the
#: typed observer events and ``inrkit_phase_progress``; 1.0 plugins that read
#: events as dicts get a DeprecationWarning).
HOOK_VERSION = "1.1"

hookspec = pluggy.HookspecMarker("inrkit")
#: Marks a plugin's hook implementations.
hookimpl = pluggy.HookimplMarker("inrkit")


@hookspec
def inrkit_register_signals(register: Callable[[SignalType], None]) -> None:
    """Register signal types.

    Parameters
    ----------
    register:
        Call ``register(SignalType(...))`` once per signal type.

    Example::

        @hookimpl
        def inrkit_register_signals(register):
            register(SignalType(name="csv", load=load_csv, extensions=(".csv",),
                                description="time series from a CSV column"))
    """


@hookspec
def inrkit_register_samplers(register: Callable[[SamplerType], None]) -> None:
    """Register batch samplers.

    Parameters
    ----------
    register:
        Call ``register(SamplerType(name, make))``; ``make(SamplerContext)``
        returns ``sample(step) -> Batch``.

    Example::

        def every_other(context):
            index = context.train_index[::2]
            coords = context.signal.coordinates().to(context.device)[index]
            return lambda step: Batch(coords, context.signal.values[index], index)

        @hookimpl
        def inrkit_register_samplers(register):
            register(SamplerType(name="every-other", make=every_other))
    """


@hookspec
def inrkit_register_losses(register: Callable[[LossType], None]) -> None:
    """Register training losses.

    Parameters
    ----------
    register:
        Call ``register(LossType(name, fn))``; ``fn(FitContext, Batch)``
        returns a scalar tensor to minimise.

    Example::

        def l1_loss(context, batch):
            return (context.predict(batch) - batch.target).abs().mean()

        @hookimpl
        def inrkit_register_losses(register):
            register(LossType(name="l1", fn=l1_loss, description="mean absolute error"))
    """


@hookspec
def inrkit_register_exporters(register: Callable[[ExporterType], None]) -> None:
    """Register exporters that turn a fitted model back into files.

    Parameters
    ----------
    register:
        Call ``register(ExporterType(name, signal, extensions, export))``;
        ``export(ExportRequest)`` writes ``request.path`` atomically.

    Example::

        def write_csv(request):
            values = request.evaluate(grid_coordinates(request.geometry["grid_shape"],
                                                       request.geometry["extent"]))
            with atomic_output(request.path) as temporary:
                numpy.savetxt(temporary, values.numpy(), delimiter=",")
            return {"rows": values.shape[0]}

        @hookimpl
        def inrkit_register_exporters(register):
            register(ExporterType(name="csv", signal="csv", extensions=(".csv",), export=write_csv))
    """


@hookspec
def inrkit_register_commands(app: typer.Typer) -> None:
    """Add sub-commands to the ``inrkit`` command line.

    Parameters
    ----------
    app:
        The ``typer.Typer`` application; use ``@app.command()``. Commands
        raise :class:`inrkit.errors.InrkitError` for bad input; the CLI turns
        it into a one-line message and exit status 2.

    Example::

        @hookimpl
        def inrkit_register_commands(app):
            @app.command("csv-info")
            def csv_info(path: Path) -> None:
                \"\"\"Show how many rows a CSV signal has.\"\"\"
                typer.echo(f"{load_csv(path).samples} rows")
    """


@hookspec
def inrkit_fit_start(info: FitStarted) -> None:
    """Called once before the first training step.

    Parameters
    ----------
    info:
        A :class:`~inrkit.plugin.FitStarted`: ``signal``, ``model``,
        ``config`` (read-only :class:`~inrkit.plugin.TrainSettings`),
        ``device``, ``parameters``.

    Example::

        @hookimpl
        def inrkit_fit_start(info):
            log.info("fitting %d parameters on %s", info.parameters, info.device)
    """


@hookspec
def inrkit_step_end(step: StepEnded) -> None:
    """Called after every training step that records metrics.

    Parameters
    ----------
    step:
        A :class:`~inrkit.plugin.StepEnded`: ``step``, ``seconds``, ``loss``,
        ``psnr``, ``lr``, ``progress`` in [0, 1], ``model``, ``phase``.

    Example::

        @hookimpl
        def inrkit_step_end(step):
            if step.step % 100 == 0:
                log.info("step %d: %.2f dB", step.step, step.psnr)
    """


@hookspec
def inrkit_fit_end(result: FitEnded) -> None:
    """Called once after training stopped.

    Parameters
    ----------
    result:
        A :class:`~inrkit.plugin.FitEnded`: ``model``, ``curve``, ``steps``,
        ``seconds``, ``stop_reason``.

    Example::

        @hookimpl
        def inrkit_fit_end(result):
            log.info("stopped by %s after %d steps", result.stop_reason, result.steps)
    """


@hookspec
def inrkit_phase_progress(progress: PhaseProgress) -> None:
    """Called while a long phase other than training runs, at most about ten times a second.

    Phases: building an SDF sample bank, evaluating a grid and extracting a
    mesh, writing a run directory, a spectrum report, large exports. Plugins
    report their own with :func:`~inrkit.plugin.report_progress`.

    Parameters
    ----------
    progress:
        A :class:`~inrkit.plugin.PhaseProgress`: ``phase``, ``done``,
        ``total`` (None: unknown), ``unit``, ``detail``.

    Example::

        @hookimpl
        def inrkit_phase_progress(progress):
            if progress.total:
                log.info("%s: %.0f%%", progress.phase, 100 * progress.done / progress.total)
    """


@hookspec
def inrkit_rate_distortion(signal: Signal, signal_type: str, reconstructions: list) -> list | None:
    """Measure packed reconstructions and the codecs a user would otherwise pick, for ``inrkit rd``.

    Optional (added in hook version 1.1, compatible): a plugin answers for its own signal types and
    returns None for others. Every row is a plain dict ``{"method", "setting", "bytes", "rate",
    "rate_unit", "metrics"}``; ``metrics`` maps names to numbers, the first one is plotted.

    Parameters
    ----------
    signal:
        The :class:`~inrkit.plugin.Signal` that was fitted.
    signal_type:
        Its signal type's name.
    reconstructions:
        ``(setting, file_bytes, values)`` per packed ``.inr`` file: ``values`` is the packed model
        evaluated at the signal's samples, ``[N, channels]``. Return one ``"method": "inrkit"`` row
        for each, measured the way the codecs' rows are.

    Example::

        @hookimpl
        def inrkit_rate_distortion(signal, signal_type, reconstructions):
            if signal_type != "csv":
                return None
            rows = [{"method": "inrkit", "setting": s, "bytes": n, "rate": 8 * n / signal.samples,
                     "rate_unit": "bits per sample", "metrics": {"psnr": psnr(v, signal.values, 2.0)}}
                    for s, n, v in reconstructions]
            return rows + my_codec_rows(signal)
    """
