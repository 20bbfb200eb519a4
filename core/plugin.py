"""The public plugin API: everything a plugin may import from inrkit.

Plugins, built-in and third-party alike, import only from this module. It
defines nothing: it re-exports the stable names of the engine's modules
(:mod:`inrkit.plugin_types`, :mod:`inrkit.hookspecs`, :mod:`inrkit.signal`,
:mod:`inrkit.errors`...), which may be reorganised behind it. A plugin is a module or object with functions marked
``@hookimpl`` whose names match the specifications in :mod:`inrkit.hookspecs`;
it is found through the ``inrkit`` entry-point group.

Names are imported from their home module when first used
(:func:`inrkit.lazy.reexport`), so that importing a plugin to register it
does not import torch: ``inrkit --help`` stays fast.

Example::

    from inrkit.plugin import SignalType, hookimpl

    @hookimpl
    def inrkit_register_signals(register):
        register(SignalType(name="csv", load=load_csv, extensions=(".csv",),
                            description="time series from a CSV column"))
"""

from inrkit.lazy import reexport

_HOMES = {
    "inrkit.atomic": ("atomic_directory", "atomic_output"),
    "inrkit.errors": ("ConfigError", "InputError", "InrkitError", "InrkitWarning", "PluginError", "RunDirError"),
    "inrkit.events": ("FitEnded", "FitStarted", "PhaseProgress", "StepEnded", "TrainSettings"),
    "inrkit.hookspecs": ("HOOK_VERSION", "hookimpl"),
    "inrkit.lazy": ("lazy_import",),
    "inrkit.metrics": ("psnr", "psnr_from_mse"),
    "inrkit.options": ("Option",),
    "inrkit.pipeline": ("export_run", "run_signal_type"),
    "inrkit.plots": ("colour_ramp", "heatmap", "line_chart", "stack", "titled"),
    "inrkit.plugin_types": ("AssessRequest", "ExporterType", "ExportRequest", "FitContext", "FitDefaults", "LossType",
                            "MetricValue", "SamplerContext", "SamplerType", "SignalType"),
    "inrkit.progress": ("report_progress",),
    "inrkit.resources": ("check_fits_in_memory",),
    "inrkit.signal": ("Batch", "Signal", "file_provenance", "grid_coordinates", "grid_extent", "grid_nyquist"),
}

__all__ = sorted(name for names in _HOMES.values() for name in names)

__getattr__, __dir__ = reexport(__name__, _HOMES)
