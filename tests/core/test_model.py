import math

import pytest
import torch

from inrkit.config import ModelConfig
from inrkit.model import BoundedSine, Siren, SinusoidalINR, build_model, stored_parameter_count
from inrkit.sizing import stored_count, widths_for_params


def config(**overrides):
    base = dict(dims=2, out_channels=3, input_frequencies=24, width=16, bandlimit=(12, 12), low_bandlimit=(4, 4))
    base.update(overrides)
    return ModelConfig(**base)


@pytest.mark.parametrize("dims", [1, 2, 3])
def test_model_is_periodic_with_period_p(dims):
    limit = {1: 40, 2: 9, 3: 5}[dims]
    cfg = config(dims=dims, bandlimit=(limit,) * dims, low_bandlimit=(3,) * dims, period=4.0)
    model = build_model(cfg).double()
    x = torch.rand(64, dims, dtype=torch.float64) * 2 - 1
    for axis in range(dims):
        shift = torch.zeros(dims, dtype=torch.float64)
        shift[axis] = cfg.period
        assert torch.allclose(model(x), model(x + shift), atol=1e-9)
    # ...and not periodic with half the period (a frequency of 1 is always present).
    shift = torch.zeros(dims, dtype=torch.float64)
    shift[0] = cfg.period / 2
    assert not torch.allclose(model(x), model(x + shift), atol=1e-3)


def test_cached_basis_equals_direct_evaluation():
    model = build_model(config()).double()
    x = torch.rand(50, 2, dtype=torch.float64) * 2 - 1
    sin_part, cos_part = model.input.basis(x)
    assert torch.allclose(model.input.from_basis(sin_part, cos_part), model.input(x), atol=1e-12)


def test_input_layer_matches_closed_form():
    model = build_model(config(dims=1, bandlimit=(40,), low_bandlimit=(5,))).double()
    x = torch.linspace(-1, 1, 7, dtype=torch.float64).unsqueeze(1)
    f = model.input.frequencies.double()
    phi = model.input.phases.detach()
    expected = torch.sin(2 * math.pi * x * f[:, 0] / 4.0 + phi)
    assert torch.allclose(model.input(x), expected, atol=1e-12)


def test_frequencies_are_frozen():
    model = build_model(config())
    names = {name for name, _ in model.named_parameters()}
    assert "input.frequencies" not in names and "input.phases" in names
    assert "input.frequencies" in model.state_dict()


@pytest.mark.parametrize("mode", ["project", "tanh"])
def test_bounds_hold_after_aggressive_training(mode):
    cfg = config(bound_mode=mode, c_low=0.8, c_high=0.3)
    model = build_model(cfg)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.2)
    x, y = torch.rand(128, 2) * 2 - 1, torch.rand(128, 3)
    for _ in range(30):
        optimizer.zero_grad()
        torch.mean((model(x) - y) ** 2).backward()
        optimizer.step()
        model.project_()
    layer = model.hidden[0]
    scaled = layer.scaled_weight().detach().abs()
    freqs = model.input.frequencies
    low = (freqs.abs() <= 4).all(dim=1)
    bound = torch.where(low, torch.tensor(0.8), torch.tensor(0.3))
    if mode == "project":
        assert (scaled <= bound + 1e-6).all()
        # the bound is active: the optimiser pushed some weights onto it
        assert (scaled >= bound - 1e-6).any()
    else:
        assert (scaled <= layer.effective_bounds() + 1e-6).all()


def test_stored_count_closed_form_matches_model():
    for cfg in [config(), config(hidden_layers=2), config(bound_mode="tanh"), config(architecture="siren", hidden_layers=3)]:
        model = build_model(cfg)
        expected = stored_count(cfg.architecture, cfg.dims, cfg.out_channels, cfg.input_frequencies, cfg.width, cfg.hidden_layers, cfg.bound_mode)
        assert stored_parameter_count(model) == expected


@pytest.mark.parametrize("architecture, layers", [("lattice", 1), ("siren", 3), ("lattice", 2)])
def test_widths_for_params_is_the_largest_under_budget(architecture, layers):
    budget = 12000
    m, n = widths_for_params(budget, architecture, 2, 1, layers)
    assert stored_count(architecture, 2, 1, m, n, layers) <= budget
    assert stored_count(architecture, 2, 1, round(n + 1) if architecture == "siren" else m + 1, n + 1, layers) > budget


def test_siren_first_layer_initialisation():
    model = Siren(config(architecture="siren", width=64, bandlimit=(), low_bandlimit=()))
    first = model.layers[0].weight
    assert first.abs().max() <= 1 / 2 + 1e-6
    assert isinstance(build_model(config(architecture="siren")), Siren)
    assert isinstance(build_model(config(architecture="uniform")), SinusoidalINR)


