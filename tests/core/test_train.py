import math

import pytest
import torch

from inrkit.config import ModelConfig, TrainConfig
from inrkit.errors import ConfigError, InrkitError
from inrkit.host import get_host
from inrkit.metrics import psnr, psnr_from_mse
from inrkit.model import build_model
from inrkit.signal import Signal, grid_coordinates, grid_extent
from inrkit.train import evaluate, fit, holdout_split, lr_at, progress_of, resolve_device


def lattice_signal(shape=(32, 32)):
    """A sum of lattice sines: exactly representable by a small lattice model."""
    extent = grid_extent(shape)
    coords = grid_coordinates(shape, extent)
    w = 2 * math.pi / 4.0
    values = 0.5 * torch.sin(w * (3 * coords[:, 0] + 2 * coords[:, 1]) + 0.3) + 0.3 * torch.cos(w * 5 * coords[:, 1])
    return Signal.from_grid(values.unsqueeze(1), shape, data_range=2.0)


def small_model(seed=0):
    return build_model(ModelConfig(dims=2, out_channels=1, input_frequencies=32, width=32, bandlimit=(10, 10), low_bandlimit=(5, 5), seed=seed))


def run(config, model=None, signal=None, sampler="full"):
    host = get_host()
    return fit(model or small_model(), signal or lattice_signal(), config, host.loss("mse").fn, host.sampler(sampler).make)


def test_fit_learns_a_lattice_signal():
    result = run(TrainConfig(steps=300, lr=5e-3, lr_final=5e-4))
    assert result.stop_reason == "steps" and result.steps == 300
    assert result.curve[-1]["psnr"] > 35
    assert result.curve[-1]["psnr"] > result.curve[0]["psnr"] + 15


def test_target_psnr_stops_early_and_is_met():
    signal = lattice_signal()
    result = run(TrainConfig(steps=2000, target_psnr=30.0, lr=5e-3), signal=signal)
    assert result.stop_reason == "target_psnr" and result.steps < 2000
    achieved = psnr(evaluate(result.model, signal.coordinates()), signal.values, 2.0)
    assert achieved >= 30.0


def test_training_is_reproducible():
    a = run(TrainConfig(steps=25, seed=4), model=small_model(1))
    b = run(TrainConfig(steps=25, seed=4), model=small_model(1))
    for (name, x), (_, y) in zip(a.model.state_dict().items(), b.model.state_dict().items()):
        assert torch.equal(x, y), name


@pytest.mark.parametrize("sampler", ["uniform", "stratified"])
def test_minibatch_samplers_train(sampler):
    result = run(TrainConfig(steps=300, lr=5e-3, batch_size=256), sampler=sampler)
    signal = lattice_signal()
    assert psnr(evaluate(result.model, signal.coordinates()), signal.values, 2.0) > 25


def test_holdout_is_disjoint_and_deterministic():
    train, held = holdout_split(1000, 0.05, seed=2)
    assert len(held) == 50 and len(train) == 950
    assert not set(train.tolist()) & set(held.tolist())
    assert torch.equal(held, holdout_split(1000, 0.05, seed=2)[1])
    result = run(TrainConfig(steps=3, holdout=0.1))
    assert len(result.holdout_index) == round(0.1 * 32 * 32)


def test_divergence_is_reported():
    signal = lattice_signal()
    signal.values[0, 0] = 1e30
    with pytest.raises(InrkitError, match="diverged"):
        run(TrainConfig(steps=50, lr=10.0), signal=signal)


def test_psnr_closed_form():
    assert psnr_from_mse(0.01, 1.0) == pytest.approx(20.0)
    assert psnr_from_mse(0.0, 1.0) == math.inf
    a = torch.zeros(10)
    assert psnr(a + 0.1, a, 2.0) == pytest.approx(10 * math.log10(4 / 0.01))


@pytest.mark.parametrize(
    "kwargs, message",
    [({}, "no stopping rule"), ({"steps": -5}, "steps"), ({"steps": 10, "lr": 0}, "learning rate"),
     ({"steps": 10, "holdout": 1.5}, "holdout"), ({"steps": 10, "batch_size": 0}, "batch size"),
     ({"max_seconds": float("nan")}, "max seconds"), ({"steps": 10, "beta2": 1.0}, "beta2"),
     ({"steps": 10, "beta2": 0.0}, "beta2"), ({"steps": 10, "phase_lr_scale": -1.0}, "phase learning-rate scale")],
)
def test_bad_train_config(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        TrainConfig(**kwargs)


def test_device_resolution():
    assert resolve_device("cpu").type == "cpu"
    with pytest.raises(ConfigError, match="unknown device"):
        resolve_device("tpu9")
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="CUDA is not available"):
            resolve_device("cuda")


def test_phase_learning_rate_scale_applies_to_the_phases_only():
    # Adam's first step moves every parameter with a gradient by lr (times its scale) exactly.
    model = small_model(2)
    phases, weight = model.input.phases.detach().clone(), model.hidden[0].weight.detach().clone()
    run(TrainConfig(steps=1, lr=1e-4, lr_final=1e-4, phase_lr_scale=10.0), model=model)
    phase_step = (model.input.phases.detach() - phases).abs()
    weight_step = (model.hidden[0].weight.detach() - weight).abs()
    assert phase_step.max() == pytest.approx(1e-3, rel=1e-3)
    assert weight_step.max() == pytest.approx(1e-4, rel=1e-3)


def test_the_learning_rate_follows_the_share_of_the_budget_spent():
    config = TrainConfig(steps=10, max_seconds=100.0, lr=1e-2, lr_final=1e-4)
    assert progress_of(config, 5, 60.0) == 0.6 and progress_of(config, 7, 1.0) == 0.7
    assert progress_of(config, 20, 0.0) == 1.0 and progress_of(TrainConfig(target_psnr=30.0), 5, 9.0) == 0.0
    assert lr_at(config, 0.0) == 1e-2 and lr_at(config, 0.5) == pytest.approx(1e-3, rel=1e-12)
    assert lr_at(config, 2.0) == lr_at(config, 1.0) == pytest.approx(1e-4, rel=1e-12) and lr_at(config, -1.0) == 1e-2
    result = run(TrainConfig(steps=6, lr=1e-2, lr_final=1e-3))
    assert [point["lr"] for point in result.curve] == [1e-2 * (1e-3 / 1e-2) ** (step / 6) for step in range(6)]
