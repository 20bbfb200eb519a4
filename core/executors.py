"""Fitting a batch on a Ray cluster (the optional extra ``inrkit[ray]``).

:func:`fit_on_ray` cuts the signals into groups and sends each group as one
Ray task. A task runs :func:`inrkit.many.fit_entries` on its worker (so
same-shape signals train batched there too) and requests one GPU when the
cluster has GPUs, else one CPU. Without a shared disk (the default) the
task receives the input files' bytes, fits into a temporary folder, and
returns every run directory as bytes (a dict of file name to content): the
driver writes them, each atomically (:func:`inrkit.atomic.atomic_directory`)
and only when that signal's run is not finished already, so a signal is
never written twice or half. With ``shared_output`` the workers read the
inputs and write the run directories where they belong themselves (a
folder every node sees), skipping finished ones. A task whose worker dies
is retried (:data:`TASK_RETRIES`); Ray raises the task's error after that,
and its signals are recorded as failed.

Ray is imported only here, only when asked for.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import signal
import sys
import tempfile
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from inrkit.atomic import atomic_directory
from inrkit.errors import ConfigError
from inrkit.many import (
    Entry,
    Progress,
    describe_error,
    fit_entries,
    is_finished,
    record_of,
)

#: Times Ray runs a task again after its worker died.
TASK_RETRIES = 3
#: Groups per task slot of the cluster (more, smaller groups spread the work and the loss of a worker).
GROUPS_PER_SLOT = 2
#: Most signals in one task.
MOST_PER_TASK = 64


def _ray() -> Any:
    try:
        import ray
    except ImportError:
        raise ConfigError("--executor ray needs Ray: pip install 'inrkit[ray]' (on every node of the cluster), "
                          "or use --executor local") from None
    return ray


def connect(address: str | None) -> Any:
    """Join the cluster at ``address`` (``auto``, ``HOST:PORT`` or ``ray://HOST:10001``), or start a local one."""
    ray = _ray()
    _reachable(address)
    if not ray.is_initialized():
        try:
            ray.init(address=address, ignore_reinit_error=True, log_to_driver=False, configure_logging=False)
        except (ConnectionError, RuntimeError, ValueError) as error:
            first = " ".join(str(error).split())[:200]
            raise ConfigError(f"cannot connect to the Ray cluster at {address or 'a new local cluster'} ({first}); "
                              "start one with `ray start --head` or pass --address ray://HOST:10001") from None
    return ray


def _reachable(address: str | None) -> None:
    """A ``HOST:PORT`` or ``ray://HOST:PORT`` that nothing answers at is refused at once (Ray itself retries for
    minutes)."""
    import socket

    if address in (None, "auto", "local"):
        return
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        raise ConfigError(f"--address {address!r} is not auto, HOST:PORT or ray://HOST:PORT")
    try:
        socket.create_connection((host, int(port)), timeout=10).close()
    except OSError as error:
        raise ConfigError(f"nothing answers at --address {address} ({error.strerror or error}); start the cluster "
                          "(`ray start --head`), or check the host and port") from None


def groups_of(entries: list[Entry], slots: int, most: int = MOST_PER_TASK) -> list[list[Entry]]:
    """Entries cut into groups, same extension together, about :data:`GROUPS_PER_SLOT` groups per slot."""
    ordered = sorted(entries, key=lambda e: (e.path.suffix.lower(), e.signal))
    size = max(1, min(most, math.ceil(len(ordered) / max(1, slots * GROUPS_PER_SLOT))))
    groups, current = [], []
    for entry in ordered:
        if current and (len(current) >= size or current[0].path.suffix.lower() != entry.path.suffix.lower()):
            groups.append(current)
            current = []
        current.append(entry)
    return groups + ([current] if current else [])


def fit_group(payload: list[dict[str, Any]], shared: bool, overwrite: bool, threads: int,
              group_size: int | None = None) -> list[dict[str, Any]]:
    """What a Ray task (or a pool worker) runs: fit the group's entries, return their summary rows (and, unless
    shared, their files)."""
    import torch
    from inrkit.host import get_host

    torch.set_num_threads(max(1, threads))
    work = Path(tempfile.mkdtemp(prefix="inrkit-ray-"))
    try:
        entries, original, out = [], {}, []
        for index, item in enumerate(payload):
            entry = item["entry"]
            if not shared:
                place = work / str(index)
                place.mkdir()
                source = place / entry.path.name
                source.write_bytes(item["data"])
                original[index] = str(entry.path.resolve()) if entry.path.is_absolute() else str(entry.path)
                entry = replace(entry, path=source, run_dir=place / "run")
            elif is_finished(entry.run_dir) and not overwrite:  # a retried task: this one was written
                out.append({"index": index, "row": {**record_of(entry, "done"), "fitted": "before"}})
                continue
            entries.append((index, entry))
        rows: dict[int, dict[str, Any]] = {}
        position = {id(entry): index for index, entry in entries}
        fit_entries([entry for _, entry in entries], get_host(), overwrite=overwrite and shared, group_size=group_size,
                    notify=lambda event: _keep(event, position, rows))
        for index, entry in entries:
            row = rows.get(index) or record_of(entry, "failed", "the worker recorded nothing for this signal")
            result = {"index": index, "row": row}
            if not shared and row["status"] == "done":
                result["files"] = _pack(entry.run_dir, original[index])
            out.append(result)
        return out
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _keep(event: Progress, position: dict[int, int], rows: dict[int, dict[str, Any]]) -> None:
    if event.kind == "row" and event.entry is not None:
        rows[position[id(event.entry)]] = event.row


def _pack(run_dir: Path, source: str) -> dict[str, bytes]:
    """A run directory as ``{relative name: bytes}``; ``config.json`` names the driver's path of the source."""
    files = {}
    for path in sorted(p for p in run_dir.rglob("*") if p.is_file()):
        data = path.read_bytes()
        if path.relative_to(run_dir).as_posix() == "config.json":
            config = json.loads(data)
            config.setdefault("signal", {})["source"] = source
            data = json.dumps(config, indent=2).encode()
        files[path.relative_to(run_dir).as_posix()] = data
    return files


def unpack(files: dict[str, bytes], run_dir: Path) -> bool:
    """Write a returned run directory atomically; False (nothing written) when a finished run is there already."""
    if is_finished(run_dir):
        return False
    with atomic_directory(run_dir, replace=True) as staging:
        for name, data in files.items():
            target = staging / name
            if target.resolve().parent != staging.resolve() and staging.resolve() not in target.resolve().parents:
                raise ConfigError(f"a worker returned a file outside the run directory ({name!r})")
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
    return True


def fit_on_ray(entries: list[Entry], address: str | None, shared_output: bool = False, overwrite: bool = False,
               notify: Callable[[Progress], None] = lambda event: None) -> None:
    """Fit the entries as Ray tasks (see the module docstring); results come to ``notify`` as each group ends.

    Ctrl-C cancels the tasks still running; runs written before stay.
    """
    ray = connect(address)
    resources = ray.cluster_resources()
    gpus, cpus = int(resources.get("GPU", 0)), int(resources.get("CPU", 1))
    slots = gpus or max(1, cpus)
    options = {"num_gpus": 1, "num_cpus": 1} if gpus else {"num_cpus": 1}
    task = ray.remote(fit_group).options(max_retries=TASK_RETRIES, retry_exceptions=False, **options)
    ready = []
    for entry in entries:
        if entry.error:
            notify(Progress("row", entry=entry, row=record_of(entry, "failed", entry.error)))
        else:
            ready.append(entry)
    pending: dict[Any, list[Entry]] = {}
    for group in groups_of(ready, slots):
        payload = []
        for entry in group:
            item: dict[str, Any] = {"entry": entry}
            if not shared_output:
                try:
                    item["data"] = entry.path.read_bytes()
                except OSError as error:
                    notify(Progress("row", entry=entry, row=record_of(entry, "failed", describe_error(error))))
                    continue
            payload.append(item)
        if payload:
            pending[task.remote(payload, shared_output, overwrite, 1)] = [item["entry"] for item in payload]
            notify(Progress("group", entries=pending[list(pending)[-1]]))
    try:
        while pending:
            done, _ = ray.wait(list(pending), num_returns=1)
            for reference in done:
                group = pending.pop(reference)
                _collect(ray, reference, group, notify)
    except KeyboardInterrupt:
        for reference in pending:
            ray.cancel(reference, force=True)
        raise


def fit_in_pool(entries: list[Entry], workers: int, overwrite: bool = False, group_size: int | None = None,
                notify: Callable[[Progress], None] = lambda event: None) -> None:
    """Fit the entries in a pool of ``workers`` processes on this machine (one thread each), group by group.

    Each worker runs :func:`fit_group` with the run directories where they
    belong (a group batches its same-shape signals as in-process fits do).
    Ctrl-C stops the workers (each stops as ``inrkit fit`` does) and cancels the groups not started.
    """
    import concurrent.futures
    import multiprocessing

    ready = []
    for entry in entries:
        if entry.error:
            notify(Progress("row", entry=entry, row=record_of(entry, "failed", entry.error)))
        else:
            ready.append(entry)
    context = multiprocessing.get_context("spawn")
    stop = context.Event()
    pool = concurrent.futures.ProcessPoolExecutor(workers, mp_context=context, initializer=_start_worker,
                                                  initargs=(stop,))
    try:
        futures = {}
        for group in groups_of(ready, workers):
            futures[pool.submit(_pool_group, [{"entry": e} for e in group], overwrite, group_size)] = group
            notify(Progress("group", entries=group))
        for future in concurrent.futures.as_completed(futures):
            _collect(None, future, futures[future], notify)
    except KeyboardInterrupt:
        # Groups already handed to a worker end at once; a terminal's Ctrl-C reached the workers too, and a
        # signal to this process alone is passed on to them.
        stop.set()
        concurrent.futures.wait(futures, timeout=1.0)
        for process in list(getattr(pool, "_processes", {}).values()):
            if process.is_alive():
                os.kill(process.pid, signal.SIGINT)
        raise
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _pool_group(payload: list[dict[str, Any]], overwrite: bool, group_size: int | None) -> list[dict[str, Any]]:
    """:func:`fit_group` in a pool worker, with Ctrl-C on while it works (an idle worker ignores it)."""
    if _STOP is not None and _STOP.is_set():
        return []
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        return fit_group(payload, True, overwrite, 1, group_size)
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)


