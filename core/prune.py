"""Pruning and the add-prune loop: find an adequate size for a signal (METHOD.md section 5).

* :func:`l1_penalty` / :func:`with_l1`: ``alpha * sum |omega_g W|`` over the
  bounded layers' weights, added to any loss; it drives uninformative
  weights to zero.
* :func:`input_importance`: for input neuron ``j``,
  ``s_j = sum_i h_i |a_ij|`` with ``a_ij = omega_g W_ij`` (the first bounded
  layer's scaled weight) and ``h_i`` the importance of hidden neuron ``i``
  (:func:`hidden_weights`: ``|| scale * C[:, i] ||`` through the head and the
  output map, propagated back through deeper layers as
  ``h_i = sum_k h'_k |a'_ki|``). Because ``sin`` is 1-Lipschitz and
  ``|sin| <= 1``, ``s_j`` bounds how much removing neuron ``j`` can change the
  output anywhere: ``|f(x) - f_without_j(x)| <= s_j``. A zero column gives
  ``s_j = 0`` and removing it changes nothing.
* :func:`hidden_importance`: ``g_i = h_i min(1, sum_j |a_ij|)``, a bound on
  how much hidden neuron ``i`` can vary around a constant (a neuron with a
  zero row is constant and is folded into the head's bias when removed).
* :func:`spectral_contribution`: the spectrum tools' view: the amplitude of
  input neuron ``j``'s own frequency ``f_j`` in the output (the first-order
  Jacobi-Anger term, ``2 J_1(a_ij) cos(b_i) prod_{l != j} J_0(a_il)`` per
  hidden neuron, through the head).
* :func:`remove_inputs`, :func:`remove_hidden`, :func:`shrink_to`: structural
  pruning. The returned model is smaller (new tensors), not masked.
* :func:`swap_inputs`: one add-prune move: drop the ``k`` least important
  input neurons and add ``k`` unused lattice frequencies where the residual
  has energy (:func:`residual_candidates`), with small weights so the
  function barely moves.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import torch

from inrkit.config import ModelConfig, TrainConfig
from inrkit.errors import ConfigError
from inrkit.lattice import in_half_space
from inrkit.model import SinusoidalINR, stored_parameter_count
from inrkit.plugin_types import FitContext, FitEnded, FitStarted, StepEnded
from inrkit.signal import Batch, Signal
from inrkit.sizing import stored_count
from inrkit.train import FitResult

#: Scale of the weights of a newly added input neuron, relative to its column bound.
NEW_WEIGHT_SCALE = 0.01


def _check(model: torch.nn.Module) -> SinusoidalINR:
    if not isinstance(model, SinusoidalINR):
        raise ConfigError("pruning applies to lattice and uniform models (SinusoidalINR), not SIREN")
    return model


def l1_penalty(model: torch.nn.Module) -> torch.Tensor:
    """``sum |omega_g W|`` over every bounded layer's scaled weight."""
    model = _check(model)
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


@torch.no_grad()
def hidden_weights(model: torch.nn.Module) -> list[torch.Tensor]:
    """Per bounded layer, the importance ``h`` of each of its neurons (how much the output moves per unit of it)."""
    model = _check(model)
    head = model.head.weight * model.output.scale.to(model.head.weight.dtype)[:, None]
    weights = [head.norm(dim=0)]
    for layer in reversed(model.hidden[1:]):
        weights.insert(0, layer.scaled_weight().abs().T @ weights[0])
    return weights


@torch.no_grad()
def input_importance(model: torch.nn.Module) -> torch.Tensor:
    """``[m]`` scores ``s_j = sum_i h_i |a_ij|``: a bound on the output change if input neuron ``j`` is removed."""
    model = _check(model)
    return model.hidden[0].scaled_weight().abs().T @ hidden_weights(model)[0]


@torch.no_grad()
def hidden_importance(model: torch.nn.Module) -> torch.Tensor:
    """``[n]`` scores of the last bounded layer's neurons: ``h_i min(1, sum_j |a_ij|)``."""
    model = _check(model)
    last = model.hidden[-1]
    variation = last.scaled_weight().abs().sum(dim=1).clamp(max=1.0)
    return hidden_weights(model)[-1] * variation


