"""Direct lines (inrkit.direct): bin choice, projection, the model's two paths, planning, files, spectrum."""

import math

import numpy as np
import pytest
import soundfile as sf
import torch
from typer.testing import CliRunner

from inrkit.checkpoint import load_run
from inrkit.cli.main import app
from inrkit.config import ModelConfig, ModelOptions
from inrkit.direct import DirectSines, line_cost, lines_snr, planned_lines, project_, strongest_bins
from inrkit.errors import ConfigError
from inrkit.fourier import centered, model_spectrum
from inrkit.host import get_host
from inrkit.model import SinusoidalINR, build_model, stored_parameter_count
from inrkit.packing import load_packed_run
from inrkit.planning import plan_model
from inrkit.signal import Signal, grid_coordinates, grid_extent
from inrkit.sources import load_signal
from inrkit.spectrum import predict_spectrum
from inrkit.train import evaluate

runner = CliRunner()
SAMPLES = 2048
#: (DFT bin, sine amplitude, cosine amplitude) of the synthetic tones; bin b is b cycles over the clip.
TONES = [(37, 0.5, 0.0), (80, 0.0, 0.3), (161, 0.2, -0.25), (300, 0.1, 0.05)]


def tones(samples: int = SAMPLES, noise: float = 0.0, seed: int = 0) -> Signal:
    """A 1-D signal that is exactly a sum of the lattice lines ``2 b`` (p = 4 on the domain [-1, 1])."""
    x = grid_coordinates((samples,), grid_extent((samples,)))[:, 0].double()
    values = sum(a * torch.sin(math.pi * b * x) + c * torch.cos(math.pi * b * x) for b, a, c in TONES)
    values = values + noise * torch.randn(samples, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    return Signal.from_grid(values.float()[:, None].reshape(samples, 1), grid_shape=(samples,))


def test_strongest_bins_are_the_tones_lattice_frequencies():
    signal = tones()
    found = strongest_bins(signal, len(TONES))
    assert sorted(found[:, 0].tolist()) == sorted(2 * b for b, _, _ in TONES)
    assert strongest_bins(signal, 0) is None
    assert (strongest_bins(signal, 50)[:, 0] > 0).all()  # the canonical half-space: no mirrored duplicates


def test_projection_recovers_the_amplitudes_and_the_signal():
    """The lines are the signal itself, so the projection must give back each sine and cosine weight."""
    signal = tones()
    direct = DirectSines(strongest_bins(signal, len(TONES)), 4.0, 1).double()
    coords = signal.coordinates().double()
    project_(direct, coords, signal.values.double(), chunk=500)
    count = len(TONES)
    by_frequency = {int(f): (direct.weight[0, j].item(), direct.weight[0, count + j].item())
                    for j, f in enumerate(direct.frequencies[:, 0])}
    for b, a, c in TONES:
        # the grid's endpoints make the lines nearly, not exactly, orthogonal: O(1/N) leakage
        assert by_frequency[2 * b] == pytest.approx((a, c), abs=2e-3)
    error = (direct(coords) - signal.values.double()).abs().max().item()
    assert error < 5e-3


def test_lines_snr_tells_lines_from_noise():
    assert lines_snr(tones(), len(TONES)) > 40
    noise = Signal.from_grid(torch.randn(SAMPLES, 1, generator=torch.Generator().manual_seed(1)), grid_shape=(SAMPLES,))
    assert lines_snr(noise, 20) < 1.0  # 20 of 1,023 bins of white noise hold about 2% of it
    assert planned_lines(tones(), 4000, 0.5) == 4000 // 2 // line_cost(1, 1)
    assert planned_lines(noise, 4000, 0.5) == 0
    assert planned_lines(tones(), 4000, 0.0) == 0
    short = tones(400)  # 199 lines under Nyquist: a large budget gets those, not more than exist
    assert 0 < planned_lines(short, 100_000, 0.5) <= 199


def lined_model(signal: Signal, count: int, inputs: int = 6) -> SinusoidalINR:
    config = ModelConfig(dims=1, out_channels=1, input_frequencies=inputs, width=5, bandlimit=(40,), low_bandlimit=(10,),
                         direct=count, output_offset=(0.25,), output_scale=(2.0,))
    return build_model(config, signal)


def test_the_model_adds_its_lines_and_both_paths_agree():
    signal = tones()
    model = lined_model(signal, 6)
    coords = signal.coordinates()
    plain = SinusoidalINR(model.config.__class__(**{**model.config.__dict__, "direct": 0}), model.input.frequencies)
    plain.load_state_dict({k: v for k, v in model.state_dict().items() if not k.startswith("direct.")})
    lines = model.direct(coords) * 2.0  # through the output scale
    assert torch.allclose(model(coords), plain(coords) + lines, atol=1e-5)
    assert torch.allclose(model.from_basis(*model.basis(coords)), model(coords), atol=1e-5)
    with pytest.raises(ConfigError, match="direct lines"):
        model.from_basis(*model.input.basis(coords))
    assert stored_parameter_count(model) == stored_parameter_count(plain) + 6 * line_cost(1, 1)


def test_predicted_spectrum_includes_the_lines_exactly():
    """Against the FFT of the network on one period (float64)."""
    model = lined_model(tones(), 4, inputs=3).double()
    predicted = predict_spectrum(model, max_order=10, tol=1e-13)
    samples = 2048
    measured = centered(model_spectrum(model, spacing=4.0 / samples, dims=1), samples // 2 - 1)
    assert np.abs(predicted.dense(samples // 2 - 1) - measured).max() < 1e-9
    line = int(model.direct.frequencies[0, 0])
    assert np.abs(measured[samples // 2 - 1 + line, 0]) > 0.05  # a line is there, not trivially zero


def test_planning_takes_the_lines_off_the_budget(tmp_path):
    host = get_host()
    path = tmp_path / "tones.wav"
    sf.write(path, tones(4000).values.numpy(), 8000)
    signal, signal_type = load_signal(path, None, host)
    config = plan_model(signal, signal_type, ModelOptions(params=1500, direct=40))
    assert config.direct == 40
    model = build_model(config, signal)
    assert stored_parameter_count(model) <= 1500
    assert stored_parameter_count(model) > 1500 - 200  # the rest went to the network
    automatic = plan_model(signal, signal_type, ModelOptions(params=1500))
    assert automatic.direct > 0  # the audio type's share: the clip is four pure lines
    assert plan_model(signal, signal_type, ModelOptions(params=1500, direct=0)).direct == 0
    for options, message in [(ModelOptions(params=1500, direct=-1), "whole number"),
                             (ModelOptions(params=1500, direct=600), "whole --params"),
                             (ModelOptions(params=1500, direct=3, architecture="siren"), "lattice model")]:
        with pytest.raises(ConfigError, match=message):
            plan_model(signal, signal_type, options)


def test_fit_pack_and_reload_a_model_with_lines(tmp_path):
    path = tmp_path / "tones.wav"
    sf.write(path, tones(4000, noise=0.01).values.numpy(), 8000)
    run = tmp_path / "run"
    result = runner.invoke(app, ["fit", str(path), "-o", str(run), "--steps", "30", "--params", "1500", "--direct",
                                 "30", "--quiet", "--pack", "--bits", "10"])
    assert result.exit_code == 0, result.output
    loaded = load_run(run)
    assert loaded.model.direct is not None and loaded.model.config.direct == 30
    signal, _ = load_signal(path, None, get_host())
    coords = signal.coordinates()
    packed = load_packed_run(next(run.glob("*.inr")))
    assert torch.equal(packed.model.direct.frequencies, loaded.model.direct.frequencies)
    # the packed model differs from the float one by its 10-bit rounding only
    assert (evaluate(packed.model, coords) - evaluate(loaded.model, coords)).abs().max() < 0.02


@pytest.mark.parametrize("value, message", [("-3", "--direct must be a whole number"),
                                            ("300", "more lines than this signal has"),
                                            ("400", "the whole --params")])
def test_bad_direct_gets_one_line_and_exit_2(tmp_path, value, message):
    path = tmp_path / "tones.wav"
    sf.write(path, tones(400).values.numpy(), 8000)  # 400 samples: about 200 lines under Nyquist
    result = runner.invoke(app, ["fit", str(path), "-o", str(tmp_path / "run"), "--steps", "2", "--params",
                                 "1000", "--direct", value, "--quiet"])
    assert result.exit_code == 2, result.output
    assert message in result.output and "Traceback" not in result.output
    assert not (tmp_path / "run").exists()


def test_shrinking_keeps_the_lines_and_the_budget():
    from inrkit.surgery import shrink_to

    signal = tones()
    config = ModelConfig(dims=1, out_channels=1, input_frequencies=24, width=24, bandlimit=(40,), low_bandlimit=(10,),
                         direct=20)
    model = build_model(config, signal)
    with torch.no_grad():
        model.direct.weight.normal_()
    smaller = shrink_to(model, 500, signal.coordinates())
    assert stored_parameter_count(smaller) <= 500 < stored_parameter_count(model)
    assert torch.equal(smaller.direct.frequencies, model.direct.frequencies)
    assert torch.equal(smaller.direct.weight, model.direct.weight)
    with pytest.raises(ConfigError, match="direct lines"):
        shrink_to(model, 50, signal.coordinates())  # the 20 lines alone store 60 numbers


def test_with_a_holdout_the_lines_start_from_the_training_samples_only(tmp_path):
    """The projection must not see the held-out samples (it would inflate test_psnr); checked in float64 numpy."""
    from inrkit.config import TrainConfig
    from inrkit.pipeline import prepare_fit
    from inrkit.train import holdout_split

    path = tmp_path / "tones.wav"
    sf.write(path, tones(2000, noise=0.2).values.numpy(), 8000)
    job = prepare_fit(path, tmp_path / "run", model_options=ModelOptions(params=1500, direct=20),
                      train_config=TrainConfig(steps=1, holdout=0.25))
    signal, model = job.signal, job.model
    rows, _ = holdout_split(signal.samples, 0.25, job.train_config.seed)
    x = signal.coordinates().double().numpy()[rows.numpy(), 0]
    target = ((signal.values.double().numpy()[rows.numpy(), 0] - model.config.output_offset[0])
              / model.config.output_scale[0])
    angle = np.outer(x, model.direct.frequencies[:, 0].double().numpy() * 2 * np.pi / 4.0)
    for part, basis in enumerate((np.sin(angle), np.cos(angle))):
        expected = (basis * target[:, None]).sum(0) / (basis**2).sum(0)
        got = model.direct.weight[0, part * 20:(part + 1) * 20].detach().double().numpy()
        assert np.allclose(got, expected, atol=1e-5)
    everything = DirectSines(model.direct.frequencies, 4.0, 1).double()
    project_(everything, signal.coordinates().double(), (signal.values.double() - model.config.output_offset[0])
             / model.config.output_scale[0])
    assert not torch.allclose(everything.weight.float(), model.direct.weight, atol=1e-4)  # the split mattered


@pytest.mark.parametrize("share", [1.0, -0.1, "half", float("nan")])
def test_a_plugin_with_a_bad_direct_share_is_named(tmp_path, share):
    import copy
    import dataclasses

    from inrkit.errors import PluginError

    path = tmp_path / "tones.wav"
    sf.write(path, tones(2000).values.numpy(), 8000)
    signal, signal_type = load_signal(path, None, get_host())
    defaults = dataclasses.replace(signal_type.defaults, model_defaults={"direct_share": share})
    broken = copy.copy(signal_type)
    object.__setattr__(broken, "defaults", defaults)  # a plugin's SignalType with that FitDefaults
    with pytest.raises(PluginError, match="direct_share"):
        plan_model(signal, broken, ModelOptions(params=1500))
    assert plan_model(signal, broken, ModelOptions(params=1500, direct=0)).direct == 0  # --direct overrides it
