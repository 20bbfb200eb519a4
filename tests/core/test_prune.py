import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from inrkit.checkpoint import load_run
from inrkit.cli.main import app
from inrkit.config import ModelConfig
from inrkit.errors import ConfigError
from inrkit.model import build_model, stored_parameter_count
from inrkit.prune import (
    PruneOptions,
    hidden_importance,
    input_importance,
    remove_hidden,
    remove_inputs,
    residual_candidates,
    shrink_to,
    spectral_contribution,
    swap_inputs,
)
from inrkit.signal import Signal, grid_coordinates, grid_extent
from inrkit.sizing import stored_count
from inrkit.train import evaluate

runner = CliRunner()
DATASETS = Path(__file__).resolve().parents[2] / "datasets"


def _model(dims=2, m=40, n=30, channels=3, layers=1, mode="project", seed=0, skip=0.0):
    config = ModelConfig(dims=dims, out_channels=channels, input_frequencies=m, width=n, hidden_layers=layers,
                         bandlimit=(12,) * dims, low_bandlimit=(4,) * dims, bound_mode=mode, seed=seed, skip=skip,
                         output_offset=(0.1,) * channels, output_scale=(0.7,) * channels)
    return build_model(config)


def _coords(dims=2, count=3000, seed=0):
    return torch.rand(count, dims, generator=torch.Generator().manual_seed(seed)) * 2 - 1


@pytest.mark.parametrize("mode", ["project", "tanh"])
def test_removing_zero_columns_leaves_the_output_unchanged(mode):
    model = _model(mode=mode)
    layer = model.hidden[0]
    with torch.no_grad():
        if mode == "tanh":
            layer.raw_weight[:, [3, 7, 20]] = 0.0
        else:
            layer.weight[:, [3, 7, 20]] = 0.0
    keep = torch.ones(40, dtype=torch.bool)
    keep[[3, 7, 20]] = False
    coords = _coords()
    smaller = remove_inputs(model, keep)
    assert smaller.input.frequencies.shape[0] == 37
    assert stored_parameter_count(smaller) == stored_parameter_count(model) - 3 * (2 + 1 + 30 + (mode == "tanh"))
    assert torch.allclose(evaluate(smaller, coords), evaluate(model, coords), atol=1e-6, rtol=0)
    assert float(input_importance(model)[3]) == 0.0


def test_removing_constant_hidden_neurons_is_exact():
    model = _model()
    with torch.no_grad():
        model.hidden[0].weight[[2, 9]] = 0.0  # these neurons output sin(omega_g b_i) everywhere
    keep = torch.ones(30, dtype=torch.bool)
    keep[[2, 9]] = False
    coords = _coords()
    smaller = remove_hidden(model, keep)
    assert smaller.config.width == 28
    assert torch.allclose(evaluate(smaller, coords), evaluate(model, coords), atol=1e-6, rtol=0)
    assert torch.all(hidden_importance(model)[[2, 9]] == 0)


@pytest.mark.parametrize("layers, skip", [(1, 0.0), (2, 0.0), (3, 0.5)])
def test_input_importance_bounds_the_change_of_removing_a_neuron(layers, skip):
    model = _model(layers=layers, skip=skip)
    coords = _coords(count=5000)
    full = evaluate(model, coords)
    scores = input_importance(model)
    changes = []
    for j in range(40):
        keep = torch.ones(40, dtype=torch.bool)
        keep[j] = False
        change = float((evaluate(remove_inputs(model, keep), coords) - full).norm(dim=1).max())
        assert change <= float(scores[j]) + 1e-6
        changes.append(change)
    # Not vacuous: the score ranks the neurons as their real effect does.
    ranks = lambda v: np.argsort(np.argsort(v))  # noqa: E731
    correlation = np.corrcoef(ranks(np.array(changes)), ranks(scores.numpy()))[0, 1]
    assert correlation > 0.3, correlation


