"""The training loop.

:func:`fit` trains any model ``[B, d] -> [B, channels]`` on a :class:`~inrkit.signal.Signal` with Adam,
stopping at whichever comes first of a step count, a wall-clock budget and a target PSNR. It calls the
observer hooks (``inrkit_fit_start``, ``inrkit_step_end``, ``inrkit_fit_end``) and never prints.

Rollbacks after divergence, continuing from a saved state, the CUDA
out-of-memory fallback: :mod:`inrkit.recovery`.

Speed: the input layer's frequencies are frozen, so for a model with a
:class:`~inrkit.model.LatticeSine` input and batches drawn from the signal's
own samples, ``sin(omega . x)`` and ``cos(omega . x)`` are computed once and a
step costs two multiply-adds per input activation plus the hidden matmuls.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import torch

from inrkit.config import ModelConfig, TrainConfig
from inrkit.errors import ConfigError
from inrkit.events import FitEnded, FitStarted, StepEnded, TrainSettings
from inrkit.metrics import psnr_from_mse
from inrkit.model import SinusoidalINR, stored_parameter_count
from inrkit.optim import Adam
from inrkit.plugin_types import FitContext, SamplerContext
from inrkit.recovery import (
    SNAPSHOT_EVERY,
    Checkpointing,
    Rollbacks,
    TrainState,
    capture,
    out_of_memory,
    random_states,
    restore_start,
)
from inrkit.signal import Batch, Signal

#: Largest cached input-layer basis (sin and cos together), in bytes.
BASIS_CACHE_BYTES = 2 << 30
#: Most activation values (rows x widest layer) one evaluation chunk or one automatic mini-batch may hold: 16 M floats.
ACTIVATION_BUDGET = 1 << 24
#: Added to the run's seed for the hold-out split's permutation, so that the split does not draw the same numbers
#: as the model's initialisation or the sampler (both seeded from the run's seed).
HOLDOUT_SEED_OFFSET = 7


#: Most rows per evaluated chunk on a CPU: a fresh process reuses a few MB instead of mapping new pages per chunk
CPU_EVALUATION_ROWS = 16384  # (first evaluation of 150,000 points, default 128x128 model: 0.048 s; 0.089 at 65,536)


def rows_for(source: torch.nn.Module | ModelConfig, most: int = 1 << 16, least: int = 1024) -> int:
    """Rows per chunk (of a model, or of a model config) so that ``rows x widest layer`` stays within :data:`ACTIVATION_BUDGET`."""
    config = source if isinstance(source, ModelConfig) else getattr(source, "config", None)
    widest = max(getattr(config, "width", 256), getattr(config, "input_frequencies", 256)) if config else 256
    return int(min(most, max(least, ACTIVATION_BUDGET // widest)))


def evaluation_rows(model: torch.nn.Module) -> int:
    """Rows per chunk of :func:`evaluate`: :func:`rows_for` the model, at most :data:`CPU_EVALUATION_ROWS` on a CPU."""
    on_cpu = next(model.parameters()).device.type == "cpu"
    return rows_for(model, most=CPU_EVALUATION_ROWS) if on_cpu else rows_for(model)


def resolve_device(name: str) -> torch.device:
    """``auto`` -> CUDA when available else CPU; validates explicit names (ConfigError: unknown or absent)."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except (RuntimeError, ValueError):
        raise ConfigError(f"unknown device {name!r}; valid: auto, cpu, cuda, cuda:N") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(f"device {name!r} requested but CUDA is not available here; use --device cpu or auto")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ConfigError(f"device {name!r} does not exist: {torch.cuda.device_count()} CUDA device(s) present")
    elif device.type != "cpu":
        raise ConfigError(f"unsupported device {name!r}; valid: auto, cpu, cuda, cuda:N")
    return device


@torch.no_grad()
def evaluate(model: torch.nn.Module, coords: torch.Tensor, chunk: int | None = None) -> torch.Tensor:
    """Evaluate ``model`` on ``[N, d]`` coordinates in chunks; returns ``[N, channels]`` on the CPU.

    Memory is bounded by ``chunk`` rows of activations whatever ``N`` is (default: :func:`evaluation_rows`).
    """
    reference = next(model.parameters())
    device, dtype = reference.device, reference.dtype
    chunk = chunk or evaluation_rows(model)
    was_training = model.training
    model.eval()
    parts = [model(coords[i : i + chunk].to(device, dtype)).cpu() for i in range(0, coords.shape[0], chunk)]
    model.train(was_training)
    return torch.cat(parts, dim=0)


