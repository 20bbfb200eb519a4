"""The lattice model's default depth and m:n by the signal's dimension (config.LATTICE_HIDDEN_LAYERS, DEEP_INPUT_RATIO)."""

import math

import pytest
import torch
from inrkit.config import DEEP_INPUT_RATIO, ModelOptions
from inrkit.errors import ConfigError
from inrkit.planning import plan_model
from inrkit.plugin_types import SignalType
from inrkit.signal import Signal
from inrkit.sizing import stored_count

KIND = SignalType(name="test", load=lambda path: None, extensions=())


def grid(shape, channels=1):
    values = torch.sin(torch.arange(math.prod(shape) * channels, dtype=torch.float32) * 0.37).reshape(-1, channels)
    return Signal.from_grid(values, shape)


def test_images_get_two_hidden_layers_with_more_inputs_than_neurons():
    signal = grid((64, 64), 3)
    config = plan_model(signal, KIND, ModelOptions(params=6000))
    assert config.hidden_layers == 2
    assert config.input_frequencies == round(DEEP_INPUT_RATIO * config.width)
    count = stored_count("lattice", 2, 3, config.input_frequencies, config.width, 2)
    assert count <= 6000 < stored_count("lattice", 2, 3, round(1.5 * (config.width + 1)), config.width + 1, 2)


@pytest.mark.parametrize("shape, bandlimit", [((4000,), 400), ((24, 24, 24), 6)])
def test_other_dimensions_keep_one_hidden_layer_and_m_equal_n(shape, bandlimit):
    config = plan_model(grid(shape), KIND, ModelOptions(params=3000, bandlimit=bandlimit))
    assert config.hidden_layers == 1 and config.input_frequencies == config.width


def test_explicit_choices_win():
    signal = grid((64, 64))
    one = plan_model(signal, KIND, ModelOptions(params=4000, hidden_layers=1))
    assert one.hidden_layers == 1 and one.input_frequencies == one.width
    ratio = plan_model(signal, KIND, ModelOptions(params=4000, input_ratio=1.0))
    assert ratio.hidden_layers == 2 and ratio.input_frequencies == ratio.width
    siren = plan_model(signal, KIND, ModelOptions(params=4000, architecture="siren"))
    assert siren.hidden_layers == 3


@pytest.mark.parametrize("ratio", [0.0, -1.0, math.inf, math.nan])
def test_bad_ratio_is_refused(ratio):
    with pytest.raises(ConfigError, match="--input-ratio must be a positive number"):
        plan_model(grid((32, 32)), KIND, ModelOptions(params=2000, input_ratio=ratio))
