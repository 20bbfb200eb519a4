"""``inrkit fit-many INPUTS... -o OUT_DIR``: fit many signals, batched on one device or as Ray tasks on a cluster.

The command takes every option of ``inrkit fit`` (the same declarations,
read from ``fit``'s signature, so they never drift apart) except those that
name one input or one run; they apply to every signal, and a manifest's
columns override them per signal.
"""

from __future__ import annotations

import inspect
import math
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Annotated, Any

import typer
from inrkit.hookspecs import hookimpl

#: ``inrkit fit`` options that make no sense for a batch (one input, one run, one checkpoint).
_NOT_FOR_MANY = {"ctx", "input", "output", "resume", "checkpoint_every"}
#: Options a manifest may not set per signal (they are the batch's, not a signal's).
_BATCH_ONLY = {"quiet", "overwrite", "device"}
#: Seconds between plain progress lines when standard error is not a terminal.
PLAIN_INTERVAL = 5.0

EXECUTORS = ("local", "ray")


def _own_parameters() -> list[inspect.Parameter]:
    keyword = inspect.Parameter.KEYWORD_ONLY

    def option(name: str, annotation: Any, default: Any) -> inspect.Parameter:
        return inspect.Parameter(name, keyword, annotation=annotation, default=default)

    return [
        inspect.Parameter("inputs", keyword, annotation=Annotated[list[Path], typer.Argument(metavar="INPUTS...", 
            help="Signal files, folders (searched recursively for the extensions installed signal types read) and "
                 "manifests (.csv with a path column, or .jsonl: path plus per-signal fit options).")]),
        option("output", Annotated[Path, typer.Option("--output", "-o", help="Folder of the run directories and "
               "summary.csv / summary.json (run again to fit only what is not finished).")], ...),
        option("executor", Annotated[str, typer.Option(help="local: batched on this machine's device; ray: groups "
               "of signals as Ray tasks (pip install 'inrkit[ray]').")], "local"),
        option("address", Annotated[str | None, typer.Option(help="Ray cluster: auto (the one running here), "
               "HOST:6379, or ray://HOST:10001; default: start a local one.")], None),
        option("shared_output", Annotated[bool, typer.Option("--shared-output", help="Ray workers read the inputs "
               "and write the run directories themselves (a folder every node sees); default: bytes go through "
               "the driver.")], False),
        option("workers", Annotated[int | None, typer.Option(help="--executor local: processes fitting groups side "
               "by side, one thread each (default: on a CPU, one per core up to 4, which measured faster there; "
               "on a GPU, 1); 1: this process only, batched on the device.")], None),
        option("group_size", Annotated[int | None, typer.Option(help="Most signals trained together in one "
               "batched computation (default: from the device's memory and the model size).")], None),
    ]


def _fit_parameters() -> list[inspect.Parameter]:
    from inrkit.cli import main

    signature = inspect.signature(main.fit, eval_str=True)
    return [p.replace(kind=inspect.Parameter.KEYWORD_ONLY) for name, p in signature.parameters.items()
            if name not in _NOT_FOR_MANY]


def fit_many(**settings: Any) -> None:
    """Fit many signals: one run directory each, plus summary.csv and summary.json in OUT_DIR.

    Finished runs are skipped, so the same command continues a stopped
    batch. A signal that fails is recorded with its error and the others go
    on; the exit status is 1 when any failed, 2 for bad arguments, 130 after
    Ctrl-C. Same-shape signals train together, K models in one batched
    computation; --executor ray sends groups to a Ray cluster.
    """
    from inrkit.cli.main import _Guard

    with _Guard():
        _run(settings)


