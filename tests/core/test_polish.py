import math

import pytest
import torch
from inrkit.config import ModelConfig
from inrkit.errors import ConfigError
from inrkit.model import SinusoidalINR
from inrkit.optim import Adam
from inrkit.polish import lbfgs_polish


def tiny(c_high=0.6, seed=0):
    config = ModelConfig(dims=1, out_channels=1, input_frequencies=12, width=10, bandlimit=(30,), low_bandlimit=(4,),
                         c_low=1.0, c_high=c_high, seed=seed)
    frequencies = torch.tensor([[1], [2], [3], [4], [7], [9], [12], [15], [18], [22], [26], [30]])
    return SinusoidalINR(config, frequencies)


def target(x):
    return torch.sin(3 * x) * torch.cos(11 * x) + 0.3 * torch.sin(20 * x + 1)


def loss_of(model, x, y):
    return lambda: torch.mean((model(x) - y) ** 2)


def adam(model, loss, steps=60):
    optimizer = Adam([(p, 1.0) for p in model.parameters()], lr=2e-3, betas=(0.9, 0.99))
    for _ in range(steps):
        optimizer.zero_grad()
        loss().backward()
        optimizer.step()
        model.project_()


def check_bounds(model):
    # Independent bound: column j of omega_g W may not exceed c_low when |f_j| <= L, else c_high (METHOD.md 4).
    config = model.config
    scaled = model.hidden[0].weight.detach() * config.omega_g
    for j, f in enumerate(model.input.frequencies[:, 0].tolist()):
        limit = config.c_low if abs(f) <= config.low_bandlimit[0] else config.c_high
        assert float(scaled[:, j].abs().max()) <= limit * (1 + 1e-6), f"column {j} (f={f}) breaks |omega_g W| <= {limit}"
    return scaled


def test_polish_lowers_the_loss_and_keeps_bounds():
    x = torch.linspace(-1, 1, 200).unsqueeze(1)
    model = tiny()
    loss = loss_of(model, x, target(x))
    adam(model, loss)
    before = float(loss().detach())
    result = lbfgs_polish(model, loss, iterations=15, project=model.project_)
    after = float(loss().detach())
    assert result.losses[0] == pytest.approx(before)
    assert after == pytest.approx(result.best) and after < 0.5 * before
    assert result.iterations == 15 and result.evaluations >= 15
    check_bounds(model)


def test_tight_bounds_are_active_and_kept():
    # With c_high tiny the unconstrained optimum lies outside the bound: polishing must push against it, not past it.
    x = torch.linspace(-1, 1, 200).unsqueeze(1)
    model = tiny(c_high=0.02)
    loss = loss_of(model, x, target(x))
    adam(model, loss, 30)
    lbfgs_polish(model, loss, iterations=15, project=model.project_)
    scaled = check_bounds(model)
    high = (model.input.frequencies[:, 0].abs() > 4)
    assert math.isclose(float(scaled[:, high].abs().max()), 0.02, rel_tol=1e-5), "the bound is reached"


def test_budget_limits_and_errors():
    x = torch.linspace(-1, 1, 100).unsqueeze(1)
    model = tiny()
    loss = loss_of(model, x, target(x))
    assert lbfgs_polish(model, loss, max_evaluations=5).evaluations in range(5, 30)
    assert lbfgs_polish(model, loss, iterations=0).iterations == 0
    with pytest.raises(ConfigError, match="limit"):
        lbfgs_polish(model, loss)
    with pytest.raises(ConfigError, match=">= 0"):
        lbfgs_polish(model, loss, iterations=-1)


def test_a_worse_step_is_never_kept():
    # A loss that jumps to NaN after the first evaluations: the model keeps its best parameters.
    x = torch.linspace(-1, 1, 100).unsqueeze(1)
    model = tiny()
    good = loss_of(model, x, target(x))
    calls = [0]

    def flaky():
        calls[0] += 1
        value = good()
        return value * math.nan if calls[0] > 6 else value

    saved = {k: v.clone() for k, v in model.state_dict().items()}
    result = lbfgs_polish(model, flaky, iterations=10)
    assert math.isnan(result.losses[-1])
    state = model.state_dict()
    best_loss = min(v for v in result.losses if not math.isnan(v))
    assert float(good().detach()) == pytest.approx(best_loss, rel=1e-5)
    assert float(good().detach()) <= float(loss_of(tiny(), x, target(x))().detach()) or any(
        not torch.equal(state[k], saved[k]) for k in saved)
