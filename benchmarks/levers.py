"""Levers on the lattice model (issue 16, item 3): each measured against the current default and SIREN.

A lever is a name made of ``+``-joined parts, applied to the default model
(bandlimit auto, one hidden layer, m = n, at a quarter of the sample values
in parameters) on inrkit's own trainer (Adam, lr 2e-3 decaying to 2e-4,
beta2 0.99, full batch):

* ``default``: ``ModelOptions()`` of the inrkit it imports (``results/levers_cpu.md`` was made from a
  snapshot of commit 613e406, before the default change: one hidden layer, m = n, box sampling; run it
  against that commit to reproduce, e.g. ``git worktree`` + ``PYTHONPATH``);
* ``siren``: ``--architecture siren`` (3 hidden layers; first-layer omega0 30
  for images, 3000 for audio) with the same optimiser;
* ``spectral``: the high input frequencies drawn from the target's smoothed
  spectral magnitude (:mod:`inrkit.spectral_init`); ``spectrallow``: its
  low-block share too, where the low block is larger than that share;
* ``depthK``: K bounded hidden layers;
* ``ratioR``: m / n = R at the same parameter count;
* ``polishF``: Adam for the first 1 - F of the budget (its learning-rate
  schedule compressed into it), then L-BFGS (:mod:`inrkit.polish`) for the
  rest; at equal steps each L-BFGS loss-and-gradient evaluation counts as a step.

Budgets: ``--steps N`` (equal steps, machine-independent) or ``--seconds T``
(equal wall clock); each contender's steps per second is reported.
Quality: PSNR (dB) for images, SNR (dB) for audio.

    python benchmarks/levers.py --steps 500 --levers default spectral depth2 --out benchmarks/results/levers_cpu.md
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from common import ROOT, machine
from inrkit.config import ModelOptions, TrainConfig
from inrkit.host import get_host
from inrkit.metrics import psnr
from inrkit.model import SinusoidalINR, build_model, stored_parameter_count
from inrkit.pipeline import _batching, load_signal, plan_model
from inrkit.plugin_types import FitContext
from inrkit.polish import lbfgs_polish
from inrkit.signal import Batch
from inrkit.spectral_init import sample_spectral_frequencies, spectral_magnitude
from inrkit.train import _Predictor, evaluate, fit

PHOTOS = ["camera-128.png", "astronaut-128.png", "chelsea-128.png", "coffee-128.png"]


def synthetic_chord(path: Path, rate: int = 16000, seconds: float = 2.0) -> Path:
    """A plucked G-major chord (G3 B3 D4), 10 slightly inharmonic partials each with 1/k amplitudes and decays."""
    import soundfile

    t = np.arange(int(rate * seconds)) / rate
    out = np.zeros_like(t)
    for f0 in (196.0, 246.94, 293.66):
        for k in range(1, 11):
            f = k * f0 * math.sqrt(1 + 1e-4 * k * k)
            out += np.sin(2 * np.pi * f * t + 0.3 * k) * np.exp(-t * (1.5 + 0.8 * k)) / k
    out = 0.9 * out / np.abs(out).max()
    soundfile.write(path, out.astype(np.float32), rate, subtype="PCM_16")
    return path


def signals(names: list[str], scratch: Path) -> list[tuple[str, Path, str]]:
    found = []
    for name in names:
        if name == "synthetic-chord":
            found.append((name + " (synthetic)", synthetic_chord(scratch / "chord.wav"), "audio"))
        elif name.endswith((".wav", ".flac")):
            found.append((name, ROOT / "datasets" / name, "audio"))
        else:
            found.append((name, ROOT / "datasets" / name, "image"))
    return found


def parse_lever(name: str) -> dict:
    lever = {"options": {}, "spectral": None, "polish": 0.0}
    for part in name.split("+"):
        if part == "default":
            continue
        elif part == "siren":
            lever["options"]["architecture"] = "siren"
        elif part in ("spectral", "spectrallow"):
            lever["spectral"] = part
        elif m := re.fullmatch(r"depth(\d+)", part):
            lever["options"]["hidden_layers"] = int(m.group(1))
        elif m := re.fullmatch(r"ratio([\d.]+)", part):
            lever["options"]["input_ratio"] = float(m.group(1))
        elif m := re.fullmatch(r"polish([\d.]+)", part):
            lever["polish"] = float(m.group(1))
        else:
            raise SystemExit(f"unknown lever part {part!r}")
    return lever


def build(signal, signal_type, kind: str, lever: dict):
    options = ModelOptions(**lever["options"])
    if options.architecture == "siren" and kind == "audio":
        options = replace(options, siren_omega0=3000.0)
    config = plan_model(signal, signal_type, options)
    if lever["spectral"] is None:
        return build_model(config), config
    vectors, magnitude = spectral_magnitude(signal, config.bandlimit, config.period)
    frequencies = sample_spectral_frequencies(
        config.input_frequencies, config.bandlimit, config.low_bandlimit, vectors, magnitude, config.low_fraction,
        torch.Generator().manual_seed(config.seed), spectral_low=lever["spectral"] == "spectrallow")
    return SinusoidalINR(config, frequencies), config


def train_one(path: Path, kind: str, name: str, steps: int | None, seconds: float | None) -> dict:
    host = get_host()
    signal, signal_type = load_signal(path, kind, host)
    lever = parse_lever(name)
    model, config = build(signal, signal_type, kind, lever)
    share = lever["polish"]
    adam_steps = None if steps is None else max(1, round(steps * (1 - share)))
    adam_seconds = None if seconds is None else seconds * (1 - share)
    train = _batching(TrainConfig(steps=adam_steps, max_seconds=adam_seconds, device="cpu"), signal, signal_type,
                      config)
    loss = host.loss(signal_type.defaults.loss)
    began = time.perf_counter()
    result = fit(model, signal, train, loss.fn, host.sampler(train.sampler).make)
    taken, polish = result.steps, None
    if share > 0:
        coords = signal.coordinates()
        predictor = _Predictor(model, coords)
        batch = Batch(coords=coords, target=signal.values, index=torch.arange(signal.samples))
        context = FitContext(model=model, signal=signal, predict=predictor, step=taken)
        left = None if steps is None else steps - taken
        left_s = None if seconds is None else seconds - (time.perf_counter() - began)
        done = lbfgs_polish(model, lambda: loss.fn(context, batch), max_evaluations=left,
                            max_seconds=left_s, project=getattr(model, "project_", None))
        taken += done.evaluations
        polish = {"iterations": done.iterations, "evaluations": done.evaluations, "before": done.losses[0],
                  "after": done.best}
    wall = time.perf_counter() - began
    reconstruction = evaluate(model, signal.coordinates())
    if kind == "audio":
        from inrkit.plugins.audio.quality import snr_db

        quality = snr_db(reconstruction, signal.values)
    else:
        quality = psnr(reconstruction, signal.values, signal.data_range)
    return {"lever": name, "quality": quality, "steps": taken, "seconds": wall, "steps_per_s": taken / wall,
            "params": stored_parameter_count(model), "m": config.input_frequencies, "n": config.width,
            "layers": config.hidden_layers, "bandlimit": list(config.bandlimit), "polish": polish}


def report(paths: list[Path], out: Path, title: str) -> None:
    """Tables from JSON-lines files of earlier runs: quality, its change against ``default`` and steps/s per lever."""
    rows = [json.loads(line) for path in paths for line in path.read_text().splitlines() if line.strip()]
    groups: dict[tuple, list[dict]] = {}
    for row in rows:
        key = ("steps", row["budget_steps"]) if row["budget_steps"] else ("seconds", row["budget_seconds"])
        groups.setdefault(key + (row.get("run", 1),), []).append(row)
    lines = [f"# {title}", "", (f"Machine: {rows[0]['machine'] if rows else '?'}. Quality: PSNR (images) or SNR "
             "(audio), dB. Δ: against `default` in the same run (`default`: one hidden layer, m = n, box sampling, the "
             "default before commit ea754a2; `siren`: 3 hidden layers with inrkit's optimiser). Load: 1-minute load average before / after the fit."), ""]
    for (kind, budget, run), group in sorted(groups.items(), key=lambda item: (item[0][0], item[0][1], item[0][2])):
        levers = list(dict.fromkeys(r["lever"] for r in group))
        names = list(dict.fromkeys(r["signal"] for r in group))
        cell = {(r["lever"], r["signal"]): r for r in group}
        loads = [r["load_before"] for r in group] + [r["load_after"] for r in group]
        lines += [(f"## Equal {kind}: {budget:g} {kind} (run {run}, {group[0]['when'][:16]} to {group[-1]['when'][11:16]} "
                  f"UTC, load {min(loads):.1f} to {max(loads):.1f})"), "",
                  "Quality (change against `default`); the last column is the mean change over the signals measured.", "",
                  "| lever | " + " | ".join(names) + " | mean Δ |", "|---" * (len(names) + 2) + "|"]
        for name in levers:
            cells, deltas = [], []
            for signal in names:
                r, base = cell.get((name, signal)), cell.get(("default", signal))
                if r is None:
                    cells.append("")
                elif base is None or name == "default":
                    cells.append(f"{r['quality']:.2f}")
                else:
                    deltas.append(r["quality"] - base["quality"])
                    cells.append(f"{r['quality']:.2f} ({deltas[-1]:+.2f})")
            mean = f"{sum(deltas) / len(deltas):+.2f} ({len(deltas)})" if deltas else ""
            lines.append(f"| {name} | " + " | ".join(cells) + f" | {mean} |")
        lines += ["", "Steps, steps/s and model (hidden layers L, m input frequencies, n per hidden layer, stored numbers):", "",
                  "| lever | " + " | ".join(names) + " |", "|---" * (len(names) + 1) + "|"]
        for name in levers:
            cells = []
            for signal in names:
                r = cell.get((name, signal))
                cells.append("" if r is None else f"{r['steps']} st, {r['steps_per_s']:.1f}/s, L{r['layers']} m{r['m']} "
                                                  f"n{r['n']}, {r['params']}")
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
        lines.append("")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(lines) + "\n")
    out.with_suffix(".json").write_text(json.dumps(rows, indent=1) + "\n")
    print("\n".join(lines))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--report", nargs="+", type=Path, help="only write the tables of these JSON-lines files to --out")
    parser.add_argument("--title", default="Levers on the lattice model (benchmarks/levers.py)")
    parser.add_argument("--run", type=int, default=1, help="run number (a rerun to check the order)")
    parser.add_argument("--signals", nargs="+", default=[*PHOTOS, "speech-16k.wav", "synthetic-chord"])
    parser.add_argument("--levers", nargs="+", default=["default", "siren", "spectral", "depth2", "polish0.2"])
    budget = parser.add_mutually_exclusive_group()
    budget.add_argument("--steps", type=int)
    budget.add_argument("--seconds", type=float)
    parser.add_argument("--out", type=Path, required=True, help="JSON lines appended here (one per fit)")
    args = parser.parse_args()
    if args.report:
        report(args.report, args.out, args.title)
        return
    if args.steps is None and args.seconds is None:
        parser.error("give --steps or --seconds")
    torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))
    load = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as scratch:
        for label, path, kind in signals(args.signals, Path(scratch)):
            for name in args.levers:
                row = train_one(path, kind, name, args.steps, args.seconds)
                row.update(signal=label, kind=kind, run=args.run, budget_steps=args.steps, budget_seconds=args.seconds,
                           load_before=load, load_after=os.getloadavg()[0], machine=machine("cpu"),
                           when=time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime()))
                load = row["load_after"]
                print(f"{label:28s} {name:24s} {row['quality']:7.2f} dB  {row['steps']:5d} steps "
                      f"{row['seconds']:6.1f} s  {row['steps_per_s']:6.1f}/s  m={row['m']} n={row['n']} "
                      f"L={row['layers']} B={row['bandlimit']} load {load:.2f}", flush=True)
                with open(args.out, "a") as handle:
                    handle.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    main()