def _run(settings: dict[str, Any]) -> None:
    from inrkit.cli.main import _fail
    from inrkit.host import get_host
    from inrkit.many import Summary, discover, is_finished, record_of, with_settings

    executor, out_dir = settings["executor"], Path(settings["output"])
    if executor not in EXECUTORS:
        _fail(f"--executor {executor!r} is not one of {', '.join(EXECUTORS)}")
    if settings["address"] is not None and executor != "ray":
        _fail("--address is for --executor ray; add --executor ray, or drop --address")
    if settings["shared_output"] and executor != "ray":
        _fail("--shared-output is for --executor ray; add --executor ray, or drop it")
    if settings["workers"] is not None and not 1 <= settings["workers"] <= 256:
        _fail(f"--workers must be a whole number from 1 to 256, got {settings['workers']}")
    if settings["workers"] is not None and executor != "local":
        _fail("--workers is for --executor local (a Ray cluster has its own workers); drop it")
    if settings["group_size"] is not None and settings["group_size"] < 1:
        _fail(f"--group-size must be a whole number of at least 1, got {settings['group_size']}")
    if out_dir.exists() and not out_dir.is_dir():
        _fail(f"-o {out_dir} exists and is not a folder; choose another -o")
    for given in settings["inputs"]:
        if not Path(given).exists():
            _fail(f"input {given} does not exist; check the path (files, folders and manifests are accepted)")
    host = get_host()
    base = _settings(settings, host)  # bad options are bad arguments: one line, exit 2, before anything runs
    extensions = {ext for signal_type in host.registry["signal"].values() for ext in signal_type.extensions}
    entries = discover(settings["inputs"], out_dir, extensions)
    if not entries:
        _fail(f"no signal files found in {', '.join(map(str, settings['inputs']))} (looked for "
              f"{', '.join(sorted(extensions))}); check the paths")
    _check_columns(entries)
    entries = with_settings(entries, lambda entry: _settings({**settings, **_overrides(entry.overrides)}, host)
                            if entry.overrides else base)
    out_dir.mkdir(parents=True, exist_ok=True)
    summary = Summary(out_dir, entries)
    todo = []
    for entry in entries:
        if not settings["overwrite"] and is_finished(entry.run_dir):
            summary.rows[entry.signal + "\0" + str(entry.run_dir)] = record_of(entry, "done", fitted="before")
        else:
            todo.append(entry)
    display = _Display(len(entries), len(entries) - len(todo), quiet=settings["quiet"])
    summary.write()

    def notify(event) -> None:
        if event.kind == "row":
            summary.set(event.entry, event.row)
            if event.row["status"] == "failed":
                display.failure(event.entry.signal, event.row["error"])
        display.event(event)

    host.pm.register(display, name="inrkit-fit-many-progress")
    try:
        if executor == "ray":
            from inrkit.executors import fit_on_ray

            fit_on_ray(todo, settings["address"], settings["shared_output"], settings["overwrite"], notify)
        elif (workers := _workers(settings["workers"], base, len(todo))) > 1:
            from inrkit.executors import fit_in_pool

            fit_in_pool(todo, workers, settings["overwrite"], settings["group_size"], notify)
        else:
            from inrkit.many import fit_entries

            fit_entries(todo, host, settings["overwrite"], settings["group_size"], notify)
    except KeyboardInterrupt:
        display.close()
        for entry in entries:  # a worker's runs written before the stop count, though its group did not report
            key = entry.signal + "\0" + str(entry.run_dir)
            if summary.rows[key]["status"] in ("pending", "interrupted"):
                summary.rows[key] = record_of(entry, "done") if is_finished(entry.run_dir) else \
                    {**summary.rows[key], "status": "interrupted", "error": "not fitted: stopped by Ctrl-C"}
        summary.write()
        counts = summary.counts()
        typer.echo(f"interrupted: {counts.get('done', 0)} finished runs stay in {out_dir}; run the same command "
                   f"again to fit the other {len(entries) - counts.get('done', 0) - counts.get('failed', 0)}",
                   err=True)
        raise typer.Exit(130) from None
    finally:
        host.pm.unregister(display)
        display.close()
    summary.write()
    counts = summary.counts()
    fitted = sum(1 for row in summary.rows.values() if row["status"] == "done" and row["fitted"] == "now")
    if not settings["quiet"]:
        typer.echo(f"fitted {fitted} signals, {counts.get('done', 0) - fitted} were finished before, "
                   f"{counts.get('failed', 0)} failed: {out_dir / 'summary.csv'}")
    if counts.get("failed", 0):
        raise typer.Exit(1)


#: Most pool workers chosen by default on a CPU.
AUTO_WORKERS = 4


