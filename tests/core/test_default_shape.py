"""The lattice model's default depth, m:n and learning rate (config.LATTICE_HIDDEN_LAYERS, DEEP_INPUT_RATIO,
default_lr)."""

import math

import pytest
import torch
from inrkit.config import DEEP_INPUT_RATIO, DEEP_LATTICE_LR, DEFAULT_LR, SKIP_MIN_WIDTH, ModelOptions, TrainConfig, default_lr
from inrkit.errors import ConfigError
from inrkit.planning import plan_model
from inrkit.plugin_types import SignalType
from inrkit.signal import Signal
from inrkit.sizing import stored_count

KIND = SignalType(name="test", load=lambda path: None, extensions=())


def grid(shape, channels=1):
    values = torch.sin(torch.arange(math.prod(shape) * channels, dtype=torch.float32) * 0.37).reshape(-1, channels)
    return Signal.from_grid(values, shape)


def test_images_get_four_hidden_layers_with_more_inputs_than_neurons():
    signal = grid((64, 64), 3)
    config = plan_model(signal, KIND, ModelOptions(params=6000))
    assert config.hidden_layers == 4
    assert config.input_frequencies == round(DEEP_INPUT_RATIO * config.width)
    count = stored_count("lattice", 2, 3, config.input_frequencies, config.width, 4)
    assert count <= 6000 < stored_count("lattice", 2, 3, round(1.5 * (config.width + 1)), config.width + 1, 4)


def test_the_default_learning_rate_follows_the_depth_and_an_explicit_one_wins():
    image = plan_model(grid((64, 64), 3), KIND, ModelOptions(params=6000))
    two = plan_model(grid((64, 64), 3), KIND, ModelOptions(params=6000, hidden_layers=2))
    audio = plan_model(grid((4000,)), KIND, ModelOptions(params=3000, bandlimit=400))
    siren = plan_model(grid((64, 64)), KIND, ModelOptions(params=4000, architecture="siren"))
    assert (default_lr(image), default_lr(two), default_lr(audio), default_lr(siren), default_lr(None)) == \
        (DEEP_LATTICE_LR, DEFAULT_LR, DEFAULT_LR, DEFAULT_LR, DEFAULT_LR)
    resolved = TrainConfig(steps=10).for_model(image)
    assert (resolved.lr, resolved.lr_final) == (DEEP_LATTICE_LR, DEEP_LATTICE_LR / 10)
    assert TrainConfig(steps=10, lr_final=1e-5).for_model(image).lr_final == 1e-5
    mine = TrainConfig(steps=10, lr=5e-3)
    assert mine.for_model(image) is mine and mine.lr_final == 5e-4


@pytest.mark.parametrize("shape, bandlimit", [((4000,), 400), ((24, 24, 24), 6)])
def test_other_dimensions_keep_one_hidden_layer_and_m_equal_n(shape, bandlimit):
    config = plan_model(grid(shape), KIND, ModelOptions(params=3000, bandlimit=bandlimit))
    assert config.hidden_layers == 1 and config.input_frequencies == config.width


def test_explicit_choices_win():
    signal = grid((64, 64))
    one = plan_model(signal, KIND, ModelOptions(params=4000, hidden_layers=1))
    assert one.hidden_layers == 1 and one.input_frequencies == one.width
    ratio = plan_model(signal, KIND, ModelOptions(params=4000, input_ratio=1.0))
    assert ratio.hidden_layers == 4 and ratio.input_frequencies == ratio.width
    siren = plan_model(signal, KIND, ModelOptions(params=4000, architecture="siren"))
    assert siren.hidden_layers == 3
    for architecture in ("siren", "finer", "ffn", "hashgrid"):  # wide enough for the skip, which is the lattice's
        assert plan_model(grid((64, 64), 3), KIND, ModelOptions(params=12000, architecture=architecture)).skip == 0.0
    skip = plan_model(signal, KIND, ModelOptions(params=4000, skip=0.25))
    assert skip.skip == 0.25 and plan_model(signal, KIND, ModelOptions(params=4000, skip=0.0)).skip == 0.0


