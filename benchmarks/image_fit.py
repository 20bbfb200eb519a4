"""Image benchmark: inrkit (lattice) vs SIREN vs uniform integer frequencies.

Measures, side by side in one run, on each photo:

1. ``inrkit fit --params P --max-seconds T`` (the CLI, as a user runs it) against
   a SIREN of the same parameter count (3 hidden layers, omega0 = 30, Adam lr
   1e-4 with PyTorch's betas (0.9, 0.999), full batch) trained for the same wall-clock budget on the same trainer;
2. the wall-clock time of the whole ``inrkit fit --target-psnr <SIREN's final
   PSNR>`` process, start-up included, and the training time at which the
   inrkit curve first reached SIREN's final PSNR;
3. lattice vs uniform integer initializer at an equal number of steps.

Usage::

    python benchmarks/image_fit.py --seconds 60 --out benchmarks/results/image_fit_cpu.md

Writes a Markdown table (and a JSON file beside it) and prints it.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import torch

from common import ROOT, first_time_at, machine, run_cli, train_library, write_report
from inrkit.config import TrainConfig
from inrkit.pipeline import ModelOptions


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", nargs="+", default=["camera-128.png", "astronaut-128.png", "chelsea-128.png"])
    parser.add_argument("--params", type=int, default=12000)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--equal-steps", type=int, default=1000)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "image_fit_cpu.md")
    args = parser.parse_args()

    rows = []
    for name in args.images:
        path = ROOT / "datasets" / name
        siren = train_library(
            path, "image",
            ModelOptions(architecture="siren", params=args.params, hidden_layers=3),
            TrainConfig(max_seconds=args.seconds, lr=1e-4, lr_final=1e-4, beta2=0.999, device=args.device),
        )
        common = ["--signal", "image", str(path), "--params", str(args.params), "--device", args.device]
        _, ours = run_cli([*common, "--max-seconds", str(args.seconds)])
        target_wall, target_run = run_cli([*common, "--target-psnr", f"{siren['psnr']:.4f}", "--max-seconds", str(args.seconds)])
        equal = TrainConfig(steps=args.equal_steps, lr=2e-3, lr_final=2e-4, device=args.device)
        lattice = train_library(path, "image", ModelOptions(params=args.params), equal)
        uniform = train_library(path, "image", ModelOptions(architecture="uniform", params=args.params), equal)
        row = {
            "image": name,
            "params_inrkit": ours["parameters"],
            "params_siren": siren["params"],
            "seconds": args.seconds,
            "steps_inrkit": ours["steps"],
            "steps_siren": siren["steps"],
            "psnr_inrkit": ours["final"]["psnr"],
            "psnr_siren": siren["psnr"],
            "gain_db": ours["final"]["psnr"] - siren["psnr"],
            "train_seconds_to_siren_final": first_time_at(ours["curve"], "psnr", siren["psnr"]),
            "process_seconds_target_run": target_wall,
            "target_run_reached": target_run["stop_reason"] == "target_psnr",
            "target_run_psnr": target_run["final"]["psnr"],
            "equal_steps": args.equal_steps,
            "psnr_lattice_equal_steps": lattice["psnr"],
            "psnr_uniform_equal_steps": uniform["psnr"],
        }
        rows.append(row)
        print(json.dumps(row), flush=True)

    device = machine(args.device)
    lines = [
        f"Machine: {device}; torch {torch.__version__}; Python {platform.python_version()}; "
        f"{args.params} parameters; {args.seconds:.0f} s budget; {time.strftime('%Y-%m-%d')}",
        "",
        "| image | params (inrkit / SIREN) | steps in budget (inrkit / SIREN) | PSNR inrkit | PSNR SIREN | gain | inrkit training s to SIREN's final PSNR | whole `inrkit fit --target-psnr` process s | speed-up (budget / process) | lattice @ equal steps | uniform @ equal steps |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        to_final = r["train_seconds_to_siren_final"]
        lines.append(
            f"| {r['image']} | {r['params_inrkit']} / {r['params_siren']} | {r['steps_inrkit']} / {r['steps_siren']} "
            f"| {r['psnr_inrkit']:.2f} | {r['psnr_siren']:.2f} | {r['gain_db']:+.2f} dB "
            f"| {'n/a' if to_final is None else f'{to_final:.2f}'} "
            f"| {r['process_seconds_target_run']:.2f}{'' if r['target_run_reached'] else ' (not reached)'} "
            f"| {r['seconds'] / r['process_seconds_target_run']:.1f}x "
            f"| {r['psnr_lattice_equal_steps']:.2f} | {r['psnr_uniform_equal_steps']:.2f} ({r['equal_steps']} steps) |"
        )
    mean_gap = sum(r["psnr_lattice_equal_steps"] - r["psnr_uniform_equal_steps"] for r in rows) / len(rows)
    lines += ["", f"Lattice minus uniform initializer at equal steps, mean over images: {mean_gap:+.2f} dB."]
    write_report(args.out, "\n".join(lines) + "\n", rows)


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main()
