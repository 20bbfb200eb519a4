"""Hostile run directories: every problem is one clear error line, never a traceback or a huge allocation."""

import json
import math
import shutil
import struct
import time
from dataclasses import fields

import pytest
import torch
from typer.testing import CliRunner

from inrkit import runschema, tensorcheck
from inrkit.checkpoint import load_run, model_from_tensors, save_run
from inrkit.cli.main import app, load_plugin_commands
from inrkit.config import ModelConfig, TrainConfig
from inrkit.errors import RunDirError
from inrkit.model import build_model
from inrkit.signal import grid_extent, grid_nyquist

load_plugin_commands()  # `inrkit mesh` is the SDF plugin's command
runner = CliRunner()
DAMAGED = "damaged or was edited by hand"


def one_error_line(result):
    assert result.exit_code == 2, (result.output, result.exception)
    assert "Traceback" not in result.output
    # (a "warning:" line from an unrelated installed plugin is not part of the error)
    lines = [line for line in result.output.splitlines() if line.strip() and not line.startswith("warning: ")]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.output
    return lines[0]


def load_error(run):
    with pytest.raises(RunDirError) as caught:
        load_run(run)
    message = str(caught.value)
    assert "\n" not in message and len(message) < 600, message
    return message


def edit_config(run, change):
    config = json.loads((run / "config.json").read_text())
    change(config)
    (run / "config.json").write_text(json.dumps(config))


def _signal(kind, shape, metadata, exporter):
    extent = grid_extent(shape)
    return {"kind": kind, "dims": len(shape), "channels": 1, "grid_shape": list(shape), "extent": list(extent),
            "nyquist": list(grid_nyquist(shape, extent)), "data_range": 2.0, "metadata": metadata,
            "source": None, "source_sha256": None, "signal_type": kind, "exporter": exporter}


SIGNALS = {
    "image": (ModelConfig(dims=2, out_channels=1, input_frequencies=8, width=6, bandlimit=(4, 4), low_bandlimit=(2, 2)),
              _signal("image", (12, 16), {"mode": "L", "bit_depth": 8, "peak": 255, "source_mode": "L", "height": 12,
                                          "width": 16}, "png")),
    "audio": (ModelConfig(dims=1, out_channels=1, input_frequencies=8, width=6, bandlimit=(40,), low_bandlimit=(8,)),
              _signal("audio", (600,), {"sample_rate": 600, "channels": 1, "frames": 600, "format": "WAV",
                                        "subtype": "PCM_16", "duration_seconds": 1.0}, "wav")),
}


@pytest.fixture(scope="module")
def fitted(tmp_path_factory):
    """Tiny image and audio runs written by save_run as `inrkit fit` writes them (each test edits a copy)."""
    folder = tmp_path_factory.mktemp("fitted")
    runs = {}
    for name, (config, signal) in SIGNALS.items():
        config = {"model": config.to_dict(), "train": TrainConfig(steps=20).to_dict(), "loss": "mse", "signal": signal}
        runs[name] = folder / name
        runs[name].mkdir()
        save_run(runs[name], build_model(SIGNALS[name][0]), config, {"final": {}})
    return runs


@pytest.fixture
def image_run(fitted, tmp_path):
    return shutil.copytree(fitted["image"], tmp_path / "image" / "run")


@pytest.fixture
def audio_run(fitted, tmp_path):
    return shutil.copytree(fitted["audio"], tmp_path / "audio" / "run")


def export(run, name):
    return runner.invoke(app, ["export", str(run), "-o", str(run.parent / name)])


# --- the expected tensors are those build_model makes ------------------------------------------------------


CONFIGS = [
    dict(dims=2, out_channels=1, input_frequencies=8, width=6, bandlimit=(6, 6), low_bandlimit=(2, 2)),
    dict(dims=3, out_channels=3, input_frequencies=9, width=5, hidden_layers=3, bandlimit=(4, 4, 4),
         low_bandlimit=(2, 2, 2), bound_mode="tanh"),
    dict(dims=1, out_channels=2, input_frequencies=7, width=4, hidden_layers=2, architecture="uniform",
         bandlimit=(20,), low_bandlimit=(3,)),
    dict(dims=2, out_channels=4, input_frequencies=6, width=6, hidden_layers=3, architecture="siren"),
    dict(dims=3, out_channels=1, input_frequencies=5, width=5, hidden_layers=1, architecture="siren"),
]


@pytest.mark.parametrize("options", CONFIGS)
def test_expected_tensors_are_those_of_build_model(options):
    config = ModelConfig(**options)
    built = {name: tuple(t.shape) for name, t in build_model(config).state_dict().items()}
    assert tensorcheck.expected_tensors(config) == built