def test_spectral_contribution_matches_the_fft():
    # One input dimension, frequencies chosen so that no low-order combination of the
    # others lands on 1, 16 or 43; small weights make higher orders negligible.
    config = ModelConfig(dims=1, out_channels=1, input_frequencies=3, width=6, hidden_layers=1,
                         bandlimit=(60,), low_bandlimit=(60,), c_low=0.3, seed=3)
    model = build_model(config).double()
    with torch.no_grad():
        model.input.frequencies.copy_(torch.tensor([[1], [16], [43]], dtype=torch.int32))
        model.hidden[0].weight.mul_(0.3)
    samples = 512
    x = -2.0 + 4.0 * torch.arange(samples, dtype=torch.float64)[:, None] / samples  # one period, p = 4
    values = model(x)[:, 0].detach().numpy()
    spectrum = np.fft.rfft(values) / samples * 2
    predicted = spectral_contribution(model).numpy()
    for j, f in enumerate((1, 16, 43)):
        assert abs(abs(spectrum[f]) - predicted[j]) < 2e-3 * max(predicted.max(), 1e-9)


def test_shrink_to_a_budget_saves_and_reloads(tmp_path):
    model = _model()
    target = stored_parameter_count(model) // 2
    smaller = shrink_to(model, target, _coords())
    count = stored_parameter_count(smaller)
    assert count <= target
    config = smaller.config
    assert count == stored_count("lattice", 2, 3, config.input_frequencies, config.width, 1)
    with pytest.raises(ConfigError, match="below the smallest model"):
        shrink_to(model, 10)


def test_swap_keeps_the_size_and_the_function():
    torch.manual_seed(0)
    shape = (24, 24)
    extent = grid_extent(shape)
    coords = grid_coordinates(shape, extent)
    values = torch.sin(2 * math.pi * 5 / 4 * coords[:, :1]) + 0.5 * torch.cos(2 * math.pi * 3 / 4 * coords[:, 1:])
    signal = Signal.from_grid(values, shape, data_range=3.0)
    model = _model(channels=1, m=20, n=20)
    reconstruction = evaluate(model, coords)
    candidates = residual_candidates(model, signal, reconstruction, 4, (12, 12))
    used = {tuple(f) for f in model.input.frequencies.tolist()}
    assert candidates.shape == (4, 2) and not any(tuple(q) in used for q in candidates.tolist())
    assert [5, 0] in candidates.tolist() or [0, 3] in candidates.tolist()  # where the residual's energy is
    swapped, facts = swap_inputs(model, 4, signal, torch.Generator().manual_seed(1), reconstruction)
    assert swapped.input.frequencies.shape == model.input.frequencies.shape
    assert len(facts["added"]) == 4 and facts["from_residual"] == 4
    change = (evaluate(swapped, coords) - reconstruction).abs().max()
    removed_bound = input_importance(model).sort().values[:4].sum()
    assert float(change) <= float(removed_bound) + 0.05  # new neurons start nearly silent
    bounds = swapped.hidden[0].bounds
    assert torch.all(swapped.hidden[0].scaled_weight().abs() <= bounds + 1e-6)


def test_prune_options_refuse_nonsense():
    with pytest.raises(ConfigError, match="--l1"):
        PruneOptions(l1=-1.0)
    with pytest.raises(ConfigError, match="--target-params"):
        PruneOptions(target_params=0)
    with pytest.raises(ConfigError, match="--add-prune-every"):
        PruneOptions(add_prune_every=0)


