"""Many signals, one command: find them, fit what is not finished, and keep a summary table.

:func:`discover` turns inputs (files, folders searched recursively for the
extensions the installed signal types claim, manifests) into
:class:`Entry` s, one per signal, each with its run directory under the
output folder. :func:`is_finished` says whether a run directory is complete
(a run directory with its model and metrics, not an interrupted fit);
such signals are skipped, so running the same command again continues a
batch. :func:`fit_entries` fits the others on this machine: signals whose
prepared fits share a :func:`inrkit.batched.batch_key` train together in
groups (:func:`inrkit.batched.train_batched`), the rest alone; a signal that
fails gets its one-line error and the others go on. :class:`Summary` writes
``summary.csv`` and ``summary.json`` (atomically) after every signal.
Executors on other machines: :mod:`inrkit.executors`.
"""

from __future__ import annotations

import concurrent.futures
import csv
import io
import json
import math
import os
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from inrkit.atomic import atomic_output, write_json
from inrkit.checkpoint import METRICS_FILE, MODEL_FILE, is_run_dir
from inrkit.config import ModelOptions, TrainConfig
from inrkit.errors import ConfigError, InrkitError

#: Inputs read as manifests: JSON lines always; CSV when its header names a ``path`` column.
MANIFEST_SUFFIXES = (".csv", ".jsonl")
#: Seconds between two rewrites of the summary while signals finish (it is always written at the end).
SUMMARY_INTERVAL = 2.0
#: Threads writing a batched group's run directories side by side (measuring, pictures, files; at most one per core).
WRITE_THREADS = 8


@dataclass(frozen=True)
class FitSettings:
    """The keyword arguments of :func:`inrkit.pipeline.prepare_fit` that every signal of a batch shares."""

    model_options: ModelOptions = field(default_factory=ModelOptions)
    train_config: TrainConfig = field(default_factory=lambda: TrainConfig(steps=2000))
    signal_name: str | None = None
    loss_name: str | None = None
    spectrum_every: int | None = None
    prune: Any = None
    load_options: dict[str, Any] = field(default_factory=dict)


@dataclass
class Entry:
    """One signal of a batch.

    Attributes
    ----------
    signal:
        The signal's path as found or given (what the summary shows).
    path:
        The file to load.
    run_dir:
        Its run directory (under the output folder).
    overrides:
        Options a manifest gives this signal (option name -> value as written), applied over the command's.
    settings:
        How to fit it (set by the caller, per signal when a manifest overrides options).
    error:
        Why it cannot be fitted, when found before fitting (unknown extension, unreadable folder, bad option).
    """

    signal: str
    path: Path
    run_dir: Path
    overrides: dict[str, Any] = field(default_factory=dict)
    settings: FitSettings | None = None
    error: str | None = None


def describe_error(error: BaseException) -> str:
    """One line for a signal that failed: inrkit's own message, an OS error's file and reason, or a bug's type."""
    if isinstance(error, InrkitError):
        return str(error)
    if isinstance(error, OSError):
        where = f" {error.filename}" if getattr(error, "filename", None) else ""
        return f"cannot access{where}: {error.strerror or error}; check the path and its permissions"
    text = " ".join(str(error).split())[:300]
    return f"unexpected {type(error).__name__}: {text} (a bug in inrkit; please report it)"


def is_finished(run_dir: Path) -> bool:
    """True when ``run_dir`` is a complete run directory of a fit that was not interrupted."""
    run_dir = Path(run_dir)
    if not is_run_dir(run_dir) or not (run_dir / MODEL_FILE).is_file():
        return False
    try:
        metrics = json.loads((run_dir / METRICS_FILE).read_text())
    except (OSError, ValueError):
        return False
    return isinstance(metrics, dict) and metrics.get("stop_reason") not in (None, "interrupted")



