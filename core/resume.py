"""Checkpoints of a running fit, and continuing from one (``inrkit fit --checkpoint-every``, ``--resume``).

Where: a hidden folder beside the future run directory, ``.NAME.checkpoint``
for ``.../NAME`` (the run directory itself keeps its all-or-nothing rule: it
appears only complete). It is removed once the run directory is written; a
fit that was killed or stopped with Ctrl-C leaves it for ``--resume``.

What (no pickle anywhere):

``state-STEP.safetensors``
    The model's tensors (``model.NAME``), Adam's moments
    (``optimizer.first.I``, ``optimizer.second.I``) and the random states as
    uint8 tensors (``rng.cpu``, ``rng.sampler``, ``rng.cuda``).
``checkpoint.json``
    The fit's full description (model config, train config, signal type,
    source path and SHA-256, loader options, loss, ``--spectrum-every``,
    ``--overwrite``, the checkpoint interval), the state's numbers (step,
    seconds, batches drawn, Adam's step count, learning-rate scale, best loss,
    rollbacks, batch changes), the curve so far, and the name and SHA-256 of
    the tensors file.

Each file is written to a temporary name, flushed to the disk and renamed;
``checkpoint.json`` is written last and is the commit point: a fit killed
at any moment leaves the previous checkpoint or the new one, whole. Older
tensor files are removed after the commit.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from inrkit.atomic import atomic_output, file_sha256, write_json
from inrkit.checkpoint import check_new_run_dir, probe_writable
from inrkit.config import TrainConfig
from inrkit.errors import ConfigError, InputError, RunDirError
from inrkit.host import Host, get_host
from inrkit.train import Checkpointing, TrainState

if TYPE_CHECKING:
    from inrkit.pipeline import FitJob
    from inrkit.runwriter import FitSummary

CHECKPOINT_FORMAT = "inrkit-checkpoint"
CHECKPOINT_VERSION = 1
STATE_JSON = "checkpoint.json"
#: Largest checkpoint.json read (a curve of a million points is about 100 MB).
MAX_STATE_BYTES = 256 << 20

_EVERY = re.compile(r"^\s*(\d+(?:\.\d*)?)\s*([sm]?)\s*$")


def parse_every(text: str) -> tuple[int | None, float | None]:
    """``--checkpoint-every``: ``N`` steps, or ``Ns`` / ``Nm`` seconds / minutes; ``(steps, seconds)``."""
    match = _EVERY.match(str(text))
    number = float(match.group(1)) if match else 0.0
    unit = match.group(2) if match else ""
    if not match or number <= 0 or not math.isfinite(number) or (not unit and not number.is_integer()):
        raise ConfigError(f"--checkpoint-every {text!r} is not valid; use a whole number of steps (500), "
                          "or seconds (30s) or minutes (5m)")
    if not unit:
        return int(number), None
    return None, number * (60.0 if unit == "m" else 1.0)


def checkpoint_dir(run_dir: Path) -> Path:
    """The checkpoint folder of the run directory ``run_dir``: ``.NAME.checkpoint`` beside it."""
    run_dir = Path(run_dir)
    return run_dir.with_name(f".{run_dir.name}.checkpoint")


class CheckpointWriter:
    """Writes :class:`~inrkit.train.TrainState` s of one fit into its checkpoint folder (the ``save`` of
    :class:`~inrkit.train.Checkpointing`)."""

    def __init__(self, folder: Path, description: dict[str, Any]):
        self.folder = Path(folder)
        self.description = description

    def __call__(self, state: TrainState) -> None:
        from safetensors.torch import save_file

        self.folder.mkdir(parents=True, exist_ok=True)
        tensors = {f"model.{name}": tensor for name, tensor in state.model.items()}
        for kind in ("first", "second"):
            tensors.update({f"optimizer.{kind}.{i}": t for i, t in enumerate(state.optimizer[kind])})
        tensors.update({"rng.cpu": state.rng, "rng.sampler": state.generator})
        if state.cuda_rng is not None:
            tensors["rng.cuda"] = state.cuda_rng
        tensors = {name: t.detach().cpu().contiguous() for name, t in tensors.items()}
        name = f"state-{state.step:09d}.safetensors"
        with atomic_output(self.folder / name, sync=True) as temporary:
            save_file(tensors, str(temporary), metadata={"format": CHECKPOINT_FORMAT})
        numbers = {"step": state.step, "seconds": state.seconds, "draws": state.draws,
                   "optimizer_steps": state.optimizer["steps"], "lr_scale": state.lr_scale,
                   "best_loss": state.best_loss, "first_loss": state.first_loss, "rollbacks": state.rollbacks,
                   "batch_changes": state.batch_changes,
                   "curve": state.curve}
        write_json(self.folder / STATE_JSON, {"format": CHECKPOINT_FORMAT, "version": CHECKPOINT_VERSION,
                                              "fit": self.description, "state": numbers,
                                              "tensors": {"file": name, "sha256": file_sha256(self.folder / name)}},
                   sync=True)
        for old in self.folder.glob("state-*.safetensors"):
            if old.name != name:
                old.unlink(missing_ok=True)


@dataclass
class Checkpoint:
    """A loaded checkpoint: the fit's description, the state to continue from, and the folder."""

    folder: Path
    fit: dict[str, Any]
    state: TrainState


