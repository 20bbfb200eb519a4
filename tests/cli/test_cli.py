import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from inrkit.checkpoint import load_run
from inrkit.cli.main import app
from inrkit.plugins.image.io import load_image, to_pixels
from inrkit.train import evaluate

DATASETS = Path(__file__).resolve().parents[2] / "datasets"
runner = CliRunner()
FAST = ["--steps", "40", "--params", "1500", "--quiet"]


def small_image(tmp_path, mode="RGB"):
    y, x = np.mgrid[0:24, 0:32]
    array = np.stack([(x * 8) % 256, (y * 10) % 256, ((x + y) * 4) % 256], -1).astype(np.uint8)
    path = tmp_path / "small.png"
    Image.fromarray(array).convert(mode).save(path)
    return path


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


def one_error_line(result):
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.output
    assert "Traceback" not in result.output
    return lines[0]


@pytest.fixture(scope="module")
def fitted(tmp_path_factory):
    root = tmp_path_factory.mktemp("fit")
    source = small_image(root)
    run = root / "run"
    result = invoke("fit", source, "-o", run, *FAST, "--holdout", "0.1")
    assert result.exit_code == 0, result.output
    return source, run


def test_fit_writes_a_complete_run_directory(fitted):
    source, run = fitted
    names = {p.name for p in run.iterdir()}
    assert {"model.safetensors", "config.json", "metrics.json", "reconstruction.png", "comparison.png"} <= names
    config = json.loads((run / "config.json").read_text())
    metrics = json.loads((run / "metrics.json").read_text())
    assert config["signal"]["signal_type"] == "image" and config["signal"]["grid_shape"] == [24, 32]
    assert config["stored_parameters"] <= 1500 and metrics["parameters"] == config["stored_parameters"]
    assert metrics["steps"] == 40 and len(metrics["curve"]) == 40
    assert {"psnr", "test_psnr", "ssim"} <= set(metrics["final"])
    assert {"step", "seconds", "loss", "psnr"} <= set(metrics["curve"][0])
    assert not [p for p in run.parent.iterdir() if p.name.startswith(".")], "staging left behind"


def test_rebuilt_model_reproduces_the_reconstruction_bit_for_bit(fitted):
    source, run = fitted
    loaded = load_run(run)
    signal = load_image(source)
    values = evaluate(loaded.model, signal.coordinates())
    again = evaluate(load_run(run).model, signal.coordinates())
    assert torch.equal(values, again)
    saved = np.asarray(Image.open(run / "reconstruction.png"))
    rendered = np.asarray(to_pixels(values, signal.grid_shape, signal.metadata))
    assert np.array_equal(saved, rendered)


def test_export_at_another_resolution(fitted, tmp_path):
    _, run = fitted
    out = tmp_path / "big.png"
    result = invoke("export", run, "--resolution", "64x48", "-o", out)
    assert result.exit_code == 0, result.output
    image = Image.open(out)
    assert image.size == (64, 48) and image.mode == "RGB"
    native = tmp_path / "native.png"
    assert invoke("export", run, "-o", native).exit_code == 0
    assert np.array_equal(np.asarray(Image.open(native)), np.asarray(Image.open(run / "reconstruction.png")))