def test_every_model_config_field_has_a_check():
    assert {f.name for f in fields(ModelConfig)} <= set(runschema.MODEL_CHECKS)


def test_a_valid_run_loads_and_exports(image_run, audio_run):
    run = load_run(image_run)
    assert run.signal["signal_type"] == "image" and run.model_config.width > 0
    assert export(image_run, "out.png").exit_code == 0
    assert export(audio_run, "out.wav").exit_code == 0


def test_a_model_saved_without_a_signal_still_loads(tmp_path):
    config = ModelConfig(**CONFIGS[0])
    model = build_model(config)
    save_run(tmp_path, model, {"model": config.to_dict()}, {})
    x = torch.rand(10, 2) * 2 - 1
    assert torch.equal(load_run(tmp_path).model(x), model.eval()(x))


# --- wrong types anywhere in config.json -------------------------------------------------------------------


def _set(section, key, value):
    def change(config):
        (config if section is None else config[section])[key] = value

    return change


def _drop(section, key):
    return lambda config: config[section].pop(key)


WRONG = [
    # the four reported crashes
    ("format_version", _set(None, "format_version", "x"), "format_version"),
    ("bandlimit", _set("model", "bandlimit", ["a", "b"]), "model.bandlimit[0]"),
    ("output_offset", _set("model", "output_offset", "ab"), "model.output_offset"),
    ("grid_shape", _set("signal", "grid_shape", "abc"), "signal.grid_shape"),
    # more of the same
    ("format_version float", _set(None, "format_version", 1.5), "format_version"),
    ("model list", _set(None, "model", [1, 2]), "model"),
    ("width string", _set("model", "width", "25"), "model.width"),
    ("width bool", _set("model", "width", True), "model.width"),
    ("bandlimit length", _set("model", "bandlimit", [4]), "model.bandlimit"),
    ("low_fraction", _set("model", "low_fraction", 2.5), "model.low_fraction"),
    ("skip", _set("model", "skip", 1.0), "model.skip"),
    ("architecture", _set("model", "architecture", ["lattice"]), "model.architecture"),
    ("bound_mode", _set("model", "bound_mode", "clip"), "model.bound_mode"),
    ("omega_g", _set("model", "omega_g", "30"), "model.omega_g"),
    ("output_scale", _set("model", "output_scale", [0.0]), "model.output_scale[0]"),
    ("seed", _set("model", "seed", 2**70), "model.seed"),
    ("unknown model key", _set("model", "depth", 3), "model.depth"),
    ("missing width", _drop("model", "width"), "model.width"),
    ("signal list", _set(None, "signal", ["image"]), "signal"),
    ("grid_shape negative", _set("signal", "grid_shape", [12, -16]), "signal.grid_shape[1]"),
    ("grid_shape huge", _set("signal", "grid_shape", [2**20, 2**20]), "signal.grid_shape"),
    ("extent", _set("signal", "extent", ["a", 1.0]), "signal.extent[0]"),
    ("nyquist length", _set("signal", "nyquist", [1.0]), "signal.nyquist"),
    ("data_range", _set("signal", "data_range", 0), "signal.data_range"),
    ("metadata", _set("signal", "metadata", "L"), "signal.metadata"),
    ("source", _set("signal", "source", 5), "signal.source"),
    ("source_sha256", _set("signal", "source_sha256", ["ab"]), "signal.source_sha256"),
    ("dims string", _set("signal", "dims", "2"), "signal.dims"),
    ("signal_type", _set("signal", "signal_type", "image\nerror: forged"), "signal.signal_type"),
    ("missing extent", _drop("signal", "extent"), "signal.extent"),
    ("provenance", _set("signal", "provenance", {"/data/a.png": 5}), "signal.provenance['/data/a.png']"),
    ("load_options", _set("signal", "load_options", "fast"), "signal.load_options"),
    ("train list", _set(None, "train", []), "train"),
    ("train holdout", _set("train", "holdout", "x"), "train.holdout"),
    ("train sampler", _set("train", "sampler", 3), "train.sampler"),
    ("loss", _set(None, "loss", {"name": "mse"}), "loss"),
]


@pytest.mark.parametrize("case", WRONG, ids=[case[0] for case in WRONG])
def test_wrong_types_are_one_line(image_run, case):
    _, change, key = case
    edit_config(image_run, change)
    message = load_error(image_run)
    assert f"{key} must be" in message and DAMAGED in message and "config.json" in message


