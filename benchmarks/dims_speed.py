"""Steps per second of a 1D, a 2D and a 3D grid at equal sample count and equal model size.

A third-party plugin author reported a 3D 32x32x16 signal stepping 2.7x slower
than a 2D 128x128 photo at equal samples (16,384) and model size. This script
measures the trainer on the three grids side by side, in one process, on
synthetic values (noise: the values do not change the cost of a step), for
the paths a plugin can take:

* ``full``: the default full-batch sampler; batches carry ``Batch.index``, so
  the trainer uses its cached input layer (sin/cos of the frozen frequencies).
* ``uniform``: mini-batches of 4,096 samples with ``Batch.index`` (still cached).
* ``no-index``: full batches without ``Batch.index`` (a sampler that builds its
  own coordinates): the input layer is recomputed every step.

Each row is timed over the same number of steps after a warm-up; the three
grids alternate within each repeat so that machine drift hits them alike.
Usage: ``python benchmarks/dims_speed.py [--steps 150] [--repeats 3]``.
"""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

import torch

from common import ROOT, machine, write_report
from inrkit.config import ModelOptions, TrainConfig
from inrkit.host import get_host
from inrkit.model import build_model, stored_parameter_count
from inrkit.planning import plan_model
from inrkit.plugin import Batch, FitDefaults, SamplerType, Signal, SignalType
from inrkit.train import fit

GRIDS = {"1D 16384": (16384,), "2D 128x128": (128, 128), "3D 32x32x16": (32, 32, 16)}
PARAMS = 12_000


def no_index_sampler(context):
    coords = context.signal.coordinates().to(context.device)[context.train_index]
    target = context.signal.values[context.train_index]
    return lambda step: Batch(coords=coords, target=target)


def signal_of(shape: tuple[int, ...], channels: int) -> Signal:
    values = torch.rand(math.prod(shape), channels, generator=torch.Generator().manual_seed(0))
    return Signal.from_grid(values, shape, data_range=1.0)


def time_fit(shape, channels: int, sampler: str, steps: int) -> dict:
    host = get_host()
    signal = signal_of(shape, channels)
    signal_type = SignalType(name="bench", load=lambda path: signal, defaults=FitDefaults())
    model_config = plan_model(signal, signal_type, ModelOptions(params=PARAMS))
    make = no_index_sampler if sampler == "no-index" else host.sampler("uniform" if sampler == "uniform" else "full").make
    batch = 4096 if sampler == "uniform" else None
    config = TrainConfig(steps=steps, device="cpu", batch_size=batch)
    fit(build_model(model_config), signal, TrainConfig(steps=5, device="cpu", batch_size=batch),
        host.loss("mse").fn, make)  # warm-up
    model = build_model(model_config)
    started = time.perf_counter()
    result = fit(model, signal, config, host.loss("mse").fn, make)
    seconds = time.perf_counter() - started
    return {"steps_per_second": result.steps / seconds, "loop_steps_per_second": result.steps / result.seconds,
            "m": model_config.input_frequencies, "n": model_config.width, "bandlimit": list(model_config.bandlimit),
            "params": stored_parameter_count(model)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=150)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    rows = []
    for channels in (1, 3):
        for sampler in ("full", "uniform", "no-index"):
            runs = {name: [] for name in GRIDS}
            for _ in range(args.repeats):
                for name, shape in GRIDS.items():
                    runs[name].append(time_fit(shape, channels, sampler, args.steps))
            for name, measured in runs.items():
                best = max(measured, key=lambda r: r["steps_per_second"])
                rows.append({"grid": name, "channels": channels, "sampler": sampler, **best,
                             "all_steps_per_second": [r["steps_per_second"] for r in measured]})
    lines = [f"# Steps per second by grid dimension ({machine('cpu')}, {args.steps} steps, best of {args.repeats})", "",
             f"Equal samples (16,384) and {PARAMS:,} stored parameters; synthetic values.", "",
             "| channels | sampler | grid | m x n | bandlimit | steps/s | vs 2D |", "|---|---|---|---|---|---|---|"]
    for row in rows:
        reference = next(r for r in rows if r["channels"] == row["channels"] and r["sampler"] == row["sampler"]
                         and r["grid"].startswith("2D"))
        lines.append(f"| {row['channels']} | {row['sampler']} | {row['grid']} | {row['m']} x {row['n']} | "
                     f"{tuple(row['bandlimit'])} | {row['steps_per_second']:.1f} | "
                     f"{row['steps_per_second'] / reference['steps_per_second']:.2f}x |")
    write_report(ROOT / "benchmarks" / "results" / "dims_speed_cpu.md", "\n".join(lines) + "\n", rows)


if __name__ == "__main__":
    main()
