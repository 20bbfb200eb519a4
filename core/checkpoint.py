"""Run directories: safe, atomic save and load of fitted models.

A run directory holds:

``model.safetensors``
    Every tensor of the model (safetensors: no code runs on load; never pickle).
``config.json``
    The model configuration, the signal's geometry and metadata, the training
    configuration and the source file, which is everything needed to rebuild
    the model and re-export it.
``metrics.json``
    Final metrics and the training curve.

Plus whatever the signal plugin writes (reconstruction, pictures). The whole
directory is assembled under a temporary name beside its destination and
renamed into place, so an interrupted or failed run leaves nothing
half-written.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from inrkit.config import ModelConfig
from inrkit.errors import ConfigError, RunDirError
from inrkit.model import Siren, SinusoidalINR, stored_parameter_count

RUN_FORMAT = "inrkit-run"
RUN_FORMAT_VERSION = 1
MODEL_FILE = "model.safetensors"
CONFIG_FILE = "config.json"
METRICS_FILE = "metrics.json"


@contextlib.contextmanager
def atomic_output(path: Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it replaces ``path`` atomically.

    On any exception the temporary file is removed and ``path`` is untouched.
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
        os.replace(temporary, path)
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


def write_json(path: Path, data: Any) -> None:
    """Write JSON atomically (NaN and infinities become null)."""
    with atomic_output(path) as temporary:
        temporary.write_text(json.dumps(_finite(data), indent=2) + "\n")


def _finite(data: Any) -> Any:
    if isinstance(data, float):
        return data if data == data and abs(data) != float("inf") else None
    if isinstance(data, dict):
        return {k: _finite(v) for k, v in data.items()}
    if isinstance(data, (list, tuple)):
        return [_finite(v) for v in data]
    return data


def is_run_dir(path: Path) -> bool:
    """True when ``path`` is a directory holding an inrkit ``config.json`` (the run-directory marker)."""
    config = Path(path) / CONFIG_FILE
    try:
        data = json.loads(config.read_text())
    except (OSError, ValueError):
        return False
    return isinstance(data, dict) and data.get("format") == RUN_FORMAT


def check_new_run_dir(path: Path, overwrite: bool) -> None:
    """Fail early (before training) if ``path`` cannot become a run directory.

    Leftovers of an earlier process that was killed while writing ``path``
    are cleaned up first (see :func:`recover_leftovers`).

    Raises
    ------
    RunDirError
        If it exists and ``overwrite`` is false, if it is a file, or if
        ``overwrite`` is asked of a non-empty directory that is not an inrkit
        run directory (``--overwrite`` never deletes anything else).
    """
    path = Path(path)
    recover_leftovers(path)
    if path.exists() and not path.is_dir():
        raise RunDirError(f"output {path} exists and is not a directory; choose another -o")
    if not path.is_dir():
        return
    entries = sorted(p.name for p in path.iterdir())
    if not entries:
        return
    if not overwrite:
        raise RunDirError(f"output directory {path} already exists; choose another -o or pass --overwrite")
    if not is_run_dir(path):
        shown = ", ".join(repr(n) for n in entries[:3]) + (", ..." if len(entries) > 3 else "")
        raise RunDirError(
            f"--overwrite replaces only inrkit run directories, and {path} is not one (no inrkit {CONFIG_FILE}; "
            f"it holds {shown}); choose another -o"
        )


def probe_writable(path: Path) -> None:
    """Check, before any training, that a run directory can be staged beside ``path``.

    Creates the parent folders if needed, then a staging folder, and removes it.

    Raises
    ------
    RunDirError
        If the place cannot be written (read-only file system, permissions).
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        probe = Path(tempfile.mkdtemp(prefix=_leftover_prefix(path), suffix=_STAGING, dir=path.parent))
        probe.rmdir()
    except OSError as error:
        raise RunDirError(
            f"cannot write the output {path} ({error.strerror or error}); choose a -o on a writable disk"
        ) from None


