"""Pictures and numbers of a fitted model's spectrum: :func:`spectrum_report` and :class:`SpectrumRecorder`.

The mathematics (prediction from the weights, lattice FFTs, energy shares)
is in :mod:`inrkit.spectrum`; this module draws it and sums it up. Spectra
are cropped per axis to the signal's Nyquist frequency on that axis; heat
maps are square, so a 2D grid with per-axis spacing is shown on the square of
its larger radius, black beyond the coarser axis's Nyquist frequency.
"""

from __future__ import annotations

import numpy as np
import torch

from inrkit.errors import ConfigError, TooManyTerms
from inrkit.fourier import (
    centered,
    energy_fraction_above,
    grid_spectrum,
    noise_energy_fraction,
    nyquist_cutoffs,
    radial_profile,
    reachable_energy_fraction,
    signal_spectrum,
    suggest_bandlimit,
)
from inrkit.hookspecs import hookimpl
from inrkit.lattice import DEFAULT_PERIOD
from inrkit.model import SinusoidalINR, stored_parameter_count
from inrkit.progress import Stages, evaluate_reporting
from inrkit.signal import Signal
from inrkit.spectrum import PredictedSpectrum, predict_spectrum

_COLOURS = {"target": (120, 120, 120), "reconstruction": (30, 80, 220), "predicted": (230, 120, 0)}
#: The stages of :func:`spectrum_report`, reported as the phase "spectrum report".
_stage = Stages("spectrum report", ("target spectrum", "reconstruction spectrum", "predicted spectrum",
                                    "noise estimate", "picture"))


