"""Divergence rolls back with a halved learning rate; CUDA out-of-memory halves the batch (simulated here)."""

import json
import math
from dataclasses import replace

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from inrkit.cli.main import app
from inrkit.config import ModelConfig, TrainConfig
from inrkit.errors import InrkitError, InrkitWarning
from inrkit.host import get_host
from inrkit.model import build_model
from inrkit.signal import Signal, grid_coordinates, grid_extent
from inrkit.recovery import MAX_ROLLBACKS, SNAPSHOT_EVERY, Checkpointing
from inrkit.train import fit, lr_at

CONFIG = ModelConfig(dims=2, out_channels=1, input_frequencies=24, width=24, bandlimit=(8, 8), low_bandlimit=(3, 3))


def lattice_signal(shape=(24, 24)):
    coords = grid_coordinates(shape, grid_extent(shape))
    values = torch.sin(2.1 * coords[:, :1] + 1.3 * coords[:, 1:]) + 0.1 * torch.cos(9 * coords[:, :1])
    return Signal.from_grid(values, shape, data_range=2.0)


def mse():
    return get_host().loss("mse").fn


def nan_at(steps, base=None):
    """A loss that is NaN once at each of ``steps`` (set: each fires once)."""
    base = base or mse()
    pending = set(steps)

    def loss(context, batch):
        value = base(context, batch)
        if context.step in pending:
            pending.discard(context.step)
            return value * math.nan
        return value

    return loss


def run(config, loss, sampler="full", **kwargs):
    return fit(build_model(CONFIG), lattice_signal(), config, loss, get_host().sampler(sampler).make, **kwargs)


def test_a_nan_loss_rolls_back_halves_the_rate_and_the_fit_ends_finite():
    config = TrainConfig(steps=60, lr=5e-3)
    with pytest.warns(InrkitWarning, match="diverged at step 25 .*rolled back to step 20"):
        result = run(config, nan_at({25}))
    assert result.stop_reason == "steps" and result.steps == 60
    assert [(r["step"], r["to_step"], r["lr_scale"]) for r in result.rollbacks] == [(25, 20, 0.5)]
    assert [p["step"] for p in result.curve] == list(range(60))  # the rolled-back steps were done again
    assert all(math.isfinite(p["loss"]) for p in result.curve)
    assert all(torch.isfinite(p).all() for p in result.model.parameters())
    assert result.curve[19]["lr"] == lr_at(config, 19 / 60)
    assert result.curve[21]["lr"] == pytest.approx(lr_at(config, 21 / 60) / 2)  # the remaining schedule is halved


def test_rollbacks_are_bounded_and_the_error_says_what_to_do():
    always = nan_at(set(range(15, 10_000)))
    with pytest.warns(InrkitWarning), pytest.raises(InrkitError, match=f"after {MAX_ROLLBACKS} rollbacks.*lower --lr"):
        run(TrainConfig(steps=60, lr=5e-3), always)
    with pytest.raises(InrkitError, match="before any good state.*lower --lr"):
        run(TrainConfig(steps=60), nan_at({0}))


def test_an_exploding_loss_is_divergence_too():
    base, fired = mse(), []

    def explodes(context, batch):
        value = base(context, batch)
        if context.step == 33 and not fired:
            fired.append(True)
            return value * 1e6
        return value

    with pytest.warns(InrkitWarning, match="more than 1000 x the best"):
        result = run(TrainConfig(steps=40, lr=5e-3), explodes)
    assert [r["to_step"] for r in result.rollbacks] == [30]


def test_a_memorised_fit_whose_tiny_loss_wobbles_is_not_divergence():
    """A loss 1e6 below the first one is float32 noise: 1e-14 then 1e-11 is no explosion; 1e-11 then 1.0 is."""
    from inrkit.recovery import MEMORISED_RATIO, Rollbacks
    from inrkit.train import FitResult

    guard = Rollbacks(FitResult(model=None, steps=0, seconds=0.0), TrainConfig(steps=10))
    assert guard.problem(0.3, None) is None
    assert guard.problem(1e-14, None) is None
    assert guard.problem(1e-11, None) is None  # x1000 of the best, but far under 0.3 x MEMORISED_RATIO x 1000
    assert 1e3 * 0.3 * MEMORISED_RATIO < 1.0
    assert "jumped to 1" in guard.problem(1.0, None)
    healthy = Rollbacks(FitResult(model=None, steps=0, seconds=0.0), TrainConfig(steps=10))
    assert healthy.problem(0.3, None) is None and healthy.problem(1e-3, None) is None
    assert "more than 1000 x" in healthy.problem(2.0, None)  # an ordinary fit keeps the rule it had


