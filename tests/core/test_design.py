"""The plugin surface as a third-party author meets it: 1.0 plugins still work, clashes are reported, docs are complete."""

import json
import warnings
from dataclasses import fields
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from inrkit.config import TrainConfig
from inrkit.host import Host
from inrkit.pipeline import ModelOptions, fit_file
from inrkit.plugin import FitDefaults, Signal, SignalType
from inrkit.testing import assert_export_round_trip

ROOT = Path(__file__).resolve().parents[2]


def ramp_file(tmp_path, rows=300):
    path = tmp_path / "ramp.txt"
    t = np.linspace(0, 1, rows)
    np.savetxt(path, np.sin(2 * np.pi * 3 * t) + 0.2 * t)
    return path


def legacy_loader(path):
    data = np.loadtxt(path, ndmin=2)
    from inrkit.plugin import grid_extent, grid_nyquist

    shape = (data.shape[0],)
    extent = grid_extent(shape)
    return Signal("ramp", torch.tensor(data, dtype=torch.float32), grid_nyquist(shape, extent), 2.0,
                  grid_shape=shape, extent=extent, source=str(path))


def test_a_plugin_written_for_hook_version_1_0_still_fits(tmp_path):
    calls = []

    def metrics(signal, reconstruction, train_mask):
        calls.append("metrics")
        return {"mean_error": float((reconstruction - signal.values).abs().mean())}

    def previews(signal, reconstruction, run_dir):
        calls.append("previews")
        (run_dir / "legacy.txt").write_text("drawn")
        return [run_dir / "legacy.txt"]

    with pytest.warns(DeprecationWarning, match="defaults=FitDefaults"):
        legacy = SignalType("ramp", legacy_loader, (".txt",), "1.0-style", None, metrics, previews, None,
                            "mse", "full", None, 1.0 / 3.0, None, 0.5)
    assert legacy.defaults == FitDefaults(bandlimit_fraction=1.0 / 3.0, params_fraction=0.5)
    with pytest.warns(DeprecationWarning, match="read SignalType.defaults.loss"):
        assert legacy.loss == "mse"
    host = Host()
    host.registry["signal"]["ramp"] = legacy
    host._owner[("signal", "ramp")] = host.plugins[0]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        summary = fit_file(ramp_file(tmp_path), tmp_path / "run", model_options=ModelOptions(params=600),
                           train_config=TrainConfig(steps=30, device="cpu"), signal_name="ramp", host=host,
                           load_options=None)
    assert calls == ["metrics", "previews"]
    final = json.loads((tmp_path / "run" / "metrics.json").read_text())["final"]
    assert {"psnr", "mean_error"} <= set(final) and (tmp_path / "run" / "legacy.txt").read_text() == "drawn"
    assert summary.signal_type.name == "ramp"
    assert json.loads((tmp_path / "run" / "config.json").read_text())["signal"]["kind"] == "ramp"


def test_extension_clashes_are_reported_and_priority_settles_them():
    host = Host()
    rival = SignalType(name="rival", load=legacy_loader, extensions=(".png", ".rival"))
    host.registry["signal"]["rival"] = rival
    host._owner[("signal", "rival")] = host.plugins[0]
    clashes = host.extension_clashes()
    assert any(line.startswith("extension .png is claimed by image") and "rival" in line for line in clashes)
    with pytest.raises(Exception, match="could be any of image, rival"):
        host.signal_for_path(Path("x.png"))
    host.registry["signal"]["rival"] = SignalType(name="rival", load=legacy_loader, extensions=(".png",),
                                                  extension_priority=1)
    assert host.signal_for_path(Path("x.png")).name == "rival"
    assert not any(".png" in line for line in host.extension_clashes())