@torch.no_grad()
def spectral_contribution(model: torch.nn.Module) -> torch.Tensor:
    """``[m]`` amplitude of each input frequency ``f_j`` itself in the output (one hidden layer).

    The first-order term of the Jacobi-Anger expansion: hidden neuron ``i``
    contributes ``2 J_1(a_ij) cos(omega_g b_i) prod_{l != j} J_0(a_il)`` to
    the coefficient of ``sin(omega_j . x + phi_j)``; the head sums them (norm
    over channels, in the signal's units).
    """
    from scipy.special import j0, j1

    model = _check(model)
    if len(model.hidden) != 1:
        raise ConfigError("the spectral contribution is computed for models with one hidden layer")
    layer = model.hidden[0]
    a = layer.scaled_weight().detach().double().cpu().numpy()
    bias = (layer.omega_g * layer.bias).detach().double().cpu().numpy()
    zeroth = j0(a)
    safe = np.where(np.abs(zeroth) > 1e-12, zeroth, 1e-12)
    product = np.prod(zeroth, axis=1, keepdims=True) / safe
    per_neuron = 2 * j1(a) * np.cos(bias)[:, None] * product  # [n, m]
    head = (model.head.weight * model.output.scale[:, None]).detach().double().cpu().numpy()  # [channels, n]
    return torch.from_numpy(np.linalg.norm(head @ per_neuron, axis=0))


def _rebuild(model: SinusoidalINR, config: ModelConfig, frequencies: torch.Tensor,
             tensors: dict[str, torch.Tensor]) -> SinusoidalINR:
    fresh = SinusoidalINR(config, frequencies.to(torch.long))
    state = fresh.state_dict()
    state.update({name: value.detach().clone().to(state[name].dtype) for name, value in tensors.items()})
    fresh.load_state_dict(state, strict=True)
    return fresh.to(next(model.parameters()).device)


def _first_layer_columns(layer, keep: torch.Tensor, prefix: str) -> dict[str, torch.Tensor]:
    if layer.mode == "tanh":
        return {f"{prefix}.raw_weight": layer.raw_weight[:, keep], f"{prefix}.column_scale": layer.column_scale[keep]}
    return {f"{prefix}.weight": layer.weight[:, keep]}


@torch.no_grad()
def remove_inputs(model: torch.nn.Module, keep: torch.Tensor) -> SinusoidalINR:
    """A smaller model without the input neurons where ``keep`` (``[m]`` bool) is False.

    Removes ``f_j``, ``phi_j`` and column ``j`` of the first bounded layer.
    Exact when those columns are zero.
    """
    model = _check(model)
    keep = keep.to(torch.bool).cpu()
    if keep.numel() != model.input.frequencies.shape[0] or int(keep.sum()) < 1:
        raise ConfigError("keep at least one input neuron (and give one flag per input neuron)")
    device_keep = keep.to(model.input.phases.device)
    tensors = {name: value for name, value in model.state_dict().items()}
    tensors["input.phases"] = model.input.phases[device_keep]
    tensors.update(_first_layer_columns(model.hidden[0], device_keep, "hidden.0"))
    frequencies = model.input.frequencies[device_keep].cpu()
    tensors["input.frequencies"] = frequencies
    config = replace(model.config, input_frequencies=int(keep.sum()))
    return _rebuild(model, config, frequencies, tensors)


@torch.no_grad()
def remove_hidden(model: torch.nn.Module, keep: torch.Tensor, coords: torch.Tensor | None = None) -> SinusoidalINR:
    """A smaller model without the hidden neurons where ``keep`` (``[n]`` bool) is False (one hidden layer).

    Each removed neuron's mean activation (its constant value if its row is
    zero; the mean over ``coords`` otherwise, or 0 without coords) times its
    head column is folded into the head's bias, so a constant neuron is
    removed exactly.
    """
    model = _check(model)
    if len(model.hidden) != 1:
        raise ConfigError("hidden-neuron pruning supports one hidden layer (the default); prune input neurons instead")
    keep = keep.to(torch.bool).cpu()
    if keep.numel() != model.config.width or int(keep.sum()) < 1:
        raise ConfigError("keep at least one hidden neuron (and give one flag per hidden neuron)")
    layer = model.hidden[0]
    device = layer.bias.device
    dropped = (~keep).to(device)
    if coords is not None:
        from inrkit.train import rows_for

        total = torch.zeros(model.config.width, device=device, dtype=layer.bias.dtype)
        chunk = rows_for(model)
        for start in range(0, coords.shape[0], chunk):
            part = coords[start : start + chunk].to(device, layer.bias.dtype)
            total += layer(model.input(part)).sum(dim=0)
        mean = total / coords.shape[0]
    else:
        constant = layer.scaled_weight().abs().sum(dim=1) == 0
        mean = torch.where(constant, torch.sin(layer.omega_g * layer.bias), torch.zeros_like(layer.bias))
    device_keep = keep.to(device)
    tensors = {name: value for name, value in model.state_dict().items()}
    prefix = "hidden.0"
    if layer.mode == "tanh":
        tensors[f"{prefix}.raw_weight"] = layer.raw_weight[device_keep]
    else:
        tensors[f"{prefix}.weight"] = layer.weight[device_keep]
    tensors[f"{prefix}.bias"] = layer.bias[device_keep]
    tensors["head.weight"] = model.head.weight[:, device_keep]
    tensors["head.bias"] = model.head.bias + model.head.weight[:, dropped] @ mean[dropped]
    config = replace(model.config, width=int(keep.sum()))
    return _rebuild(model, config, model.input.frequencies.cpu(), tensors)


