"""Peer architectures (finer, ffn, hashgrid): sizes, math against independent computations, runs, refusals."""

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from inrkit.checkpoint import load_run, save_run
from inrkit.cli.main import app
from inrkit.config import ModelConfig, ModelOptions, TrainConfig
from inrkit.errors import ConfigError, RunDirError
from inrkit.host import get_host
from inrkit.model import build_model, stored_parameter_count
from inrkit.peers import HashEncoding, finer_activation
from inrkit.planning import plan_model
from inrkit.signal import Signal
from inrkit.sizing import hashgrid_count, plan_hashgrid, stored_count
from inrkit.train import fit

PEERS = ("finer", "ffn", "hashgrid")
#: Learning rates of the tiny fits: inrkit's default for the sine network, 1e-2 (Instant-NGP's) for the ReLU ones.
LR = {"finer": 2e-3, "ffn": 1e-2, "hashgrid": 1e-2}
runner = CliRunner()


def photo(channels: int = 3, size: int = 48) -> Signal:
    y, x = np.mgrid[0:size, 0:size] / size
    planes = [np.sin(7 * x + 3 * c) * np.cos(5 * y) + 0.3 * np.sin(23 * x * y) for c in range(channels)]
    return Signal.from_grid(torch.tensor(np.stack(planes, -1), dtype=torch.float32), (size, size))


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


def one_error_line(result) -> str:
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.output
    return lines[0]


@pytest.mark.parametrize("architecture", ("siren", *PEERS))
@pytest.mark.parametrize("params,channels", [(4096, 1), (12288, 3)])
def test_each_architecture_stores_the_requested_parameters(architecture, params, channels):
    """Stored numbers (every tensor of the file) are at most --params and within 5% of it; the closed form agrees."""
    image = get_host().signal("image")
    config = plan_model(photo(channels, 128), image, ModelOptions(architecture=architecture, params=params))
    stored = stored_parameter_count(build_model(config))
    assert 0.95 * params <= stored <= params
    if architecture == "hashgrid":
        formula = hashgrid_count(2, channels, config.hash_levels, config.hash_table_size, config.hash_features,
                                 config.hash_min_resolution, config.hash_max_resolution, config.width,
                                 config.hidden_layers)
        assert stored >= params - config.hash_levels * config.hash_features  # one more table row would not fit
    else:
        formula = stored_count(architecture, 2, channels, config.input_frequencies, config.width, config.hidden_layers)
    assert formula == stored


def test_hashgrid_parameter_count_by_hand():
    """Two levels over [0, 1]^2, N = 16 and 127: 17^2 = 289 rows stored 1:1, then a hashed table of T rows."""
    rows = 289 + 300  # 17^2 <= T = 300 < 128^2
    mlp = (4 * 8 + 8) + (8 * 8 + 8) + (8 * 3 + 3) + 6
    assert hashgrid_count(2, 3, 2, 300, 2, 16, 127, 8, 2) == 2 * rows + mlp
    assert hashgrid_count(2, 3, 2, 100, 2, 16, 127, 8, 2) == 2 * 200 + mlp  # T = 100 < 17^2: both levels hashed
    with pytest.raises(ConfigError, match="too small for --architecture hashgrid"):
        plan_hashgrid(60, 2, 3, 2, 127)


def test_finer_activation_and_its_gradient_match_the_closed_form():
    z = torch.linspace(-2.5, 2.5, 101, dtype=torch.float64, requires_grad=True)
    out = finer_activation(z, 30.0)
    zz = z.detach().numpy()
    np.testing.assert_allclose(out.detach().numpy(), np.sin(30 * (np.abs(zz) + 1) * zz), rtol=0, atol=1e-12)
    out.sum().backward()  # d/dz sin(30 (|z| + 1) z) = 30 (2 |z| + 1) cos(30 (|z| + 1) z)
    expected = 30 * (2 * np.abs(zz) + 1) * np.cos(30 * (np.abs(zz) + 1) * zz)
    np.testing.assert_allclose(z.grad.numpy(), expected, rtol=0, atol=1e-9)


def test_finer_forward_by_hand_and_first_bias_init():
    config = ModelConfig(dims=2, out_channels=1, input_frequencies=64, width=64, hidden_layers=1, architecture="finer",
                         finer_first_bias=5.0)
    model = build_model(config).double()
    first = model.layers[0].bias.detach().numpy()
    assert np.all(np.abs(first) <= 5.0) and np.abs(first).max() > 4.0  # U(-k, k), far beyond SIREN's 1/sqrt(2)
    assert np.abs(model.layers[1].bias.detach().numpy()).max() <= 1 / 8  # later layers keep 1/sqrt(n)
    x = np.array([[0.3, -0.7], [-1.0, 1.0]])
    h = x
    for layer in model.layers:
        z = h @ layer.weight.detach().numpy().T + layer.bias.detach().numpy()
        h = np.sin(30 * (np.abs(z) + 1) * z)
    y = h @ model.head.weight.detach().numpy().T + model.head.bias.detach().numpy()
    np.testing.assert_allclose(model(torch.tensor(x)).detach().numpy(), y, rtol=0, atol=1e-9)