def interrupted_path(path: Path) -> Path:
    """``DIR.interrupted-N``: the first such name beside ``path`` that is free."""
    path = Path(path)
    number = 1
    while (candidate := path.with_name(f"{path.name}.interrupted-{number}")).exists():
        number += 1
    return candidate


# Staging and retired folders carry the writer's process id, so that a later
# command can tell a dead writer's leftovers from a live writer's work.
_STAGING, _RETIRED = ".partial", ".old"


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


@contextlib.contextmanager
def staged_run_dir(path: Path, overwrite: bool = False) -> Iterator[Path]:
    """Yield an empty staging directory that becomes ``path`` on success.

    With ``overwrite``, an existing run directory at ``path`` is replaced
    only after the new run is complete.
    """
    path = Path(path)
    check_new_run_dir(path, overwrite)
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=_leftover_prefix(path), suffix=_STAGING, dir=path.parent))
    try:
        yield staging
        os.chmod(staging, 0o777 & ~_umask())  # mkdtemp makes 0700
        if path.exists():
            retired = Path(tempfile.mkdtemp(prefix=_leftover_prefix(path), suffix=_RETIRED, dir=path.parent))
            os.replace(path, retired / "run")
            os.replace(staging, path)
            shutil.rmtree(retired, ignore_errors=True)
        else:
            os.replace(staging, path)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


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


def save_model(model: torch.nn.Module, path: Path) -> None:
    """Save every tensor of ``model`` to a safetensors file, atomically."""
    from safetensors.torch import save_file

    tensors = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    with atomic_output(path) as temporary:
        save_file(tensors, str(temporary), metadata={"format": RUN_FORMAT})


def model_from_tensors(config: ModelConfig, tensors: dict[str, torch.Tensor]) -> torch.nn.Module:
    """Rebuild a model from its config and saved tensors (shapes are checked).

    The names, shapes and dtypes of ``tensors`` are compared with those the
    configuration implies (:func:`inrkit.runschema.expected_tensors`) before
    the model is built, so a configuration that does not fit the tensors
    allocates nothing.

    Raises
    ------
    RunDirError
        If the tensors do not fit the configuration.
    """
    from inrkit.runschema import check_tensors

    found = {name: (tuple(t.shape), _SAFETENSORS_DTYPES.get(t.dtype, str(t.dtype))) for name, t in tensors.items()}
    check_tensors(found, config, "the model file")
    if config.architecture == "siren":
        model: torch.nn.Module = Siren(config)
    else:
        model = SinusoidalINR(config, tensors["input.frequencies"].to(torch.long))
    try:
        model.load_state_dict(tensors, strict=True)
    except RuntimeError as error:
        first = str(error).strip().splitlines()[0] if str(error).strip() else "shape mismatch"
        raise RunDirError(f"model file does not match config.json ({first}); the run directory is damaged") from None
    return model


_SAFETENSORS_DTYPES = {torch.float16: "F16", torch.bfloat16: "BF16", torch.float32: "F32", torch.float64: "F64",
                       torch.int8: "I8", torch.int16: "I16", torch.int32: "I32", torch.int64: "I64"}


@dataclass
class Run:
    """A loaded run directory.

    Attributes
    ----------
    path:
        The directory.
    model:
        The rebuilt model (CPU, eval mode).
    model_config:
        Its configuration.
    signal:
        ``config.json``'s ``signal`` section: geometry, metadata, source.
    config:
        The whole ``config.json``.
    """

    path: Path
    model: torch.nn.Module
    model_config: ModelConfig
    signal: dict[str, Any]
    config: dict[str, Any]


def save_run(staging: Path, model: torch.nn.Module, config: dict[str, Any], metrics: dict[str, Any]) -> None:
    """Write the model, ``config.json`` and ``metrics.json`` into a (staging) run directory."""
    config = {
        "format": RUN_FORMAT,
        "format_version": RUN_FORMAT_VERSION,
        **config,
        "stored_parameters": stored_parameter_count(model),
    }
    save_model(model, staging / MODEL_FILE)
    write_json(staging / CONFIG_FILE, config)
    write_json(staging / METRICS_FILE, metrics)


