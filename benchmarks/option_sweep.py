"""Which model options move the quality at a fixed size: a sweep around the defaults.

Images: 12,000 stored parameters, 1,000 full-batch steps, the same seed, so
every lattice row with one hidden layer does about the same work (the cost of
a step follows ``m * n``, which the budget fixes); SIREN rows for reference. Audio: the speech sample at 8,000
parameters with the same wall-clock budget per row, SIREN (omega0 = 3000,
lr 1e-4) alongside.

Usage::

    python benchmarks/option_sweep.py --out benchmarks/results/option_sweep_cpu.md   # ~25 min on 2 cores
"""

from __future__ import annotations

import argparse
from pathlib import Path

from common import ROOT, machine, train_library, write_report
from inrkit.config import TrainConfig
from inrkit.pipeline import ModelOptions
from inrkit.plugins.audio.quality import snr_db

#: name -> (ModelOptions overrides, TrainConfig overrides)
VARIANTS = {
    "defaults (c 1.0/0.6, m = n, lr 2e-3 to 2e-4, Adam beta2 0.99, phases lr x10)": ({}, {}),
    "earlier defaults (beta2 0.999, phases lr x1)": ({}, {"beta2": 0.999, "phase_lr_scale": 1.0}),
    "beta2 0.999": ({}, {"beta2": 0.999}),
    "beta2 0.95": ({}, {"beta2": 0.95}),
    "phases lr x1": ({}, {"phase_lr_scale": 1.0}),
    "phases lr x30": ({}, {"phase_lr_scale": 30.0}),
    "bounds c 1.0/1.0": ({"c_high": 1.0}, {}),
    "bounds c 1.5/0.5": ({"c_low": 1.5, "c_high": 0.5}, {}),
    "bounds c 2.0/1.0": ({"c_low": 2.0, "c_high": 1.0}, {}),
    "m = 2n": ({"input_ratio": 2.0}, {}),
    "m = n/2": ({"input_ratio": 0.5}, {}),
    "lr 5e-3 to 1e-4": ({}, {"lr": 5e-3, "lr_final": 1e-4}),
    "tanh bounds": ({"bound_mode": "tanh"}, {}),
    "low block 50%": ({"low_fraction": 0.5}, {}),
    "two hidden layers": ({"hidden_layers": 2}, {}),
}


def siren_rows(omega0: float) -> dict:
    """SIREN (3 hidden layers, lr 1e-4) with its recipe's beta2 0.999, and with inrkit's 0.99."""
    model = {"architecture": "siren", "siren_omega0": omega0, "hidden_layers": 3}
    return {f"SIREN 3 hidden, omega0 {omega0:g}, lr 1e-4, beta2 0.999": (model, {"lr": 1e-4, "lr_final": 1e-4, "beta2": 0.999}),
            "SIREN as above, beta2 0.99": (model, {"lr": 1e-4, "lr_final": 1e-4, "beta2": 0.99})}


AUDIO_EXTRA = siren_rows(3000.0)
IMAGES = ["camera-128.png", "astronaut-128.png", "chelsea-128.png"]
IMAGE_EXTRA = siren_rows(30.0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=1000, help="image rows")
    parser.add_argument("--audio-seconds", type=float, default=20.0)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "option_sweep_cpu.md")
    args = parser.parse_args()

    images = []
    for name, (model, train) in {**VARIANTS, **IMAGE_EXTRA}.items():
        row = {"variant": name}
        for image in IMAGES:
            config = TrainConfig(**{"steps": args.steps, "lr": 2e-3, "lr_final": 2e-4, "device": "cpu", **train})
            result = train_library(ROOT / "datasets" / image, "image", ModelOptions(params=12000, **model), config)
            row[image] = result["psnr"]
            row["params"] = result["params"]
        images.append(row)
        print(row, flush=True)

    snr = lambda reconstruction, target: {"snr": snr_db(reconstruction, target)}  # noqa: E731
    audio = []
    for name, (model, train) in {**VARIANTS, **AUDIO_EXTRA}.items():
        config = TrainConfig(**{"max_seconds": args.audio_seconds, "device": "cpu", **train})
        result = train_library(ROOT / "datasets" / "speech-16k.wav", "audio", ModelOptions(params=8000, **model),
                               config, snr)
        audio.append({"variant": name, "params": result["params"], "steps": result["steps"], "snr": result["snr"]})
        print(audio[-1], flush=True)

    base = images[0]
    lines = [f"# Option sweep around the defaults, CPU ({machine('cpu')})\n",
             f"## Images: 12,000 parameters, {args.steps} full-batch steps, seed 0\n",
             "| variant | params | " + " | ".join(IMAGES) + " | mean change |", "|---|---|" + "---|" * (len(IMAGES) + 1)]
    for row in images:
        change = sum(row[i] - base[i] for i in IMAGES) / len(IMAGES)
        lines.append(f"| {row['variant']} | {row['params']:,} | " + " | ".join(f"{row[i]:.2f}" for i in IMAGES)
                     + f" | {change:+.2f} dB |")
    lines += ["", f"## Audio: speech-16k.wav, 8,000 parameters, {args.audio_seconds:.0f} s each\n",
              "| variant | params | steps | SNR | change |", "|---|---|---|---|---|"]
    for row in audio:
        lines.append(f"| {row['variant']} | {row['params']:,} | {row['steps']} | {row['snr']:.2f} dB | "
                     f"{row['snr'] - audio[0]['snr']:+.2f} dB |")
    write_report(args.out, "\n".join(lines) + "\n", {"images": images, "audio": audio})


if __name__ == "__main__":
    main()
