"""The wheel ships every subpackage; the repo layout does not leak top-level names."""

import ast
import importlib.util
import inspect
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
MAPPING = PYPROJECT["tool"]["setuptools"]["package-dir"]


def source_packages():
    found = set()
    for name, folder in MAPPING.items():
        base = ROOT / folder
        for init in base.rglob("__init__.py"):
            relative = init.parent.relative_to(base)
            parts = [] if str(relative) == "." else list(relative.parts)
            dotted = ".".join([name, *parts])
            if not any(dotted.startswith(other + ".") or dotted == other for other in MAPPING if other != name and other.startswith(name + ".")):
                found.add(dotted)
    return found


def test_every_subpackage_is_listed_for_the_wheel():
    missing = source_packages() - set(PYPROJECT["tool"]["setuptools"]["packages"])
    assert not missing, f"add to [tool.setuptools] packages: {sorted(missing)}"


def test_every_python_folder_is_a_package():
    for folder in MAPPING.values():
        for path in (ROOT / folder).rglob("*.py"):
            assert (path.parent / "__init__.py").exists() or path.parent == ROOT / folder, path


def test_repo_folders_are_not_importable_as_top_level_names():
    for name in ("core", "cli", "plugins"):
        assert importlib.util.find_spec(name) is None, f"{name} must only be importable as inrkit.*"


def test_datasets_is_not_a_package():
    assert not (ROOT / "datasets" / "__init__.py").exists()


def imports_of(path):
    """Modules ``path`` imports at run time (imports under ``if TYPE_CHECKING:`` are for type checkers only)."""
    tree = ast.parse(path.read_text())
    for block in ast.walk(tree):
        if isinstance(block, ast.If) and isinstance(block.test, ast.Name) and block.test.id == "TYPE_CHECKING":
            block.body = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            yield node.module


def test_core_knows_no_plugin_and_never_prints():
    for path in (ROOT / "core").rglob("*.py"):
        for module in imports_of(path):
            assert not module.startswith(("inrkit.plugins", "inrkit.cli", "typer")), f"{path}: imports {module}"
        text = path.read_text()
        assert not re.search(r"^\s*print\(|sys\.exit\(", text, re.M), f"{path} prints or exits"


@pytest.mark.parametrize("folder, own", [("plugins", "inrkit.plugins"), ("examples/inrkit-csv/inrkit_csv", "inrkit_csv")])
def test_plugins_use_only_the_public_api(folder, own):
    allowed = ("inrkit.plugin", "inrkit.errors", own)
    for path in (ROOT / folder).rglob("*.py"):
        for module in imports_of(path):
            if module.startswith("inrkit"):
                assert module.startswith(allowed), f"{path}: private import {module}"
        assert not re.search(r"^\s*print\(|sys\.exit\(", path.read_text(), re.M), f"{path} prints or exits"


def test_every_hook_is_documented_with_its_exact_signature():
    from inrkit import hookspecs

    readme = (ROOT / "README.md").read_text()
    hooks = [(n, f) for n, f in vars(hookspecs).items() if n.startswith("inrkit_") and callable(f)]
    assert len(hooks) >= 8
    for name, function in hooks:
        signature = f"{name}{inspect.signature(function)}".replace("'", "")
        assert signature in readme, f"README must document `{signature}`"


def test_public_plugin_api_and_testing_kit_are_documented():
    import inrkit.plugin
    import inrkit.testing

    readme = (ROOT / "README.md").read_text()
    for name in inrkit.plugin.__all__:
        assert f"`{name}`" in readme, f"README's plugin guide must name inrkit.plugin.{name}"
    for name in ("assert_plugin_discovered", "assert_fit_converges", "assert_export_round_trip", "fake_distribution", "inrkit_host", "inrkit_env"):
        assert hasattr(inrkit.testing, name) and name in readme, name