def test_ffn_encoding_matches_the_closed_form():
    config = ModelConfig(dims=2, out_channels=1, input_frequencies=16, width=8, architecture="ffn", ffn_sigma=10.0)
    model = build_model(config).double()
    b = model.matrix.numpy()
    assert 5 < b.std() < 15  # N(0, sigma^2), sigma 10
    x = np.array([[0.25, -0.5], [1.0, -1.0]])
    v = (x + 1) / 2
    expected = np.concatenate([np.cos(2 * np.pi * v @ b.T), np.sin(2 * np.pi * v @ b.T)], axis=1)
    np.testing.assert_allclose(model.encode(torch.tensor(x)).numpy(), expected, rtol=0, atol=1e-9)


def numpy_hash_encoding(table, x, levels, size, n_min, n_max, features):
    """Instant-NGP's encoding written out independently, point by point, in float64."""
    primes = [1, 2654435761, 805459861]
    growth = math.exp((math.log(n_max) - math.log(n_min)) / (levels - 1))
    out, offset = [], 0
    for level in range(levels):
        n = math.floor(n_min * growth**level + 1e-9)
        rows = min(size, (n + 1) ** 2)
        u = (x + 1) / 2 * n
        i0, j0 = min(int(u[0]), n - 1), min(int(u[1]), n - 1)
        fx, fy = u[0] - i0, u[1] - j0
        acc = np.zeros(features)
        for di in (0, 1):
            for dj in (0, 1):
                i, j = i0 + di, j0 + dj
                if (n + 1) ** 2 <= size:
                    row = i + (n + 1) * j
                else:
                    row = ((i * primes[0]) ^ (j * primes[1])) % (1 << 32) % size
                acc += (fx if di else 1 - fx) * (fy if dj else 1 - fy) * table[offset + row]
        out.append(acc)
        offset += rows
    return np.concatenate(out)


def test_hash_encoding_matches_an_independent_computation():
    config = ModelConfig(dims=2, out_channels=1, input_frequencies=6, width=4, architecture="hashgrid", hash_levels=3,
                         hash_table_size=500, hash_features=2, hash_min_resolution=16, hash_max_resolution=200)
    encoding = HashEncoding(config, torch.Generator().manual_seed(3)).double()
    with torch.no_grad():
        encoding.table.copy_(torch.randn(encoding.table.shape, generator=torch.Generator().manual_seed(4)))
    assert encoding.rows == [289, 500, 500]  # N = 16 (1:1), 56 and 200 (hashed)
    table = encoding.table.detach().numpy()
    points = np.array([[0.1234, -0.777], [-1.0, 1.0], [0.5, 0.5], [0.999, -0.001]])
    got = encoding(torch.tensor(points)).detach().numpy()
    for point, row in zip(points, got):
        np.testing.assert_allclose(row, numpy_hash_encoding(table, point, 3, 500, 16, 200, 2), rtol=0, atol=1e-12)
    corner = encoding(torch.tensor([[-1.0, -1.0]], dtype=torch.float64)).detach().numpy()[0, :2]
    np.testing.assert_allclose(corner, table[0], atol=1e-15)  # a vertex of the 1:1 level is its own row


@pytest.mark.parametrize("architecture", PEERS)
def test_save_load_round_trip_and_tampered_shapes(tmp_path, architecture):
    config = plan_model(photo(), get_host().signal("image"), ModelOptions(architecture=architecture, params=3000))
    model = build_model(config)
    run = tmp_path / "run"
    run.mkdir()
    save_run(run, model, {"model": config.to_dict()}, {})
    loaded = load_run(run)
    coords = torch.rand(50, 2) * 2 - 1
    assert torch.equal(loaded.model(coords), model(coords))
    data = json.loads((run / "config.json").read_text())
    data["model"]["width"] += 1
    (run / "config.json").write_text(json.dumps(data))
    with pytest.raises(RunDirError, match="does not match config.json"):
        load_run(run)


@pytest.mark.parametrize("architecture", PEERS)
def test_a_tiny_fit_reduces_the_loss(architecture):
    signal = photo(1, 32)
    image = get_host().signal("image")
    model = build_model(plan_model(signal, image, ModelOptions(architecture=architecture, params=1500)))
    loss = get_host().loss("mse")
    result = fit(model, signal, TrainConfig(steps=40, lr=LR[architecture], device="cpu", beta2=0.99), loss.fn,
                 get_host().sampler("full").make)
    assert result.curve[-1]["loss"] < 0.5 * result.curve[0]["loss"]