def test_signal_is_chosen_by_extension_and_output_defaults(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    source = small_image(tmp_path, "L")
    result = invoke("fit", source, *FAST)
    assert result.exit_code == 0, result.output
    assert (tmp_path / "runs" / "small" / "reconstruction.png").is_file()
    assert Image.open(tmp_path / "runs" / "small" / "reconstruction.png").mode == "L"


def test_existing_run_directory_is_protected(fitted):
    source, run = fitted
    before = (run / "model.safetensors").read_bytes()
    line = one_error_line(invoke("fit", source, "-o", run, *FAST))
    assert "already exists" in line and "--overwrite" in line
    assert (run / "model.safetensors").read_bytes() == before


@pytest.mark.parametrize(
    "args, message",
    [
        (["fit", "{missing}"], "does not exist"),
        (["fit", "{empty}", "--signal", "image"], "empty"),
        (["fit", "{text}", "--signal", "image"], "not an image"),
        (["fit", "{truncated}"], "truncated"),
        (["fit", "{image}", "--signal", "nope"], "unknown signal 'nope'"),
        (["fit", "{text}"], "cannot tell the signal type"),
        (["fit", "{image}", "--steps", "-3"], "steps must be a whole number >= 1"),
        (["fit", "{image}", "--width", "0", "--input-frequencies", "4"], "--width must be at least 1"),
        (["fit", "{image}", "--params", "5"], "too small"),
        (["fit", "{image}", "--lr", "-1"], "learning rate"),
        (["fit", "{image}", "--beta2", "1.5"], "beta2 must be in (0, 1)"),
        (["fit", "{image}", "--phase-lr-scale", "0"], "phase learning-rate scale"),
        (["fit", "{image}", "--bandlimit", "100000"], "above this signal's Nyquist"),
        (["fit", "{image}", "--architecture", "mlp"], "unknown architecture"),
        (["fit", "{image}", "--skip", "1"], "--skip must be in [0, 1)"),
        (["fit", "{image}", "--skip", "nan"], "--skip must be in [0, 1)"),
        (["fit", "{image}", "--skip", "0.5", "--architecture", "siren"], "--skip applies to the lattice"),
        (["fit", "{image}", "--skip", "0.5", "--hidden-layers", "1"], "drop --skip or give --hidden-layers 2"),
        (["fit", "{image}", "--sampler", "magic"], "unknown sampler"),
        (["fit", "{image}", "--holdout", "1"], "holdout"),
        (["fit", "{image}", "--device", "tpu"], "unknown device"),
        (["export", "{notrun}", "-o", "{out}"], "not an inrkit run directory"),
        (["export", "{missing}", "-o", "{out}"], "does not exist"),
    ],
)
def test_bad_input_gets_one_line_and_exit_2(tmp_path, args, message):
    image = small_image(tmp_path)
    (tmp_path / "empty.png").write_bytes(b"")
    (tmp_path / "text.txt").write_text("hello")
    truncated = tmp_path / "truncated.png"
    Image.fromarray(np.zeros((64, 64), np.uint8) + 7).save(truncated)
    truncated.write_bytes(truncated.read_bytes()[:60])
    (tmp_path / "notrun").mkdir()
    names = {"missing": tmp_path / "missing.png", "empty": tmp_path / "empty.png", "text": tmp_path / "text.txt",
             "truncated": truncated, "image": image, "notrun": tmp_path / "notrun", "out": tmp_path / "o.png"}
    output = tmp_path / "run-out"
    full = [a.format(**names) for a in args]
    if full[0] == "fit":
        full += ["-o", str(output), "--quiet", "--params", "1500"] if "--params" not in full else ["-o", str(output), "--quiet"]
    line = one_error_line(invoke(*full))
    assert message in line
    assert not output.exists(), "half-written run directory"
    assert not (tmp_path / "o.png").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_export_with_a_wrong_extension_or_resolution(fitted, tmp_path):
    _, run = fitted
    assert "exports to .png" in one_error_line(invoke("export", run, "-o", tmp_path / "x.jpg"))
    assert "--resolution" in one_error_line(invoke("export", run, "-o", tmp_path / "x.png", "--resolution", "0x5"))
    assert not (tmp_path / "x.png").exists()


def test_plugins_and_version():
    result = invoke("plugins")
    assert result.exit_code == 0 and "image" in result.output and "png" in result.output
    listed = json.loads(invoke("plugins", "--json").output)
    assert any(p["name"] == "image" and p["provides"]["signal"] == ["image"] for p in listed["plugins"])
    assert invoke("--version").output.startswith("inrkit ")


def test_fit_writes_spectrum_files_and_spectrum_command(fitted, tmp_path):
    _, run = fitted
    summary = json.loads((run / "spectrum.json").read_text())
    assert {"nyquist", "suggested_bandlimit", "noise_energy_fraction", "reachable_energy_fraction"} <= set(summary)
    assert Image.open(run / "spectrum.png").width > 300
    result = invoke("spectrum", run, "-o", tmp_path / "s.png", "--max-order", "1")
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "s.json").read_text())["predicted"]["max_order"] == 1
    assert "must end in .png" in one_error_line(invoke("spectrum", run, "-o", tmp_path / "s.jpg"))


def test_spectrum_needs_the_source_signal(tmp_path):
    source = small_image(tmp_path)
    run = tmp_path / "run"
    assert invoke("fit", source, "-o", run, *FAST).exit_code == 0
    moved = tmp_path / "moved.png"
    source.rename(moved)
    assert "--input FILE" in one_error_line(invoke("spectrum", run, "-o", tmp_path / "a.png"))
    assert invoke("spectrum", run, "-o", tmp_path / "a.png", "--input", moved).exit_code == 0


def test_bandlimit_auto_and_spectrum_strip(tmp_path):
    source = small_image(tmp_path)
    run = tmp_path / "run"
    result = invoke("fit", source, "-o", run, "--bandlimit", "auto", "--spectrum-every", "10", *FAST)
    assert result.exit_code == 0, result.output
    config = json.loads((run / "config.json").read_text())
    assert config["model"]["bandlimit"][0] == json.loads((run / "spectrum.json").read_text())["suggested_bandlimit"]
    assert Image.open(run / "spectrum_steps.png").width > 4 * 200
    assert "'auto'" in one_error_line(invoke("fit", source, "-o", tmp_path / "r2", "--bandlimit", "lots", "--quiet"))
    assert "at least 1" in one_error_line(invoke("fit", source, "-o", tmp_path / "r3", "--spectrum-every", "0", *FAST))
    assert not (tmp_path / "r2").exists() and not (tmp_path / "r3").exists()