def _workers(given: int | None, base: Any, count: int) -> int:
    """``--workers``, or by default one process per core (up to :data:`AUTO_WORKERS`) on a CPU when there are at
    least two signals per worker: benchmarks/many.py measured two single-threaded workers 2-5x faster than one
    process on the 2-core CPU; on a GPU one process, batched."""
    import os

    if given is not None:
        return given
    from inrkit.train import resolve_device

    if resolve_device(base.train_config.device).type != "cpu":
        return 1
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    workers = min(AUTO_WORKERS, cores)
    return workers if count >= 2 * workers else 1


def _settings(settings: dict[str, Any], host: Any):
    """:class:`~inrkit.many.FitSettings` from ``inrkit fit``'s options, built as ``fit`` builds them."""
    from inrkit.cli import main
    from inrkit.config import FIT_STEPS, TrainConfig
    from inrkit.many import FitSettings

    train_config = TrainConfig.with_budget(
        FIT_STEPS, steps=settings["steps"], max_seconds=settings["max_seconds"], target_psnr=settings["target_psnr"],
        lr=settings["lr"], lr_final=settings["lr_final"], batch_size=settings["batch_size"],
        holdout=settings["holdout"], seed=settings["seed"], device=settings["device"],
        loss_weight=settings["loss_weight"], beta2=settings["beta2"], phase_lr_scale=settings["phase_lr_scale"])
    train_config = replace(train_config, sampler=settings["sampler"])
    if settings["sampler"] is not None:
        host.sampler(settings["sampler"])
    if settings["signal"] is not None:
        host.signal(settings["signal"])
    if settings["loss"] is not None:
        host.loss(settings["loss"])
    from inrkit.train import resolve_device

    resolve_device(settings["device"])
    return FitSettings(model_options=main._model_options(settings), train_config=train_config,
                       signal_name=settings["signal"], loss_name=settings["loss"],
                       spectrum_every=settings["spectrum_every"], prune=main._prune_options(settings),
                       load_options=main._parse_options(settings["option"]))


def _check_columns(entries) -> None:
    """A manifest column that is no ``inrkit fit`` option a signal may set is a bad argument."""
    from inrkit.cli.main import _fail

    allowed = {p.name for p in _fit_parameters()} - _BATCH_ONLY
    for entry in entries:
        for key in entry.overrides:
            if key.replace("-", "_") not in allowed:
                _fail(f"manifest column {key!r} (signal {entry.signal}) is not an option of `inrkit fit` a signal "
                      f"may set; valid: path, name, {', '.join(sorted(a.replace('_', '-') for a in allowed))}")


def _overrides(overrides: dict[str, Any]) -> dict[str, Any]:
    """A manifest row's options, converted to the types ``inrkit fit`` declares (CSV cells are text)."""
    kinds = {p.name: p.annotation for p in _fit_parameters()}
    out = {}
    for key, value in overrides.items():
        name = key.replace("-", "_")
        base = _base_type(kinds[name])
        if name == "option":
            value = value if isinstance(value, list) else [f"{k}={v}" for k, v in value.items()] \
                if isinstance(value, dict) else [p for p in str(value).split(";") if p.strip()]
        elif isinstance(value, str) and base is bool:
            value = value.strip().lower() in ("1", "true", "yes", "on")
        elif isinstance(value, (str, int, float)) and base in (int, float):
            number = float(value)
            if base is int and not number.is_integer():
                raise ValueError(f"{key} must be a whole number, got {value!r}")
            value = int(number) if base is int else number
        elif base is str and not isinstance(value, str):
            value = str(value)
        out[name] = value
    return out


def _base_type(annotation: Any) -> Any:
    """``int`` for ``Annotated[int | None, ...]`` and the like."""
    import typing

    while typing.get_origin(annotation) is Annotated:
        annotation = typing.get_args(annotation)[0]
    arguments = [a for a in typing.get_args(annotation) if a is not type(None)]
    if arguments and typing.get_origin(annotation) is not list:
        return arguments[0]
    return list if typing.get_origin(annotation) is list else annotation


