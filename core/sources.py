"""Where a signal comes from: loading it (with declared options), recording its provenance, loading it again.

:func:`load_signal` picks the signal type (by name or extension) and loads a
file through :func:`load_with`; :func:`source_facts` records the path, its
SHA-256 and what the loader read, before training; :func:`reload_source`
loads the signal a saved run was fitted to again, checking that it is the
same file (hash) and the same kind of signal (type, shape, channels).
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

from inrkit.atomic import file_sha256
from inrkit.checkpoint import Run
from inrkit.errors import InputError, InrkitWarning
from inrkit.host import Host, get_host
from inrkit.options import parse_options
from inrkit.plugin_types import SignalType
from inrkit.signal import Signal


def load_signal(path: Path, signal_name: str | None, host: Host | None = None,
                options: dict[str, Any] | None = None) -> tuple[Signal, SignalType]:
    """Load a file with the named signal type, or the one its extension selects.

    ``options`` are the signal type's loader options (``--option NAME=VALUE``), checked against its declaration.
    """
    host = host or get_host()
    path = Path(path)
    signal_type = host.signal(signal_name) if signal_name else host.signal_for_path(path)
    if not path.exists():
        raise InputError(f"input file {path} does not exist; check the path")
    return load_with(signal_type, path, options), signal_type


def load_with(signal_type: SignalType, path: Path, options: dict[str, Any] | None = None) -> Signal:
    """``signal_type.load(path, **options)``, checked; the signal's ``kind`` is the type's name."""
    values = parse_options(signal_type.options, options or {}, f"signal {signal_type.name!r}")
    signal = signal_type.load(path, **values) if signal_type.options else signal_type.load(path)
    if not isinstance(signal, Signal):
        raise InputError(f"the {signal_type.name!r} loader returned {type(signal).__name__}, not a Signal")
    signal.kind = signal_type.name
    return signal


def source_facts(path: Path, signal: Signal, options: dict[str, Any] | None = None) -> dict[str, Any]:
    """Where a signal came from, for ``config.json``: its resolved path, its SHA-256 (for a regular file), the
    files its loader says it read (:attr:`Signal.provenance`, e.g. every frame of a folder) and the loader options.

    Computed before training, so that an input that cannot be read is found
    at once rather than after the training budget.
    """
    path = Path(path)
    facts: dict[str, Any] = {"source": str(path.resolve()),
                             "source_sha256": file_sha256(path) if path.is_file() else None}
    if signal.provenance:
        facts["provenance"] = dict(signal.provenance)
    if options:
        facts["load_options"] = dict(options)
    return facts


def _with_seed(host: Host, path: Path, signal_name: str | None, options: dict[str, Any] | None,
               seed: int) -> dict[str, Any]:
    """A loader that declares an option called ``seed`` (a sampled bank, say) gets the fit's ``--seed`` unless given."""
    signal_type = host.signal(signal_name) if signal_name else host.signal_for_path(Path(path))
    options = dict(options or {})
    if any(option.name == "seed" for option in signal_type.options) and "seed" not in options:
        options["seed"] = seed
    return options


def reload_source(run: Run, source: Path | None, host: Host,
                  strict: bool = False) -> tuple[Signal, SignalType, dict[str, Any]]:
    """Load the signal a saved run was fitted to again: from ``source``, else the path the run recorded.

    The file's SHA-256 is compared with the recorded one: a mismatch is an
    :class:`~inrkit.errors.InrkitWarning`, or with ``strict`` an
    :class:`~inrkit.errors.InputError`. A signal of another type or shape
    than the run's is always an error. Returns the signal, its type and its
    :func:`source_facts` (the file is hashed once).
    """
    recorded = run.signal.get("source")
    path = Path(source) if source is not None else (Path(recorded) if recorded else None)
    if source is not None and not path.exists():
        raise InputError(f"--input {source} does not exist; pass the file the run was fitted to")
    if path is None:
        what = "a packed model (.inr), which" if run.path.is_file() else "this run, which"
        raise InputError(f"{run.path} is {what} does not record the file of its signal; "
                         "pass the signal it was fitted to with --input FILE")
    if not path.exists():
        raise InputError(f"the signal this run was fitted to ({recorded}) is not there any more; pass it with --input FILE")
    signal_type = host.signal(run.signal.get("signal_type") or run.signal.get("kind"))
    signal = load_with(signal_type, path, run.signal.get("load_options"))
    _check_same_geometry(signal, run, path)
    facts = source_facts(path, signal, run.signal.get("load_options"))
    expected, actual = run.signal.get("source_sha256"), facts["source_sha256"]
    if expected and actual and actual != expected:
        message = (f"{path} is not the file this run was fitted to (SHA-256 {actual[:12]}, the run recorded "
                   f"{expected[:12]})")
        if strict:
            raise InputError(f"{message}; pass the original with --input FILE, or drop --strict")
        warnings.warn(f"{message}; using it as it is now (--strict refuses)", InrkitWarning, stacklevel=2)
    return signal, signal_type, facts


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


__all__ = ["load_signal", "load_with", "reload_source", "source_facts"]