def widths_at(config: ModelConfig, params: int) -> tuple[int, int]:
    """Input and hidden widths ``(m', n')``, scaled down together from ``config``'s, storing at most ``params`` numbers."""
    def count(m: int, n: int) -> int:
        return stored_count(config.architecture, config.dims, config.out_channels, m, n, config.hidden_layers,
                            config.bound_mode)

    if count(1, 1) > params:
        raise ConfigError(f"--target-params {params} is below the smallest model of this shape ({count(1, 1)} numbers)")
    low, high = 0.0, 1.0
    for _ in range(60):
        middle = (low + high) / 2
        m = max(1, int(config.input_frequencies * middle))
        n = max(1, int(config.width * middle))
        low, high = (middle, high) if count(m, n) <= params else (low, middle)
    return max(1, int(config.input_frequencies * low)), max(1, int(config.width * low))


@torch.no_grad()
def shrink_to(model: torch.nn.Module, params: int, coords: torch.Tensor | None = None) -> SinusoidalINR:
    """Remove the least important input and hidden neurons until at most ``params`` numbers are stored.

    Input and hidden widths shrink in proportion (hidden neurons only for
    one-hidden-layer models); the neurons kept are the most important ones
    (:func:`input_importance`, :func:`hidden_importance`).
    """
    model = _check(model)
    if stored_parameter_count(model) <= params:
        return model
    if len(model.hidden) == 1:
        m, n = widths_at(model.config, params)
        model = _keep_top(model, hidden_importance(model), n, hidden=True, coords=coords)
    else:
        config = model.config

        def count(m: int) -> int:
            return stored_count(config.architecture, config.dims, config.out_channels, m, config.width,
                                config.hidden_layers, config.bound_mode)

        if count(1) > params:
            raise ConfigError(
                f"a model with {config.hidden_layers} hidden layers of width {config.width} stores at least "
                f"{count(1)} numbers after removing input neurons (hidden neurons are pruned in one-hidden-layer "
                f"models only); choose --target-params of at least {count(1)}, or fit with --hidden-layers 1")
        m = model.input.frequencies.shape[0]
        while m > 1 and count(m) > params:
            m -= 1
    return _keep_top(model, input_importance(model), m, hidden=False)


def _keep_top(model: SinusoidalINR, scores: torch.Tensor, count: int, hidden: bool,
              coords: torch.Tensor | None = None) -> SinusoidalINR:
    keep = torch.zeros(scores.numel(), dtype=torch.bool)
    keep[torch.argsort(scores.cpu(), descending=True)[:count]] = True
    return remove_hidden(model, keep, coords) if hidden else remove_inputs(model, keep)


