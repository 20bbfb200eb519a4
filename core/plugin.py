"""The public plugin API: everything a plugin may import from inrkit.

Plugins, built-in and third-party alike, import only from this module. It
defines nothing: it re-exports the stable names of the engine's modules
(:mod:`inrkit.plugin_types`, :mod:`inrkit.hookspecs`, :mod:`inrkit.signal`,
:mod:`inrkit.errors`...), which may be reorganised behind it. A plugin is a module or object with functions marked
``@hookimpl`` whose names match the specifications in :mod:`inrkit.hookspecs`;
it is found through the ``inrkit`` entry-point group.

Example::

    from inrkit.plugin import SignalType, hookimpl

    @hookimpl
    def inrkit_register_signals(register):
        register(SignalType(name="csv", load=load_csv, extensions=(".csv",),
                            description="time series from a CSV column"))
"""

from inrkit.atomic import atomic_directory, atomic_output
from inrkit.errors import (
    ConfigError,
    InputError,
    InrkitError,
    InrkitWarning,
    PluginError,
    RunDirError,
)
from inrkit.events import FitEnded, FitStarted, PhaseProgress, StepEnded, TrainSettings
from inrkit.hookspecs import HOOK_VERSION, hookimpl
from inrkit.metrics import psnr, psnr_from_mse
from inrkit.options import Option
from inrkit.pipeline import export_run, run_signal_type
from inrkit.plots import colour_ramp, heatmap, line_chart, stack, titled
from inrkit.plugin_types import (
    AssessRequest,
    ExporterType,
    ExportRequest,
    FitContext,
    FitDefaults,
    LossType,
    MetricValue,
    SamplerContext,
    SamplerType,
    SignalType,
)
from inrkit.progress import report_progress
from inrkit.resources import check_fits_in_memory
from inrkit.signal import Batch, Signal, file_provenance, grid_coordinates, grid_extent, grid_nyquist

__all__ = [
    "HOOK_VERSION",
    "Batch",
    "ConfigError",
    "ExportRequest",
    "ExporterType",
    "AssessRequest",
    "FitContext",
    "FitDefaults",
    "MetricValue",
    "Option",
    "FitEnded",
    "FitStarted",
    "StepEnded",
    "PhaseProgress",
    "report_progress",
    "TrainSettings",
    "InputError",
    "InrkitError",
    "InrkitWarning",
    "PluginError",
    "RunDirError",
    "LossType",
    "atomic_directory",
    "atomic_output",
    "check_fits_in_memory",
    "export_run",
    "run_signal_type",
    "colour_ramp",
    "heatmap",
    "line_chart",
    "stack",
    "titled",
    "psnr",
    "psnr_from_mse",
    "SamplerContext",
    "SamplerType",
    "Signal",
    "SignalType",
    "file_provenance",
    "grid_coordinates",
    "grid_extent",
    "grid_nyquist",
    "hookimpl",
]
