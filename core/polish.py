"""Full-batch quasi-Newton polishing: L-BFGS after Adam.

A fit on the whole signal has a deterministic loss and a small model, the
setting where L-BFGS (a quasi-Newton method that builds a curvature estimate
from the last few gradients) can take larger, better-aimed steps than Adam.
:func:`lbfgs_polish` runs ``torch.optim.LBFGS`` with a strong-Wolfe line
search, one iteration per call so that the model's bounds are enforced after
every iteration (``project``), and keeps the best parameters it saw: a
projection that raises the loss, or a line search that fails, never leaves
the model worse than it was handed over.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from inrkit.errors import ConfigError

#: Gradient pairs L-BFGS keeps for its curvature estimate.
HISTORY = 20
#: Most loss evaluations of one iteration's line search.
LINE_SEARCH = 25


@dataclass
class PolishResult:
    """What :func:`lbfgs_polish` did.

    Attributes
    ----------
    losses:
        Loss before polishing, then after each iteration (after the projection).
    iterations:
        L-BFGS iterations taken.
    evaluations:
        Loss and gradient evaluations (the line search may take several per
        iteration); the one loss evaluation after the last iteration is not counted.
    seconds:
        Wall-clock seconds spent.
    """

    losses: list[float] = field(default_factory=list)
    iterations: int = 0
    evaluations: int = 0
    seconds: float = 0.0

    @property
    def best(self) -> float:
        """The lowest loss seen (the model is left with it)."""
        return min(self.losses)


def lbfgs_polish(
    model: torch.nn.Module,
    loss: Callable[[], torch.Tensor],
    *,
    iterations: int | None = None,
    max_seconds: float | None = None,
    max_evaluations: int | None = None,
    project: Callable[[], object] | None = None,
    history: int = HISTORY,
) -> PolishResult:
    """Minimise ``loss()`` over ``model``'s parameters with L-BFGS.

    Parameters
    ----------
    model:
        Its trainable parameters are optimised in place.
    loss:
        Computes the (deterministic, full-batch) loss from the current parameters.
    iterations, max_seconds, max_evaluations:
        Stop after this many iterations, seconds or loss-and-gradient
        evaluations, whichever comes first (at least one must be given). An
        iteration is not cut short, so its line search may pass the evaluation limit.
    project:
        Called after every iteration to enforce the model's constraints (e.g. ``model.project_``).
    history:
        Gradient pairs kept.

    Returns
    -------
    PolishResult
        The model holds the parameters of the lowest loss seen.
    """
    if iterations is None and max_seconds is None and max_evaluations is None:
        raise ConfigError("polishing needs a limit: iterations, max seconds or max evaluations")
    if iterations is not None and iterations < 0:
        raise ConfigError(f"polishing iterations must be >= 0, got {iterations}")
    params = [p for p in model.parameters() if p.requires_grad]
    # One iteration per call, so ``project`` runs after each; a line search may take up to LINE_SEARCH evaluations
    # (LBFGS's own default, max_iter * 5 / 4, would be 1 and the search could never shrink its first step).
    optimizer = torch.optim.LBFGS(params, lr=1.0, max_iter=1, max_eval=LINE_SEARCH, history_size=history,
                                  line_search_fn="strong_wolfe")
    result = PolishResult()
    began = time.perf_counter()
    state = {"evaluations": 0, "first": True, "best": math.inf, "saved": None}

    def closure() -> torch.Tensor:
        state["evaluations"] += 1
        optimizer.zero_grad()
        value = loss()
        if state["first"]:  # the loss where this iteration starts: after the last projection
            state["first"] = False
            _note(float(value.detach()))
        value.backward()
        return value

    def _note(value: float) -> None:
        result.losses.append(value)
        if value < state["best"]:
            state["best"], state["saved"] = value, [p.detach().clone() for p in params]

    while ((iterations is None or result.iterations < iterations)
           and (max_seconds is None or time.perf_counter() - began < max_seconds)
           and (max_evaluations is None or state["evaluations"] < max_evaluations)):
        state["first"] = True
        optimizer.step(closure)
        if project is not None:
            project()
        result.iterations += 1
        if not math.isfinite(result.losses[-1]):
            break
    with torch.no_grad():
        _note(float(loss()))
        for param, saved in zip(params, state["saved"]):
            param.copy_(saved)
    result.evaluations, result.seconds = state["evaluations"], time.perf_counter() - began
    return result


__all__ = ["HISTORY", "PolishResult", "lbfgs_polish"]