def residual_candidates(model: torch.nn.Module, signal: Signal, reconstruction: torch.Tensor,
                        count: int, bandlimit: tuple[int, ...]) -> torch.Tensor:
    """Up to ``count`` unused lattice frequencies (``[k, d]``) where the residual's spectrum is strongest.

    The residual (target minus reconstruction) of a gridded signal is
    transformed on the model's lattice (:func:`inrkit.spectrum.grid_spectrum`).
    Candidates lie in the half-space within ``bandlimit``, are not input
    frequencies yet, and score their residual power, halved where a sum or
    difference of two current input frequencies already lands (the hidden
    layer reaches those, weakly). Empty for scattered signals.
    """
    from inrkit.spectrum import grid_spectrum

    model = _check(model)
    if signal.grid_shape is None or count < 1:
        return torch.empty(0, signal.dims, dtype=torch.long)
    residual = (signal.values - reconstruction).double().numpy().reshape(*signal.grid_shape, signal.channels)
    spectrum = grid_spectrum(residual, signal.extent, model.config.period)
    power = (np.abs(spectrum) ** 2).sum(axis=-1)
    samples = power.shape[0]
    reach = [min(b, samples // 2 - 1) for b in bandlimit]
    axes = [np.arange(-r, r + 1) for r in reach]
    grid = np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1).reshape(-1, signal.dims)
    grid = grid[in_half_space(torch.from_numpy(grid)).numpy()]
    scores = power[tuple((grid % samples).T)]
    current = model.input.frequencies.cpu().numpy().astype(np.int64)
    used = {tuple(f) for f in current} | {tuple(-f) for f in current}
    pairs = np.concatenate([current[:, None, :] + current[None, :, :], current[:, None, :] - current[None, :, :]])
    reached = {tuple(f) for f in pairs.reshape(-1, signal.dims)}
    fresh = np.array([tuple(q) not in used for q in grid])
    weight = np.array([0.5 if tuple(q) in reached else 1.0 for q in grid])
    scores = np.where(fresh, scores * weight, -1.0)
    order = np.argsort(-scores, kind="stable")[:count]
    order = order[scores[order] > 0]
    return torch.from_numpy(grid[order]).long()


def random_candidates(model: torch.nn.Module, count: int, bandlimit: tuple[int, ...],
                      generator: torch.Generator) -> torch.Tensor:
    """Up to ``count`` random unused half-space lattice frequencies within ``bandlimit`` (the fallback)."""
    model = _check(model)
    used = {tuple(f) for f in model.input.frequencies.cpu().tolist()}
    found: list[tuple[int, ...]] = []
    for _ in range(50):
        if len(found) >= count:
            break
        draws = torch.stack([torch.randint(-b, b + 1, (4 * count,), generator=generator) for b in bandlimit], dim=1)
        for vector in draws[in_half_space(draws)].tolist():
            key = tuple(vector)
            if key not in used:
                used.add(key)
                found.append(key)
            if len(found) >= count:
                break
    return torch.tensor(found, dtype=torch.long).reshape(-1, len(bandlimit))


@torch.no_grad()
def swap_inputs(model: torch.nn.Module, count: int, signal: Signal, generator: torch.Generator,
                reconstruction: torch.Tensor | None = None) -> tuple[SinusoidalINR, dict]:
    """One add-prune move: replace the ``count`` least important input neurons with new lattice frequencies.

    New frequencies come from :func:`residual_candidates` (given the
    reconstruction of a gridded signal), topped up by
    :func:`random_candidates`. Their phases are random; their weights start
    at :data:`NEW_WEIGHT_SCALE` of the column bound, so the function barely
    moves; the bounds of the layer still hold.

    Returns the new model (same widths) and what happened
    (``removed``/``added`` frequency lists and ``from_residual``).
    """
    model = _check(model)
    m = model.input.frequencies.shape[0]
    count = max(0, min(count, m - 1))
    if count == 0:
        return model, {"removed": [], "added": [], "from_residual": 0}
    scores = input_importance(model).cpu()
    order = torch.argsort(scores)
    dropped = order[:count]
    keep = torch.ones(m, dtype=torch.bool)
    keep[dropped] = False
    bandlimit = tuple(model.config.bandlimit) or tuple(int(model.input.frequencies.abs().max()) for _ in range(model.config.dims))
    survivor = remove_inputs(model, keep)
    chosen = torch.empty(0, model.config.dims, dtype=torch.long)
    if reconstruction is not None:
        chosen = residual_candidates(survivor, signal, reconstruction, count, bandlimit)
    from_residual = int(chosen.shape[0])
    if chosen.shape[0] < count:
        chosen = torch.cat([chosen, random_candidates(survivor, count - chosen.shape[0], bandlimit, generator)])
    layer = survivor.hidden[0]
    device, dtype = layer.bias.device, layer.bias.dtype
    frequencies = torch.cat([survivor.input.frequencies.cpu().long(), chosen])
    phases = (torch.rand(chosen.shape[0], generator=generator) - 0.5) * math.pi
    tensors = dict(survivor.state_dict())
    tensors["input.frequencies"] = frequencies
    tensors["input.phases"] = torch.cat([survivor.input.phases, phases.to(device, dtype)])
    from inrkit.bounds import column_bounds

    bounds = column_bounds(chosen, model.config.low_bandlimit, model.config.c_low, model.config.c_high).to(device, dtype)
    small = (torch.rand(layer.bias.numel(), chosen.shape[0], generator=generator).to(device, dtype) * 2 - 1)
    small = small * bounds * NEW_WEIGHT_SCALE
    if layer.mode == "tanh":
        tensors["hidden.0.raw_weight"] = torch.cat([layer.raw_weight, torch.atanh((small / bounds).clamp(-0.999, 0.999))], dim=1)
        tensors["hidden.0.column_scale"] = torch.cat([layer.column_scale, bounds])
    else:
        tensors["hidden.0.weight"] = torch.cat([layer.weight, small / layer.omega_g], dim=1)
    config = replace(model.config, input_frequencies=int(frequencies.shape[0]))
    swapped = _rebuild(survivor, config, frequencies, tensors)
    return swapped, {
        "removed": model.input.frequencies[dropped.to(model.input.frequencies.device)].cpu().tolist(),
        "added": chosen.tolist(),
        "from_residual": from_residual,
    }


@dataclass
class PruneOptions:
    """How a fit prunes (CLI: ``--prune``, ``--l1``, ``--add-prune-every``; ``inrkit prune``).

    Attributes
    ----------
    l1, l1_schedule:
        L1 weight on the bounded layers' scaled weights, and its schedule
        (``constant`` or ``ramp``).
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

    l1: float = 0.0
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


def _lr_at(config: TrainConfig, progress: float) -> float:
    return config.lr * (config.lr_final / config.lr) ** min(max(progress, 0.0), 1.0)


def _phase_config(config: TrainConfig, start: float, end: float, target: float | None) -> TrainConfig:
    """The slice ``[start, end]`` (fractions) of the budget as a config of its own, on the global lr schedule."""
    share = end - start
    return replace(
        config,
        # Phase lengths add up to the budget: each phase ends where the budget's fraction ``end`` does.
        steps=max(1, round(config.steps * end) - round(config.steps * start)) if config.steps else None,
        max_seconds=config.max_seconds * share if config.max_seconds else None,
        target_psnr=target,
        lr=_lr_at(config, start),
        lr_final=_lr_at(config, end),
    )


class _Recorder:
    """Merges the results of consecutive fits into one (steps and seconds continue)."""

    def __init__(self):
        self.curve: list[dict[str, float]] = []
        self.steps = 0
        self.seconds = 0.0
        self.first: FitResult | None = None
        self.last: FitResult | None = None

    def add(self, result: FitResult) -> None:
        self.first = self.first or result
        for point in result.curve:
            self.curve.append({**point, "step": point["step"] + self.steps, "seconds": point["seconds"] + self.seconds})
        self.steps += result.steps
        self.seconds += result.seconds
        self.last = result

    def merged(self, model: torch.nn.Module) -> FitResult:
        return FitResult(model=model, curve=self.curve, steps=self.steps, seconds=self.seconds,
                         stop_reason=self.last.stop_reason, train_index=self.first.train_index,
                         holdout_index=self.first.holdout_index)


def measured_psnr(model: torch.nn.Module, signal: Signal, index: torch.Tensor) -> tuple[float, torch.Tensor]:
    """Training PSNR of ``model`` over the samples ``index``, and its reconstruction of every sample."""
    from inrkit.metrics import psnr
    from inrkit.train import evaluate

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
        from inrkit.train import fit

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
    _check(model)
    if config.steps is None and config.max_seconds is None:
        config = replace(config, steps=2000)
    if options.l1 and options.l1_schedule == "ramp" and config.steps is None:
        raise ConfigError("--l1-schedule ramp needs a --steps budget (it ramps over the first half of the steps)")
    penalised = with_l1(loss, options.l1, options.l1_schedule, config.steps)
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
    generator = torch.Generator().manual_seed(config.seed + 101)
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
    import copy

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
        candidate = shrink_to(copy.deepcopy(best), int(stored_parameter_count(best) * (1 - cut)), coords)
        candidate, quality, _ = phases.run(candidate, start, end, target, "prune + fine-tune", goal=goal)
        start = end
        accepted = quality >= goal
        phases.path[-1]["accepted"] = accepted
        if accepted:
            best = candidate
        else:
            cut /= 2
    return best


__all__ = [
    "PruneOptions",
    "PrunedFit",
    "pruned_fit",
    "hidden_importance",
    "hidden_weights",
    "input_importance",
    "l1_penalty",
    "random_candidates",
    "remove_hidden",
    "remove_inputs",
    "residual_candidates",
    "shrink_to",
    "spectral_contribution",
    "swap_inputs",
    "widths_at",
    "with_l1",
]