def test_cli_fit_with_prune_and_the_prune_command(tmp_path):
    image = DATASETS / "camera-128.png"
    run = tmp_path / "run"
    result = runner.invoke(app, ["fit", str(image), "-o", str(run), "--steps", "120", "--params", "6000",
                                 "--prune", "--prune-tolerance", "3", "--quiet"])
    assert result.exit_code == 0, result.output
    metrics = json.loads((run / "metrics.json").read_text())
    path = metrics["prune_path"]
    assert path[0]["action"] == "fit" and len(path) > 1 and (run / "prune_path.png").is_file()
    saved = load_run(run)
    assert stored_parameter_count(saved.model) == metrics["parameters"] == saved.config["stored_parameters"]

    small = tmp_path / "small"
    result = runner.invoke(app, ["prune", str(run), "--target-params", "2500", "--steps", "60", "-o", str(small),
                                 "--quiet"])
    assert result.exit_code == 0, result.output
    pruned = load_run(small)
    count = stored_parameter_count(pruned.model)
    assert count <= 2500 and count == json.loads((small / "metrics.json").read_text())["parameters"]
    # The saved model reproduces the reconstruction written beside it (8-bit PNG: half a level).
    from PIL import Image

    written = np.asarray(Image.open(small / "reconstruction.png"), dtype=np.float64)
    shape = tuple(pruned.signal["grid_shape"])
    values = evaluate(pruned.model, grid_coordinates(shape, pruned.signal["extent"])).numpy().reshape(shape)
    assert np.max(np.abs(written - np.clip((values + 1) / 2 * 255, 0, 255))) <= 0.51

    bad = runner.invoke(app, ["prune", str(run), "--target-params", "999999", "-o", str(tmp_path / "x")])
    assert bad.exit_code == 2 and "not below" in bad.output and not (tmp_path / "x").exists()
    siren = tmp_path / "siren"
    assert runner.invoke(app, ["fit", str(image), "-o", str(siren), "--steps", "2", "--architecture", "siren",
                               "--params", "3000", "--quiet"]).exit_code == 0
    refused = runner.invoke(app, ["prune", str(siren), "--target-params", "1000", "-o", str(tmp_path / "y")])
    assert refused.exit_code == 2 and "not SIREN" in refused.output


def test_a_pruned_fit_looks_like_one_fit_to_observers():
    from inrkit.config import TrainConfig
    from inrkit.host import get_host
    from inrkit.pipeline import ModelOptions, load_signal, plan_model
    from inrkit.prune import pruned_fit

    host = get_host()
    signal, signal_type = load_signal(DATASETS / "camera-128.png", None, host)
    model = build_model(plan_model(signal, signal_type, ModelOptions(params=3000, hidden_layers=2)))

    class Spy:
        def __init__(self):
            self.calls = []

        def inrkit_fit_start(self, info):
            self.calls.append(("start", None))

        def inrkit_step_end(self, step):
            self.calls.append(("step", step))

        def inrkit_fit_end(self, result):
            self.calls.append(("end", result))

    spy = Spy()
    config = TrainConfig(steps=60, lr=2e-3, lr_final=2e-4)
    done = pruned_fit(model, signal, config, host.loss("mse").fn, host.sampler("full").make,
                      PruneOptions(target_params=1500, rounds=2), hook=spy)
    kinds = [kind for kind, _ in spy.calls]
    assert kinds[0] == "start" and kinds[-1] == "end" and kinds.count("start") == 1 and kinds.count("end") == 1
    steps = [payload for kind, payload in spy.calls if kind == "step"]
    assert [s.step for s in steps] == sorted(s.step for s in steps)
    progress = [s.progress for s in steps]
    assert progress == sorted(progress) and progress[-1] > 0.95
    assert {s.phase.split(": ")[1] for s in steps} == {"fit", "prune + fine-tune"}
    assert done.result.steps == 60 and len(done.path) == 3


@pytest.mark.parametrize("args, message", [
    (["--l1", "-5"], "--l1"),
    (["--prune", "--prune-tolerance", "-1"], "--prune-tolerance"),
    (["--add-prune-every", "0"], "--add-prune-every"),
    (["--l1", "1e-6", "--l1-schedule", "sometimes"], "--l1-schedule"),
])
def test_absurd_prune_options_exit_2(tmp_path, args, message):
    run = tmp_path / "run"
    result = runner.invoke(app, ["fit", str(DATASETS / "camera-128.png"), "-o", str(run), "--steps", "5", *args])
    assert result.exit_code == 2 and message in result.output and "Traceback" not in result.output
    assert not run.exists()


def _camera_setup(params=3000):
    from inrkit.host import get_host
    from inrkit.pipeline import ModelOptions, load_signal, plan_model

    host = get_host()
    signal, signal_type = load_signal(DATASETS / "camera-128.png", None, host)
    # One hidden layer, as a pruned fit plans it (the 2-D default has two; hidden neurons are pruned in one-layer models).
    return host, signal, build_model(plan_model(signal, signal_type, ModelOptions(params=params, hidden_layers=1)))