def test_bounded_sine_initialisation_respects_bound():
    layer = BoundedSine(10, 50, torch.full((10,), 0.05), omega_g=30.0)
    assert layer.scaled_weight().abs().max() <= 0.05 + 1e-7


@pytest.mark.parametrize("mode", ["project", "tanh"])
def test_fast_basis_path_matches_autograd_in_float64(mode):
    model = build_model(config(bound_mode=mode, hidden_layers=2)).double()
    x = torch.rand(40, 2, dtype=torch.float64) * 2 - 1
    target = torch.rand(40, 3, dtype=torch.float64)
    sin_part, cos_part = model.input.basis(x)
    fast = model.from_basis(sin_part, cos_part)
    direct = model(x)
    assert torch.allclose(fast, direct, atol=1e-12)
    grads = []
    for output in (fast, direct):
        model.zero_grad()
        torch.mean((output - target) ** 2).backward(retain_graph=True)
        grads.append({n: p.grad.clone() for n, p in model.named_parameters()})
    for name in grads[0]:
        assert torch.allclose(grads[0][name], grads[1][name], atol=1e-12), name


def test_fast_basis_function_passes_gradcheck():
    from inrkit.model import _BasisLinear

    s, c = torch.rand(7, 5, dtype=torch.float64), torch.rand(7, 5, dtype=torch.float64)
    phases = torch.rand(5, dtype=torch.float64, requires_grad=True)
    weight = torch.rand(3, 5, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda p, w: _BasisLinear.apply(s, c, p, w), (phases, weight))


def test_output_map_is_offset_plus_scale_times_head():
    plain = build_model(config())
    mapped = build_model(config(output_offset=(1.0, -2.0, 100.0), output_scale=(2.0, 0.5, 1000.0)))
    x = torch.rand(9, 2) * 2 - 1
    expected = torch.tensor([1.0, -2.0, 100.0]) + torch.tensor([2.0, 0.5, 1000.0]) * plain(x)
    assert torch.allclose(mapped(x), expected, rtol=1e-5, atol=1e-4)


def test_planner_maps_outputs_to_the_signal_range():
    from inrkit.pipeline import ModelOptions, plan_model
    from inrkit.plugin import Signal, SignalType

    values = torch.stack([torch.linspace(900, 1100, 50), torch.full((50,), 3.0)], dim=1)
    signal = Signal.from_grid(values, (50,), data_range=200.0)
    cfg = plan_model(signal, SignalType("t", load=lambda p: signal), ModelOptions(params=300))
    assert cfg.output_offset == pytest.approx((1000.0, 3.0)) and cfg.output_scale == pytest.approx((100.0, 1.0))


def test_skip_layers_match_a_float64_numpy_forward():
    """``y <- s y + (1 - s) sin(omega_g (W y + b))`` after the first bounded layer, written out in numpy."""
    import numpy as np

    config = ModelConfig(dims=2, out_channels=2, input_frequencies=6, width=5, hidden_layers=3, bandlimit=(8, 8),
                         low_bandlimit=(3, 3), skip=0.3, seed=4)
    model = build_model(config).double()
    coords = torch.rand(50, 2, dtype=torch.float64) * 2 - 1
    x = coords.numpy()
    omega = model.input.frequencies.numpy() * 2 * np.pi / config.period
    y = np.sin(x @ omega.T + model.input.phases.detach().numpy())
    for index, layer in enumerate(model.hidden):
        update = np.sin(config.omega_g * (y @ layer.weight.detach().numpy().T + layer.bias.detach().numpy()))
        y = update if index == 0 else 0.3 * y + 0.7 * update
    expected = y @ model.head.weight.detach().numpy().T + model.head.bias.detach().numpy()
    assert np.allclose(model(coords).detach().numpy(), expected, atol=1e-12)
    assert torch.allclose(model.from_basis(*model.input.basis(coords)), model(coords), atol=1e-12)
    plain = build_model(ModelConfig(**{**config.to_dict(), "skip": 0.0})).double()
    assert not torch.allclose(plain(coords), model(coords), atol=1e-3)  # the same weights without the skip differ


@pytest.mark.parametrize("architecture, skip", [("lattice", 1.0), ("lattice", -0.1), ("siren", 0.5)])
def test_skip_outside_its_range_or_on_another_architecture_is_refused(architecture, skip):
    from inrkit.errors import ConfigError

    with pytest.raises(ConfigError, match="skip must be in"):
        ModelConfig(dims=2, out_channels=1, input_frequencies=4, width=4, hidden_layers=2, bandlimit=(4, 4),
                    low_bandlimit=(2, 2), architecture=architecture, skip=skip)