def test_every_dataset_file_is_in_the_manifest_with_its_hash():
    import hashlib
    import json

    manifest = json.loads((ROOT / "datasets" / "manifest.json").read_text())["files"]
    listed = {entry["path"]: entry for entry in manifest}
    present = {p.name for p in (ROOT / "datasets").iterdir() if p.name not in ("manifest.json", "README.md")}
    assert present == set(listed)
    for name, entry in listed.items():
        assert hashlib.sha256((ROOT / "datasets" / name).read_bytes()).hexdigest() == entry["sha256"], name
        assert entry["license"] and entry["source"], name


def test_every_cli_command_has_a_readme_section():
    from inrkit.cli.main import app, load_plugin_commands

    load_plugin_commands()
    readme = (ROOT / "README.md").read_text()
    names = [command.name or command.callback.__name__ for command in app.registered_commands]
    assert {"fit", "export", "mesh", "prune", "spectrum", "plugins"} <= set(names)
    for name in names:
        assert f"### `inrkit {name}" in readme, f"README's CLI reference must have a section for `inrkit {name}`"


def test_plugin_registration_leaves_heavy_mesh_libraries_unimported():
    # Every inrkit command registers the built-in plugins; trimesh, libigl and scikit-image cost
    # about 0.6 s of start-up, so they load only when an SDF is read, fitted or meshed.
    code = ("import sys; from inrkit.host import get_host; host = get_host(); host.signal('sdf'); "
            "print(sorted(m for m in ('trimesh', 'igl', 'skimage') if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


def test_mesh_comes_from_the_sdf_plugin():
    env = {k: v for k, v in __import__("os").environ.items() if not k.startswith("INRKIT_")}
    listed = subprocess.run([sys.executable, "-m", "inrkit.cli", "--help"], capture_output=True, text=True, env=env)
    assert listed.returncode == 0 and " mesh " in listed.stdout
    blocked = subprocess.run([sys.executable, "-m", "inrkit.cli", "--help"], capture_output=True, text=True,
                             env={**env, "INRKIT_DISABLE_PLUGINS": "sdf"})
    assert blocked.returncode == 0 and "fit" in blocked.stdout and "mesh" not in blocked.stdout
    refused = subprocess.run([sys.executable, "-m", "inrkit.cli", "mesh", "x", "-o", "y.ply"], capture_output=True,
                             text=True, env={**env, "INRKIT_DISABLE_PLUGINS": "sdf"})
    assert refused.returncode == 2 and refused.stderr.startswith("error: No such command 'mesh'")


def test_the_cli_names_no_built_in_signal():
    builtins = ("image", "audio", "sdf", "mesh", "ssim", "chamfer", "fscore", "iou", "sample_rate", "sample-rate",
                ".ply", ".wav", ".flac", ".glb")
    for path in (ROOT / "cli").glob("*.py"):
        tree = ast.parse(path.read_text())
        prose = set()  # docstrings and help texts may describe the product; code may not branch on a signal
        for node in ast.walk(tree):
            if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant):
                prose.add(id(node.value))
            if isinstance(node, ast.keyword) and node.arg == "help":
                prose.update(id(n) for n in ast.walk(node.value))
        for node in ast.walk(tree):
            if id(node) in prose:
                continue
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                words = re.findall(r"[a-z_.-]+", node.value.lower())
                named = [b for b in builtins if b in words]
                # The deprecated --sample-rate alias is the one exception, until inrkit 0.3.
                line = path.read_text().splitlines()[node.lineno - 1]
                if "deprecated" in node.value.lower() or "the deprecated alias" in line:
                    named = [b for b in named if b not in ("sample_rate", "sample-rate")]
                assert not named, f"{path.name}:{node.lineno} names {named}: signal knowledge belongs in plugins"


def test_core_modules_stay_small():
    # A module over this many lines holds more than one idea; say why in the module if one must.
    for path in (ROOT / "core").glob("*.py"):
        lines = len(path.read_text().splitlines())
        assert lines <= 420 or "over 400 lines because" in path.read_text(), f"{path.name} has {lines} lines"
