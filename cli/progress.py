"""A one-line progress bar for fits, driven by the ``inrkit_step_end`` hook."""

from __future__ import annotations

import math
import sys
import time
from typing import TextIO

from inrkit.plugin import FitEnded, StepEnded, hookimpl


def _clock(seconds: float) -> str:
    if not math.isfinite(seconds) or seconds < 0:
        return "--:--"
    minutes, secs = divmod(int(round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes:02d}:{secs:02d}"


class ProgressBar:
    """Redraws ``[#####.....]  45%  step 1200  loss 1.2e-04  PSNR 33.1 dB  ETA 00:33`` on a TTY.

    Parameters
    ----------
    stream:
        Where to draw (standard error).
    enabled:
        False draws nothing (``--quiet`` or not a terminal).
    interval:
        Seconds between redraws.
    """

    def __init__(self, stream: TextIO = sys.stderr, enabled: bool = True, interval: float = 0.1):
        self.stream = stream
        self.enabled = enabled
        self.interval = interval
        self._last = -math.inf
        self._drawn = False

    def line(self, step: StepEnded, width: int = 24) -> str:
        """The text of the bar for one ``inrkit_step_end`` event."""
        progress = min(1.0, max(0.0, float(step.progress)))
        filled = int(round(progress * width))
        seconds = float(step.seconds)
        eta = seconds * (1 - progress) / progress if progress > 0 else math.inf
        psnr = step.psnr
        quality = f"PSNR {psnr:5.2f} dB" if isinstance(psnr, float) and math.isfinite(psnr) else ""
        phase = f"phase {step.phase}  " if step.phase else ""
        return (
            f"[{'#' * filled}{'.' * (width - filled)}] {progress * 100:3.0f}%  {phase}step {step.step}  "
            f"loss {step.loss:.3e}  {quality}  {_clock(seconds)} elapsed  ETA {_clock(eta)}"
        )

    @hookimpl
    def inrkit_step_end(self, step: StepEnded) -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        if now - self._last < self.interval:
            return
        self._last = now
        self.stream.write("\r" + self.line(step) + "\x1b[K")
        self.stream.flush()
        self._drawn = True

    @hookimpl
    def inrkit_fit_end(self, result: FitEnded) -> None:
        if self.enabled and self._drawn:
            self.stream.write("\n")
            self.stream.flush()
