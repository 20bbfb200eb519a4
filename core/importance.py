"""How much each neuron matters: importance scores with a proven bound, and the spectrum's view.

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
* :func:`spectral_contribution`: the amplitude of input neuron ``j``'s own
  frequency ``f_j`` in the output (the first-order Jacobi-Anger term,
  ``2 J_1(a_ij) cos(b_i) prod_{l != j} J_0(a_il)`` per hidden neuron, through
  the head).

Removing the neurons these scores rank is :mod:`inrkit.surgery`'s job.
"""

from __future__ import annotations

import numpy as np
import torch

from inrkit.errors import ConfigError
from inrkit.model import SinusoidalINR


def lattice_model(model: torch.nn.Module) -> SinusoidalINR:
    """``model`` itself if it can be pruned (a :class:`~inrkit.model.SinusoidalINR`); else :class:`ConfigError`."""
    if not isinstance(model, SinusoidalINR):
        name = getattr(getattr(model, "config", None), "architecture", type(model).__name__)
        shown = {"siren": "SIREN", "finer": "FINER", "ffn": "FFN"}.get(name, name)
        raise ConfigError(f"pruning applies to lattice and uniform models (SinusoidalINR), not {shown}: it removes "
                          "input frequencies and hidden neurons, which other architectures do not have")
    return model


@torch.no_grad()
def hidden_weights(model: torch.nn.Module) -> list[torch.Tensor]:
    """Per bounded layer, the importance ``h`` of each of its neurons (how much the output moves per unit of it).

    Through a layer that carries ``s`` of its input past it (``ModelConfig.skip``) a neuron moves the output by at
    most ``s h + (1 - s) |A|^T h`` (the skip's identity plus the sine's slope of at most 1).
    """
    model = lattice_model(model)
    head = model.head.weight * model.output.scale.to(model.head.weight.dtype)[:, None]
    weights = [head.norm(dim=0)]
    skip = model.config.skip
    for layer in reversed(model.hidden[1:]):
        weights.insert(0, skip * weights[0] + (1 - skip) * (layer.scaled_weight().abs().T @ weights[0]))
    return weights


@torch.no_grad()
def input_importance(model: torch.nn.Module) -> torch.Tensor:
    """``[m]`` scores ``s_j = sum_i h_i |a_ij|``: a bound on the output change if input neuron ``j`` is removed."""
    model = lattice_model(model)
    return model.hidden[0].scaled_weight().abs().T @ hidden_weights(model)[0]


@torch.no_grad()
def hidden_importance(model: torch.nn.Module) -> torch.Tensor:
    """``[n]`` scores of the last bounded layer's neurons: ``h_i min(1, sum_j |a_ij|)``."""
    model = lattice_model(model)
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

    model = lattice_model(model)
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



__all__ = ["hidden_importance", "hidden_weights", "input_importance", "lattice_model", "spectral_contribution"]