def test_a_state_after_a_rollback_resumes_exactly():
    states = []
    with pytest.warns(InrkitWarning):
        whole = run(TrainConfig(steps=50, lr=5e-3), nan_at({12}), checkpoint=Checkpointing(states.append, steps=20))
    state = next(s for s in states if s.step == 40)
    assert state.lr_scale == 0.5 and len(state.rollbacks) == 1 and state.draws > state.step
    resumed = run(TrainConfig(steps=50, lr=5e-3), mse(), start=replace(state))
    assert len(resumed.rollbacks) == 1
    for name, tensor in whole.model.state_dict().items():
        assert torch.equal(tensor, resumed.model.state_dict()[name]), name


def test_lr_1e6_recovers_or_stops_with_one_clear_line(tmp_path):
    y, x = np.mgrid[0:16, 0:20]
    Image.fromarray((128 + 100 * np.sin(x / 3) * np.cos(y / 4)).astype(np.uint8)).save(tmp_path / "tiny.png")
    result = CliRunner().invoke(app, ["fit", str(tmp_path / "tiny.png"), "-o", str(tmp_path / "run"), "--steps", "40",
                                      "--params", "500", "--lr", "1e6", "--device", "cpu", "--quiet"])
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert all(line.startswith("warning: training diverged") for line in lines[:-1]), result.output
    if result.exit_code == 0:
        metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
        assert metrics["rollbacks"] >= 1 and metrics["final"]["psnr"] > 0
    else:
        assert result.exit_code == 2 and lines[-1].startswith("error: training diverged") and "lower --lr" in lines[-1]


def test_snapshots_are_taken_at_steps_whose_loss_is_read_on_cuda():
    assert SNAPSHOT_EVERY % 10 == 0


def out_of_memory_once(at_step, base=None):
    base = base or mse()
    sizes = []

    def loss(context, batch):
        sizes.append(batch.index.numel())
        if context.step == at_step and len(sizes) and not getattr(loss, "fired", False):
            loss.fired = True
            raise torch.cuda.OutOfMemoryError("CUDA out of memory (simulated)")
        return base(context, batch)

    return loss, sizes


def test_out_of_memory_halves_the_mini_batch():
    loss, sizes = out_of_memory_once(7)
    with pytest.warns(InrkitWarning, match="out of GPU memory at step 7; continuing with uniform batches of 256"):
        result = run(TrainConfig(steps=20, batch_size=512, sampler="uniform"), loss, sampler="uniform")
    assert result.steps == 20 and sizes[:8] == [512] * 8 and set(sizes[8:]) == {256}
    assert result.batch_changes == [{"step": 7, "draw": 8, "batch_size": 256, "sampler": "uniform"}]


def test_out_of_memory_with_full_batches_switches_to_stratified_half_batches():
    loss, sizes = out_of_memory_once(3)
    with pytest.warns(InrkitWarning, match="stratified batches of 288"):
        result = run(TrainConfig(steps=10), loss)
    assert sizes[:4] == [576] * 4 and set(sizes[4:]) == {288} and result.steps == 10
    assert [p["step"] for p in result.curve] == list(range(10))


def test_a_pruned_fit_counts_the_rollbacks_of_every_phase():
    from inrkit.prune import PruneOptions, pruned_fit

    with pytest.warns(InrkitWarning, match="rolled back"):
        done = pruned_fit(build_model(CONFIG), lattice_signal(), TrainConfig(steps=60, device="cpu"),
                          nan_at({25, 45}), get_host().sampler("full").make, PruneOptions(target_params=500, rounds=1))
    # Step 25 falls in the first phase (the fit), step 45 in the fine-tuning after the cut: both are counted,
    # at their steps in the whole fit.
    assert [event["step"] for event in done.result.rollbacks] == [25, 45]
    assert all(math.isfinite(p["psnr"]) for p in done.path)


def test_the_first_loss_travels_in_a_checkpoint_and_old_checkpoints_still_load(tmp_path):
    from safetensors.torch import load_file

    from inrkit.resume import STATE_JSON, CheckpointWriter, _state

    states = []
    run(TrainConfig(steps=30, lr=5e-3), mse(), checkpoint=Checkpointing(states.append, steps=20))
    state = states[0]
    assert 0 < state.first_loss < math.inf and state.best_loss <= state.first_loss
    CheckpointWriter(tmp_path, {"fit": "test"})(state)
    saved = json.loads((tmp_path / STATE_JSON).read_text())
    tensors = load_file(str(tmp_path / saved["tensors"]["file"]))
    assert _state(saved["state"], tensors).first_loss == state.first_loss
    del saved["state"]["first_loss"]  # a checkpoint written before the field existed
    assert _state(saved["state"], tensors).first_loss == math.inf