@pytest.mark.parametrize("options, steps", [
    (PruneOptions(shrink=True), 10),
    (PruneOptions(add_prune_every=7), 100),
    (PruneOptions(target_params=1500, rounds=50), 10),
])
def test_phases_add_up_to_the_step_budget(options, steps):
    from inrkit.config import TrainConfig
    from inrkit.prune import pruned_fit

    host, signal, model = _camera_setup()
    done = pruned_fit(model, signal, TrainConfig(steps=steps), host.loss("mse").fn, host.sampler("full").make, options)
    assert done.result.steps == steps


def test_phases_see_global_steps_and_fresh_batches():
    from inrkit.config import TrainConfig
    from inrkit.train import fit

    host, signal, model = _camera_setup()
    seen = {}

    def loss(context, batch):
        seen.setdefault(context.step, batch.index.clone())
        return torch.mean((context.predict(batch) - batch.target) ** 2)

    config = TrainConfig(steps=2, batch_size=512, sampler="uniform")
    fit(model, signal, config, loss, host.sampler("uniform").make)
    fit(model, signal, config, loss, host.sampler("uniform").make, step_offset=2)
    assert sorted(seen) == [0, 1, 2, 3]
    assert not torch.equal(seen[0], seen[2])  # a later phase does not replay the first one's batches


def test_ctrl_c_ends_the_whole_pruned_fit():
    from inrkit.config import TrainConfig
    from inrkit.prune import pruned_fit

    host, signal, model = _camera_setup()
    mse = host.loss("mse").fn

    def loss(context, batch):
        if context.step == 3:
            raise KeyboardInterrupt
        return mse(context, batch)

    done = pruned_fit(model, signal, TrainConfig(steps=40), loss, host.sampler("full").make, PruneOptions(shrink=True))
    assert done.result.stop_reason == "interrupted" and done.result.steps == 3 and len(done.path) == 1


def test_deep_models_refuse_an_unreachable_target():
    model = _model(layers=2)
    with pytest.raises(ConfigError, match="--hidden-layers 1"):
        shrink_to(model, 500)


def test_prune_keeps_the_runs_holdout_split(tmp_path):
    run = tmp_path / "run"
    assert runner.invoke(app, ["fit", str(DATASETS / "camera-128.png"), "-o", str(run), "--steps", "20", "--params", "3000", "--hidden-layers", "2",
                               "--holdout", "0.2", "--seed", "3", "--quiet"]).exit_code == 0
    small = tmp_path / "small"
    result = runner.invoke(app, ["prune", str(run), "--target-params", "1500", "--steps", "10", "-o", str(small), "--quiet"])
    assert result.exit_code == 0, result.output
    assert load_run(small).config["train"]["seed"] == 3 and load_run(small).config["train"]["holdout"] == 0.2
    moved = runner.invoke(app, ["prune", str(run), "--target-params", "1500", "--input", str(tmp_path / "gone.png"),
                                "-o", str(tmp_path / "x")])
    assert moved.exit_code == 2 and "gone.png does not exist" in moved.output


@pytest.mark.parametrize("options", [PruneOptions(target_params=1500, rounds=2), PruneOptions(add_prune_every=10)])
def test_the_phases_slice_the_trainers_learning_rate_schedule(options):
    # 40 steps in phases of 20 + 10 + 10 (or 4 x 10): each phase's local schedule, from lr_at(start) to
    # lr_at(end), lands on the one global curve lr * (lr_final / lr) ** (step / 40).
    from inrkit.config import TrainConfig
    from inrkit.prune import pruned_fit

    host, signal, model = _camera_setup()
    config = TrainConfig(steps=40, lr=3e-3, lr_final=1e-4)
    done = pruned_fit(model, signal, config, host.loss("mse").fn, host.sampler("full").make, options)
    curve = done.result.curve
    assert [point["step"] for point in curve] == list(range(40)) and len(done.path) > 2
    for point in curve:
        expected = 3e-3 * (1e-4 / 3e-3) ** (point["step"] / 40)
        assert abs(point["lr"] - expected) <= 1e-12 * expected
