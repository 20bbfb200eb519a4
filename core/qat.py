"""Quantisation-aware finishing: a short fine-tune with the quantiser in the loop.

Each quantised tensor enters the forward pass as ``w + (Q(w) - w).detach()``
(the straight-through estimator): the loss sees the rounded weights, the
gradient flows to the float weights as if rounding were the identity. The
steps of ``Q`` follow the weights (``max |w| / (2^(bits-1) - 1)`` per tensor
or row, as :func:`inrkit.quantise.quantise` computes them), so the packed
file rounds the finished weights the way training saw them.
"""

from __future__ import annotations

import copy

import torch
from inrkit.packing import TensorPlan
from inrkit.quantise import EXACT_BITS, largest_level


def fake_quantise(weight: torch.Tensor, entry: TensorPlan) -> torch.Tensor:
    """``weight`` rounded to ``entry``'s grid in the forward pass, the identity in the backward pass."""
    largest = largest_level(entry.bits, entry.half)
    rows = weight.reshape(weight.shape[0], -1) if entry.granularity == "channel" and weight.ndim >= 2 \
        else weight.reshape(1, -1)
    step = (rows.detach().abs().amax(dim=1, keepdim=True) / largest).clamp_min(torch.finfo(weight.dtype).tiny)
    rounded = (torch.round(rows / step).clamp(-largest, largest) * step).reshape(weight.shape)
    return weight + (rounded - weight).detach()


#: Samples up to which every step of the finish sees them all (larger signals: random batches of ``batch_size``).
FULL_BATCH_SAMPLES = 1 << 17
#: Steps over which the finish's learning rate ramps up from ``lr / WARMUP_STEPS`` (Adam's first steps, with
#: fresh moments, move every weight by about ``lr`` whatever its gradient).
WARMUP_STEPS = 20
#: The finish's learning rate decays geometrically to ``lr / LR_DECAY`` over its steps.
LR_DECAY = 10.0


def finish_lr(lr: float, step: int, steps: int) -> float:
    """The finish's learning rate at ``step`` of ``steps``: linear warm-up, then a geometric decay by :data:`LR_DECAY`."""
    progress = step / max(1, steps - 1)
    return lr * LR_DECAY ** -progress * min(1.0, (step + 1) / WARMUP_STEPS)


def quantisation_aware_finish(model: torch.nn.Module, coords: torch.Tensor, target: torch.Tensor,
                              plan: dict[str, TensorPlan], *, steps: int, lr: float, batch_size: int = 1 << 15,
                              seed: int = 0) -> torch.nn.Module:
    """A copy of ``model`` fine-tuned for ``steps`` Adam steps on MSE with ``plan``'s quantiser in the loop.

    ``coords`` ``[N, d]`` and ``target`` ``[N, channels]`` are the samples to fit (the signal, or the float
    model's own output when the signal is not at hand): all of them at every step up to
    :data:`FULL_BATCH_SAMPLES`, else batches of ``batch_size`` random samples. The learning rate follows
    :func:`finish_lr`. Float "shadow" weights are kept beside the model's, which hold their rounded values
    during each step (the same straight-through estimate as :func:`fake_quantise`, through the model's
    own forward pass, so a lattice model uses its cached input basis). The model's bounds are enforced
    after every step (``project_``).
    """
    model = copy.deepcopy(model).train()
    parameters = dict(model.named_parameters())
    quantised = [name for name, entry in plan.items() if entry.bits != EXACT_BITS and name in parameters]
    shadows = {name: parameters[name].detach().clone().requires_grad_(True) for name in quantised}
    optimiser = torch.optim.Adam(list(shadows.values()), lr=lr, betas=(0.9, 0.99))
    generator = torch.Generator().manual_seed(seed)
    samples = coords.shape[0]
    full = samples <= max(batch_size, FULL_BATCH_SAMPLES)
    basis = model.basis(coords) if full and hasattr(model, "from_basis") else None
    for step in range(steps):
        for group in optimiser.param_groups:
            group["lr"] = finish_lr(lr, step, steps)
        if full:
            batch, wanted = coords, target
        else:
            index = torch.randint(samples, (batch_size,), generator=generator)
            batch, wanted = coords[index], target[index]
        with torch.no_grad():
            for name in quantised:
                parameters[name].copy_(fake_quantise(shadows[name], plan[name]))
        output = model.from_basis(*basis) if basis is not None else model(batch)
        loss = torch.mean((output - wanted) ** 2)
        model.zero_grad(set_to_none=True)
        loss.backward()
        for name in quantised:
            shadows[name].grad = parameters[name].grad
        optimiser.step()
        with torch.no_grad():
            for name in quantised:
                parameters[name].copy_(shadows[name])
            if hasattr(model, "project_"):
                model.project_()
            for name in quantised:
                shadows[name].copy_(parameters[name])
    return model.eval()


__all__ = ["FULL_BATCH_SAMPLES", "LR_DECAY", "WARMUP_STEPS", "fake_quantise", "finish_lr", "quantisation_aware_finish"]
