"""Domain-agnostic losses."""

from __future__ import annotations

import torch

from inrkit.hookspecs import hookimpl
from inrkit.plugin_types import FitContext, LossType
from inrkit.signal import Batch


def mse_loss(context: FitContext, batch: Batch) -> torch.Tensor:
    """Mean squared error over the batch and channels."""
    return torch.mean((context.predict(batch) - batch.target) ** 2)


@hookimpl
def inrkit_register_losses(register):
    register(LossType("mse", mse_loss, "mean squared error"))