@pytest.mark.parametrize("case", WRONG[:4], ids=[case[0] for case in WRONG[:4]])
def test_wrong_types_exit_2_from_export(image_run, case):
    edit_config(image_run, case[1])
    line = one_error_line(export(image_run, "out.png"))
    assert case[2] in line
    assert not (image_run.parent / "out.png").exists()


def test_a_newer_run_format_asks_for_an_upgrade(image_run):
    edit_config(image_run, _set(None, "format_version", 99))
    assert "upgrade inrkit" in load_error(image_run)


@pytest.mark.parametrize("text", ["[" * 100_000 + "]" * 100_000, '{"format": "inrkit-run", "x": 1' + "0" * 5000 + "}",
                                  '{"format": "inrkit-run"} \xff'])
def test_unparsable_config_is_one_line(image_run, text):
    (image_run / "config.json").write_bytes(text.encode("latin-1"))
    assert "not valid JSON" in load_error(image_run)


def test_an_oversized_config_is_not_read(image_run, monkeypatch):
    monkeypatch.setattr(runschema, "MAX_CONFIG_BYTES", 100)
    assert "more than the 100" in load_error(image_run)


# --- denial of service: the weights file is checked before any model is built ------------------------------


def _no_building(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("a model was built or tensors were read before the shapes were checked")

    for target in ("inrkit.checkpoint.model_from_tensors", "inrkit.checkpoint.SinusoidalINR",
                   "inrkit.checkpoint.Siren", "safetensors.torch.load_file"):
        monkeypatch.setattr(target, refuse)


@pytest.mark.parametrize("change, fragment", [
    (_set("model", "width", 10**9), "needs [1000000000]"),
    (_set("model", "input_frequencies", 10**9), "needs [1000000000, 2]"),
    (_set("model", "hidden_layers", 10**6), "model.hidden_layers"),
    (lambda c: (c["model"].update(out_channels=10**9, output_offset=[], output_scale=[]),
                c["signal"].update(channels=10**9)), "does not match config.json"),
])
def test_a_huge_model_is_refused_before_it_is_built(image_run, monkeypatch, change, fragment):
    edit_config(image_run, change)
    _no_building(monkeypatch)
    started = time.perf_counter()
    message = load_error(image_run)
    assert fragment in message and DAMAGED in message
    assert time.perf_counter() - started < 5


def test_a_huge_width_exits_2_from_export(image_run, monkeypatch):
    edit_config(image_run, _set("model", "width", 10**9))
    _no_building(monkeypatch)
    line = one_error_line(export(image_run, "out.png"))
    assert "does not match config.json" in line


def test_a_model_over_the_size_limit_is_refused(image_run, monkeypatch):
    monkeypatch.setattr(tensorcheck, "MAX_STORED_NUMBERS", 10)
    _no_building(monkeypatch)
    assert "more than the 10 inrkit loads" in load_error(image_run)


def test_model_from_tensors_checks_shapes_before_building(monkeypatch):
    config = ModelConfig(**CONFIGS[0])
    tensors = build_model(config).state_dict()
    huge = ModelConfig(**{**CONFIGS[0], "width": 10**9})

    def refuse(*args):
        raise AssertionError("the model was built before its tensors were checked")

    monkeypatch.setattr("inrkit.checkpoint.SinusoidalINR", refuse)
    with pytest.raises(RunDirError, match="does not match config.json"):
        model_from_tensors(huge, tensors)


def _header(path):
    data = path.read_bytes()
    length = struct.unpack("<Q", data[:8])[0]
    return json.loads(data[8 : 8 + length]), data[8 + length :]


def _write_header(path, header, body):
    raw = json.dumps(header).encode()
    raw += b" " * (-len(raw) % 8)
    path.write_bytes(struct.pack("<Q", len(raw)) + raw + body)


def test_a_truncated_model_file_is_one_line(image_run):
    model = image_run / "model.safetensors"
    model.write_bytes(model.read_bytes()[:-12])
    assert "truncated" in load_error(image_run)


def test_a_forged_header_length_is_one_line(image_run, monkeypatch):
    model = image_run / "model.safetensors"
    model.write_bytes(struct.pack("<Q", 10**15) + model.read_bytes()[8:])
    _no_building(monkeypatch)
    assert "header claims" in load_error(image_run)


def test_a_header_claiming_a_huge_tensor_is_one_line(image_run, monkeypatch):
    model = image_run / "model.safetensors"
    header, body = _header(model)
    header["head.bias"]["shape"] = [10**12]
    header["head.bias"]["data_offsets"][1] = header["head.bias"]["data_offsets"][0] + 4 * 10**12
    _write_header(model, header, body)
    _no_building(monkeypatch)
    assert "safetensors" in load_error(image_run)


def test_tensors_must_hold_numbers_of_the_right_kind(image_run):
    model = image_run / "model.safetensors"
    header, body = _header(model)
    weight = next(name for name in header if name.startswith("hidden.0.") and name.endswith("weight"))
    header[weight]["dtype"] = "I32"
    _write_header(model, header, body)
    assert f"tensor {weight} holds I32 values" in load_error(image_run)


def test_a_tensor_missing_from_the_file_is_one_line(image_run):
    edit_config(image_run, _set("model", "hidden_layers", 2))
    assert "no tensor hidden.1" in load_error(image_run)


# --- the signal section must belong to the model -----------------------------------------------------------


def test_signal_dims_and_channels_must_match_the_model(image_run):
    edit_config(image_run, _set("signal", "dims", 3))
    assert "model.dims" in load_error(image_run)
    edit_config(image_run, lambda c: c["signal"].update(dims=2, channels=3))
    assert "model.out_channels" in load_error(image_run)


@pytest.mark.parametrize("kind, name", [("sdf", "out.npy"), ("audio", "out.wav")])
def test_a_relabelled_run_exits_2_from_export(image_run, kind, name):
    edit_config(image_run, lambda c: c["signal"].update(signal_type=kind))
    line = one_error_line(export(image_run, name))
    assert f"for an {kind.upper() if kind == 'sdf' else kind} run" in line and "edited by hand" in line


def test_a_run_whose_kind_differs_from_its_signal_type_still_loads(image_run):
    # Hook 1.0 loaders passed their own Signal.kind, which may differ from the plugin's name.
    edit_config(image_run, lambda c: c["signal"].update(kind="picture"))
    assert load_run(image_run).signal["kind"] == "picture"


def test_a_run_relabelled_throughout_exits_2_from_mesh(image_run):
    edit_config(image_run, lambda c: c["signal"].update(signal_type="sdf", kind="sdf"))
    result = runner.invoke(app, ["mesh", str(image_run), "-o", str(image_run.parent / "m.ply"), "--resolution", "8"])
    line = one_error_line(result)
    assert "dims is 2, it must be 3 for an SDF run" in line
    assert not (image_run.parent / "m.ply").exists()


def test_an_image_run_relabelled_audio_throughout_exits_2(image_run):
    edit_config(image_run, lambda c: c["signal"].update(signal_type="audio", kind="audio"))
    assert "sample_rate" in one_error_line(export(image_run, "out.wav"))
    edit_config(image_run, lambda c: c["signal"]["metadata"].update(sample_rate=16000, frames=100))
    assert "grid_shape" in one_error_line(export(image_run, "out.wav"))


def test_an_audio_run_relabelled_image_throughout_exits_2(audio_run):
    edit_config(audio_run, lambda c: c["signal"].update(signal_type="image", kind="image"))
    assert "grid_shape" in one_error_line(export(audio_run, "out.png"))


@pytest.mark.parametrize("change, key", [
    (lambda m: m.pop("sample_rate"), "sample_rate"),
    (lambda m: m.update(sample_rate="fast"), "sample_rate"),
    (lambda m: m.update(sample_rate=0), "sample_rate"),
    (lambda m: m.update(frames=[600]), "frames"),
    (lambda m: m.update(frames=10**12), "grid_shape"),
    (lambda m: m.update(subtype=16), "subtype"),
])
def test_audio_metadata_is_checked_by_the_exporter(audio_run, change, key):
    edit_config(audio_run, lambda c: change(c["signal"]["metadata"]))
    line = one_error_line(export(audio_run, "out.wav"))
    assert key in line and "audio run" in line
    assert not (audio_run.parent / "out.wav").exists()


@pytest.mark.parametrize("change, key", [
    (lambda m: m.update(mode="CMYK"), "mode"),
    (lambda m: m.update(mode=["L"]), "mode"),
    (lambda m: m.update(mode="RGBA"), "channels"),
    (lambda m: m.update(mode="F"), "float_low"),
])
def test_image_metadata_is_checked_by_the_exporter(image_run, change, key):
    edit_config(image_run, lambda c: change(c["signal"]["metadata"]))
    line = one_error_line(export(image_run, "out.png"))
    assert key in line and "image run" in line


def test_limits_are_sane():
    assert runschema.MAX_HIDDEN_LAYERS >= 8 and runschema.MAX_STORED_NUMBERS >= 10**7
    assert math.prod((1024, 1024, 1024)) <= runschema.MAX_GRID_SAMPLES
