"""A pruned fit: one budget, sliced into phases of fitting, pruning and fine-tuning (METHOD.md section 5).

* :func:`l1_penalty` / :func:`with_l1`: ``alpha * sum |omega_g W|`` over the
  bounded layers' weights, added to any loss; it drives uninformative
  weights to zero.
* :func:`pruned_fit` runs consecutive fits (phases) on slices ``[start, end]``
  of one budget (:class:`PruneOptions` says which): add-prune rounds
  (:func:`inrkit.surgery.swap_inputs` between phases), cuts to a target
  size, or shrinking rounds while the PSNR holds
  (:func:`inrkit.surgery.shrink_to`, each followed by fine-tuning). The
  learning rate follows the trainer's one geometric schedule
  (:func:`inrkit.train.lr_at`) across the phases; the phases' records are
  merged into one :class:`~inrkit.train.FitResult` and observers see one fit.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import torch

from inrkit.config import PRUNE_L1, TrainConfig
from inrkit.errors import ConfigError
from inrkit.events import FitEnded, FitStarted, StepEnded
from inrkit.importance import lattice_model
from inrkit.metrics import psnr
from inrkit.model import stored_parameter_count
from inrkit.plugin_types import FitContext
from inrkit.signal import Batch, Signal
from inrkit.surgery import line_numbers, shrink_to, smallest_size, swap_inputs
from inrkit.train import FitResult, evaluate, fit, lr_at

#: Added to the run's seed for the add-prune generator (random phases, weights
#: and fallback frequencies of new input neurons), so that it draws other
#: numbers than the model's initialisation and the trainer's sampler.
ADD_PRUNE_SEED_OFFSET = 101


def l1_penalty(model: torch.nn.Module) -> torch.Tensor:
    """``sum |omega_g W|`` over every bounded layer's scaled weight."""
    model = lattice_model(model)
    return sum(layer.scaled_weight().abs().sum() for layer in model.hidden)


def with_l1(loss: Callable[[FitContext, Batch], torch.Tensor], alpha: float, schedule: str = "constant",
            total_steps: int | None = None) -> Callable[[FitContext, Batch], torch.Tensor]:
    """``loss + alpha(step) * l1_penalty(model)``.

    ``schedule``: ``constant``, or ``ramp`` (linear from 0 to ``alpha`` over
    the first half of ``total_steps``, so the fit first finds the signal).
    """
    if not (alpha >= 0 and math.isfinite(alpha)):
        raise ConfigError(f"--l1 must be a non-negative number, got {alpha}")
    if schedule not in ("constant", "ramp"):
        raise ConfigError(f"--l1-schedule must be constant or ramp, got {schedule!r}")
    if alpha == 0:
        return loss

    def penalised(context: FitContext, batch: Batch) -> torch.Tensor:
        weight = alpha
        if schedule == "ramp" and total_steps:
            weight = alpha * min(1.0, 2.0 * context.step / total_steps)
        return loss(context, batch) + weight * l1_penalty(context.model)

    return penalised