def _clock(seconds: float) -> str:
    if not math.isfinite(seconds) or seconds < 0:
        return "--:--"
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes:02d}:{secs:02d}"


def _bar(fraction: float, width: int = 24) -> str:
    fraction = min(1.0, max(0.0, fraction))
    filled = round(fraction * width)
    return f"[{'#' * filled}{'.' * (width - filled)}] {fraction * 100:3.0f}%"


class _Display:
    """One bar over the signals (done / failed / running, ETA) and, on a terminal, the running group's bar under it.

    Elsewhere (logs, CI) a plain line every :data:`PLAIN_INTERVAL` seconds; ``--quiet`` shows nothing but failures.
    """

    def __init__(self, total: int, before: int, quiet: bool, stream: Any = None, terminal: bool | None = None):
        self.stream = stream or sys.stderr
        self.terminal = self.stream.isatty() if terminal is None else terminal
        self.total, self.before, self.quiet = total, before, quiet
        self.done = self.failed = 0
        self.running: list[str] = []
        self.fraction, self.step, self.detail = 0.0, 0, ""
        self.started = time.monotonic()
        self._last, self._drawn = (-math.inf if self.terminal else time.monotonic()), False

    def lines(self) -> tuple[str, str]:
        finished = self.done + self.failed
        elapsed = time.monotonic() - self.started
        left = self.total - self.before - finished
        rate = (finished + self.fraction * len(self.running)) / elapsed if elapsed > 0 else 0.0
        eta = left / rate if rate > 0 else math.inf
        share = (self.before + finished) / self.total if self.total else 1.0
        top = (f"{_bar(share)}  {self.before + finished}/{self.total} signals  done {self.before + self.done}  "
               f"failed {self.failed}  running {len(self.running)}  {_clock(elapsed)} elapsed  ETA {_clock(eta)}")
        names = ", ".join(Path(n).name for n in self.running[:3]) + (" ..." if len(self.running) > 3 else "")
        under = f"{_bar(self.fraction)}  step {self.step}  {self.detail or 'training'} {names}"
        return top, under

    def event(self, event: Any) -> None:
        if event.kind == "group":
            self.running += [e.signal for e in event.entries if e.signal not in self.running]
            self.fraction, self.step, self.detail = 0.0, 0, f"training {len(self.running)}:"
        elif event.kind == "step":
            self.fraction, self.step = event.fraction, event.step
            if event.fraction >= 1.0:
                self.detail = "writing runs of"
        elif event.kind == "row":
            self.done += event.row["status"] == "done"
            self.failed += event.row["status"] == "failed"
            if event.entry.signal in self.running:
                self.running.remove(event.entry.signal)
        self._maybe_draw()

    @hookimpl
    def inrkit_step_end(self, step: Any) -> None:
        """A signal fitted alone reports its steps through the observer hook."""
        self.fraction, self.step = float(step.progress), step.step
        self._maybe_draw()

    def failure(self, signal: str, message: str) -> None:
        self._clear()
        self.stream.write(f"error: {signal}: {message}\n")
        self.stream.flush()

    def _maybe_draw(self) -> None:
        now = time.monotonic()
        interval = 0.1 if self.terminal else PLAIN_INTERVAL
        if self.quiet or now - self._last < interval:
            return
        self._last = now
        top, under = self.lines()
        if self.terminal:
            self._clear()
            self.stream.write(f"{top}\n{under}\x1b[K")
            self._drawn = True
        else:
            self.stream.write(f"{top}  |  {under}\n")
        self.stream.flush()

    def _clear(self) -> None:
        if self.terminal and self._drawn:
            self.stream.write("\r\x1b[K\x1b[1A\r\x1b[K")
            self._drawn = False

    def close(self) -> None:
        self._clear()
        self.stream.flush()


def register(app: typer.Typer) -> None:
    """Add ``fit-many`` to the app, with ``inrkit fit``'s options."""
    parameters = _own_parameters() + _fit_parameters()
    fit_many.__signature__ = inspect.Signature(parameters)
    fit_many.__annotations__ = {}
    app.command("fit-many")(fit_many)


__all__ = ["EXECUTORS", "fit_many", "register"]