def load_checkpoint(run_dir: Path) -> Checkpoint:
    """Read the checkpoint of ``run_dir`` (untrusted: every part is checked).

    Raises
    ------
    RunDirError
        With one line: no checkpoint (a finished run, or a fit started without
        ``--checkpoint-every``), or a damaged one.
    """
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    from inrkit.checkpoint import METRICS_FILE, is_run_dir

    run_dir = Path(run_dir)
    folder = checkpoint_dir(run_dir)
    path = folder / STATE_JSON
    if not path.is_file():
        if is_run_dir(run_dir):
            stop = _stop_reason(run_dir / METRICS_FILE)
            raise RunDirError(f"{run_dir} is a finished run (stopped by {stop}) and has no checkpoint; nothing to "
                              "resume: start a new fit with another -o, or --overwrite it")
        raise RunDirError(f"no checkpoint of {run_dir} (looked for {path}); --resume continues a fit that was "
                          "started with --checkpoint-every and stopped before it finished")

    def damaged(why: str) -> RunDirError:
        return RunDirError(f"the checkpoint in {folder} is damaged ({why}); start the fit again, with --overwrite")

    if path.stat().st_size > MAX_STATE_BYTES:
        raise damaged(f"{STATE_JSON} is larger than {MAX_STATE_BYTES:,} bytes")
    try:
        data = json.loads(path.read_bytes())
        _need(data["format"] == CHECKPOINT_FORMAT, "not an inrkit checkpoint")
        _need(data["version"] == CHECKPOINT_VERSION, f"version {data['version']}, this inrkit reads {CHECKPOINT_VERSION}")
        fit, numbers, tensors_file = data["fit"], data["state"], data["tensors"]
        file = folder / str(tensors_file["file"])
        _need(file.parent == folder and file.is_file(), f"{tensors_file['file']} is missing")
        _need(file_sha256(file) == tensors_file["sha256"], f"{file.name} does not match its SHA-256")
        tensors = load_file(str(file))
        state = _state(numbers, tensors)
        for key in ("model", "train", "signal_type", "source", "loss"):
            _need(key in fit, f"no {key!r} in the fit's description")
    except (ValueError, KeyError, TypeError, AttributeError, RecursionError, OSError,
            SafetensorError) as error:
        detail = str(error).splitlines()[0][:200] if str(error) else type(error).__name__
        raise damaged(detail) from None
    return Checkpoint(folder=folder, fit=fit, state=state)


def _need(condition: bool, why: str) -> None:
    if not condition:
        raise ValueError(why)


