"""Structural pruning: removing neurons, and replacing input neurons with new lattice frequencies.

The returned models are smaller (new tensors), not masked; which neurons go
is decided by the scores of :mod:`inrkit.importance`.

* :func:`remove_inputs`, :func:`remove_hidden`: drop the given input neurons
  (``f_j``, ``phi_j`` and column ``j`` of the first bounded layer) or hidden
  neurons (rows of ``W``, ``b_i`` and columns of the head; their mean
  activation is folded into the head's bias).
* :func:`widths_at`, :func:`shrink_to`: remove the least important neurons
  until at most a given number of values is stored.
* :func:`swap_inputs`: one add-prune move: drop the ``k`` least important
  input neurons and add ``k`` unused lattice frequencies where the residual
  has energy (:func:`residual_candidates`, else :func:`random_candidates`),
  with small weights so the function barely moves.
"""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import torch

from inrkit.bounds import column_bounds
from inrkit.config import ModelConfig
from inrkit.errors import ConfigError
from inrkit.importance import hidden_importance, input_importance, lattice_model
from inrkit.lattice import in_half_space
from inrkit.model import SinusoidalINR, stored_parameter_count
from inrkit.signal import Signal
from inrkit.sizing import stored_count
from inrkit.train import rows_for

#: Scale of the weights of a newly added input neuron, relative to its column bound.
NEW_WEIGHT_SCALE = 0.01


def _rebuild(model: SinusoidalINR, config: ModelConfig, frequencies: torch.Tensor,
             tensors: dict[str, torch.Tensor]) -> SinusoidalINR:
    lines = tensors.get("direct.frequencies")
    fresh = SinusoidalINR(config, frequencies.to(torch.long), None if lines is None else lines.cpu())
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
    model = lattice_model(model)
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
    model = lattice_model(model)
    if len(model.hidden) != 1:
        raise ConfigError("hidden-neuron pruning supports one hidden layer (the default); prune input neurons instead")
    keep = keep.to(torch.bool).cpu()
    if keep.numel() != model.config.width or int(keep.sum()) < 1:
        raise ConfigError("keep at least one hidden neuron (and give one flag per hidden neuron)")
    layer = model.hidden[0]
    device = layer.bias.device
    dropped = (~keep).to(device)
    if coords is not None:
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


def line_numbers(model: SinusoidalINR) -> int:
    """Stored numbers of the model's direct lines (:mod:`inrkit.direct`; 0 without): pruning keeps them whole."""
    return 0 if model.direct is None else stored_parameter_count(model.direct)


def smallest_size(model: torch.nn.Module) -> int:
    """The fewest stored numbers :func:`shrink_to` can reach: one input (and, with one hidden layer, one hidden)
    neuron, plus the direct lines."""
    model = lattice_model(model)
    config = model.config
    width = 1 if len(model.hidden) == 1 else config.width
    return line_numbers(model) + stored_count(config.architecture, config.dims, config.out_channels, 1, width,
                                              config.hidden_layers, config.bound_mode)


@torch.no_grad()
def shrink_to(model: torch.nn.Module, params: int, coords: torch.Tensor | None = None) -> SinusoidalINR:
    """Remove the least important input and hidden neurons until at most ``params`` numbers are stored.

    Input and hidden widths shrink in proportion (hidden neurons only for
    one-hidden-layer models); the neurons kept are the most important ones
    (:func:`input_importance`, :func:`hidden_importance`).
    """
    model = lattice_model(model)
    if stored_parameter_count(model) <= params:
        return model
    floor = smallest_size(model)
    if params < floor:
        lines = line_numbers(model)
        with_lines = f" ({lines:,} of them its direct lines, which pruning keeps)" if lines else ""
        deep = (f"; a model of {len(model.hidden)} hidden layers loses input neurons only (hidden neurons are "
                "pruned in one-hidden-layer models), so fit with --hidden-layers 1 to go smaller") if len(model.hidden) > 1 else ""
        raise ConfigError(f"--target-params {params} is below the smallest model of this shape: {floor:,} "
                          f"numbers{with_lines}; choose at least {floor:,}{deep}")
    params -= line_numbers(model)  # the lines are kept whole: the network shrinks
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
    transformed on the model's lattice (:func:`inrkit.fourier.grid_spectrum`).
    Candidates lie in the half-space within ``bandlimit``, are not input
    frequencies yet, and score their residual power, halved where a sum or
    difference of two current input frequencies already lands (the hidden
    layer reaches those, weakly). Empty for scattered signals.
    """
    from inrkit.fourier import grid_spectrum

    model = lattice_model(model)
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
    model = lattice_model(model)
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
    model = lattice_model(model)
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



__all__ = [
    "NEW_WEIGHT_SCALE",
    "random_candidates",
    "remove_hidden",
    "remove_inputs",
    "residual_candidates",
    "shrink_to",
    "swap_inputs",
    "widths_at",
]