@dataclass
class PruneOptions:
    """How a fit prunes (CLI: ``--prune``, ``--l1``, ``--add-prune-every``; ``inrkit prune``).

    Attributes
    ----------
    l1, l1_schedule:
        L1 weight on the bounded layers' scaled weights (None:
        :data:`~inrkit.config.PRUNE_L1` when shrinking, else 0), and its
        schedule (``constant`` or ``ramp``).
    shrink:
        After a first fit on :attr:`fit_fraction` of the budget, prune in
        rounds (each followed by fine-tuning) while the training PSNR stays
        at or above the goal: the fit's ``target_psnr`` if set, else the
        first fit's PSNR minus :attr:`tolerance_db`. The last model that met
        the goal is kept.
    target_params:
        Prune to at most this many stored numbers in :attr:`rounds` equal
        geometric cuts, each fine-tuned, whatever the PSNR (``inrkit prune``).
    tolerance_db:
        PSNR the shrinking may give up (without a target PSNR).
    rounds:
        Most pruning rounds.
    cut:
        Share of the stored numbers the first shrinking round removes; halved
        after a round that misses the goal.
    fit_fraction:
        Share of the budget for the first fit when shrinking.
    add_prune_every, add_prune_count:
        Every this many steps (until 75% of the budget), replace this many
        input neurons (default 5% of them) with new lattice frequencies
        (:func:`swap_inputs`).
    grow:
        With a target PSNR that the first fit misses: refit from scratch at
        twice the size, at most this many times (each refit spends the
        first fit's share of the budget again).
    """

    l1: float | None = None
    l1_schedule: str = "constant"
    shrink: bool = False
    target_params: int | None = None
    tolerance_db: float = 0.5
    rounds: int = 6
    cut: float = 0.3
    fit_fraction: float = 0.5
    add_prune_every: int | None = None
    add_prune_count: int | None = None
    grow: int = 2

    def __post_init__(self) -> None:
        if self.l1 is None:
            self.l1 = PRUNE_L1 if self.shrink else 0.0
        if self.target_params is not None and self.target_params < 1:
            raise ConfigError(f"--target-params must be at least 1, got {self.target_params}")
        if not (self.tolerance_db >= 0 and math.isfinite(self.tolerance_db)):
            raise ConfigError(f"--prune-tolerance must be a non-negative number of dB, got {self.tolerance_db}")
        if self.add_prune_every is not None and self.add_prune_every < 1:
            raise ConfigError(f"--add-prune-every must be at least 1 step, got {self.add_prune_every}")
        if self.add_prune_count is not None and self.add_prune_count < 1:
            raise ConfigError(f"--add-prune-count must be at least 1, got {self.add_prune_count}")
        if self.add_prune_count is not None and self.add_prune_every is None:
            raise ConfigError("--add-prune-count needs --add-prune-every N (how often to replace frequencies)")
        if self.rounds < 1:
            raise ConfigError(f"pruning rounds must be at least 1, got {self.rounds}")
        with_l1(lambda context, batch: None, self.l1, self.l1_schedule)  # validates l1 and its schedule

    @property
    def active(self) -> bool:
        return bool(self.l1 or self.shrink or self.target_params or self.add_prune_every)


@dataclass
class PrunedFit:
    """What :func:`pruned_fit` returns: the final model, one merged training record, and the path taken."""

    result: FitResult
    path: list[dict[str, Any]] = field(default_factory=list)


def _phase_config(config: TrainConfig, start: float, end: float, target: float | None) -> TrainConfig:
    """The slice ``[start, end]`` (fractions) of the budget as a config of its own, on the global lr schedule.

    The phase's own geometric schedule runs from :func:`~inrkit.train.lr_at` of
    ``start`` to that of ``end``: the same curve as the whole budget's.
    """
    share = end - start
    return replace(
        config,
        # Phase lengths add up to the budget: each phase ends where the budget's fraction ``end`` does.
        steps=max(1, round(config.steps * end) - round(config.steps * start)) if config.steps else None,
        max_seconds=config.max_seconds * share if config.max_seconds else None,
        target_psnr=target,
        lr=lr_at(config, start),
        lr_final=lr_at(config, end),
    )


class _Recorder:
    """Merges the results of consecutive fits into one (steps and seconds continue)."""

    def __init__(self):
        self.curve: list[dict[str, float]] = []
        self.steps = 0
        self.seconds = 0.0
        self.first: FitResult | None = None
        self.last: FitResult | None = None
        self.rollbacks: list[dict] = []

    def add(self, result: FitResult) -> None:
        self.first = self.first or result
        for point in result.curve:
            self.curve.append({**point, "step": point["step"] + self.steps, "seconds": point["seconds"] + self.seconds})
        for event in getattr(result, "rollbacks", []):
            self.rollbacks.append({**event, "step": event["step"] + self.steps, "to_step": event["to_step"] + self.steps})
        self.steps += result.steps
        self.seconds += result.seconds
        self.last = result

    def merged(self, model: torch.nn.Module) -> FitResult:
        return FitResult(model=model, curve=self.curve, steps=self.steps, seconds=self.seconds,
                         stop_reason=self.last.stop_reason, train_index=self.first.train_index,
                         holdout_index=self.first.holdout_index, rollbacks=list(self.rollbacks))


def measured_psnr(model: torch.nn.Module, signal: Signal, index: torch.Tensor) -> tuple[float, torch.Tensor]:
    """Training PSNR of ``model`` over the samples ``index``, and its reconstruction of every sample."""
    reconstruction = evaluate(model, signal.coordinates())
    return psnr(reconstruction[index], signal.values[index], signal.data_range), reconstruction