#: In a pool worker: set when the command was stopped (groups handed over later are not started).
_STOP: Any = None


def _start_worker(stop: Any) -> None:
    """A pool worker ends when the process that started it is killed (Linux), so that no orphan keeps writing;
    Ctrl-C is ignored until it works on a group."""
    import ctypes

    global _STOP
    _STOP = stop
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if sys.platform.startswith("linux"):
        try:
            ctypes.CDLL(None).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
        except (OSError, AttributeError):
            pass


def _collect(ray: Any, reference: Any, group: list[Entry], notify: Callable[[Progress], None]) -> None:
    try:
        results = ray.get(reference) if ray is not None else reference.result()
    except KeyboardInterrupt:
        raise
    except BaseException as error:  # noqa: BLE001 - a task that failed (after its retries): its signals failed
        message = f"the worker failed ({type(error).__name__}: {' '.join(str(error).split())[:200]})"
        for entry in group:
            notify(Progress("row", entry=entry, row=record_of(entry, "failed", message)))
        return
    for result in results:
        entry = group[result["index"]]
        row = dict(result["row"], signal=entry.signal, run_dir=str(entry.run_dir))
        if "files" in result:
            try:
                if not unpack(result["files"], entry.run_dir):
                    row["fitted"] = "before"
            except (OSError, ConfigError) as error:
                row = record_of(entry, "failed", describe_error(error))
        if row["status"] == "done":
            row = {**record_of(entry, "done", batch=row.get("batch")), "fitted": row.get("fitted", "now")}
        notify(Progress("row", entry=entry, row=row))


__all__ = ["GROUPS_PER_SLOT", "MOST_PER_TASK", "TASK_RETRIES", "connect", "fit_group", "fit_in_pool", "fit_on_ray",
           "groups_of", "unpack"]