def _state(numbers: dict[str, Any], tensors: dict[str, torch.Tensor]) -> TrainState:
    def count(kind: str) -> int:
        return sum(1 for name in tensors if name.startswith(f"optimizer.{kind}."))

    moments = {kind: [tensors[f"optimizer.{kind}.{i}"] for i in range(count(kind))] for kind in ("first", "second")}
    curve = [{key: math.nan if value is None else value for key, value in point.items()} for point in numbers["curve"]]
    best, first = numbers["best_loss"], numbers.get("first_loss")  # first_loss: absent before 2026-11-30
    state = TrainState(
        step=int(numbers["step"]), seconds=float(numbers["seconds"]), draws=int(numbers["draws"]),
        model={name[len("model."):]: t for name, t in tensors.items() if name.startswith("model.")},
        optimizer={"steps": int(numbers["optimizer_steps"]), **moments},
        rng=tensors["rng.cpu"], generator=tensors["rng.sampler"], cuda_rng=tensors.get("rng.cuda"),
        curve=curve, curve_length=len(curve), rollbacks=list(numbers["rollbacks"]),
        batch_changes=list(numbers["batch_changes"]), lr_scale=float(numbers["lr_scale"]),
        best_loss=math.inf if best is None else float(best),
        first_loss=math.inf if first is None else float(first),
    )
    _need(state.step >= 0 and state.draws >= 0 and len(curve) <= state.step, "impossible step counts")
    return state


def check_state(model: torch.nn.Module, state: TrainState, folder: Path) -> None:
    """Refuse a state whose optimiser tensors do not fit ``model`` (rebuilt from the checkpoint's config)."""
    trainable = [p for p in model.parameters() if p.requires_grad]
    for kind in ("first", "second"):
        saved = state.optimizer[kind]
        if len(saved) != len(trainable) or any(s.shape != p.shape for s, p in zip(saved, trainable)):
            raise RunDirError(f"the checkpoint in {folder} is damaged (its optimiser state does not fit the model); "
                              "start the fit again, with --overwrite")


def _stop_reason(metrics: Path) -> str:
    try:
        return str(json.loads(metrics.read_text()).get("stop_reason", "unknown"))
    except (OSError, ValueError, AttributeError):
        return "unknown"


def is_interrupted_run(run_dir: Path) -> bool:
    """True when ``run_dir`` is a run that Ctrl-C wrote (it may be replaced by its resumed fit)."""
    from inrkit.checkpoint import METRICS_FILE, is_run_dir

    return is_run_dir(run_dir) and _stop_reason(Path(run_dir) / METRICS_FILE) == "interrupted"


def remove_checkpoint(run_dir: Path) -> None:
    """Remove the checkpoint folder of ``run_dir`` (once its run directory is written)."""
    import shutil

    folder = checkpoint_dir(run_dir)
    if folder.is_dir() and not folder.is_symlink():
        shutil.rmtree(folder, ignore_errors=True)