def discover(inputs: Iterable[Path], out_dir: Path, extensions: Iterable[str]) -> list[Entry]:
    """One entry per signal: files as given, folders searched recursively, manifests read.

    Files in folders are taken when the installed signal types claim their
    extension (case-insensitive); a file given by name is taken whatever its
    extension (the fit says if no signal type reads it). A folder that
    cannot be read, or a path that does not exist, becomes an entry with its
    error. Run directories are ``out_dir/<name>``: the file's stem, or its
    path under a searched folder without the extension; names that collide
    get the extension appended.

    Raises
    ------
    ConfigError
        For a manifest that cannot be used (missing ``path`` column, bad JSON line): a bad argument.
    """
    claimed = {e.lower() for e in extensions}
    found: list[tuple[str, Path, str, dict[str, Any], str | None]] = []  # shown, path, name, overrides, error
    for given in inputs:
        given = Path(given)
        if given.is_dir():
            found.extend(_search(given, claimed))
        elif _is_manifest(given):
            found.extend(_manifest(given))
        elif not given.exists():
            found.append((str(given), given, given.stem, {}, f"input {given} does not exist; check the path"))
        else:
            found.append((str(given), given, given.stem, {}, None))
    return _named(found, Path(out_dir))


def _search(folder: Path, claimed: set[str]):
    def failed(error: OSError) -> None:
        where = error.filename or folder
        problems.append((str(where), Path(where), Path(where).name, {},
                         f"cannot read folder {where}: {error.strerror or error}; check its permissions"))

    problems: list = []
    files = []
    for root, folders, names in os.walk(folder, onerror=failed, followlinks=False):
        folders.sort()
        for name in sorted(names):
            path = Path(root) / name
            if path.suffix.lower() in claimed and not name.startswith("."):
                files.append(path)
    found = [(str(p), p, str(p.relative_to(folder).with_suffix("")), {}, None) for p in files]
    return found + problems


def _is_manifest(path: Path) -> bool:
    suffix = path.suffix.lower()
    if suffix == ".jsonl":
        return True
    if suffix != ".csv" or not path.is_file():
        return False
    try:
        with open(path, newline="", encoding="utf-8") as handle:
            header = next(csv.reader([handle.readline()]), [])
    except (OSError, UnicodeDecodeError):
        return False
    return "path" in [h.strip() for h in header]


def _manifest(path: Path):
    """``(shown, path, name, overrides, error)`` per row of a CSV or JSON-lines manifest."""
    rows: list[dict[str, Any]] = []
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError(f"cannot read manifest {path}: {getattr(error, 'strerror', None) or error}; "
                          "check the path") from None
    if path.suffix.lower() == ".jsonl":
        for number, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except ValueError:
                row = None
            if not isinstance(row, dict):
                raise ConfigError(f"manifest {path} line {number} is not a JSON object; write one object per line "
                                  'like {"path": "a.png", "params": 3000}')
            rows.append(row)
    else:
        rows = [{k.strip(): v for k, v in row.items() if k is not None and v not in (None, "")}
                for row in csv.DictReader(io.StringIO(text))]
    found = []
    for number, row in enumerate(rows, 1):
        given = row.pop("path", None)
        if not isinstance(given, str) or not given.strip():
            raise ConfigError(f"manifest {path} row {number} has no path; every row needs the signal's path "
                              "(relative to the manifest's folder or absolute)")
        target = Path(given.strip())
        target = target if target.is_absolute() else path.parent / target
        name = str(row.pop("name", "") or target.stem)
        error = None if target.exists() else f"input {target} (manifest {path.name} row {number}) does not exist"
        found.append((str(target), target, name, row, error))
    return found


def _named(found, out_dir: Path) -> list[Entry]:
    counts: dict[str, int] = {}
    for _, path, name, _, _ in found:
        counts[name] = counts.get(name, 0) + 1
    entries, seen = [], set()
    for shown, path, name, overrides, error in found:
        if counts[name] > 1 and path.suffix:
            name = f"{name}-{path.suffix.lstrip('.').lower()}"
        key = (str(path.resolve()) if path.exists() else shown, name)
        if key in seen:
            continue
        seen.add(key)
        entries.append(Entry(shown, path, out_dir / name, dict(overrides), error=error))
    return entries



