"""Test helpers for plugin authors (and for inrkit's own tests).

Use them from pytest; enable the fixtures in your ``conftest.py`` with::

    pytest_plugins = ["inrkit.testing"]

Helpers:

* :func:`fake_distribution` makes a directory look like an installed
  distribution with ``inrkit`` entry points, so discovery can be tested
  without pip (put the directory on ``sys.path``).
* :func:`assert_plugin_discovered` checks that the host loaded a plugin and
  what it registered.
* :func:`fit_run` fits a file into a run directory with a small, fast model.
* :func:`assert_fit_converges` checks that a short fit reaches a PSNR.
* :func:`assert_export_round_trip` exports a run, reads the file back with
  the signal's own loader, and checks it against the model.

Fixtures: ``inrkit_host`` (a freshly loaded host) and ``inrkit_env``
(monkeypatched ``INRKIT_*`` variables cleared, for reproducible discovery).
"""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import pytest

from inrkit.checkpoint import load_run
from inrkit.config import TrainConfig
from inrkit.host import Host, PluginInfo
from inrkit.metrics import psnr
from inrkit.pipeline import FitSummary, ModelOptions, export_run, fit_file
from inrkit.signal import grid_coordinates
from inrkit.train import evaluate


def fake_distribution(
    root: Path, name: str, entry_points: dict[str, str], modules: dict[str, str] | None = None, version: str = "1.0"
) -> Path:
    """Create ``root/<name>-<version>.dist-info`` with ``[inrkit]`` entry points, plus module files.

    Parameters
    ----------
    root:
        Directory to put on ``sys.path`` (e.g. ``monkeypatch.syspath_prepend(root)``).
    name:
        Distribution name, e.g. ``inrkit-csv``.
    entry_points:
        ``{entry point name: "module[:object]"}``.
    modules:
        ``{module name: source}`` written as ``root/<module>.py``.

    Returns
    -------
    Path
        The ``.dist-info`` directory.
    """
    root = Path(root)
    info = root / f"{name.replace('-', '_')}-{version}.dist-info"
    info.mkdir(parents=True, exist_ok=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
    lines = "\n".join(f"{key} = {target}" for key, target in entry_points.items())
    (info / "entry_points.txt").write_text(f"[inrkit]\n{lines}\n")
    for module, source in (modules or {}).items():
        (root / f"{module}.py").write_text(textwrap.dedent(source))
    return info


def assert_plugin_discovered(name: str, provides: dict[str, list[str]] | None = None, host: Host | None = None) -> PluginInfo:
    """Assert the plugin ``name`` is loaded (and registered at least ``provides``).

    Returns its :class:`~inrkit.host.PluginInfo`.
    """
    host = host or Host()
    found = {info.name: info for info in host.plugins}
    assert name in found, f"plugin {name!r} not loaded; loaded: {sorted(found)}; problems: {host.problems}"
    info = found[name]
    for kind, names in (provides or {}).items():
        missing = set(names) - set(info.provides.get(kind, []))
        assert not missing, f"plugin {name!r} does not provide {kind} {sorted(missing)}; it provides {info.provides}"
    return info


def fit_run(
    path: Path, output: Path, signal: str | None = None, steps: int = 200, params: int | None = 3000, **model: Any
) -> FitSummary:
    """Fit ``path`` into the run directory ``output`` with a small model on the CPU."""
    options = ModelOptions(params=params, **model)
    config = TrainConfig(steps=steps, lr=5e-3, lr_final=5e-4, device="cpu")
    return fit_file(Path(path), Path(output), model_options=options, train_config=config, signal_name=signal, host=Host())


def assert_fit_converges(path: Path, output: Path, min_psnr: float, signal: str | None = None, **kwargs: Any) -> FitSummary:
    """Fit (see :func:`fit_run`) and assert the final training PSNR reaches ``min_psnr`` dB."""
    summary = fit_run(path, output, signal, **kwargs)
    achieved = summary.metrics["final"]["psnr"]
    assert achieved >= min_psnr, f"fit reached {achieved:.2f} dB, expected at least {min_psnr} dB"
    return summary


def assert_export_round_trip(run_dir: Path, output: Path, min_psnr: float, options: dict[str, Any] | None = None,
                             exporter: str | None = None, resolution: list[int] | None = None) -> float:
    """Export ``run_dir`` to ``output``, load it back with the signal's loader, compare with the model.

    ``options`` are the exporter's declared options, ``exporter`` its name
    (default: from the extension), ``resolution`` samples per axis as the
    exporter reads them (may change one axis only). A gridded export spans
    the fitted signal's domain at its own sample counts, so the loaded
    file's samples are compared with the model on that grid over the run's
    extent; a scattered one at the loaded file's own coordinates. The PSNR
    (dB, on the signal's data range) must reach ``min_psnr`` (quantisation
    of the file format sets the ceiling). Returns the PSNR.
    """
    host = Host()
    options = dict(options or {})
    resolution = resolution if resolution is not None else options.pop("resolution", None)
    export_run(Path(run_dir), Path(output), options=options, exporter_name=exporter, host=host, device="cpu",
               resolution=resolution)
    run = load_run(Path(run_dir))
    signal_type = host.signal(run.signal["signal_type"])
    loaded = signal_type.load(Path(output))
    extent = run.signal.get("extent")
    if loaded.grid_shape is not None and extent is not None and len(extent) == loaded.dims:
        coords = grid_coordinates(loaded.grid_shape, extent)
    else:
        coords = loaded.coordinates()
    values = evaluate(run.model, coords)
    achieved = psnr(values, loaded.values, loaded.data_range)
    assert achieved >= min_psnr, f"exported file differs from the model: {achieved:.2f} dB < {min_psnr} dB"
    return achieved


@pytest.fixture
def inrkit_env(monkeypatch):
    """Clear ``INRKIT_PLUGINS`` and ``INRKIT_DISABLE_PLUGIN_AUTOLOAD`` for the test."""
    monkeypatch.delenv("INRKIT_PLUGINS", raising=False)
    monkeypatch.delenv("INRKIT_DISABLE_PLUGIN_AUTOLOAD", raising=False)
    return monkeypatch


@pytest.fixture
def inrkit_host(inrkit_env) -> Host:
    """A plugin host loaded for this test (built-ins and installed entry points)."""
    return Host()
