"""Audio benchmark: inrkit (lattice) vs SIREN (omega0 = 3000) vs uniform integer frequencies.

On a speech recording (default: datasets/speech-16k.wav, 2 s at 16 kHz),
side by side in one run:

1. ``inrkit fit --params P --max-seconds T`` (the CLI, defaults) against SIREN of
   the same parameter count (3 hidden layers, first-layer omega0 = 3000 as in
   the SIREN paper's audio experiments, Adam lr 1e-4, full batch) for the same
   wall-clock budget, on the same trainer;
2. the training time at which inrkit first reached SIREN's final quality, and
   the whole ``inrkit fit --target-psnr`` process at that quality;
3. lattice vs uniform initializer at equal steps;
4. inrkit at its default size (no ``--params``).

SNR = 10 log10(sum x^2 / sum (x - y)^2); PSNR uses the full-scale
peak-to-peak range 2 as the peak.

    python benchmarks/audio_fit.py --seconds 60 --out benchmarks/results/audio_fit_cpu.md
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from common import ROOT, first_time_at, machine, run_cli, train_library, write_report
from inrkit.config import TrainConfig
from inrkit.pipeline import ModelOptions
from inrkit.plugins.audio.quality import snr_db


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--audio", type=Path, default=ROOT / "datasets" / "speech-16k.wav")
    parser.add_argument("--params", type=int, default=8000)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--equal-steps", type=int, default=1000)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "audio_fit_cpu.md")
    args = parser.parse_args()
    snr = lambda reconstruction, target: {"snr": snr_db(reconstruction, target)}  # noqa: E731
    common = ["--signal", "audio", str(args.audio), "--device", args.device]

    siren = train_library(args.audio, "audio", ModelOptions(architecture="siren", params=args.params, siren_omega0=3000.0),
                          TrainConfig(max_seconds=args.seconds, lr=1e-4, lr_final=1e-4, beta2=0.999, device=args.device), snr)
    _, ours = run_cli([*common, "--params", str(args.params), "--max-seconds", str(args.seconds)])
    target_wall, target_run = run_cli([*common, "--params", str(args.params), "--target-psnr", f"{siren['psnr']:.4f}",
                                       "--max-seconds", str(args.seconds)])
    _, default = run_cli([*common, "--max-seconds", str(args.seconds)])
    equal = TrainConfig(steps=args.equal_steps, device=args.device)
    lattice = train_library(args.audio, "audio", ModelOptions(params=args.params), equal, snr)
    uniform = train_library(args.audio, "audio", ModelOptions(architecture="uniform", params=args.params), equal, snr)
    to_siren = first_time_at(ours["curve"], "psnr", siren["psnr"])
    row = {
        "file": args.audio.name, "seconds": args.seconds,
        "params_inrkit": ours["parameters"], "params_siren": siren["params"], "params_default": default["parameters"],
        "steps_inrkit": ours["steps"], "steps_siren": siren["steps"],
        "snr_inrkit": ours["final"]["snr"], "snr_siren": siren["snr"], "snr_default": default["final"]["snr"],
        "psnr_inrkit": ours["final"]["psnr"], "psnr_siren": siren["psnr"], "psnr_default": default["final"]["psnr"],
        "lsd_inrkit": ours["final"]["lsd"],
        "train_seconds_to_siren_final": to_siren,
        "process_seconds_target_run": target_wall, "target_reached": target_run["stop_reason"] == "target_psnr",
        "snr_lattice_equal_steps": lattice["snr"], "snr_uniform_equal_steps": uniform["snr"],
    }
    print(json.dumps(row), flush=True)
    lines = [
        f"Machine: {machine(args.device)}; torch {torch.__version__}; {args.seconds:.0f} s budget; {time.strftime('%Y-%m-%d')}",
        "",
        "| file | params (inrkit / SIREN) | steps (inrkit / SIREN) | SNR inrkit | SNR SIREN | gain | PSNR inrkit / SIREN | inrkit training s to SIREN's final | whole `--target-psnr` process s | default size: params, SNR | lattice / uniform SNR @ equal steps |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
        f"| {row['file']} | {row['params_inrkit']} / {row['params_siren']} | {row['steps_inrkit']} / {row['steps_siren']} "
        f"| {row['snr_inrkit']:.2f} dB | {row['snr_siren']:.2f} dB | {row['snr_inrkit'] - row['snr_siren']:+.2f} dB "
        f"| {row['psnr_inrkit']:.2f} / {row['psnr_siren']:.2f} dB "
        f"| {'n/a' if to_siren is None else f'{to_siren:.2f} ({args.seconds / max(to_siren, 1e-9):.0f}x)'} "
        f"| {target_wall:.2f}{'' if row['target_reached'] else ' (not reached)'} "
        f"| {row['params_default']}, {row['snr_default']:.2f} dB "
        f"| {row['snr_lattice_equal_steps']:.2f} / {row['snr_uniform_equal_steps']:.2f} dB ({args.equal_steps} steps) |",
    ]
    write_report(args.out, "\n".join(lines) + "\n", row)


if __name__ == "__main__":
    main()