def test_export_round_trip_at_a_new_resolution_on_one_axis(tmp_path):
    y, x = np.mgrid[0:24, 0:32]
    source = tmp_path / "small.png"
    Image.fromarray(((np.sin(x / 5) + np.cos(y / 4) + 2) * 60).astype(np.uint8)).save(source)
    fit_file(source, tmp_path / "run", model_options=ModelOptions(params=1500),
             train_config=TrainConfig(steps=40, device="cpu"), host=Host())
    # Width 64, height unchanged: the file spans the same domain at twice the samples along x only.
    achieved = assert_export_round_trip(tmp_path / "run", tmp_path / "wide.png", 40.0, resolution=[64, 24],
                                        exporter="png")
    assert Image.open(tmp_path / "wide.png").size == (64, 24) and achieved > 40.0
    with pytest.raises(Exception, match="unknown exporter 'jpeg'"):
        assert_export_round_trip(tmp_path / "run", tmp_path / "x.png", 40.0, exporter="jpeg")


def test_the_guide_names_every_field_a_plugin_author_sets():
    readme = (ROOT / "README.md").read_text()
    for cls in (SignalType, FitDefaults):
        for field in fields(cls):
            assert f"`{field.name}`" in readme or f"{field.name}=" in readme or f"{field.name}," in readme, \
                f"README's plugin guide must explain {cls.__name__}.{field.name}"
    for key in ("kind", "signal_type", "dims", "channels", "grid_shape", "extent", "nyquist", "data_range",
                "metadata", "source", "source_sha256", "exporter", "provenance", "load_options"):
        assert f"`{key}`" in readme, f"the guide must list the geometry key {key}"


def test_the_prune_summary_never_says_n_to_n(capsys):
    from types import SimpleNamespace

    from inrkit.cli.main import _summarise

    result = SimpleNamespace(steps=10, seconds=1.0, stop_reason="steps")
    summary = SimpleNamespace(metrics={"final": {"psnr": 30.0}, "prune_path": [{"parameters": 1977}] * 3},
                              parameters=1977, result=result, run_dir=Path("r"), signal_type=None)
    _summarise(summary)
    out = capsys.readouterr().out
    assert "1977 -> 1977" not in out and "1977 parameters kept" in out
    summary.parameters = 1500
    _summarise(summary)
    assert "1977 -> 1500 parameters" in capsys.readouterr().out


def test_series_metrics_are_stored_whole_and_shown_as_a_mean():
    from inrkit.cli.main import _shown_metrics
    from inrkit.runwriter import _checked_metrics

    stored = _checked_metrics({"per_frame": np.array([1.0, 2.0, 4.0]), "ssim": 0.5}, "video")
    assert stored == {"per_frame": [1.0, 2.0, 4.0], "ssim": 0.5}
    shown = _shown_metrics(stored, {"per_frame": "error {value:.2f}", "ssim": "SSIM {value:.2f}"})
    assert shown == ["error 2.33 (mean of 3)", "SSIM 0.50"]
    with pytest.raises(Exception, match="metrics are numbers or lists of numbers"):
        _checked_metrics({"bad": "text"}, "video")


def test_a_folder_input_fits_and_records_what_its_loader_read(tmp_path):
    from inrkit.plugin import file_provenance

    frames = tmp_path / "frames"
    frames.mkdir()
    for index in range(4):
        np.savetxt(frames / f"{index}.txt", np.sin(np.linspace(0, 3, 64) + index))

    def load_frames(path):
        files = sorted(Path(path).glob("*.txt"))
        data = np.stack([np.loadtxt(f) for f in files])  # frames x samples
        return Signal.from_grid(torch.tensor(data, dtype=torch.float32).reshape(-1, 1), data.shape,
                                spacing=(4.0, 1.0), provenance=file_provenance(*files), source=str(path))

    host = Host()
    host.registry["signal"]["frames"] = SignalType(name="frames", load=load_frames)
    host._owner[("signal", "frames")] = host.plugins[0]
    fit_file(frames, tmp_path / "run", model_options=ModelOptions(params=400, bandlimit=(1, 8)),
             train_config=TrainConfig(steps=10, device="cpu"), signal_name="frames", host=host)
    recorded = json.loads((tmp_path / "run" / "config.json").read_text())["signal"]
    assert recorded["source_sha256"] is None and len(recorded["provenance"]) == 4
    assert recorded["provenance"][str((frames / "0.txt").resolve())] == file_provenance(frames / "0.txt").popitem()[1]
    assert json.loads((tmp_path / "run" / "config.json").read_text())["model"]["bandlimit"] == [1, 8]
