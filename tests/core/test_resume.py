"""Checkpoints and ``inrkit fit --resume``: a resumed fit ends bit for bit where an uninterrupted one ends."""

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from inrkit.cli.main import app
from inrkit.config import ModelConfig, TrainConfig
from inrkit.errors import ConfigError
from inrkit.host import get_host
from inrkit.hookspecs import hookimpl
from inrkit.model import build_model
from inrkit.resume import checkpoint_dir, parse_every
from inrkit.signal import Signal, grid_coordinates, grid_extent
from inrkit.train import Checkpointing, fit

runner = CliRunner()
FAST = ["--params", "600", "--device", "cpu", "--quiet"]


def image(path: Path, seed: int = 0) -> Path:
    y, x = np.mgrid[0:24, 0:32]
    noise = np.random.default_rng(seed).normal(0, 12, (24, 32))
    Image.fromarray((128 + 80 * np.sin(x / 4) * np.cos(y / 5) + noise).clip(0, 255).astype(np.uint8)).save(path)
    return path


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


def one_error_line(result) -> str:
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.output
    return lines[0]


class Stopper:
    """Stops training once at a step: Ctrl-C (KeyboardInterrupt), or a crash standing in for a kill."""

    def __init__(self, at, error):
        self.at, self.error = at, error

    @hookimpl
    def inrkit_step_end(self, step):
        if step.step == self.at and self.error is not None:
            error, self.error = self.error, None
            raise error


@pytest.fixture
def stop_at():
    host = get_host()
    plugins = []

    def stop(at, error=KeyboardInterrupt):
        plugin = Stopper(at, error)
        host.pm.register(plugin, name=f"stopper-{len(plugins)}")
        plugins.append(plugin)

    yield stop
    for plugin in plugins:
        host.pm.unregister(plugin)


def test_a_killed_fit_resumes_bit_for_bit(tmp_path):
    """SIGKILL a real `inrkit fit` after a checkpoint, resume it, and compare with an uninterrupted run's bytes."""
    source = image(tmp_path / "photo.png")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}  # one thread: fast on a busy machine, and the same for all three
    command = [sys.executable, "-m", "inrkit.cli", "fit", str(source), "--steps", "400", *FAST]
    reference = subprocess.Popen([*command, "-o", str(tmp_path / "reference")], env=env)
    killed = subprocess.Popen([*command, "-o", str(tmp_path / "run"), "--checkpoint-every", "50"], env=env)
    state = checkpoint_dir(tmp_path / "run") / "checkpoint.json"
    deadline = time.monotonic() + 120
    step = None
    while step is None or step < 100:
        assert killed.poll() is None, "the fit finished before it could be killed"
        assert time.monotonic() < deadline
        try:
            step = json.loads(state.read_text())["state"]["step"]
        except (OSError, ValueError):
            pass
        time.sleep(0.005)
    killed.send_signal(signal.SIGKILL)
    killed.wait()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as in the subprocesses: the same arithmetic, so the same bytes
    try:
        resumed = invoke("fit", "--resume", tmp_path / "run", "--quiet")
    finally:
        torch.set_num_threads(threads)
    assert reference.wait() == 0
    assert resumed.exit_code == 0, resumed.output
    assert (tmp_path / "run" / "model.safetensors").read_bytes() == \
        (tmp_path / "reference" / "model.safetensors").read_bytes()
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["steps"] == 400 and len(metrics["curve"]) == 400 and metrics["stop_reason"] == "steps"
    assert not checkpoint_dir(tmp_path / "run").exists()


def test_ctrl_c_keeps_the_checkpoint_and_resume_replaces_the_interrupted_run(tmp_path, stop_at):
    source = image(tmp_path / "photo.png")
    assert invoke("fit", source, "-o", tmp_path / "reference", "--steps", "90", *FAST).exit_code == 0
    run = tmp_path / "run"
    stop_at(63)
    result = invoke("fit", source, "-o", run, "--steps", "90", "--checkpoint-every", "50", *FAST)
    assert result.exit_code == 130, result.output
    assert "interrupted at step 63" in result.output and f"--resume {run}" in result.output
    assert "step 60" in result.output  # the freshest good state was written at Ctrl-C
    assert json.loads((run / "metrics.json").read_text())["stop_reason"] == "interrupted"
    result = invoke("fit", "--resume", run, "--quiet")
    assert result.exit_code == 0, result.output
    assert (run / "model.safetensors").read_bytes() == (tmp_path / "reference" / "model.safetensors").read_bytes()
    assert json.loads((run / "metrics.json").read_text())["stop_reason"] == "steps"
    assert not checkpoint_dir(run).exists() and not list(tmp_path.glob("run.interrupted*"))


