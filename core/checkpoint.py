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
import json
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from inrkit.atomic import (
    _STAGING,
    _leftover_prefix,
    atomic_directory,
    atomic_output,
    recover_leftovers,
    write_json,
)
from inrkit.config import PEER_ARCHITECTURES, ModelConfig
from inrkit.errors import ConfigError, RunDirError
from inrkit.model import SinusoidalINR, Siren, stored_parameter_count

RUN_FORMAT = "inrkit-run"
RUN_FORMAT_VERSION = 1
MODEL_FILE = "model.safetensors"
CONFIG_FILE = "config.json"
METRICS_FILE = "metrics.json"


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


@contextlib.contextmanager
def staged_run_dir(path: Path, overwrite: bool = False) -> Iterator[Path]:
    """Yield an empty staging directory that becomes ``path`` on success.

    With ``overwrite``, an existing run directory at ``path`` is replaced
    only after the new run is complete (:func:`inrkit.atomic.atomic_directory`).
    """
    path = Path(path)
    check_new_run_dir(path, overwrite)
    with atomic_directory(path, replace=True) as staging:
        yield staging


def save_model(model: torch.nn.Module, path: Path) -> None:
    """Save every tensor of ``model`` to a safetensors file, atomically."""
    from safetensors.torch import save_file

    tensors = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    with atomic_output(path) as temporary:
        save_file(tensors, str(temporary), metadata={"format": RUN_FORMAT})


def model_from_tensors(config: ModelConfig, tensors: dict[str, torch.Tensor]) -> torch.nn.Module:
    """Rebuild a model from its config and saved tensors (shapes are checked).

    The names, shapes and dtypes of ``tensors`` are compared with those the
    configuration implies (:func:`inrkit.tensorcheck.expected_tensors`) before
    the model is built, so a configuration that does not fit the tensors
    allocates nothing.

    Raises
    ------
    RunDirError
        If the tensors do not fit the configuration.
    """
    from inrkit.tensorcheck import check_tensors

    found = {name: (tuple(t.shape), _SAFETENSORS_DTYPES.get(t.dtype, str(t.dtype))) for name, t in tensors.items()}
    check_tensors(found, config, "the model file")
    if config.architecture == "siren":
        model: torch.nn.Module = Siren(config)
    elif config.architecture in PEER_ARCHITECTURES:
        from inrkit.peers import build_peer

        model = build_peer(config)
    else:
        lines = tensors.get("direct.frequencies")
        model = SinusoidalINR(config, tensors["input.frequencies"].to(torch.long),
                              None if lines is None else lines.to(torch.long))
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
    implies (:func:`inrkit.tensorcheck.check_tensors`) before any tensor is read
    or any model built.

    Raises
    ------
    RunDirError
        If the directory is missing, is not a run directory, or is damaged, with a one-line message.
    """
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    from inrkit.runschema import MAX_CONFIG_BYTES, check_run_config
    from inrkit.tensorcheck import check_tensors, read_safetensors_header

    path = Path(path)
    if path.is_file():  # a packed model (`inrkit pack`): the same Run, dequantised
        from inrkit.packing import load_packed_run

        return load_packed_run(path)
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