def record_of(entry: Entry, status: str, error: str | None = None, fitted: str = "now",
              batch: int | None = None) -> dict[str, Any]:
    """A summary row; for a finished signal, its numbers from the run directory's ``metrics.json``."""
    row: dict[str, Any] = {"signal": entry.signal, "status": status, "run_dir": str(entry.run_dir), "fitted": fitted,
                           "parameters": None, "steps": None, "seconds": None, "stop_reason": None, "batch": batch,
                           "error": error or "", "metrics": {}}
    if status == "done":
        try:
            metrics = json.loads((Path(entry.run_dir) / METRICS_FILE).read_text())
        except (OSError, ValueError):
            metrics = {}
        final = metrics.get("final", {}) if isinstance(metrics, dict) else {}
        row.update(parameters=metrics.get("parameters"), steps=metrics.get("steps"),
                   seconds=metrics.get("train_seconds"), stop_reason=metrics.get("stop_reason"),
                   metrics={k: v for k, v in final.items() if isinstance(v, (int, float)) and not isinstance(v, bool)})
    return row


class Summary:
    """The batch's table: one row per entry, rewritten atomically as ``summary.csv`` and ``summary.json``."""

    def __init__(self, out_dir: Path, entries: list[Entry], clock: Callable[[], float] = time.monotonic):
        self.out_dir = Path(out_dir)
        self.rows = {e.signal + "\0" + str(e.run_dir): record_of(e, "pending", fitted="") for e in entries}
        self.clock = clock
        self._written = -math.inf

    def set(self, entry: Entry, row: dict[str, Any]) -> None:
        self.rows[entry.signal + "\0" + str(entry.run_dir)] = row
        if self.clock() - self._written >= SUMMARY_INTERVAL:
            self.write()

    def counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for row in self.rows.values():
            counts[row["status"]] = counts.get(row["status"], 0) + 1
        return counts

    def write(self) -> None:
        rows = list(self.rows.values())
        self._written = self.clock()
        write_json(self.out_dir / "summary.json", {"counts": self.counts(), "signals": rows})
        names = sorted({name for row in rows for name in row["metrics"]})
        columns = ["signal", "status", "run_dir", "fitted", "parameters", "steps", "seconds", "stop_reason", "batch"]
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(columns + names + ["error"])
        for row in rows:
            writer.writerow([_cell(row[c]) for c in columns] + [_cell(row["metrics"].get(n)) for n in names]
                            + [row["error"]])
        with atomic_output(self.out_dir / "summary.csv") as temporary:
            temporary.write_text(buffer.getvalue(), encoding="utf-8")


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)



@dataclass
class Progress:
    """What :func:`fit_entries` tells its caller: ``kind`` is ``group`` (a group starts training: ``entries``),
    ``step`` (``fraction``, ``step`` of the group training now) or ``row`` (``entry`` finished, ``row``)."""

    kind: str
    entries: list[Entry] = field(default_factory=list)
    entry: Entry | None = None
    row: dict[str, Any] | None = None
    fraction: float = 0.0
    step: int = 0


def fit_entries(entries: list[Entry], host: Any, overwrite: bool = False, group_size: int | None = None,
                notify: Callable[[Progress], None] = lambda event: None) -> None:
    """Fit every entry on this machine (skip none: callers drop the finished ones first); results via ``notify``.

    Signals are prepared one by one; those that can train together gather
    in groups of at most ``group_size`` (default:
    :func:`inrkit.batched.group_limit`), trained when full and at the end.
    A signal whose run directory holds an interrupted fit is fitted again
    over it. Ctrl-C (KeyboardInterrupt) stops at once and propagates; runs
    written before stay.
    """
    from inrkit.batched import batch_key, group_limit
    from inrkit.pipeline import prepare_fit

    waiting: dict[tuple, list[tuple[Entry, Any]]] = {}
    for entry in entries:
        if entry.error:
            notify(Progress("row", entry=entry, row=record_of(entry, "failed", entry.error)))
            continue
        settings = entry.settings or FitSettings()
        try:
            replace_old = overwrite or (is_run_dir(entry.run_dir) and not is_finished(entry.run_dir))
            job = prepare_fit(entry.path, entry.run_dir, model_options=settings.model_options,
                              train_config=settings.train_config, signal_name=settings.signal_name,
                              loss_name=settings.loss_name, overwrite=replace_old, host=host,
                              spectrum_every=settings.spectrum_every, prune=settings.prune,
                              load_options=dict(settings.load_options))
            key = batch_key(job)
        except Exception as error:  # noqa: BLE001 - one signal's failure is recorded; the batch goes on
            notify(Progress("row", entry=entry, row=record_of(entry, "failed", describe_error(error))))
            continue
        if key is None:
            _alone([(entry, job)], notify)
            continue
        group = waiting.setdefault(key, [])
        group.append((entry, job))
        if len(group) >= (group_size or group_limit(job)):
            _train_group(waiting.pop(key), notify)
    for key in sorted(waiting, key=lambda k: -len(waiting[k])):
        _train_group(waiting[key], notify)