def spectrum_report(model: torch.nn.Module, signal: Signal, bandlimit: tuple[int, ...] | None = None,
                    max_order: int = 2, tol: float = 1e-4, period: float = DEFAULT_PERIOD, max_terms: int = 2_000_000,
                    reconstruction: torch.Tensor | None = None):
    """The picture and the numbers of a fitted model's spectrum against its signal.

    Parameters
    ----------
    model:
        The fitted model (CPU).
    signal:
        The gridded signal it was fitted to.
    bandlimit:
        The model's input bandlimit per axis (for the diagnostics), if known.
    max_order, tol, max_terms:
        Truncation of the predicted spectrum; when ``max_order`` needs more
        than ``max_terms`` terms, first-order terms only.
    reconstruction:
        ``[N, channels]`` model output on the signal's samples, if already computed.

    Returns
    -------
    (PIL.Image.Image, dict)
        Log-magnitude spectra side by side (target, reconstruction, predicted;
        1D: amplitude curves, 2D: heat maps with the input frequencies as dots,
        3D: radial curves) and a JSON-serialisable summary. Its ``nyquist`` is
        the finest axis's cutoff (:func:`~inrkit.fourier.nyquist_cutoffs`);
        the energy shares use each axis's own Nyquist frequency and bandlimit.
    """
    if signal.grid_shape is None:
        raise ConfigError("spectrum pictures need a gridded signal")
    cutoffs = nyquist_cutoffs(signal, period)
    _stage("target spectrum")
    target = signal_spectrum(signal, period)
    radius = _radius(cutoffs, target)
    panels = {"target": centered(target, radius)}
    _stage("reconstruction spectrum")
    panels["reconstruction"] = centered(_reconstruction_spectrum(model, signal, period, reconstruction), radius)
    summary: dict = {"nyquist": max(cutoffs), "period": period}
    _stage("predicted spectrum")
    predicted, summary["predicted"] = _predicted(model, max_order, tol, max_terms)
    if predicted is not None:
        panels["predicted"] = predicted.dense(radius)
    if bandlimit is not None:
        summary["bandlimit"] = list(bandlimit)
        summary["reachable_energy_fraction"] = reachable_energy_fraction(signal, [3 * b for b in bandlimit], period)
        summary["reconstruction_energy_above_bandlimit"] = energy_fraction_above(panels["reconstruction"],
                                                                                 list(bandlimit))
    summary["suggested_bandlimit"] = suggest_bandlimit(signal, stored_parameter_count(model), period=period)
    _stage("noise estimate")
    summary["noise_energy_fraction"] = noise_energy_fraction(model, signal, period)
    summary["target_energy_above_nyquist_half"] = energy_fraction_above(panels["target"], [c // 2 for c in cutoffs])
    _stage("picture")
    figure = _figure(model, panels, radius)
    _stage.finish()
    return figure, summary


def _radius(cutoffs: tuple[int, ...], spectrum: np.ndarray) -> tuple[int, ...]:
    """Per axis, the Nyquist cutoff or the largest ``|q|`` the FFT resolves, whichever is smaller."""
    return tuple(min(c, n // 2 - 1) for c, n in zip(cutoffs, spectrum.shape[:-1]))


def _reconstruction_spectrum(model: torch.nn.Module, signal: Signal, period: float,
                             reconstruction: torch.Tensor | None) -> np.ndarray:
    """:func:`~inrkit.fourier.grid_spectrum` of the model's output on the signal's grid."""
    if reconstruction is None:
        reconstruction = evaluate_reporting(model, signal.coordinates(), "evaluating the model")
    values = reconstruction.double().numpy().reshape(*signal.grid_shape, signal.channels)
    return grid_spectrum(values, signal.extent, period)


def _predicted(model: torch.nn.Module, max_order: int, tol: float,
               max_terms: int) -> tuple[PredictedSpectrum | None, dict]:
    """The predicted spectrum and its summary entry (None and the reason when it cannot be predicted).

    Large models, whose ``max_order`` needs too many terms, get first-order
    terms only rather than no prediction.
    """
    try:
        try:
            predicted = predict_spectrum(model, max_order=max_order, tol=tol, max_terms=max_terms)
        except TooManyTerms:
            if max_order <= 1:
                raise
            max_order = 1
            predicted = predict_spectrum(model, max_order=max_order, tol=tol, max_terms=max_terms)
    except ConfigError as reason:
        return None, {"unavailable": str(reason)}
    return predicted, {"max_order": max_order, "tol": tol, "terms": predicted.terms,
                       "omitted_bound": predicted.omitted_bound}


def _figure(model: torch.nn.Module, panels: dict[str, np.ndarray], radius: tuple[int, ...]):
    """The panels' magnitudes side by side: 2D heat maps, 1D amplitude curves, 3D radial curves."""
    from inrkit.plots import heatmap, line_chart, stack

    magnitudes = {name: np.sqrt((np.abs(p) ** 2).sum(axis=-1)) for name, p in panels.items()}
    reference = float(magnitudes["target"].max())
    inputs = model.input.frequencies.long().cpu().numpy() if isinstance(model, SinusoidalINR) else None
    if len(radius) == 2:
        return stack([heatmap(_square(m), f"{name} |F(q)|, |q| <= {max(radius)}", reference=reference,
                              dots=inputs if name == "predicted" else None) for name, m in magnitudes.items()])
    if len(radius) == 1:
        q = np.arange(0, radius[0] + 1)
        series = [(q, m[radius[0]:], _COLOURS[name], name) for name, m in magnitudes.items()]
        return line_chart(series, "amplitude per lattice frequency (input frequencies ticked)", "lattice frequency q",
                          marks=None if inputs is None else np.abs(inputs[:, 0]))
    series = [_radial_series(m, _COLOURS[name], name) for name, m in magnitudes.items()]
    return line_chart(series, "radial amplitude profile", "|q|")


def _square(magnitude: np.ndarray) -> np.ndarray:
    """A centred 2D array zero-padded to the square of its larger radius (heat maps are square)."""
    side = max(magnitude.shape)
    if all(n == side for n in magnitude.shape):
        return magnitude
    return np.pad(magnitude, [((side - n) // 2, (side - n) // 2) for n in magnitude.shape])


def _radial_series(magnitude: np.ndarray, colour: tuple[int, int, int], label: str):
    """One curve of :func:`~inrkit.plots.line_chart`: the amplitude averaged over shells of ``round(|q|_2)``."""
    bins, profile = radial_profile(magnitude**2)
    return bins, np.sqrt(profile), colour, label


class SpectrumRecorder:
    """Observer that records the reconstruction's spectrum every ``every`` steps during a fit.

    Register it with the plugin manager for the duration of a fit; then
    :meth:`figure` draws the frames side by side (2D: heat maps; 1D: one curve
    per frame; 3D: radial curves), as in the talk's "step 0 / 10 / 100" figure.
    """

    def __init__(self, signal: Signal, every: int, max_frames: int = 8, period: float = DEFAULT_PERIOD):
        if every < 1:
            raise ConfigError(f"--spectrum-every must be at least 1, got {every}")
        if signal.grid_shape is None:
            raise ConfigError("--spectrum-every needs a gridded signal")
        self.signal, self.every, self.max_frames, self.period = signal, every, max_frames, period
        self.frames: list[tuple[int, np.ndarray]] = []
        self._coords = signal.coordinates()
        self._cutoffs = nyquist_cutoffs(signal, period)

    @hookimpl
    def inrkit_step_end(self, step):
        """Record the spectrum at ``step.step`` (a frozen ``StepEnded``) if it is due and frames are left."""
        index = step.step
        if index % self.every or len(self.frames) >= self.max_frames:
            return
        from inrkit.train import evaluate

        values = evaluate(step.model, self._coords).double().numpy()
        values = values.reshape(*self.signal.grid_shape, self.signal.channels)
        spectrum = grid_spectrum(values, self.signal.extent, self.period)
        magnitude = np.sqrt((np.abs(centered(spectrum, _radius(self._cutoffs, spectrum))) ** 2).sum(axis=-1))
        self.frames.append((index, magnitude))

    def figure(self):
        """The recorded frames as one picture (None if nothing was recorded)."""
        from inrkit.plots import heatmap, line_chart, stack

        if not self.frames:
            return None
        reference = max(float(m.max()) for _, m in self.frames)
        if self.signal.dims == 2:
            return stack([heatmap(_square(m), f"step {i}", size=200, reference=reference) for i, m in self.frames])
        shades = np.linspace(220, 0, len(self.frames)).astype(int)
        series = []
        for (i, m), shade in zip(self.frames, shades):
            colour = (int(shade), int(shade), 255)
            if self.signal.dims == 1:
                radius = len(m) // 2
                series.append((np.arange(radius + 1), m[radius:], colour, f"step {i}"))
            else:
                series.append(_radial_series(m, colour, f"step {i}"))
        return line_chart(series, "reconstruction spectrum during training", "lattice frequency")
