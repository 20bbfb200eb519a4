"""Domain-agnostic batch samplers for signals given as samples.

Each sampler draws from the training samples (the hold-out excluded) and
returns batches with ``index`` set, so the trainer can reuse the input
layer's cached basis.

* ``full``: every training sample, every step (full batch).
* ``uniform``: ``batch_size`` samples per step, a fresh random permutation
  per epoch (each sample is seen once per epoch).
* ``stratified``: the training samples, in their stored order (row-major for
  grids), are cut into ``batch_size`` contiguous strata and one sample is
  drawn uniformly from each, so every region of the signal is represented in
  every batch (jittered sampling).
"""

from __future__ import annotations

from collections.abc import Callable

from inrkit.hookspecs import hookimpl
from inrkit.lazy import lazy_import
from inrkit.plugin_types import SamplerContext, SamplerType
from inrkit.signal import Batch

torch = lazy_import("torch")  # imported at first use: registering plugins must not import torch


def _batch(context: SamplerContext, coords: torch.Tensor, index: torch.Tensor) -> Batch:
    extra = {name: tensor[index] for name, tensor in context.signal.attributes.items()}
    return Batch(coords=coords[index], target=context.signal.values[index], index=index, extra=extra)


def full_sampler(context: SamplerContext) -> Callable[[int], Batch]:
    """Every training sample in every batch."""
    coords = context.signal.coordinates().to(context.device)
    batch = _batch(context, coords, context.train_index)
    return lambda step: batch


def uniform_sampler(context: SamplerContext) -> Callable[[int], Batch]:
    """Random batches without replacement within an epoch."""
    if context.batch_size is None or context.batch_size >= context.train_index.numel():
        return full_sampler(context)
    coords = context.signal.coordinates().to(context.device)
    size = context.batch_size
    total = context.train_index.numel()
    state = {"order": None, "cursor": total}

    def sample(step: int) -> Batch:
        if state["cursor"] + size > total:
            state["order"] = torch.randperm(total, generator=context.generator).to(context.device)
            state["cursor"] = 0
        chosen = state["order"][state["cursor"] : state["cursor"] + size]
        state["cursor"] += size
        return _batch(context, coords, context.train_index[chosen])

    return sample


def stratified_sampler(context: SamplerContext) -> Callable[[int], Batch]:
    """One uniform draw from each of ``batch_size`` contiguous strata."""
    if context.batch_size is None or context.batch_size >= context.train_index.numel():
        return full_sampler(context)
    coords = context.signal.coordinates().to(context.device)
    total = context.train_index.numel()
    edges = torch.linspace(0, total, context.batch_size + 1).round().long()
    starts, widths = edges[:-1], (edges[1:] - edges[:-1]).clamp(min=1)

    def sample(step: int) -> Batch:
        offset = (torch.rand(len(starts), generator=context.generator) * widths).long()
        chosen = (starts + torch.minimum(offset, widths - 1)).clamp(max=total - 1).to(context.device)
        return _batch(context, coords, context.train_index[chosen])

    return sample


@hookimpl
def inrkit_register_samplers(register):
    register(SamplerType("full", full_sampler, "every training sample each step (full batch)"))
    register(SamplerType("uniform", uniform_sampler, "random batches, each sample once per epoch"))
    register(SamplerType("stratified", stratified_sampler, "one random sample from each of batch-size strata"))
