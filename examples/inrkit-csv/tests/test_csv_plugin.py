"""Tests of the template plugin, written with inrkit's testing kit.

They need the plugin installed (``pip install -e examples/inrkit-csv``): the
first test proves inrkit discovers it through its entry point.
"""

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from inrkit.plugin import InputError
from inrkit.testing import (  # noqa: F401 - fixtures
    assert_export_round_trip,
    assert_fit_converges,
    assert_plugin_discovered,
    inrkit_env,
    inrkit_host,
)
from inrkit_csv import SAMPLE, load_csv


def test_plugin_is_discovered(inrkit_host):
    info = assert_plugin_discovered("csv", {"signal": ["csv"], "exporter": ["csv"]}, inrkit_host)
    assert info.distribution == "inrkit-csv"
    assert inrkit_host.signal_for_path(Path("x.csv")).name == "csv"


def test_sample_loads_as_one_channel_in_int16_units():
    signal = load_csv(SAMPLE)
    assert signal.channels == 1 and signal.grid_shape == (2000,)
    assert signal.metadata["columns"] == ["amplitude"]
    assert -32768 <= float(signal.values.min()) < 0 < float(signal.values.max()) <= 32767


def test_fit_converges_and_export_round_trips(tmp_path):
    summary = assert_fit_converges(SAMPLE, tmp_path / "run", min_psnr=25.0, steps=300, params=1500)
    assert (tmp_path / "run" / "plot.png").is_file() and (tmp_path / "run" / "reconstruction.csv").is_file()
    assert summary.metrics["final"]["nrmse"] < 0.06
    # CSV keeps 9 significant digits: the file equals the model far beyond the fit's error.
    assert assert_export_round_trip(tmp_path / "run", tmp_path / "again.csv", min_psnr=80.0) > 80.0


def test_export_any_row_count(tmp_path):
    assert_fit_converges(SAMPLE, tmp_path / "run", min_psnr=10.0, steps=20, params=1500)
    assert_export_round_trip(tmp_path / "run", tmp_path / "dense.csv", 80.0, resolution=[5000], exporter="csv")
    with open(tmp_path / "dense.csv", newline="") as handle:
        rows = list(csv.reader(handle))
    assert rows[0] == ["amplitude"] and len(rows) == 5001


@pytest.mark.parametrize(
    "content, message",
    [("", "empty"), ("a,b\n", "no data rows"), ("1,2\n3,x\n", "non-numeric"), ("1\nnan\n", "NaN"), ("1,2\n3\n", "same number of columns"), ("5\n", "at least 2 rows")],
)
def test_bad_csv(tmp_path, content, message):
    path = tmp_path / "bad.csv"
    path.write_text(content)
    with pytest.raises(InputError, match=message):
        load_csv(path)


def test_cli_end_to_end_through_the_installed_entry_point(tmp_path):
    """What a user types, run as a separate process: discovery, fit, export, errors."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("INRKIT_")}
    run = tmp_path / "run"
    cli = [sys.executable, "-m", "inrkit.cli"]
    fitted = subprocess.run([*cli, "fit", "--signal", "csv", str(SAMPLE), "-o", str(run), "--steps", "30", "--params", "1500", "--quiet"],
                            capture_output=True, text=True, env=env)
    assert fitted.returncode == 0, fitted.stderr
    assert json.loads((run / "metrics.json").read_text())["steps"] == 30
    exported = subprocess.run([*cli, "export", str(run), "-o", str(tmp_path / "up.csv"), "--resolution", "4000"],
                              capture_output=True, text=True, env=env)
    assert exported.returncode == 0, exported.stderr
    assert len(np.loadtxt(tmp_path / "up.csv", delimiter=",", skiprows=1)) == 4000
    bad = tmp_path / "bad.csv"
    bad.write_text("1,2\n3,oops\n")
    failed = subprocess.run([*cli, "fit", str(bad), "-o", str(tmp_path / "r2")], capture_output=True, text=True, env=env)
    assert failed.returncode == 2 and failed.stderr.startswith("error: ") and "Traceback" not in failed.stderr
    assert not (tmp_path / "r2").exists()
    listed = subprocess.run([*cli, "plugins", "--json"], capture_output=True, text=True, env=env)
    assert any(p["name"] == "csv" for p in json.loads(listed.stdout)["plugins"])


def test_delimiter_option(tmp_path):
    from inrkit.cli.main import app
    from typer.testing import CliRunner

    semicolons = tmp_path / "semi.csv"
    semicolons.write_text("a;b\n" + "".join(f"{i};{(i * 7) % 5}\n" for i in range(400)))
    signal = load_csv(semicolons, delimiter=";")
    assert signal.channels == 2 and signal.grid_shape == (400,)
    runner = CliRunner()
    run = tmp_path / "run"
    result = runner.invoke(app, ["fit", str(semicolons), "-o", str(run), "--option", "delimiter=;", "--steps", "5", "-q"])
    assert result.exit_code == 0, result.output
    assert json.loads((run / "config.json").read_text())["signal"]["load_options"] == {"delimiter": ";"}
    result = runner.invoke(app, ["fit", str(semicolons), "-o", str(tmp_path / "r2"), "--option", "delimiter=x", "-q"])
    assert result.exit_code == 2 and "must be one of" in result.output and not (tmp_path / "r2").exists()
    result = runner.invoke(app, ["fit", str(semicolons), "-o", str(tmp_path / "r2"), "--option", "colour=red", "-q"])
    assert result.exit_code == 2 and "has no option 'colour'; its options: delimiter" in result.output
