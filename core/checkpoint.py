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
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp" + path.suffix, dir=path.parent)
    os.close(handle)
    temporary = Path(temporary)
    try:
        yield temporary
        if temporary.exists():
            os.chmod(temporary, 0o666 & ~_umask())  # mkstemp makes 0600; give the file the usual mode
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


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


def check_new_run_dir(path: Path, overwrite: bool) -> None:
    """Fail early (before training) if ``path`` cannot become a run directory.

    Raises
    ------
    RunDirError
        If it exists and ``overwrite`` is false, or it is a file.
    """
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise RunDirError(f"output {path} exists and is not a directory; choose another -o")
    if path.exists() and any(path.iterdir()) and not overwrite:
        raise RunDirError(f"output directory {path} already exists; choose another -o or pass --overwrite")


@contextlib.contextmanager
def staged_run_dir(path: Path, overwrite: bool = False) -> Iterator[Path]:
    """Yield an empty staging directory that becomes ``path`` on success.

    With ``overwrite``, an existing ``path`` is replaced only after the new
    run is complete.
    """
    path = Path(path)
    check_new_run_dir(path, overwrite)
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".partial", dir=path.parent))
    try:
        yield staging
        os.chmod(staging, 0o777 & ~_umask())  # mkdtemp makes 0700
        if path.exists():
            retired = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".old", dir=path.parent))
            os.replace(path, retired / "run")
            os.replace(staging, path)
            shutil.rmtree(retired, ignore_errors=True)
        else:
            os.replace(staging, path)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


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

    Raises
    ------
    RunDirError
        If the tensors do not fit the configuration.
    """
    if config.architecture == "siren":
        model: torch.nn.Module = Siren(config)
    else:
        if "input.frequencies" not in tensors:
            raise RunDirError("model file has no input.frequencies tensor; it is not an inrkit lattice model")
        model = SinusoidalINR(config, tensors["input.frequencies"].to(torch.long))
    try:
        model.load_state_dict(tensors, strict=True)
    except RuntimeError as error:
        first = str(error).strip().splitlines()[0] if str(error).strip() else "shape mismatch"
        raise RunDirError(f"model file does not match config.json ({first}); the run directory is damaged") from None
    return model


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

    Raises
    ------
    RunDirError
        If the directory is missing, is not a run directory, or is damaged.
    """
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    path = Path(path)
    if not path.is_dir():
        raise RunDirError(f"run directory {path} does not exist; pass the -o directory of an `inrkit fit`")
    config_path, model_path = path / CONFIG_FILE, path / MODEL_FILE
    if not config_path.is_file() or not model_path.is_file():
        raise RunDirError(
            f"{path} is not an inrkit run directory (needs {CONFIG_FILE} and {MODEL_FILE}); "
            "pass the -o directory of an `inrkit fit`"
        )
    try:
        config = json.loads(config_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise RunDirError(f"{config_path} is not valid JSON ({error}); the run directory is damaged") from None
    if not isinstance(config, dict) or config.get("format") != RUN_FORMAT:
        raise RunDirError(f"{config_path} is not an inrkit run config; pass the -o directory of an `inrkit fit`")
    if config.get("format_version", 0) > RUN_FORMAT_VERSION:
        raise RunDirError(
            f"{path} was written by a newer inrkit (run format {config.get('format_version')}); upgrade inrkit"
        )
    try:
        model_config = ModelConfig.from_dict(config["model"])
    except (KeyError, TypeError, ConfigError) as error:
        raise RunDirError(f"{config_path} has an invalid model section ({error}); the run directory is damaged") from None
    try:
        tensors = load_file(str(model_path))
    except (SafetensorError, OSError, ValueError) as error:
        raise RunDirError(f"{model_path} is not a readable safetensors file ({error}); the run directory is damaged") from None
    model = model_from_tensors(model_config, tensors)
    model.eval()
    return Run(path=path, model=model, model_config=model_config, signal=config.get("signal", {}), config=config)
