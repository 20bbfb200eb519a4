"""The quantisation-aware finish: the straight-through quantiser, its learning-rate schedule, and that it helps."""

import math

import numpy as np
import pytest
import torch
from inrkit.config import ModelConfig
from inrkit.model import build_model
from inrkit.packing import TensorPlan, default_plan, quantised_state
from inrkit.qat import LR_DECAY, WARMUP_STEPS, fake_quantise, finish_lr, quantisation_aware_finish


@pytest.mark.parametrize(("bits", "granularity", "half"), [(3, "tensor", False), (6, "tensor", False),
                                                           (4, "channel", False), (7, "tensor", True),
                                                           (5, "channel", True)])
def test_fake_quantise_rounds_like_the_file_and_passes_the_gradient_straight_through(bits, granularity, half):
    weight = torch.randn(7, 5, generator=torch.Generator().manual_seed(bits), dtype=torch.float32).requires_grad_(True)
    rounded = fake_quantise(weight, TensorPlan(bits, granularity, half))
    # Forward: the numbers the packed file gives back (numpy's quantiser; per row the file may round its
    # steps up to float16, so compare within one float16 step's relative change).
    expected = quantised_state({"w": weight.detach()}, {"w": TensorPlan(bits, granularity, half)})["w"].numpy()
    assert np.allclose(rounded.detach().numpy(), expected, rtol=2e-3, atol=1e-7)
    # Backward: the identity.
    upstream = torch.randn(7, 5, generator=torch.Generator().manual_seed(99))
    (rounded * upstream).sum().backward()
    assert torch.equal(weight.grad, upstream)


def test_finish_lr_warms_up_linearly_then_decays_geometrically():
    lr, steps = 1e-5, 300
    assert finish_lr(lr, 0, steps) == pytest.approx(lr / WARMUP_STEPS * LR_DECAY ** 0)
    assert finish_lr(lr, WARMUP_STEPS - 1, steps) == pytest.approx(lr * LR_DECAY ** (-(WARMUP_STEPS - 1) / (steps - 1)))
    assert finish_lr(lr, steps - 1, steps) == pytest.approx(lr / LR_DECAY)
    middle = (steps - 1) / 2
    assert finish_lr(lr, int(middle), steps) == pytest.approx(lr / math.sqrt(LR_DECAY) * LR_DECAY ** (-(int(middle) - middle) / (steps - 1)))
    assert finish_lr(lr, 0, 1) == pytest.approx(lr / WARMUP_STEPS)


def test_the_finish_recovers_part_of_what_rounding_loses():
    config = ModelConfig(dims=2, out_channels=1, input_frequencies=24, width=16, hidden_layers=2, bandlimit=(6, 6),
                         low_bandlimit=(2, 2))
    model = build_model(config)
    axis = torch.linspace(-1, 1, 40)
    coords = torch.stack(torch.meshgrid(axis, axis, indexing="ij"), dim=-1).reshape(-1, 2)
    with torch.no_grad():
        target = model(coords)
    state = {name: tensor.detach().clone() for name, tensor in model.state_dict().items()}
    plan = default_plan(state, 4)

    def error(weights):
        model.load_state_dict(weights)
        with torch.no_grad():
            return float(torch.mean((model(coords) - target) ** 2))

    rounded = error(quantised_state(state, plan))
    finished = quantisation_aware_finish(model, coords, target, plan, steps=150, lr=1e-3)
    tuned = {name: tensor.detach().clone() for name, tensor in finished.state_dict().items()}
    after = error(quantised_state(tuned, plan))
    assert rounded > 0 and after < 0.7 * rounded, (rounded, after)
    assert error(state) == 0.0  # the model given is left as it was (the finish works on a copy)
