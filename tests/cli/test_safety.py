"""Never lose work: what --overwrite may replace, Ctrl-C, the recorded source, unwritable outputs."""

import json
import os
import signal
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from inrkit.cli.main import app
from inrkit.host import get_host
from inrkit.plugin import hookimpl

runner = CliRunner()
FAST = ["--steps", "30", "--params", "800", "--quiet"]


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


def one_error_line(result):
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.output
    return lines[0]


def image(path, size=(20, 16), seed=0):
    array = np.random.default_rng(seed).integers(0, 256, size=(size[1], size[0]), dtype=np.uint8)
    Image.fromarray(array).save(path)
    return path


def hidden(folder):
    return sorted(p.name for p in Path(folder).iterdir() if p.name.startswith("."))


@pytest.fixture
def fitted(tmp_path):
    source = image(tmp_path / "photo.png")
    run = tmp_path / "run"
    result = invoke("fit", source, "-o", run, *FAST)
    assert result.exit_code == 0, result.output
    return source, run


def test_overwrite_refuses_a_folder_that_is_not_a_run(tmp_path):
    source = image(tmp_path / "photo.png")
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "thesis.txt").write_text("three years")
    line = one_error_line(invoke("fit", source, "-o", folder, "--overwrite", *FAST))
    assert "only inrkit run directories" in line and "thesis.txt" in line
    assert (folder / "thesis.txt").read_text() == "three years"
    assert sorted(p.name for p in folder.iterdir()) == ["thesis.txt"]


def test_overwrite_replaces_a_run(fitted):
    source, run = fitted
    result = invoke("fit", source, "-o", run, "--overwrite", "--seed", "3", *FAST)
    assert result.exit_code == 0, result.output
    assert json.loads((run / "config.json").read_text())["train"]["seed"] == 3


def test_unwritable_output_is_found_before_training(tmp_path, monkeypatch):
    source = image(tmp_path / "photo.png")
    (tmp_path / "a-file").write_text("x")

    def no_training(*args, **kwargs):
        raise AssertionError("training started before the output was checked")

    monkeypatch.setattr("inrkit.pipeline.fit", no_training)
    line = one_error_line(invoke("fit", source, "-o", tmp_path / "a-file" / "run", *FAST))
    assert "cannot write the output" in line and "writable" in line

    def read_only(*args, **kwargs):
        raise OSError(30, "Read-only file system")

    monkeypatch.setattr("inrkit.checkpoint.tempfile.mkdtemp", read_only)
    line = one_error_line(invoke("fit", source, "-o", tmp_path / "ro" / "run", *FAST))
    assert "Read-only file system" in line
    assert not hidden(tmp_path)


class Interrupter:
    """Presses Ctrl-C at a given step of training."""

    def __init__(self, at):
        self.at = at

    @hookimpl
    def inrkit_step_end(self, step):
        if step.step == self.at:
            raise KeyboardInterrupt


@pytest.fixture
def ctrl_c():
    host = get_host()
    plugins = []

    def press(at):
        plugin = Interrupter(at)
        host.pm.register(plugin, name=f"interrupter-{len(plugins)}")
        plugins.append(plugin)

    yield press
    for plugin in plugins:
        host.pm.unregister(plugin)


def test_ctrl_c_in_training_writes_the_run_and_exits_130(tmp_path, ctrl_c):
    source = image(tmp_path / "photo.png")
    ctrl_c(at=7)
    run = tmp_path / "run"
    result = invoke("fit", source, "-o", run, *FAST)
    assert result.exit_code == 130, result.output
    assert "interrupted at step 7" in result.output and str(run) in result.output
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["stop_reason"] == "interrupted" and metrics["steps"] == 7


def test_an_interrupted_fit_never_replaces_a_run(fitted, ctrl_c):
    source, run = fitted
    before = (run / "model.safetensors").read_bytes()
    ctrl_c(at=3)
    result = invoke("fit", source, "-o", run, "--overwrite", *FAST)
    assert result.exit_code == 130, result.output
    beside = run.with_name("run.interrupted-1")
    assert f"written to {beside}" in result.output and "left as it was" in result.output
    assert (run / "model.safetensors").read_bytes() == before
    assert json.loads((beside / "metrics.json").read_text())["steps"] == 3


def test_ctrl_c_while_writing_finishes_the_writing(tmp_path, monkeypatch):
    import inrkit.runwriter

    source = image(tmp_path / "photo.png")
    real = inrkit.runwriter.save_run
    presses = {"count": 1}

    def save_with_ctrl_c(*args, **kwargs):
        for _ in range(presses["count"]):
            os.kill(os.getpid(), signal.SIGINT)
        return real(*args, **kwargs)

    monkeypatch.setattr("inrkit.runwriter.save_run", save_with_ctrl_c)
    run = tmp_path / "run"
    result = invoke("fit", source, "-o", run, *FAST)
    assert result.exit_code == 130, result.output
    assert "interrupted while writing" in result.output and "complete" in result.output
    assert {"model.safetensors", "config.json", "metrics.json", "reconstruction.png"} <= {p.name for p in run.iterdir()}
    # A second Ctrl-C stops at once; then nothing is written, and the message says so.
    presses["count"] = 2
    other = tmp_path / "other"
    result = invoke("fit", source, "-o", other, *FAST)
    assert result.exit_code == 130 and "nothing was written" in result.output, result.output
    assert not other.exists() and not hidden(tmp_path)


def test_export_refuses_to_overwrite_the_source(fitted):
    source, run = fitted
    before = source.read_bytes()
    line = one_error_line(invoke("export", run, "-o", source))
    assert "fitted to" in line and "choose another -o" in line
    assert source.read_bytes() == before
    link = source.with_name("link.png")
    link.symlink_to(source)
    assert "fitted to" in one_error_line(invoke("export", run, "-o", link))
    assert source.read_bytes() == before


