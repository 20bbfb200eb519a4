"""Domain-agnostic losses."""

from __future__ import annotations

from inrkit.hookspecs import hookimpl
from inrkit.lazy import lazy_import
from inrkit.plugin_types import FitContext, LossType
from inrkit.signal import Batch

torch = lazy_import("torch")  # imported at first use: registering plugins must not import torch


def mse_loss(context: FitContext, batch: Batch) -> torch.Tensor:
    """Mean squared error over the batch and channels."""
    return torch.mean((context.predict(batch) - batch.target) ** 2)


@hookimpl
def inrkit_register_losses(register):
    register(LossType("mse", mse_loss, "mean squared error"))