def checkpoint_step(run_dir: Path) -> int | None:
    """The step of ``run_dir``'s checkpoint, or None when there is none (or it cannot be read)."""
    try:
        return int(json.loads((checkpoint_dir(run_dir) / STATE_JSON).read_text())["state"]["step"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def check_no_checkpoint(output: Path, overwrite: bool) -> None:
    """A new fit does not silently supersede the checkpoint of an unfinished one (``overwrite`` does)."""
    folder = checkpoint_dir(output)
    if folder.exists() and not overwrite:
        step = checkpoint_step(output)
        at = f" at step {step}" if step is not None else ""
        raise RunDirError(f"{output} has the checkpoint of an unfinished fit{at} ({folder}); continue it with "
                          f"`inrkit fit --resume {output}`, or pass --overwrite to start again")


def checkpointing(job: FitJob, every: tuple[int | None, float | None], text: str,
                   load_options: dict[str, Any] | None) -> Checkpointing:
    """The :class:`~inrkit.train.Checkpointing` of ``job``: everything ``--resume`` needs, in its checkpoint folder."""
    description = {
        "run_dir": str(Path(job.output).resolve()),
        "model": job.model.config.to_dict(),
        "train": job.train_config.to_dict(),
        "signal_type": job.signal_type.name,
        "source": job.source,
        "load_options": dict(load_options or {}),
        "loss": job.loss.name,
        "spectrum_every": job.spectrum_every,
        "overwrite": job.overwrite,
        "checkpoint_every": text,
        "device": str(job.device),
    }
    steps, seconds = every
    return Checkpointing(save=CheckpointWriter(checkpoint_dir(job.output), description), steps=steps, seconds=seconds)


def resume_fit(run_dir: Path, *, host: Host | None = None, checkpoint_every: str | None = None,
               device: str | None = None) -> FitSummary:
    """Continue the fit whose checkpoint belongs to ``run_dir`` and write ``run_dir`` as that fit would have.

    Everything comes from the checkpoint (:mod:`inrkit.resume`): the model and
    training configuration, the signal file (which must be unchanged: same
    SHA-256), the loss, the state. ``checkpoint_every`` changes the interval
    of further checkpoints; ``device`` the device (the same device ends bit
    for bit where an uninterrupted ``--steps`` fit ends).

    Raises
    ------
    RunDirError
        No checkpoint (a finished run, a fit without ``--checkpoint-every``) or a damaged one.
    InputError
        The signal file is missing or changed.
    """
    from inrkit.checkpoint import model_from_tensors
    from inrkit.config import ModelConfig
    from inrkit.pipeline import FitJob, _check_exporter
    from inrkit.sources import load_with, source_facts
    from inrkit.train import resolve_device

    host = host or get_host()
    output = Path(run_dir)
    every = parse_every(checkpoint_every) if checkpoint_every is not None else None
    checkpoint = load_checkpoint(output)
    described = checkpoint.fit
    try:
        model_config = ModelConfig.from_dict(described["model"])
        train_config = TrainConfig(**described["train"])
        if device is not None:
            train_config = replace(train_config, device=device)
        model = model_from_tensors(model_config, checkpoint.state.model)
        check_state(model, checkpoint.state, checkpoint.folder)
    except (KeyError, TypeError, ValueError, ConfigError) as error:
        raise RunDirError(f"the checkpoint in {checkpoint.folder} is damaged ({str(error).splitlines()[0][:200]}); "
                          "start the fit again, with --overwrite") from None
    model.train()
    source = described["source"]
    path = Path(source.get("source") or "")
    if not source.get("source") or not path.exists():
        raise InputError(f"the signal this fit was started on ({source.get('source')}) is not there any more; "
                         "put it back to resume, or start a new fit")
    expected = source.get("source_sha256")
    if expected and path.is_file() and (actual := file_sha256(path)) != expected:
        raise InputError(f"{path} changed since the fit started (SHA-256 {actual[:12]}, the checkpoint recorded "
                         f"{expected[:12]}); a resumed fit needs the same file: restore it, or start a new fit")
    overwrite = bool(described.get("overwrite")) or is_interrupted_run(output)
    check_new_run_dir(output, overwrite)
    probe_writable(output)
    signal_type = host.signal(described["signal_type"])
    load_options = described.get("load_options") or None
    signal = load_with(signal_type, path, load_options)
    facts = source_facts(path, signal, load_options)
    _check_exporter(host, signal_type)
    job = FitJob(signal, signal_type, facts, model, train_config, host.loss(described["loss"]),
                  resolve_device(train_config.device), output, overwrite, host, described.get("spectrum_every"),
                  start=checkpoint.state)
    text = checkpoint_every if checkpoint_every is not None else described.get("checkpoint_every")
    job.checkpointing = checkpointing(job, every or parse_every(text), text, load_options)
    return job.run()


__all__ = ["CHECKPOINT_FORMAT", "Checkpoint", "CheckpointWriter", "check_no_checkpoint", "check_state", "checkpoint_dir",
           "checkpoint_step", "checkpointing", "is_interrupted_run", "load_checkpoint", "parse_every",
           "remove_checkpoint", "resume_fit"]