def holdout_split(samples: int, fraction: float, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Deterministic split of ``range(samples)`` into (train, held-out) index tensors."""
    if fraction <= 0:
        return torch.arange(samples), torch.empty(0, dtype=torch.long)
    order = torch.randperm(samples, generator=torch.Generator().manual_seed(seed + HOLDOUT_SEED_OFFSET))
    held = max(1, int(round(fraction * samples)))
    if held >= samples:
        raise ConfigError(f"holdout {fraction} leaves no sample to train on; use a smaller fraction")
    return order[held:].sort().values, order[:held].sort().values


@dataclass
class FitResult:
    """What :func:`fit` returns.

    Attributes
    ----------
    model:
        The trained model (on the training device).
    curve:
        One dict per recorded step: ``step``, ``seconds``, ``loss``, ``psnr``, ``lr``.
    steps:
        Optimiser steps taken.
    seconds:
        Wall-clock seconds of the loop.
    stop_reason:
        ``steps``, ``max_seconds``, ``target_psnr`` or ``interrupted``.
    train_index, holdout_index:
        Sample indices used for training and held out.
    rollbacks:
        One dict per rollback after a divergence: ``step`` (where it was found), ``to_step``,
        ``reason``, ``lr_scale`` (the learning rate's multiplier from then on).
    batch_changes:
        One dict per batch change after CUDA ran out of memory: ``step``, ``draw``, ``batch_size``, ``sampler``.
    """

    model: torch.nn.Module
    curve: list[dict[str, float]] = field(default_factory=list)
    steps: int = 0
    seconds: float = 0.0
    stop_reason: str = ""
    train_index: torch.Tensor | None = None
    holdout_index: torch.Tensor | None = None
    rollbacks: list[dict[str, Any]] = field(default_factory=list)
    batch_changes: list[dict[str, Any]] = field(default_factory=list)


class _Predictor:
    """``predict(batch)`` for losses: cached basis when possible; remembers the last output."""

    def __init__(self, model: torch.nn.Module, coords: torch.Tensor | None):
        self.model = model
        self.last: tuple[Batch, torch.Tensor] | None = None
        self._basis = None
        self._gathered: tuple[torch.Tensor, ...] | None = None
        if coords is not None and isinstance(model, SinusoidalINR):
            if coords.shape[0] * model.basis_columns() * 4 <= BASIS_CACHE_BYTES:
                with torch.no_grad():
                    self._basis = model.basis(coords)

    def __call__(self, batch: Batch) -> torch.Tensor:
        if self._basis is not None and batch.index is not None:
            if self._gathered is None or self._gathered[0] is not batch.index:
                rows = self._basis[0].shape[0]
                everything = batch.index.numel() == rows and torch.equal(
                    batch.index, torch.arange(rows, device=batch.index.device)
                )
                parts = self._basis if everything else tuple(part[batch.index] for part in self._basis)
                self._gathered = (batch.index, *parts)
            output = self.model.from_basis(*self._gathered[1:])
        else:
            output = self.model(batch.coords)
        self.last = (batch, output)
        return output


def progress_of(config: TrainConfig, step: int, seconds: float) -> float:
    """Share of the budget spent after ``step`` steps and ``seconds`` seconds: the larger share, at most 1.

    0 without a step or seconds budget (a fit that stops at a target PSNR only).
    """
    progress = 0.0
    if config.steps:
        progress = max(progress, step / config.steps)
    if config.max_seconds:
        progress = max(progress, seconds / config.max_seconds)
    return min(progress, 1.0)


def lr_at(config: TrainConfig, progress: float) -> float:
    """The learning rate at ``progress`` (0 to 1) of the budget: geometric from ``lr`` to ``lr_final``.

    The one schedule of every fit; a pruned fit's phases slice it
    (:func:`inrkit.phases.pruned_fit`).
    """
    return config.lr * (config.lr_final / config.lr) ** min(max(progress, 0.0), 1.0)


@dataclass
class _Loop:
    """What the steps of one fit share: the signal on the device, the sampler, the predictor and the optimiser."""

    model: torch.nn.Module
    signal: Signal
    settings: TrainSettings
    sampler: Callable[[int], Batch]
    predictor: _Predictor
    optimizer: Adam
    project: Callable[[], Any] | None
    check_every: int
    train_index: torch.Tensor
    holdout_index: torch.Tensor
    generator: torch.Generator
    device: torch.device

    def update(self, value: torch.Tensor) -> None:
        """One optimiser step on the loss ``value``, then the model's projection (if it has one)."""
        self.optimizer.zero_grad()
        value.backward()
        self.optimizer.step()
        if self.project is not None:
            self.project()


def _setup(model: torch.nn.Module, signal: Signal, config: TrainConfig,
           make_sampler: Callable[[SamplerContext], Callable[[int], Batch]], device: torch.device,
           step_offset: int) -> _Loop:
    """Seed, split, move to ``device``, and build the sampler, the predictor and the optimiser (in this order)."""
    torch.manual_seed(config.seed + step_offset)
    generator = torch.Generator().manual_seed(config.seed + step_offset)
    train_index, holdout_index = holdout_split(signal.samples, config.holdout, config.seed)

    model.to(device)
    on_device = signal.to(device)
    settings = TrainSettings.of(config)
    sampler = make_sampler(SamplerContext(on_device, train_index.to(device), config.batch_size, generator, device))
    coords = on_device.coordinates().to(device)
    predictor = _Predictor(model, coords)
    phases = {id(p) for p in getattr(model, "phase_parameters", list)()}
    optimizer = Adam([(p, config.phase_lr_scale if id(p) in phases else 1.0) for p in model.parameters()],
                     lr=config.lr, betas=(0.9, config.beta2))
    return _Loop(model=model, signal=on_device, settings=settings, sampler=sampler, predictor=predictor,
                 optimizer=optimizer, project=getattr(model, "project_", None),
                 check_every=1 if device.type == "cpu" else 10, train_index=train_index, holdout_index=holdout_index,
                 generator=generator, device=device)


def _budget_spent(config: TrainConfig, step: int, seconds: float) -> str | None:
    """``steps`` or ``max_seconds`` once that budget is spent, else None."""
    if config.steps is not None and step >= config.steps:
        return "steps"
    if config.max_seconds is not None and seconds >= config.max_seconds:
        return "max_seconds"
    return None


def _record(loop: _Loop, config: TrainConfig, result: FitResult, hook: Any, step: int, seconds: float,
            loss_value: float, lr: float) -> bool:
    """Record the curve's point for ``step`` and tell the observers; True when the target PSNR is reached."""
    psnr = math.nan
    if loop.predictor.last is not None:
        seen, output = loop.predictor.last
        mse = float(torch.mean((output.detach() - seen.target) ** 2))
        psnr = psnr_from_mse(mse, loop.signal.data_range)
    point = {"step": step, "seconds": seconds, "loss": loss_value, "psnr": psnr, "lr": lr}
    result.curve.append(point)
    if hook is not None:
        progress = _progress(config, step, seconds, psnr)
        hook.inrkit_step_end(step=StepEnded(**point, progress=progress, model=loop.model))
    if config.target_psnr is None or not psnr >= config.target_psnr:
        return False
    return config.batch_size is None or _full_psnr(loop.predictor, loop.signal, loop.train_index) >= config.target_psnr


def fit(
    model: torch.nn.Module,
    signal: Signal,
    config: TrainConfig,
    loss: Callable[[FitContext, Batch], torch.Tensor],
    make_sampler: Callable[[SamplerContext], Callable[[int], Batch]],
    hook: Any = None,
    device: torch.device | None = None,
    step_offset: int = 0,
    start: TrainState | None = None,
    checkpoint: Checkpointing | None = None,
) -> FitResult:
    """Train ``model`` on ``signal``.

    Parameters
    ----------
    model:
        Maps ``[B, d]`` coordinates to ``[B, channels]``; moved to ``device``.
        If it has ``project_()``, it is called after every optimiser step.
    signal:
        The signal to fit.
    config:
        Stopping rules, learning rate and schedule, batch size, hold-out, seed.
    loss:
        ``loss(FitContext, Batch) -> scalar``.
    make_sampler:
        Sampler factory (see :class:`~inrkit.plugin.SamplerType`).
    hook:
        A pluggy hook relay (``host.pm.hook``) for the observer hooks, or None.
    device:
        Training device; default :func:`resolve_device` of ``config.device``.
    step_offset:
        Steps already taken by earlier fits of the same run (phases of a
        pruned fit): losses see ``step_offset + step`` and batches are drawn
        from a fresh stream, while the hold-out split stays the same.
    start, checkpoint:
        A :class:`TrainState` to continue from, bit for bit; when and where to save them.

    Returns
    -------
    FitResult

    Raises
    ------
    InrkitError
        When training diverges too often or runs out of CUDA memory (:mod:`inrkit.recovery`).
    """
    config = config.for_model(getattr(model, "config", None))  # lr None: the model's default learning rate
    device = device or resolve_device(config.device)
    if start is not None:
        model.load_state_dict(start.model)
    loop = _setup(model, signal, config, make_sampler, device, step_offset)
    result = FitResult(model=model, train_index=loop.train_index, holdout_index=loop.holdout_index)
    guard = Rollbacks(result, config)
    step, draws, seconds_before = 0, 0, 0.0
    if start is not None:
        step, draws, seconds_before = start.step, start.draws, start.seconds
        config = restore_start(loop, start, config, make_sampler, result, guard)
    if hook is not None:
        hook.inrkit_fit_start(info=FitStarted(signal=signal, model=model, config=loop.settings, device=device,
                                              parameters=stored_parameter_count(model)))

    began = time.perf_counter()
    saved_step, saved_seconds = step, seconds_before
    snapshot: TrainState | None = None
    try:
        while True:
            seconds = seconds_before + time.perf_counter() - began
            spent = _budget_spent(config, step, seconds)
            if spent is not None:
                result.stop_reason = spent
                break
            due = checkpoint is not None and checkpoint.due(step, seconds, saved_step, saved_seconds)
            snap = step % SNAPSHOT_EVERY == 0 or due
            rng_states = random_states(loop) if snap else None
            lr = lr_at(config, progress_of(config, step, seconds)) * guard.lr_scale
            loop.optimizer.lr = lr
            updating = False
            try:
                batch = loop.sampler(step)
                draws += 1
                loop.predictor.last = None
                value = loss(FitContext(model, loop.signal, loop.predictor, step + step_offset, loop.settings), batch)
                final = config.steps is not None and step == config.steps - 1
                recorded = step % loop.check_every == 0 or final
                if recorded or snap:
                    loss_value = float(value.detach())
                    problem = guard.problem(loss_value, loop.model if snap else None)
                    if problem is not None:
                        step = guard.roll_back(loop, snapshot, step, problem)
                        continue
                    curve_length = len(result.curve)
                    if recorded and _record(loop, config, result, hook, step, seconds, loss_value, lr):
                        result.stop_reason = "target_psnr"
                        break
                    if snap:
                        snapshot = capture(loop, step, seconds, draws - 1, rng_states, curve_length, guard)
                    if due:
                        checkpoint.save(replace(snapshot, curve=result.curve[:curve_length]))
                        saved_step, saved_seconds = step, seconds
                updating = True
                loop.update(value)
            except torch.cuda.OutOfMemoryError:
                value = None
                config = out_of_memory(loop, config, make_sampler, result, step, draws)
                if updating:  # the parameters may be half updated: continue from the last good state
                    step = guard.restore(loop, snapshot, step)
                continue
            step += 1
    except KeyboardInterrupt:
        result.stop_reason = "interrupted"
        if checkpoint is not None and snapshot is not None and snapshot.step > saved_step:
            checkpoint.save_interrupted(snapshot, result.curve)
    result.steps = step
    result.seconds = seconds_before + time.perf_counter() - began
    if hook is not None:
        hook.inrkit_fit_end(result=FitEnded.of(result))
    return result


def _progress(config: TrainConfig, step: int, seconds: float, psnr: float) -> float:
    """Progress for observers: the budget's share spent, or the share of the target PSNR reached if larger."""
    progress = progress_of(config, step, seconds)
    if config.target_psnr and math.isfinite(psnr):
        progress = max(progress, max(0.0, psnr) / config.target_psnr)
    return min(1.0, progress)


def _full_psnr(predictor: _Predictor, signal: Signal, train_index: torch.Tensor) -> float:
    device = signal.values.device
    index = train_index.to(device)
    with torch.no_grad():
        batch = Batch(coords=signal.coordinates().to(device)[index], target=signal.values[index], index=index)
        saved = predictor.last
        output = predictor(batch)
        predictor.last = saved
        mse = float(torch.mean((output - batch.target) ** 2))
    return psnr_from_mse(mse, signal.data_range)