class _PhaseRelay:
    """Passes a phase's observer calls on as one fit: steps, seconds and progress run on across phases.

    ``inrkit_fit_start`` goes out once (first phase), ``inrkit_fit_end`` once
    (by :func:`pruned_fit`, with the merged result); each step carries
    ``phase`` (``"3: prune + fine-tune"``) for progress displays.
    """

    def __init__(self, hook: Any, record: _Recorder):
        self.hook, self.record = hook, record
        self.window, self.label, self.started = (0.0, 1.0), "", False

    def inrkit_fit_start(self, info: FitStarted) -> None:
        if not self.started:
            self.started = True
            self.hook.inrkit_fit_start(info=info)

    def inrkit_step_end(self, step: StepEnded) -> None:
        low, high = self.window
        self.hook.inrkit_step_end(step=replace(
            step, step=step.step + self.record.steps, seconds=step.seconds + self.record.seconds,
            progress=low + (high - low) * step.progress, phase=self.label))

    def inrkit_fit_end(self, result: FitEnded) -> None:
        """Swallowed: the merged result is announced once at the end."""


class _Interrupted(Exception):
    """Ctrl-C in one phase ends the whole pruned fit (with the model trained so far)."""

    def __init__(self, model: torch.nn.Module):
        super().__init__("interrupted")
        self.model = model


class _Phases:
    """Runs consecutive fits on slices of one budget and records the path."""

    def __init__(self, signal, config, loss, make_sampler, hook, device):
        self.signal, self.config, self.loss = signal, config, loss
        self.make_sampler, self.device = make_sampler, device
        self.record = _Recorder()
        self.relay = _PhaseRelay(hook, self.record) if hook is not None else None
        self.path: list[dict[str, Any]] = []

    def run(self, model, start: float, end: float, target: float | None, action: str, **facts):
        if self.relay is not None:
            self.relay.window, self.relay.label = (start, end), f"{len(self.path)}: {action}"
        result = fit(model, self.signal, _phase_config(self.config, start, end, target), self.loss,
                     self.make_sampler, self.relay, self.device, step_offset=self.record.steps)
        self.record.add(result)
        quality, reconstruction = measured_psnr(result.model, self.signal, result.train_index)
        self.path.append({"phase": len(self.path), "action": action,
                          "parameters": stored_parameter_count(result.model), "psnr": quality,
                          "steps": self.record.steps, "seconds": self.record.seconds, **facts})
        if result.stop_reason == "interrupted":
            self.path[-1]["interrupted"] = True
            raise _Interrupted(result.model)
        return result.model, quality, reconstruction


def pruned_fit(model: torch.nn.Module, signal: Signal, config: TrainConfig, loss: Callable, make_sampler: Callable,
               options: PruneOptions, hook: Any = None, device: torch.device | None = None,
               grow: Callable[[int], torch.nn.Module] | None = None, pretrained: bool = False) -> PrunedFit:
    """Train with L1, add-prune and/or shrinking rounds (see :class:`PruneOptions`).

    ``grow(params)`` builds a fresh model of about ``params`` stored numbers
    (for a target PSNR the first fit misses). ``pretrained``: the model is
    already fitted, so pruning to ``target_params`` starts at once and the
    whole budget goes to fine-tuning between cuts. The budget (``config.steps``
    and/or ``config.max_seconds``; 2000 steps if neither) covers every phase;
    the learning rate follows one geometric schedule across the phases.
    """
    lattice_model(model)
    if config.steps is None and config.max_seconds is None:
        config = replace(config, steps=2000)
    config = config.for_model(getattr(model, "config", None))  # lr None: the model's default
    if options.l1 and options.l1_schedule == "ramp" and config.steps is None:
        raise ConfigError("--l1-schedule ramp needs a --steps budget (it ramps over the first half of the steps)")
    penalised = with_l1(loss, options.l1, options.l1_schedule, config.steps)
    if options.target_params and options.target_params < smallest_size(model):  # say so before any training
        shrink_to(model, options.target_params)  # raises with the reason (the lines kept, the smallest network)
    phases = _Phases(signal, config, penalised, make_sampler, hook, device)
    later = options.shrink or options.target_params
    start = 0.0
    try:
        if options.add_prune_every:
            model = _add_prune(model, config, options, phases, options.fit_fraction if later else 1.0)
            start = options.fit_fraction
        if options.target_params:
            model = _cut_to_target(model, options, phases, start, pretrained)
        elif options.shrink:
            model = _shrink(model, config, options, phases, grow, fitted=bool(options.add_prune_every))
        elif not options.add_prune_every:
            model, _, _ = phases.run(model, 0.0, 1.0, config.target_psnr, "fit")
    except _Interrupted as stop:
        model = stop.model
    merged = phases.record.merged(model)
    if hook is not None:
        hook.inrkit_fit_end(result=FitEnded.of(merged))
    return PrunedFit(merged, phases.path)