def test_a_changed_source_is_a_warning_or_with_strict_an_error(fitted, tmp_path):
    source, run = fitted
    image(source, seed=1)  # same shape, other pixels
    result = invoke("spectrum", run)
    assert result.exit_code == 0, result.output
    assert "warning:" in result.output and "not the file this run was fitted to" in result.output
    assert (run / "spectrum.png").is_file(), "spectrum writes into the run directory by default"
    line = one_error_line(invoke("spectrum", run, "--strict", "-o", tmp_path / "s.png"))
    assert "--strict" in line and not (tmp_path / "s.png").exists()
    line = one_error_line(invoke("prune", run, "-o", tmp_path / "p", "--target-params", "400", "--strict", "-q"))
    assert "not the file this run was fitted to" in line and not (tmp_path / "p").exists()


def test_a_source_of_another_shape_is_an_error(fitted, tmp_path):
    _, run = fitted
    other = image(tmp_path / "other.png", size=(24, 16))
    line = one_error_line(invoke("spectrum", run, "--input", other, "-o", tmp_path / "s.png"))
    assert "grid_shape [16, 24]" in line and "[16, 20]" in line
    line = one_error_line(invoke("prune", run, "--input", other, "-o", tmp_path / "p", "--target-params", "400"))
    assert "grid_shape" in line and not (tmp_path / "p").exists()
    rgb = tmp_path / "rgb.png"
    Image.fromarray(np.zeros((16, 20, 3), np.uint8)).save(rgb)
    assert "channels 3" in one_error_line(invoke("spectrum", run, "--input", rgb, "-o", tmp_path / "s.png"))


def test_tiny_and_constant_inputs_say_what_is_wrong_with_the_input(tmp_path):
    import soundfile

    tiny = tmp_path / "tiny.png"
    Image.fromarray(np.array([[0, 255], [128, 64]], np.uint8)).save(tiny)
    line = one_error_line(invoke("fit", tiny, "-o", tmp_path / "r1", "-q"))
    assert "(2x2) is too small for the default size" in line and "pass --params" in line
    suggested = int(line.split("pass --params ")[1].split()[0])
    result = invoke("fit", tiny, "-o", tmp_path / "r1", "-q", "--steps", "3", "--params", suggested)
    assert result.exit_code == 0, result.output  # the suggestion works
    silent = tmp_path / "silent.wav"
    soundfile.write(silent, np.zeros(4000), 16000)
    line = one_error_line(invoke("fit", silent, "-o", tmp_path / "r2", "-q"))
    assert "constant (every sample is 0)" in line and "nothing to fit" in line
    assert not (tmp_path / "r2").exists()


def test_a_loss_for_another_signal_is_refused_before_training(tmp_path):
    source = image(tmp_path / "photo.png")
    line = one_error_line(invoke("fit", source, "-o", tmp_path / "r", "--loss", "mse-stft", *FAST))
    assert "works for audio signals, not image" in line and "mse" in line
    assert not (tmp_path / "r").exists()


def test_absurd_command_options_get_one_line(fitted, tmp_path):
    _, run = fitted
    for args, message in [(["--max-order", "-1"], "--max-order"), (["--tol", "-1"], "--tol"), (["--tol", "nan"], "--tol")]:
        assert message in one_error_line(invoke("spectrum", run, "-o", tmp_path / "s.png", *args))
    assert not (tmp_path / "s.png").exists()
    line = one_error_line(invoke("export", run, "-o", tmp_path / "x.png", "--option", "level=3"))
    assert "exporter 'png' has no option 'level'; its options: none" in line
    assert "is not NAME=VALUE" in one_error_line(invoke("export", run, "-o", tmp_path / "x.png", "--option", "level"))
    assert not (tmp_path / "x.png").exists()


def test_usage_errors_are_one_line_from_the_console_script(capsys, monkeypatch):
    from inrkit.cli.main import main

    for argv, message in [(["fit", "x.png", "--steps", "nan"], "--steps"), (["fit", "x.png", "--stpes", "3"], "--stpes")]:
        with pytest.raises(SystemExit) as stopped:
            main(argv)
        err = capsys.readouterr().err.strip().splitlines()
        assert stopped.value.code == 2 and len(err) == 1 and err[0].startswith("error: ") and message in err[0], err


def test_argument_errors_answer_before_any_heavy_import():
    import subprocess
    import sys

    code = ("import sys\nfrom inrkit.cli.main import main\ntry:\n    main(['fit', 'x.png', '--stpes', '3'])\n"
            "except SystemExit as stop:\n    print(stop.code, sorted(m for m in ('torch', 'numpy', 'PIL', 'trimesh') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.stdout.strip() == "2 []", done.stdout + done.stderr
    assert done.stderr.startswith("error: No such option: --stpes")


def test_a_bug_says_it_is_a_bug_and_asks_for_a_report(capsys, monkeypatch, tmp_path):
    from inrkit.cli.main import main

    def broken(*args, **kwargs):
        raise ZeroDivisionError("a bug")

    monkeypatch.setattr("inrkit.pipeline.fit_file", broken)
    with pytest.raises(SystemExit) as stopped:
        main(["fit", str(image(tmp_path / "p.png")), "-o", str(tmp_path / "r"), "-q"])
    err = capsys.readouterr().err.strip().splitlines()
    assert stopped.value.code == 1 and "Traceback" in err[0]
    assert err[-1].startswith("error: this is a bug in inrkit") and "please report it" in err[-1]
