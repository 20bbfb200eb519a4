"""The public plugin surface: a facade that only re-exports, typed events, and deprecations that keep 1.0 plugins working."""

import ast
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import inrkit.plugin
from inrkit.config import TrainConfig
from inrkit.plugin import FitEnded, FitStarted, StepEnded, TrainSettings, hookimpl

ROOT = Path(__file__).resolve().parents[2]


def test_the_facade_defines_nothing():
    tree = ast.parse((ROOT / "core" / "plugin.py").read_text())
    for node in tree.body:
        docstring = isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant)
        imports = isinstance(node, (ast.Import, ast.ImportFrom))
        targets = [ast.unparse(t) for t in node.targets] if isinstance(node, ast.Assign) else []
        # The table of where each name lives, and the lazy re-export built from it, are the only assignments.
        exports = targets in (["__all__"], ["_HOMES"], ["(__getattr__, __dir__)"])
        assert docstring or imports or exports, f"inrkit.plugin must only re-export; line {node.lineno} defines something"
    for name in inrkit.plugin.__all__:
        value = getattr(inrkit.plugin, name)
        home = getattr(value, "__module__", None)
        assert home != "inrkit.plugin", f"{name} is defined in the facade"


def test_registering_the_plugins_and_their_commands_imports_no_torch():
    """`inrkit --help` lists plugin commands without paying for torch (#16: at most half an `import torch`)."""
    script = ("import sys\n"
              "from inrkit.cli.main import load_plugin_commands\n"
              "from inrkit.host import get_host\n"
              "load_plugin_commands()\n"
              "host = get_host()\n"
              "assert not host.problems, host.problems\n"
              "assert {'image', 'audio', 'sdf'} <= set(host.registry['signal']), host.registry['signal']\n"
              "print(sorted(m for m in ('torch', 'scipy', 'skimage', 'trimesh') if m in sys.modules))\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]", f"heavy modules imported while registering plugins: {done.stdout}"


def test_lazy_import_defers_the_module_until_an_attribute_is_read():
    script = ("import sys\n"
              "from inrkit.plugin import lazy_import\n"
              "wave = lazy_import('wave')\n"
              "before = 'wave' in sys.modules\n"
              "error = wave.Error\n"
              "import wave as real\n"
              "assert error is real.Error and lazy_import('wave') is real\n"
              "print(before, 'wave' in sys.modules)\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["False", "True"]


def test_the_engine_does_not_import_the_facade():
    for path in (ROOT / "core").glob("*.py"):
        if path.name in ("plugin.py", "testing.py"):
            continue
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom):
                assert node.module != "inrkit.plugin", f"{path.name} imports the facade; import the engine module"


def step_event(**changes):
    fields = dict(step=3, seconds=1.5, loss=0.25, psnr=30.0, lr=1e-3, progress=0.5, model=torch.nn.Linear(1, 1))
    return StepEnded(**{**fields, **changes})


def test_events_are_frozen():
    event = step_event()
    with pytest.raises(AttributeError):
        event.step = 4


def test_observers_written_for_dicts_still_work_with_a_warning():
    event = step_event(phase="1: fit")
    with pytest.warns(DeprecationWarning, match=r"read event.psnr instead of event\['psnr'\]"):
        assert event["psnr"] == 30.0
    with pytest.warns(DeprecationWarning):
        assert event.get("phase") == "1: fit"
    assert event.get("nothing", 7) == 7 and "loss" in event and "nothing" not in event
    with pytest.warns(DeprecationWarning):
        merged = {**event, "step": 9}
    assert merged["step"] == 9 and merged["seconds"] == 1.5
    with pytest.raises(KeyError):
        event["nothing"]


def test_fit_context_settings_are_a_read_only_view():
    config = TrainConfig(steps=10, loss_weight=0.5, beta2=0.95)
    settings = TrainSettings.of(config)
    assert settings.steps == 10 and settings.loss_weight == 0.5
    with pytest.raises(AttributeError):
        settings.loss_weight = 2.0
    with pytest.warns(DeprecationWarning, match="not part of the plugin API"):
        assert settings.beta2 == 0.95
    with pytest.raises(AttributeError):
        settings.not_a_setting


def test_fit_events_reach_observers_typed():
    from inrkit.signal import Signal
    from inrkit.train import fit
    from inrkit.host import get_host

    host = get_host()
    signal = Signal.from_grid(torch.linspace(-1, 1, 64).sin().unsqueeze(1), (64,), data_range=2.0)
    seen = []

    class Observer:
        @hookimpl
        def inrkit_fit_start(self, info):
            seen.append(info)

        @hookimpl
        def inrkit_step_end(self, step):
            seen.append(step)

        @hookimpl
        def inrkit_fit_end(self, result):
            seen.append(result)

    from inrkit.config import ModelConfig
    from inrkit.model import build_model

    model = build_model(ModelConfig(dims=1, out_channels=1, input_frequencies=6, width=6, bandlimit=(8,), low_bandlimit=(3,)))
    observer = Observer()
    import pluggy

    from inrkit import hookspecs

    manager = pluggy.PluginManager("inrkit")
    manager.add_hookspecs(hookspecs)
    manager.register(observer)
    fit(model, signal, TrainConfig(steps=5, device="cpu", loss_weight=0.3), host.loss("mse").fn,
        host.sampler("full").make, hook=manager.hook)
    assert isinstance(seen[0], FitStarted) and isinstance(seen[-1], FitEnded)
    assert [type(e) for e in seen[1:-1]] == [StepEnded] * 5
    assert seen[0].config.loss_weight == 0.3 and seen[-1].steps == 5 and seen[-1].stop_reason == "steps"


def test_legacy_positional_signal_still_loads_with_a_warning():
    from inrkit.signal import Signal, grid_extent, grid_nyquist

    values = torch.zeros(10, 1)
    with pytest.warns(DeprecationWarning, match="Signal.from_grid"):
        legacy = Signal("csv", values, grid_nyquist((10,), grid_extent((10,))), 1.0, grid_shape=(10,))
    modern = Signal.from_grid(values, (10,), data_range=1.0)
    assert legacy.nyquist == modern.nyquist and legacy.extent == modern.extent and legacy.grid_shape == (10,)


def test_from_grid_per_axis_spacing():
    from inrkit.signal import Signal

    signal = Signal.from_grid(torch.zeros(32 * 8, 1), (32, 8), spacing=(1.0, 4.0))
    # physical lengths 31 and 28: the longer axis spans [-1, 1]; a 4x coarser axis has a 4x lower Nyquist
    assert signal.extent[0] == 1.0 and abs(signal.extent[1] - 28 / 31) < 1e-12
    assert abs(signal.nyquist[0] / signal.nyquist[1] - 4.0) < 1e-9
    default = Signal.from_grid(torch.zeros(32 * 8, 1), (32, 8))
    assert default.nyquist[0] == default.nyquist[1] and signal.data_range == 1.0


def test_declared_options_parse_and_refuse_with_one_line():
    from inrkit.errors import ConfigError
    from inrkit.plugin import Option
    from inrkit.options import parse_options

    declared = (Option("rate", int, minimum=1, maximum=96000), Option("gain", float, default=1.0),
                Option("mode", str, default="a", choices=("a", "b")), Option("loud", bool))
    assert parse_options(declared, {"rate": "48000", "loud": "yes"}, "exporter 'x'") == \
        {"rate": 48000, "loud": True, "gain": 1.0, "mode": "a"}
    for given, message in [({"rate": "0"}, "at least 1"), ({"rate": "1e9"}, "whole number"), ({"rate": "96001"}, "at most"),
                           ({"gain": "nan"}, "finite"), ({"gain": "inf"}, "finite"), ({"mode": "c"}, "one of a, b"),
                           ({"loud": "maybe"}, "true or false"), ({"colour": "red"}, "has no option 'colour'")]:
        with pytest.raises(ConfigError, match=message) as caught:
            parse_options(declared, given, "exporter 'x'")
        assert "\n" not in str(caught.value)
    with pytest.raises(ConfigError, match="invalid"):
        Option("Bad Name")
    assert Option("rate", int, minimum=1, maximum=96000).describe() == "rate (int, 1..96000): "
