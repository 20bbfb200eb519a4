"""Never lose work inside a fit: train states, rollbacks after divergence, the CUDA out-of-memory fallback.

:func:`inrkit.train.fit` keeps a :class:`TrainState` every :data:`SNAPSHOT_EVERY`
steps (at a step whose loss was healthy): the model, Adam's state and the
random states. A NaN or infinite loss or weight, or a loss above
:data:`EXPLOSION_FACTOR` x the best so far, rolls back to it with the whole
remaining learning-rate schedule halved (:class:`Rollbacks`; a warning each
time, an error after :data:`MAX_ROLLBACKS`). :class:`Checkpointing` hands the
same states to a writer (:mod:`inrkit.resume`), and ``fit(start=state)``
continues from one bit for bit. On CUDA, running out of memory halves the
batch, or replaces full batches by stratified batches of half the samples.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import torch

from inrkit.config import TrainConfig
from inrkit.errors import InrkitError, InrkitWarning

if TYPE_CHECKING:
    from inrkit.train import FitResult, _Loop

#: Steps between the in-memory snapshots a diverged fit rolls back to. A multiple of the
#: CUDA loss-reading interval (10), so that every snapshot is taken at a step whose loss was read.
#: Cost: one copy of the parameters and the two Adam moments per snapshot (measured on camera-128
#: at the default size: see the commit message; well under 3% of the step time).
SNAPSHOT_EVERY = 10
#: A loss above this multiple of the best loss so far (when that is positive) means divergence.
#: Why 1e3 (30 dB): the noise of mini-batch losses and the bumps of a healthy Adam run stay within a
#: factor of ten, and a rise of 30 dB is never recovered within the decaying schedule (``--lr 1e6``
#: on a photo jumps by 10 orders of magnitude in one step); a factor that large never fires on a
#: healthy fit, whose bytes therefore stay what they were.
EXPLOSION_FACTOR = 1e3
#: A loss this far below the fit's first loss (60 dB) is memorised: the signal is matched to float32 rounding,
#: where losses of 1e-14 and 1e-11 are both noise. The divergence rule measures jumps from
#: ``max(best so far, first loss x MEMORISED_RATIO)``, so such a fit is never called diverged.
MEMORISED_RATIO = 1e-6
#: Rollbacks (each halving the learning rate) before a fit gives up with an error.
MAX_ROLLBACKS = 5
#: The smallest batch the out-of-memory fallback halves to before giving up.
SMALLEST_BATCH = 256

@dataclass
class TrainState:
    """Everything needed to continue a fit exactly where it was, at the start of step ``step``.

    Taken by the loop at a step whose loss was healthy, before that step's batch is drawn; kept in
    memory (rollbacks) and handed to :class:`Checkpointing` (``inrkit fit --checkpoint-every``);
    :func:`fit` continues from one with ``start=``.

    Attributes
    ----------
    step, seconds:
        Steps taken and seconds of training spent (the learning-rate schedule's position).
    draws:
        Batches the sampler has drawn (more than ``step`` after rollbacks); a resumed fit draws as
        many again so that a sampler's own state (e.g. ``uniform``'s epoch order) is the same.
    model:
        The model's ``state_dict`` (copies).
    optimizer:
        Adam's state: ``steps`` (an int), ``first`` and ``second`` (lists of tensors).
    rng, generator, cuda_rng:
        The torch CPU generator state, the sampler's generator state (uint8 tensors) and the CUDA
        generator's when training on CUDA.
    curve:
        The curve's points before ``step`` (in a checkpoint); an in-memory snapshot keeps only
        their number, ``curve_length``.
    rollbacks, batch_changes:
        As in :class:`FitResult`, so far.
    lr_scale:
        The multiplier of the whole learning-rate schedule (halved by each rollback).
    best_loss:
        The best loss so far (the divergence rule's reference).
    first_loss:
        The fit's first loss (the scale below which a loss counts as memorised, :data:`MEMORISED_RATIO`).
    """

    step: int
    seconds: float
    draws: int
    model: dict[str, torch.Tensor]
    optimizer: dict[str, Any]
    rng: torch.Tensor
    generator: torch.Tensor
    cuda_rng: torch.Tensor | None = None
    curve: list[dict[str, float]] = field(default_factory=list)
    curve_length: int = 0
    rollbacks: list[dict[str, Any]] = field(default_factory=list)
    batch_changes: list[dict[str, Any]] = field(default_factory=list)
    lr_scale: float = 1.0
    best_loss: float = math.inf
    first_loss: float = math.inf


@dataclass
class Checkpointing:
    """When :func:`fit` hands a :class:`TrainState` (with its curve) to ``save``: every ``steps`` steps
    and/or every ``seconds`` seconds, and once more when Ctrl-C stops the fit."""

    save: Callable[[TrainState], None]
    steps: int | None = None
    seconds: float | None = None

    def due(self, step: int, seconds: float, last_step: int, last_seconds: float) -> bool:
        """True when a checkpoint is due at the start of ``step``."""
        if step == last_step:
            return False
        by_steps = self.steps is not None and step % self.steps == 0
        return by_steps or (self.seconds is not None and seconds - last_seconds >= self.seconds)

    def save_interrupted(self, snapshot: TrainState, curve: list[dict[str, float]]) -> None:
        """After Ctrl-C: save the freshest good state, for ``--resume`` (a second Ctrl-C is held back meanwhile)."""
        from inrkit.atomic import deferred_interrupt

        with deferred_interrupt():
            self.save(replace(snapshot, curve=curve[:snapshot.curve_length]))


class Rollbacks:
    """The divergence rule and the rollbacks of one fit (see :data:`EXPLOSION_FACTOR`)."""

    def __init__(self, result: FitResult, config: TrainConfig):
        self.result = result
        self.config = config
        self.lr_scale = 1.0
        self.best = math.inf
        self.first = math.inf

    def problem(self, loss_value: float, model: torch.nn.Module | None) -> str | None:
        """Why the state that gave ``loss_value`` diverged (its weights checked too when ``model`` is given), or None."""
        if not math.isfinite(loss_value):
            return f"the loss is {loss_value}"
        if self.first == math.inf:
            self.first = loss_value
        reference = max(self.best, self.first * MEMORISED_RATIO)  # inf until a best exists: no rule yet
        if 0 < reference < math.inf and loss_value > EXPLOSION_FACTOR * reference:
            return (f"the loss jumped to {loss_value:.3g}, more than {EXPLOSION_FACTOR:g} x the best so far "
                    f"({self.best:.3g})")
        if model is not None and not all(bool(torch.isfinite(p).all()) for p in model.parameters()):
            return "a weight is NaN or infinite"
        self.best = min(self.best, loss_value)
        return None

    def roll_back(self, loop: _Loop, snapshot: TrainState | None, step: int, problem: str) -> int:
        """Return to ``snapshot`` with the learning rate halved; the step to continue from."""
        lr_now = self.config.lr * self.lr_scale
        if snapshot is None:
            raise InrkitError(f"training diverged at step {step} before any good state to return to ({problem}); "
                              f"lower --lr (now {lr_now:g})")
        if len(self.result.rollbacks) >= MAX_ROLLBACKS:
            raise InrkitError(f"training diverged at step {step} again ({problem}) after {MAX_ROLLBACKS} rollbacks, "
                              f"each halving the learning rate; lower --lr (started at {self.config.lr:g}, "
                              f"try {lr_now / 2:g} or less)")
        self.lr_scale /= 2
        self.result.rollbacks.append({"step": step, "to_step": snapshot.step, "reason": problem,
                                      "lr_scale": self.lr_scale})
        warnings.warn(f"training diverged at step {step} ({problem}); rolled back to step {snapshot.step} and "
                      f"halved the learning rate (x{self.lr_scale:g} from now on)", InrkitWarning, stacklevel=3)
        return self.restore(loop, snapshot, step)

    def restore(self, loop: _Loop, snapshot: TrainState | None, step: int) -> int:
        """Put ``snapshot``'s model and optimiser state back; the step to continue from."""
        if snapshot is None:
            raise InrkitError(f"training failed at step {step} before any good state to return to; "
                              "lower --lr, or use a smaller model (--params)")
        load_state(loop, snapshot)
        del self.result.curve[snapshot.curve_length:]
        self.best, self.first = snapshot.best_loss, snapshot.first_loss
        return snapshot.step


def random_states(loop: _Loop) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """The torch CPU, sampler and (on CUDA) CUDA generator states."""
    cuda = torch.cuda.get_rng_state(loop.device) if loop.device.type == "cuda" else None
    return torch.get_rng_state(), loop.generator.get_state(), cuda


def capture(loop: _Loop, step: int, seconds: float, draws: int, random_states: tuple, curve_length: int,
             guard: Rollbacks) -> TrainState:
    """A :class:`TrainState` of the start of ``step`` (before its batch was drawn)."""
    rng, generator, cuda_rng = random_states
    optimizer = loop.optimizer
    return TrainState(
        step=step, seconds=seconds, draws=draws,
        model={name: tensor.detach().clone() for name, tensor in loop.model.state_dict().items()},
        optimizer={"steps": optimizer.steps, "first": [t.clone() for t in optimizer.first],
                   "second": [t.clone() for t in optimizer.second]},
        rng=rng, generator=generator, cuda_rng=cuda_rng, curve_length=curve_length,
        rollbacks=list(guard.result.rollbacks), batch_changes=list(guard.result.batch_changes),
        lr_scale=guard.lr_scale, best_loss=guard.best, first_loss=guard.first,
    )


@torch.no_grad()
def load_state(loop: _Loop, state: TrainState) -> None:
    """Copy ``state``'s model and optimiser tensors into the loop's (in place: the cached basis stays valid)."""
    for name, tensor in loop.model.state_dict().items():
        tensor.copy_(state.model[name])
    optimizer = loop.optimizer
    optimizer.steps = int(state.optimizer["steps"])
    for mine, saved in zip(optimizer.first + optimizer.second, state.optimizer["first"] + state.optimizer["second"]):
        mine.copy_(saved)


def restore_start(loop: _Loop, start: TrainState, config: TrainConfig, make_sampler: Callable,
                   result: FitResult, guard: Rollbacks) -> TrainConfig:
    """Continue from ``start``: optimiser, curve, rollbacks and the random streams as they were.

    The sampler draws its ``start.draws`` batches again (applying the batch changes where they
    happened), so that its own state is the one it had; then the generators are set.
    """
    load_state(loop, start)
    changes = {change["draw"]: change for change in start.batch_changes}
    for draw in range(start.draws):
        if draw in changes:
            config = _apply_batch_change(loop, config, make_sampler, changes[draw])
        loop.sampler(draw)
    torch.set_rng_state(start.rng)
    loop.generator.set_state(start.generator)
    if start.cuda_rng is not None and loop.device.type == "cuda":
        torch.cuda.set_rng_state(start.cuda_rng, loop.device)
    result.curve.extend(start.curve)
    result.rollbacks.extend(start.rollbacks)
    result.batch_changes.extend(start.batch_changes)
    guard.lr_scale, guard.best, guard.first = start.lr_scale, start.best_loss, start.first_loss
    return config


def _apply_batch_change(loop: _Loop, config: TrainConfig, make_sampler: Callable,
                        change: dict[str, Any]) -> TrainConfig:
    from inrkit.events import TrainSettings
    from inrkit.plugin_types import SamplerContext
    from inrkit.sampling import stratified_sampler

    config = replace(config, batch_size=change["batch_size"], sampler=change["sampler"])
    make = stratified_sampler if change["sampler"] == "stratified" else make_sampler
    loop.settings = TrainSettings.of(config)  # the losses see the new batch size
    loop.sampler = make(SamplerContext(loop.signal, loop.train_index.to(loop.device), config.batch_size,
                                       loop.generator, loop.device))
    return config


def out_of_memory(loop: _Loop, config: TrainConfig, make_sampler: Callable, result: FitResult, step: int,
                   draws: int) -> TrainConfig:
    """After CUDA ran out of memory: half the batch, or stratified batches of half the samples instead of full
    batches; the new config. Raises :class:`InrkitError` below :data:`SMALLEST_BATCH`."""
    loop.optimizer.zero_grad()
    loop.predictor.last = None
    loop.predictor._gathered = None
    if loop.device.type == "cuda":
        torch.cuda.empty_cache()
    samples = loop.train_index.numel()
    full = config.batch_size is None or config.batch_size >= samples
    size = (samples if full else config.batch_size) // 2
    if size < SMALLEST_BATCH:
        raise InrkitError(f"out of GPU memory at step {step} even with batches of {size * 2} samples; "
                          "use a smaller model (--params) or --device cpu")
    change = {"step": step, "draw": draws, "batch_size": size, "sampler": "stratified" if full else config.sampler}
    result.batch_changes.append(change)
    warnings.warn(f"out of GPU memory at step {step}; continuing with {change['sampler']} batches of {size} samples",
                  InrkitWarning, stacklevel=3)
    return _apply_batch_change(loop, config, make_sampler, change)


__all__ = ["EXPLOSION_FACTOR", "MAX_ROLLBACKS", "SMALLEST_BATCH", "SNAPSHOT_EVERY", "Checkpointing", "Rollbacks",
           "TrainState", "capture", "load_state", "out_of_memory", "random_states", "restore_start"]
