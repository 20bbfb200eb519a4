"""Progress on standard error: the training bar (``inrkit_step_end``) and long phases (``inrkit_phase_progress``).

On a terminal one line is redrawn in place; elsewhere (logs, CI) a plain
line is written every :data:`PLAIN_INTERVAL` seconds instead, so that a long
job is never silent; ``--quiet`` shows nothing.
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable
from typing import TextIO

from inrkit.plugin import FitEnded, PhaseProgress, StepEnded, hookimpl

#: Seconds between two plain lines when standard error is not a terminal.
PLAIN_INTERVAL = 5.0


def _clock(seconds: float) -> str:
    if not math.isfinite(seconds) or seconds < 0:
        return "--:--"
    minutes, secs = divmod(int(round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes:02d}:{secs:02d}"


def _bar(fraction: float, width: int) -> str:
    filled = int(round(fraction * width))
    return f"[{'#' * filled}{'.' * (width - filled)}] {fraction * 100:3.0f}%"


def _eta(elapsed: float, fraction: float) -> float:
    return elapsed * (1 - fraction) / fraction if fraction > 0 else math.inf


def _count(value: float) -> str:
    return f"{value:,.0f}" if float(value).is_integer() or value >= 100 else f"{value:.3g}"


class ProgressBar:
    """Draws ``[#####.....]  45%  step 1200  loss 1.2e-04  PSNR 33.1 dB  ETA 00:33`` and phase lines.

    Parameters
    ----------
    stream:
        Where to draw (standard error).
    enabled:
        False draws nothing (``--quiet``).
    interval:
        Seconds between redraws on a terminal.
    terminal:
        True: redraw one line in place; False (logs, CI): a plain line every ``plain_interval`` seconds.
    plain_interval:
        Seconds between plain lines (default :data:`PLAIN_INTERVAL`); the first comes that long after the bar was made.
    clock:
        Seconds from any origin (tests pass a fake one).
    """

    def __init__(self, stream: TextIO = sys.stderr, enabled: bool = True, interval: float = 0.1,
                 terminal: bool = True, plain_interval: float | None = None,
                 clock: Callable[[], float] = time.monotonic):
        self.stream = stream
        self.enabled = enabled
        self.terminal = terminal
        self.interval = interval if terminal else PLAIN_INTERVAL if plain_interval is None else plain_interval
        self.clock = clock
        self._last = -math.inf if terminal else clock()
        self._drawn = False
        self._phases: dict[str, tuple[float, float]] = {}  # phase -> (when it started, done so far)

    def line(self, step: StepEnded, width: int = 24) -> str:
        """The text of the bar for one ``inrkit_step_end`` event."""
        progress = min(1.0, max(0.0, float(step.progress)))
        seconds = float(step.seconds)
        psnr = step.psnr
        quality = f"PSNR {psnr:5.2f} dB" if isinstance(psnr, float) and math.isfinite(psnr) else ""
        phase = f"phase {step.phase}  " if step.phase else ""
        return (
            f"{_bar(progress, width)}  {phase}step {step.step}  "
            f"loss {step.loss:.3e}  {quality}  {_clock(seconds)} elapsed  ETA {_clock(_eta(seconds, progress))}"
        )

    def phase_line(self, progress: PhaseProgress, elapsed: float, width: int = 24) -> str:
        """The text for one ``inrkit_phase_progress`` event, ``elapsed`` seconds into its phase."""
        fraction = progress.fraction
        unit = f" {progress.unit}" if progress.unit else ""
        count = f"{_count(progress.done)}{'' if progress.total is None else '/' + _count(progress.total)}{unit}"
        detail = f"  {progress.detail}" if progress.detail else ""
        timing = f"{_clock(elapsed)} elapsed" + ("" if fraction is None else f"  ETA {_clock(_eta(elapsed, fraction))}")
        head = f"{_bar(fraction, width)}  " if fraction is not None else ""
        return f"{head}{progress.phase}  {count}{detail}  {timing}"

    def _due(self, now: float) -> bool:
        return self.enabled and now - self._last >= self.interval

    def _draw(self, text: str, now: float) -> None:
        self._last = now
        if self.terminal:
            self.stream.write("\r" + text + "\x1b[K")
            self._drawn = True
        else:
            self.stream.write(text + "\n")
        self.stream.flush()

    def close(self) -> None:
        """End a line left drawn on the terminal."""
        if self.enabled and self._drawn:
            self.stream.write("\n")
            self.stream.flush()
            self._drawn = False

    @hookimpl
    def inrkit_step_end(self, step: StepEnded) -> None:
        now = self.clock()
        if self._due(now):
            self._draw(self.line(step), now)

    @hookimpl
    def inrkit_fit_end(self, result: FitEnded) -> None:
        self.close()

    @hookimpl
    def inrkit_phase_progress(self, progress: PhaseProgress) -> None:
        now = self.clock()
        started, done = self._phases.get(progress.phase, (now, -math.inf))
        if progress.done < done:  # the phase runs again
            started = now
        self._phases[progress.phase] = (started, progress.done)
        finished = progress.fraction == 1.0
        if self.terminal and finished and self._drawn:
            self.stream.write("\r\x1b[K")  # a finished phase leaves no line behind
            self.stream.flush()
            self._drawn = False
        elif self._due(now) and not finished:
            self._draw(self.phase_line(progress, now - started), now)