def test_resume_refuses_what_it_cannot_continue(tmp_path, stop_at):
    source = image(tmp_path / "photo.png")
    run = tmp_path / "run"
    assert "no checkpoint of" in one_error_line(invoke("fit", "--resume", run))
    stop_at(25, RuntimeError("killed"))  # a crash: the checkpoint of step 20 stays, as after a kill
    with pytest.raises(RuntimeError):
        runner.invoke(app, ["fit", str(source), "-o", str(run), "--steps", "60", "--checkpoint-every", "10", *FAST],
                      catch_exceptions=False)
    assert (checkpoint_dir(run) / "checkpoint.json").is_file() and not run.exists()
    line = one_error_line(invoke("fit", "--resume", run, "--steps", "80"))
    assert "--steps cannot be combined with --resume" in line
    line = one_error_line(invoke("fit", source, "--resume", run))
    assert "INPUT cannot be combined with --resume" in line
    line = one_error_line(invoke("fit", source, "-o", run, "--steps", "60", *FAST))
    assert "checkpoint of an unfinished fit at step 20" in line and f"--resume {run}" in line

    original = source.read_bytes()
    image(source, seed=1)
    assert "changed since the fit started" in one_error_line(invoke("fit", "--resume", run))
    source.write_bytes(original)

    tensors = next(checkpoint_dir(run).glob("state-*.safetensors"))
    good = tensors.read_bytes()
    tensors.write_bytes(good[:-10])
    assert "is damaged" in one_error_line(invoke("fit", "--resume", run))
    tensors.write_bytes(good)

    assert invoke("fit", "--resume", run, "--quiet").exit_code == 0
    assert "is a finished run" in one_error_line(invoke("fit", "--resume", run))


def test_checkpoint_options_are_checked(tmp_path):
    source = image(tmp_path / "photo.png")
    line = one_error_line(invoke("fit", source, "-o", tmp_path / "a", "--prune", "--checkpoint-every", "10", *FAST))
    assert "not supported with --prune" in line
    assert "--checkpoint-every '0'" in one_error_line(invoke("fit", source, "--checkpoint-every", "0", *FAST))
    assert "missing INPUT" in one_error_line(invoke("fit", "--steps", "5"))
    assert parse_every("500") == (500, None) and parse_every("30s") == (None, 30.0) and parse_every("2m") == (None, 120.0)
    for bad in ("1.5", "-3", "x", "10h", "nan"):
        with pytest.raises(ConfigError, match="checkpoint-every"):
            parse_every(bad)


def lattice_signal(shape=(24, 24)):
    coords = grid_coordinates(shape, grid_extent(shape))
    values = torch.sin(2.1 * coords[:, :1] + 1.3 * coords[:, 1:]) + 0.1 * torch.cos(9 * coords[:, :1])
    return Signal.from_grid(values, shape, data_range=2.0)


@pytest.mark.parametrize("sampler", ["uniform", "stratified"])
def test_train_states_continue_mini_batch_fits_exactly(sampler):
    """The sampler's own state (uniform: the epoch's order) is rebuilt by drawing its batches again."""
    host = get_host()
    config = ModelConfig(dims=2, out_channels=1, input_frequencies=24, width=24, bandlimit=(8, 8), low_bandlimit=(3, 3))
    train = TrainConfig(steps=70, batch_size=100, sampler=sampler, lr=5e-3, holdout=0.1)
    loss, make = host.loss("mse").fn, host.sampler(sampler).make
    states = []
    whole = fit(build_model(config), lattice_signal(), train, loss, make, checkpoint=Checkpointing(states.append, steps=30))
    assert [s.step for s in states] == [30, 60]
    for state in states:
        resumed = fit(build_model(config), lattice_signal(), train, loss, make, start=replace(state))
        untimed = [[{k: v for k, v in point.items() if k != "seconds"} for point in r.curve] for r in (resumed, whole)]
        assert untimed[0] == untimed[1]
        for name, tensor in whole.model.state_dict().items():
            assert torch.equal(tensor, resumed.model.state_dict()[name]), name
