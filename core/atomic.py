"""Writes that matter are atomic: files and folders staged beside their destination and renamed into place.

* :func:`atomic_output`: one file; :func:`write_json` on top of it.
* :func:`atomic_directory`: a folder of files (a run directory, frames, a
  mesh and its textures); the destination appears whole or not at all, and
  an existing folder is replaced only by a complete new one.
* :func:`recover_leftovers`: what a writer killed mid-write (SIGKILL, power
  loss) left is cleaned up, or the folder it was replacing restored. Staging
  names carry the writer's process id, so a live writer's work is left alone.
* :func:`deferred_interrupt`: the first Ctrl-C waits until a block of
  writing is finished.
* ``sync=True`` (:func:`atomic_output`, :func:`write_json`): the file's bytes
  reach the disk before the rename, and the rename before returning, so that
  a power loss leaves the old file or the new one (checkpoints).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from inrkit.errors import ConfigError

# Staging and retired folders carry the writer's process id, so that a later
# command can tell a dead writer's leftovers from a live writer's work.
_STAGING, _RETIRED = ".partial", ".old"


@contextlib.contextmanager
def atomic_output(path: Path, sync: bool = False) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it replaces ``path`` atomically.

    On any exception the temporary file is removed and ``path`` is untouched.
    With ``sync``, the file is flushed to the disk (fsync) before the rename and
    the folder after it.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    _remove_dead_temporaries(path)
    handle, temporary = tempfile.mkstemp(prefix=_leftover_prefix(path), suffix=".tmp" + path.suffix, dir=path.parent)
    os.close(handle)
    temporary = Path(temporary)
    try:
        yield temporary
        if temporary.exists():
            os.chmod(temporary, 0o666 & ~_umask())  # mkstemp makes 0600; give the file the usual mode
            if sync:
                fsync_path(temporary)
        os.replace(temporary, path)
        if sync:
            fsync_path(path.parent)
    finally:
        temporary.unlink(missing_ok=True)


def _remove_dead_temporaries(path: Path) -> None:
    """Remove temporary files of ``path`` left by a writer that was killed."""
    prefix = f".{path.name}."
    try:
        entries = [e for e in path.parent.iterdir() if e.name.startswith(prefix) and ".tmp" in e.name]
    except OSError:
        return
    for entry in entries:
        middle = entry.name[len(prefix):]
        pid_text = middle.split("-", 1)[0] if "-" in middle else ""
        if pid_text.isdigit() and not _alive(int(pid_text)) and entry.is_file() and not entry.is_symlink():
            entry.unlink(missing_ok=True)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def fsync_path(path: Path) -> None:
    """Flush a file's or a folder's contents to the disk (folders: where the OS allows it)."""
    try:
        handle = os.open(path, os.O_RDONLY)
    except OSError:
        if Path(path).is_dir():
            return  # some systems cannot open folders
        raise
    try:
        os.fsync(handle)
    except OSError:
        if not Path(path).is_dir():
            raise
    finally:
        os.close(handle)


def write_json(path: Path, data: Any, sync: bool = False) -> None:
    """Write JSON atomically (NaN and infinities become null); ``sync``: see :func:`atomic_output`."""
    with atomic_output(path, sync=sync) as temporary:
        temporary.write_text(json.dumps(_finite(data), indent=2) + "\n")


def _finite(data: Any) -> Any:
    if isinstance(data, float):
        return data if data == data and abs(data) != float("inf") else None
    if isinstance(data, dict):
        return {k: _finite(v) for k, v in data.items()}
    if isinstance(data, (list, tuple)):
        return [_finite(v) for v in data]
    return data


def _leftover_prefix(path: Path) -> str:
    return f".{path.name}.{os.getpid()}-"


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True
    return True


def recover_leftovers(path: Path) -> list[str]:
    """Clean up after a writer of ``path`` that was killed (SIGKILL, power loss) mid-write.

    A staging folder (``.NAME.PID-XXXX.partial``) of a dead process is
    removed. A retired folder (``.NAME.PID-XXXX.old``) holds the previous run
    while the new one is renamed into place: if ``path`` is missing, the
    previous run is restored; otherwise it is removed. Folders of a process
    that is still running are left alone. Returns what was done, one
    sentence per folder.
    """
    path = Path(path)
    parent = path.parent
    done: list[str] = []
    if not parent.is_dir():
        return done
    prefix = f".{path.name}."
    for entry in sorted(parent.iterdir()):
        name = entry.name
        if not name.startswith(prefix) or not entry.is_dir() or entry.is_symlink():
            continue
        middle = name[len(prefix):]
        if middle.endswith(_STAGING):
            kind = "staging"
            middle = middle[: -len(_STAGING)]
        elif middle.endswith(_RETIRED):
            kind = "retired"
            middle = middle[: -len(_RETIRED)]
        else:
            continue
        pid_text = middle.split("-", 1)[0] if "-" in middle else ""
        if pid_text.isdigit() and _alive(int(pid_text)):
            continue
        previous = entry / "run"
        if kind == "retired" and previous.is_dir() and not path.exists():
            os.replace(previous, path)
            done.append(f"restored {path} from an interrupted replacement")
        shutil.rmtree(entry, ignore_errors=True)
        done.append(f"removed {entry.name}, left by a writer that was killed")
    return done


class DeferredInterrupt:
    """Holds back the first Ctrl-C while a run directory is written (see :func:`deferred_interrupt`).

    Attributes
    ----------
    received:
        True when a Ctrl-C arrived and was held back.
    """

    def __init__(self) -> None:
        self.received = False


@contextlib.contextmanager
def deferred_interrupt() -> Iterator[DeferredInterrupt]:
    """Let a block finish although Ctrl-C is pressed once; a second Ctrl-C stops it at once.

    Used around the final writing of a run, so that the first Ctrl-C cannot
    turn a trained model into nothing. Only the main thread receives
    signals; elsewhere this does nothing.
    """
    import signal
    import threading

    state = DeferredInterrupt()
    if threading.current_thread() is not threading.main_thread():
        yield state
        return

    def hold(signum, frame) -> None:
        if state.received:
            raise KeyboardInterrupt
        state.received = True

    previous = signal.signal(signal.SIGINT, hold)
    try:
        yield state
    finally:
        signal.signal(signal.SIGINT, previous)


def file_sha256(path: Path) -> str:
    """Hex SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@contextlib.contextmanager
def atomic_directory(path: Path, replace: bool = True) -> Iterator[Path]:
    """Yield an empty staging folder beside ``path``; on success it becomes ``path``.

    Parameters
    ----------
    path:
        The folder to create.
    replace:
        Whether an existing folder at ``path`` may be replaced (after the new
        one is complete). A file at ``path`` is never replaced.

    On any exception the staging folder is removed and ``path`` is untouched.
    """
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise ConfigError(f"{path} exists and is not a folder; choose another output")
    if path.exists() and not replace:
        raise ConfigError(f"{path} already exists; choose another output")
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=_leftover_prefix(path), suffix=_STAGING, dir=path.parent))
    try:
        yield staging
        os.chmod(staging, 0o777 & ~_umask())
        if path.exists():
            retired = Path(tempfile.mkdtemp(prefix=_leftover_prefix(path), suffix=_RETIRED, dir=path.parent))
            os.replace(path, retired / "run")
            os.replace(staging, path)
            shutil.rmtree(retired, ignore_errors=True)
        else:
            os.replace(staging, path)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


__all__ = ["DeferredInterrupt", "atomic_directory", "atomic_output", "deferred_interrupt", "file_sha256",
           "fsync_path", "recover_leftovers", "write_json"]
