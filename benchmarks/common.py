"""Shared pieces of the benchmark scripts (run them as `python benchmarks/<script>.py`)."""

from __future__ import annotations

import json
import platform
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from inrkit.config import TrainConfig
from inrkit.host import get_host
from inrkit.metrics import psnr
from inrkit.model import build_model, stored_parameter_count
from inrkit.pipeline import ModelOptions, load_signal, plan_model
from inrkit.train import evaluate, fit

ROOT = Path(__file__).resolve().parents[1]


def train_library(path: Path, signal_name: str, options: ModelOptions, config: TrainConfig, metrics=None) -> dict:
    """Fit through the library (same trainer as the CLI); returns PSNR, steps, seconds, params, curve, extra metrics."""
    host = get_host()
    signal, signal_type = load_signal(path, signal_name, host)
    model = build_model(plan_model(signal, signal_type, options))
    result = fit(model, signal, config, host.loss("mse").fn, host.sampler("full").make)
    reconstruction = evaluate(result.model, signal.coordinates())
    out = {"psnr": psnr(reconstruction, signal.values, signal.data_range), "steps": result.steps,
           "seconds": result.seconds, "params": stored_parameter_count(result.model), "curve": result.curve}
    if metrics is not None:
        out.update(metrics(reconstruction, signal.values))
    return out


def fit_contender(signal, signal_type, options: ModelOptions, train_config: TrainConfig, hook=None):
    """Plan, build and fit one contender as `inrkit fit` would: the signal type's sampler and batching
    (``pipeline._batching``), and inrkit's default learning rate for the model where ``train_config.lr`` is None.

    Returns (model config, the train config used, the fit's result).
    """
    from inrkit.pipeline import _batching

    host = get_host()
    config = plan_model(signal, signal_type, options)
    model = build_model(config, signal)  # the signal: --input-sampling spectrum/auto draws from its spectrum
    train_config = _batching(train_config.for_model(config, signal_type.defaults.lr), signal, signal_type, config)
    result = fit(model, signal, train_config, host.loss(signal_type.defaults.loss).fn,
                 host.sampler(train_config.sampler).make, hook=hook)
    return config, train_config, result


def run_cli(args: list[str]) -> tuple[float, dict]:
    """Run `inrkit fit ARGS` as a separate process; returns its wall-clock seconds and metrics.json."""
    with tempfile.TemporaryDirectory() as scratch:
        out = Path(scratch) / "run"
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "inrkit.cli", "fit", *args, "-o", str(out), "--quiet"], check=True)
        wall = time.perf_counter() - start
        return wall, json.loads((out / "metrics.json").read_text())


def first_time_at(curve: list[dict], key: str, level: float) -> float | None:
    """Training seconds at which a curve's ``key`` first reached ``level``."""
    for point in curve:
        if point.get(key) is not None and point[key] >= level:
            return point["seconds"]
    return None


def machine(device: str) -> str:
    """The machine in words, for the tables."""
    if device.startswith("cuda"):
        return torch.cuda.get_device_name(0)
    cpu = platform.processor() or platform.machine()
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return f"{cpu}, {torch.get_num_threads()} threads"


def write_report(path: Path, text: str, data=None) -> None:
    """Write a Markdown table (and its data as JSON beside it), then print the table."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    if data is not None:
        path.with_suffix(".json").write_text(json.dumps(data, indent=2) + "\n")
    print(text)


def peak_rss(command: list[str]) -> tuple[float, float, str]:
    """(peak resident MiB, wall seconds, stdout) of a command run under GNU time -v."""
    start = time.perf_counter()
    done = subprocess.run(["/usr/bin/time", "-v", *command], capture_output=True, text=True)
    wall = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{done.stderr[-3000:]}")
    kib = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", done.stderr).group(1))
    return kib / 1024, wall, done.stdout