def test_siren_omega0_follows_the_signal_type_unless_given():
    audio = get_host().signal("audio")
    wave = Signal.from_grid(torch.sin(torch.linspace(0, 300, 4000))[:, None], (4000,))
    assert plan_model(wave, audio, ModelOptions(architecture="siren")).siren_omega0 == 3000.0  # SIREN's audio value
    assert plan_model(wave, audio, ModelOptions(architecture="finer")).siren_omega0 == 3000.0
    assert plan_model(wave, audio, ModelOptions(architecture="siren", siren_omega0=50.0)).siren_omega0 == 50.0
    image = get_host().signal("image")
    assert plan_model(photo(), image, ModelOptions(architecture="siren")).siren_omega0 == 30.0
    assert plan_model(photo(), image, ModelOptions(architecture="ffn")).ffn_sigma == 10.0
    volume = Signal.from_grid(torch.linspace(-0.5, 0.5, 512)[:, None], (8, 8, 8))
    sdf = get_host().signal("sdf")
    assert plan_model(volume, sdf, ModelOptions(architecture="ffn", params=3000)).ffn_sigma == 12.0  # 3D shapes
    assert plan_model(wave, audio, ModelOptions(architecture="ffn")).ffn_sigma == 1000.0


def test_bad_peer_options_get_one_line(tmp_path):
    source = tmp_path / "photo.png"
    y, x = np.mgrid[0:24, 0:32]
    Image.fromarray((128 + 80 * np.sin(x / 4) * np.cos(y / 5)).astype(np.uint8)).save(source)
    fast = ["--steps", "3", "--device", "cpu", "--quiet"]
    line = one_error_line(invoke("fit", source, "-o", tmp_path / "a", "--architecture", "hashgrid", "--params", "60",
                                 *fast))
    assert "too small for --architecture hashgrid" in line and "ask for more" in line
    line = one_error_line(invoke("fit", source, "-o", tmp_path / "b", "--architecture", "ffn", "--bandlimit", "5", *fast))
    assert "--bandlimit applies to the lattice and uniform models" in line
    line = one_error_line(invoke("fit", source, "-o", tmp_path / "c", "--architecture", "hashgrid", "--width", "8",
                                 *fast))
    assert "drop --width" in line
    assert invoke("fit", source, "-o", tmp_path / "d", "--architecture", "finer", "--params", "800", *fast).exit_code == 0
    line = one_error_line(invoke("prune", tmp_path / "d", "-o", tmp_path / "e", "--target-params", "400"))
    assert "not FINER" in line
    assert not Path(tmp_path / "a").exists() and not Path(tmp_path / "e").exists()


@pytest.mark.parametrize("architecture", PEERS)
def test_gradients_with_respect_to_the_coordinates_match_finite_differences(architecture):
    """SDF losses differentiate the field in x (normals, eikonal): every peer's d f / d x is right."""
    config = ModelConfig(dims=3, out_channels=1, input_frequencies=8, width=8, hidden_layers=1,
                         architecture=architecture, siren_omega0=3.0, siren_hidden_omega0=3.0, ffn_sigma=1.0,
                         hash_levels=2, hash_table_size=64, hash_min_resolution=2, hash_max_resolution=9)
    model = build_model(config).double()
    if architecture == "hashgrid":
        with torch.no_grad():
            model.encoding.table.normal_(generator=torch.Generator().manual_seed(0))
    x = torch.tensor([[0.13, -0.41, 0.27]], dtype=torch.float64, requires_grad=True)
    (gradient,) = torch.autograd.grad(model(x).sum(), x)
    step = 1e-6
    for axis in range(3):
        shift = torch.zeros(1, 3, dtype=torch.float64)
        shift[0, axis] = step
        with torch.no_grad():
            difference = (model(x + shift) - model(x - shift)).item() / (2 * step)
        assert abs(gradient[0, axis].item() - difference) < 1e-5 * max(1.0, abs(difference))


def test_a_peer_fit_resumes_bit_for_bit(tmp_path):
    """Ctrl-C a hash-grid fit after a checkpoint, resume it: the same bytes as an uninterrupted fit."""
    from inrkit.hookspecs import hookimpl

    class Stop:
        @hookimpl
        def inrkit_step_end(self, step):
            if step.step == 13:
                raise KeyboardInterrupt

    source = tmp_path / "photo.png"
    y, x = np.mgrid[0:24, 0:32]
    Image.fromarray((128 + 80 * np.sin(x / 4) * np.cos(y / 5)).astype(np.uint8)).save(source)
    fast = ["--architecture", "hashgrid", "--params", "900", "--steps", "20", "--device", "cpu", "--quiet"]
    assert invoke("fit", source, "-o", tmp_path / "reference", *fast).exit_code == 0
    host, stop = get_host(), Stop()
    host.pm.register(stop, name="peers-stop")
    try:
        result = invoke("fit", source, "-o", tmp_path / "run", "--checkpoint-every", "5", *fast)
    finally:
        host.pm.unregister(stop)
    assert result.exit_code == 130, result.output  # interrupted: the run so far is written, the checkpoint kept
    assert invoke("fit", "--resume", tmp_path / "run", "--quiet").exit_code == 0
    assert (tmp_path / "run" / "model.safetensors").read_bytes() == \
        (tmp_path / "reference" / "model.safetensors").read_bytes()
