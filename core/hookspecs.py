"""Hook specifications of inrkit (pluggy project name ``inrkit``).

Two phases:

* **Registration** hooks run once, when the plugin manager loads. Each
  receives a ``register`` callable and calls it with small frozen dataclasses
  from :mod:`inrkit.plugin`. A name registered twice is an error that names
  both plugins.
* **Observer** hooks run during a fit. They return nothing and must not
  change the model; they are for progress displays, logging, checkpoints.

Every hook here is documented with its exact signature in the README's
"Writing a plugin" section; a test fails when they drift apart.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pluggy

hookspec = pluggy.HookspecMarker("inrkit")


@hookspec
def inrkit_register_signals(register: Callable[[Any], None]) -> None:
    """Register signal types.

    Parameters
    ----------
    register:
        Call ``register(SignalType(...))`` once per signal type.

    Example::

        @hookimpl
        def inrkit_register_signals(register):
            register(SignalType(name="csv", load=load_csv, extensions=(".csv",)))
    """


@hookspec
def inrkit_register_samplers(register: Callable[[Any], None]) -> None:
    """Register batch samplers.

    Parameters
    ----------
    register:
        Call ``register(SamplerType(name, make))``; ``make(SamplerContext)``
        returns ``sample(step) -> Batch``.
    """


@hookspec
def inrkit_register_losses(register: Callable[[Any], None]) -> None:
    """Register training losses.

    Parameters
    ----------
    register:
        Call ``register(LossType(name, fn))``; ``fn(FitContext, Batch)``
        returns a scalar tensor to minimise.
    """


@hookspec
def inrkit_register_exporters(register: Callable[[Any], None]) -> None:
    """Register exporters that turn a fitted model back into files.

    Parameters
    ----------
    register:
        Call ``register(ExporterType(name, signal, extensions, export))``;
        ``export(ExportRequest)`` writes ``request.path`` atomically.
    """


@hookspec
def inrkit_register_commands(app: Any) -> None:
    """Add sub-commands to the ``inrkit`` command line.

    Parameters
    ----------
    app:
        The ``typer.Typer`` application; use ``@app.command()``. Commands
        raise :class:`inrkit.errors.InrkitError` for bad input; the CLI turns
        it into a one-line message and exit status 2.
    """


@hookspec
def inrkit_fit_start(info: dict[str, Any]) -> None:
    """Called once before the first training step.

    Parameters
    ----------
    info:
        ``{"signal": Signal, "model": Module, "config": TrainConfig,
        "device": torch.device, "parameters": int}``.
    """


@hookspec
def inrkit_step_end(step: dict[str, Any]) -> None:
    """Called after every training step that records metrics.

    Parameters
    ----------
    step:
        ``{"step": int, "seconds": float, "loss": float, "psnr": float,
        "progress": float in [0, 1], "model": Module}``.
    """


@hookspec
def inrkit_fit_end(result: Any) -> None:
    """Called once after training stopped.

    Parameters
    ----------
    result:
        The :class:`inrkit.train.FitResult` (model, curve, stop reason, seconds).
    """