def load_run(path: Path) -> Run:
    """Load a run directory written by :func:`save_run`.

    The directory is untrusted input: the whole ``config.json`` is checked
    (:func:`inrkit.runschema.check_run_config`) and the header of
    ``model.safetensors`` is compared with the tensor shapes the model section
    implies (:func:`inrkit.runschema.check_tensors`) before any tensor is read
    or any model built.

    Raises
    ------
    RunDirError
        If the directory is missing, is not a run directory, or is damaged, with a one-line message.
    """
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    from inrkit.runschema import MAX_CONFIG_BYTES, check_run_config, check_tensors, read_safetensors_header

    path = Path(path)
    if not path.is_dir():
        raise RunDirError(f"run directory {path} does not exist; pass the -o directory of an `inrkit fit`")
    config_path, model_path = path / CONFIG_FILE, path / MODEL_FILE
    if not config_path.is_file() or not model_path.is_file():
        raise RunDirError(
            f"{path} is not an inrkit run directory (needs {CONFIG_FILE} and {MODEL_FILE}); "
            "pass the -o directory of an `inrkit fit`"
        )
    size = config_path.stat().st_size
    if size > MAX_CONFIG_BYTES:
        raise RunDirError(f"{config_path} is {size:,} bytes, more than the {MAX_CONFIG_BYTES:,} a run config may have; "
                          "the run directory is damaged or was edited by hand")
    try:
        config = json.loads(config_path.read_bytes())
    except (ValueError, RecursionError) as error:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        detail = str(error).splitlines()[0][:200] if str(error) else type(error).__name__
        raise RunDirError(f"{config_path} is not valid JSON ({detail}); the run directory is damaged") from None
    if not isinstance(config, dict) or config.get("format") != RUN_FORMAT:
        raise RunDirError(f"{config_path} is not an inrkit run config; pass the -o directory of an `inrkit fit`")
    check_run_config(config, config_path, RUN_FORMAT_VERSION)
    try:
        header = read_safetensors_header(model_path)
    except OSError as error:
        raise RunDirError(f"cannot read {model_path} ({error.strerror or error}); check its permissions") from None
    # Before a ModelConfig is made: it expands per-channel defaults to out_channels entries.
    check_tensors({name: (entry.shape, entry.dtype) for name, entry in header.items()}, config["model"], model_path)
    try:
        model_config = ModelConfig.from_dict(config["model"])
    except (KeyError, TypeError, ValueError, ConfigError) as error:
        raise RunDirError(f"{config_path} has an invalid model section ({error}); the run directory is damaged") from None
    try:
        tensors = load_file(str(model_path))
    except (SafetensorError, OSError, ValueError) as error:
        raise RunDirError(f"{model_path} is not a readable safetensors file ({error}); the run directory is damaged") from None
    model = model_from_tensors(model_config, tensors)
    model.eval()
    signal = config.get("signal") or {}
    if signal:
        model.register_forward_pre_hook(_coordinates_check(path, model_config.dims, signal["signal_type"]))
    return Run(path=path, model=model, model_config=model_config, signal=signal, config=config)


def _coordinates_check(path: Path, dims: int, signal_type: str):
    """A forward pre-hook refusing coordinates of another dimension than the model's.

    The signal section can pass every check and still be another signal
    type's (an image run relabelled ``sdf`` throughout): its exporter then
    evaluates the model on coordinates of its own dimension.
    """

    def check(module: torch.nn.Module, inputs: tuple) -> None:
        coords = inputs[0] if inputs else None
        if isinstance(coords, torch.Tensor) and coords.ndim >= 1 and coords.shape[-1] != dims:
            raise RunDirError(
                f"the model of {path} takes {dims}-D coordinates, but the {signal_type!r} exporter asked for "
                f"{coords.shape[-1]}-D ones: config.json's signal section does not belong to this model; "
                "the run directory is damaged or was edited by hand"
            )

    return check
