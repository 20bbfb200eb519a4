"""Progress of long phases other than training: :func:`report_progress`.

The engine and plugins call :func:`report_progress` from inside loops (slabs
of a grid, chunks of points, stages of a report); observers receive a frozen
:class:`~inrkit.events.PhaseProgress` through the ``inrkit_phase_progress``
hook of the process's host. Calls are rate-limited before the plugin manager
is touched: a call costs one clock read and a few comparisons, and at most
about ten a second reach observers (plus the first call of each phase and its
last, ``done >= total``). With no host loaded, nothing is sent.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

from inrkit.events import PhaseProgress
from inrkit.lazy import lazy_import

torch = lazy_import("torch")  # imported at first use: registering plugins must not import torch

#: Least seconds between two events of the same phase that reach observers.
INTERVAL = 0.1
#: Clock of the rate limit (tests replace it).
clock: Callable[[], float] = time.monotonic

_last_sent = -math.inf
_last_phase: str | None = None
_last_finished = False


def report_progress(phase: str, done: float, total: float | None = None, unit: str = "", detail: str = "") -> None:
    """Tell observers how far a long phase has got (cheap; call it as often as convenient).

    Parameters
    ----------
    phase:
        What is being done, in a few words (``"mesh extraction"``).
    done:
        Work done so far, in ``unit``; call with 0 when the phase starts and with ``total`` when it ends.
    total:
        Work of the whole phase, or None when unknown.
    unit:
        What ``done`` counts (``"slabs"``, ``"points"``).
    detail:
        The current sub-step, or "".

    Example::

        for index, chunk in enumerate(chunks):
            report_progress("computing distances", index, len(chunks), "chunks")
            ...
        report_progress("computing distances", len(chunks), len(chunks), "chunks")
    """
    global _last_sent, _last_phase, _last_finished
    now = clock()
    finished = total is not None and done >= total
    if phase == _last_phase and now - _last_sent < INTERVAL and (not finished or _last_finished):
        return
    from inrkit import host as host_module

    host = host_module._HOST  # only a loaded host has observers; never load one from here
    if host is None:
        return
    _last_sent, _last_phase, _last_finished = now, phase, finished
    host.pm.hook.inrkit_phase_progress(progress=PhaseProgress(phase, float(done), None if total is None else float(total),
                                                              unit, detail))


class Stages:
    """A phase made of named stages: ``stages("saving")`` reports stage 2 of 5; :meth:`finish` reports 5 of 5."""

    def __init__(self, phase: str, names: tuple[str, ...]):
        self.phase, self.names = phase, names

    def __call__(self, name: str, detail: str = "") -> None:
        report_progress(self.phase, self.names.index(name), len(self.names), "stages", detail or name)

    def finish(self) -> None:
        report_progress(self.phase, len(self.names), len(self.names), "stages")


def evaluate_reporting(model: torch.nn.Module, coords: torch.Tensor, phase: str) -> torch.Tensor:
    """:func:`inrkit.train.evaluate` with progress, bit for bit the same values.

    Evaluates in runs of whole chunks of ``evaluate`` itself (so every row sees
    the same batch as without progress), reporting the points done.
    """
    from inrkit.train import evaluate, evaluation_rows

    rows = coords.shape[0]
    run = evaluation_rows(model) * 8
    if rows <= run:
        return evaluate(model, coords)
    parts = []
    for start in range(0, rows, run):
        report_progress(phase, start, rows, "points")
        parts.append(evaluate(model, coords[start : start + run]))
    report_progress(phase, rows, rows, "points")
    return torch.cat(parts, dim=0)


__all__ = ["INTERVAL", "Stages", "evaluate_reporting", "report_progress"]