def _add_prune(model, config, options, phases: _Phases, share: float):
    generator = torch.Generator().manual_seed(config.seed + ADD_PRUNE_SEED_OFFSET)
    budget_steps = config.steps or options.add_prune_every * 10
    rounds = max(1, math.ceil(budget_steps * share / options.add_prune_every))
    count = options.add_prune_count or max(1, round(0.05 * model.input.frequencies.shape[0]))
    for index in range(rounds):
        start, end = share * index / rounds, share * (index + 1) / rounds
        model, _, reconstruction = phases.run(model, start, end, None, "fit (add-prune)")
        if index + 1 < rounds and (index + 1) / rounds <= 0.75:
            model, swap = swap_inputs(model, count, phases.signal, generator,
                                      reconstruction.to(phases.signal.values.dtype))
            phases.path[-1].update(swapped=len(swap["added"]), from_residual=swap["from_residual"])
    return model


def _cut_to_target(model, options, phases: _Phases, start: float, pretrained: bool):
    if start == 0.0 and not pretrained:
        model, _, _ = phases.run(model, 0.0, options.fit_fraction, None, "fit")
        start = options.fit_fraction
    current = stored_parameter_count(model)
    rounds = options.rounds
    if phases.config.steps:
        rounds = max(1, min(rounds, round(phases.config.steps * (1 - start))))
    ratio = (options.target_params / current) ** (1 / rounds) if current > options.target_params else 1.0
    coords = phases.signal.coordinates()
    for index in range(rounds):
        goal = max(options.target_params, int(current * ratio ** (index + 1)))
        model = shrink_to(model, goal, coords)
        end = start + (1 - start) / (rounds - index)
        model, _, _ = phases.run(model, start, end, None, "prune + fine-tune")
        start = end
    return model


def _shrink(model, config, options, phases: _Phases, grow, fitted: bool):
    target = config.target_psnr
    if fitted:
        quality = phases.path[-1]["psnr"]
    else:
        model, quality, _ = phases.run(model, 0.0, options.fit_fraction, target, "fit")
    grown = 0
    while target is not None and quality < target and grow is not None and grown < options.grow:
        grown += 1
        model, quality, _ = phases.run(grow(2 * stored_parameter_count(model)), 0.0, options.fit_fraction, target,
                                       "grow x2, refit")
    goal = target if target is not None else quality - options.tolerance_db
    phases.path[-1]["goal"] = goal
    if quality < goal:
        return model
    best, cut, start = copy.deepcopy(model), options.cut, options.fit_fraction
    coords = phases.signal.coordinates()
    rounds = options.rounds
    if config.steps:
        rounds = max(1, min(rounds, round(config.steps * (1 - start))))
    for index in range(rounds):
        end = start + (1 - start) / (rounds - index)
        lines = line_numbers(best)  # kept whole: the cut applies to the network
        goal_params = lines + int((stored_parameter_count(best) - lines) * (1 - cut))
        if goal_params < smallest_size(best):
            break  # the network cannot shrink further
        candidate = shrink_to(copy.deepcopy(best), goal_params, coords)
        candidate, quality, _ = phases.run(candidate, start, end, target, "prune + fine-tune", goal=goal)
        start = end
        accepted = quality >= goal
        phases.path[-1]["accepted"] = accepted
        if accepted:
            best = candidate
        else:
            cut /= 2
    return best



__all__ = ["ADD_PRUNE_SEED_OFFSET", "PruneOptions", "PrunedFit", "l1_penalty", "measured_psnr", "pruned_fit", "with_l1"]
