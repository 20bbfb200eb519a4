"""A minimal Adam optimiser.

Why not ``torch.optim.Adam``: constructing any ``torch.optim`` optimiser
imports ``torch._dynamo`` (about 1.9 s on a 2-core CPU), which dominates the
start-up of a short ``inrkit fit``. This is the same algorithm (Kingma & Ba
2015, with PyTorch's bias-correction arithmetic, no weight decay, no AMSGrad),
and a test checks it step for step against ``torch.optim.Adam``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch


class Adam:
    """Adam over a fixed list of parameters.

    Parameters
    ----------
    params:
        Tensors with ``requires_grad``, or ``(tensor, scale)`` pairs: such a
        tensor's step uses ``scale * lr``.
    lr:
        Learning rate; may be changed between steps through :attr:`lr`.
    betas:
        Decay rates of the first and second moment estimates.
    eps:
        Added to the denominator for numerical stability.
    """

    def __init__(self, params: Iterable[torch.Tensor | tuple[torch.Tensor, float]], lr: float = 1e-3,
                 betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8):
        pairs = [item if isinstance(item, tuple) else (item, 1.0) for item in params]
        self.params = [p for p, _ in pairs if p.requires_grad]
        self.scales = [float(scale) for p, scale in pairs if p.requires_grad]
        self.lr = lr
        self.betas = betas
        self.eps = eps
        self.steps = 0
        self.first = [torch.zeros_like(p) for p in self.params]
        self.second = [torch.zeros_like(p) for p in self.params]

    def zero_grad(self) -> None:
        """Drop the gradients (set to None)."""
        for p in self.params:
            p.grad = None

    @torch.no_grad()
    def step(self) -> None:
        """One update of every parameter that has a gradient."""
        beta1, beta2 = self.betas
        self.steps += 1
        step_size = self.lr / (1 - beta1**self.steps)
        correction2 = math.sqrt(1 - beta2**self.steps)
        for p, scale, first, second in zip(self.params, self.scales, self.first, self.second):
            if p.grad is None:
                continue
            first.mul_(beta1).add_(p.grad, alpha=1 - beta1)
            second.mul_(beta2).addcmul_(p.grad, p.grad, value=1 - beta2)
            denominator = (second.sqrt() / correction2).add_(self.eps)
            p.addcdiv_(first, denominator, value=-step_size * scale)