def test_audio_goes_deep_only_where_the_skip_applies():
    wide = plan_model(grid((32000,)), KIND, ModelOptions(params=8000, bandlimit=400))
    assert (wide.hidden_layers, wide.skip, default_lr(wide)) == (3, 0.5, DEEP_LATTICE_LR)
    assert wide.width >= SKIP_MIN_WIDTH
    # 5,000 numbers in three layers would be under SKIP_MIN_WIDTH wide: a plain deep stack lost on audio, so one layer
    narrow = plan_model(grid((32000,)), KIND, ModelOptions(params=5000, bandlimit=400))
    assert (narrow.hidden_layers, narrow.skip, narrow.input_frequencies == narrow.width) == (1, 0.0, True)
    told = plan_model(grid((32000,)), KIND, ModelOptions(params=5000, bandlimit=400, skip=0.0))
    assert (told.hidden_layers, told.skip) == (3, 0.0)  # an explicit --skip keeps the default depth


def test_deep_lattice_models_carry_the_default_skip_when_wide_enough_and_one_layer_none():
    wide = plan_model(grid((64, 64), 3), KIND, ModelOptions(params=12000))
    assert wide.width >= SKIP_MIN_WIDTH and wide.skip == 0.6  # photos: 0.6, audio 0.5 (above)
    narrow = plan_model(grid((64, 64), 3), KIND, ModelOptions(params=4000))
    assert narrow.hidden_layers == 4 and narrow.width < SKIP_MIN_WIDTH and narrow.skip == 0.0
    assert plan_model(grid((64, 64), 3), KIND, ModelOptions(params=12000, hidden_layers=1)).skip == 0.0
    assert plan_model(grid((4000,)), KIND, ModelOptions(params=3000, bandlimit=400)).skip == 0.0


@pytest.mark.parametrize("ratio", [0.0, -1.0, math.inf, math.nan])
def test_bad_ratio_is_refused(ratio):
    with pytest.raises(ConfigError, match="--input-ratio must be a positive number"):
        plan_model(grid((32, 32)), KIND, ModelOptions(params=2000, input_ratio=ratio))


def test_fit_starts_at_the_models_default_rate_unless_told():
    from inrkit.host import get_host
    from inrkit.model import build_model
    from inrkit.train import fit

    signal = grid((16, 16))
    host = get_host()
    for layers, lr, expected in ((4, None, DEEP_LATTICE_LR), (1, None, DEFAULT_LR), (4, 3e-3, 3e-3)):
        config = plan_model(signal, KIND, ModelOptions(params=900, hidden_layers=layers, bandlimit=4))
        result = fit(build_model(config), signal, TrainConfig(steps=2, lr=lr, device="cpu"), host.loss("mse").fn,
                     host.sampler("full").make)
        assert result.curve[0]["lr"] == expected


def test_a_signal_types_learning_rate_goes_to_lattice_models_only():
    from inrkit.plugin_types import FitDefaults

    lattice = plan_model(grid((64, 64), 3), KIND, ModelOptions(params=6000))
    siren = plan_model(grid((64, 64)), KIND, ModelOptions(params=4000, architecture="siren"))
    assert default_lr(lattice, 5e-4) == 5e-4 and default_lr(siren, 5e-4) == DEFAULT_LR
    resolved = TrainConfig(steps=10).for_model(lattice, 5e-4)
    assert (resolved.lr, resolved.lr_final) == (5e-4, 5e-5)
    assert TrainConfig(steps=10, lr=3e-3).for_model(lattice, 5e-4).lr == 3e-3  # an explicit rate still wins
    assert FitDefaults().lr is None
    for bad in (0.0, -1e-3, math.nan, math.inf, "fast", True):
        with pytest.raises(Exception, match="FitDefaults.lr must be a positive number"):
            FitDefaults(lr=bad)


def test_an_sdf_fit_starts_at_the_sdf_plugins_rate(tmp_path):
    import trimesh
    from inrkit.config import ModelOptions as Options
    from inrkit.host import get_host
    from inrkit.pipeline import prepare_fit
    from inrkit.plugins.sdf import SDF_LATTICE_LR

    mesh = tmp_path / "ball.ply"
    trimesh.creation.icosphere(subdivisions=2).export(mesh)
    job = prepare_fit(mesh, tmp_path / "run", model_options=Options(params=600),
                      train_config=TrainConfig(steps=1, device="cpu"), host=get_host())
    assert job.train_config.lr == SDF_LATTICE_LR