def _alone(members: list[tuple[Entry, Any]], notify: Callable[[Progress], None]) -> None:
    """Fit each prepared job by itself (exactly ``inrkit fit``)."""
    for entry, job in members:
        notify(Progress("group", entries=[entry]))
        try:
            summary = job.run()
        except Exception as error:  # noqa: BLE001
            notify(Progress("row", entry=entry, row=record_of(entry, "failed", describe_error(error))))
            continue
        if summary.interrupted:
            notify(Progress("row", entry=entry, row=record_of(entry, "interrupted", "stopped by Ctrl-C")))
            raise KeyboardInterrupt
        notify(Progress("row", entry=entry, row=record_of(entry, "done", batch=1)))


def _train_group(members: list[tuple[Entry, Any]], notify: Callable[[Progress], None]) -> None:
    from inrkit.batched import NotBatchable, train_batched

    if len(members) == 1:
        _alone(members, notify)
        return
    notify(Progress("group", entries=[entry for entry, _ in members]))
    started = time.perf_counter()
    try:
        results = train_batched([job for _, job in members],
                                lambda fraction, step, seconds: notify(Progress("step", fraction=fraction, step=step)))
    except NotBatchable:
        _alone(members, notify)
        return
    except Exception as error:  # noqa: BLE001 - the whole group failed the same way
        for entry, _ in members:
            notify(Progress("row", entry=entry, row=record_of(entry, "failed", describe_error(error))))
        return
    again = [(entry, job) for (entry, job), result in zip(members, results) if result.stop_reason == "diverged"]
    written = [(entry, job, result) for (entry, job), result in zip(members, results)
               if result.stop_reason != "diverged"]
    with concurrent.futures.ThreadPoolExecutor(min(WRITE_THREADS, os.cpu_count() or 1)) as pool:
        futures = {pool.submit(_write, job, result, started): entry for entry, job, result in written}
        for future in concurrent.futures.as_completed(futures):
            entry = futures[future]
            error = future.exception()
            row = record_of(entry, "failed", describe_error(error)) if error else \
                record_of(entry, "done", batch=len(members))
            notify(Progress("row", entry=entry, row=row))
    _alone(again, notify)


def _write(job: Any, result: Any, started: float) -> None:
    """Write one batched model's run directory as :meth:`inrkit.pipeline.FitJob.run` writes a single fit's."""
    from inrkit.runwriter import FinishedFit, write_run

    fitted = FinishedFit(job.signal, job.signal_type, job.source, result, job.loss.name, job.train_config, job.device,
                         started)
    write_run(job.output, fitted, job.host, job.overwrite)


def with_settings(entries: list[Entry], settings_for: Callable[[Entry], FitSettings]) -> list[Entry]:
    """Each entry with its settings; a signal whose manifest options are invalid gets the one-line error."""
    out = []
    for entry in entries:
        if entry.error:
            out.append(entry)
            continue
        try:
            out.append(replace(entry, settings=settings_for(entry)))
        except (InrkitError, ValueError, TypeError) as error:
            out.append(replace(entry, error=describe_error(error) if isinstance(error, InrkitError)
                               else f"bad option in the manifest: {error}"))
    return out


__all__ = ["Entry", "FitSettings", "Progress", "Summary", "describe_error", "discover", "fit_entries",
           "is_finished", "record_of", "with_settings"]
