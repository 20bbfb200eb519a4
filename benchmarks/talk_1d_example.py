"""The talk's 1D example: input frequencies (2 pi / p) [1, 15].

A one-neuron network sin(a1 sin(w1 x + phi1) + a2 sin(w2 x + phi2) + b) with
lattice frequencies 1 and 15 generates only frequencies q = k + 15 l with
amplitudes |J_k(a1) J_l(a2)|. With the weights at the bound (a1 = a2 = 1),
every term with max(|k|, |l|) >= 5 is below 3e-4. Writes the picture used
in the README and prints the numbers.

    python benchmarks/talk_1d_example.py --out benchmarks/results/talk_1d_example.png
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from inrkit.config import ModelConfig
from inrkit.fourier import centered, model_spectrum
from inrkit.model import SinusoidalINR
from inrkit.plots import colour_ramp, line_chart, stack, titled
from inrkit.spectrum import bessel_j, predict_spectrum

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weight", type=float, default=1.0, help="|omega_g W| of both columns (the bound c)")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "talk_1d_example.png")
    args = parser.parse_args()

    k = np.arange(-8, 9)
    kk, ll = np.meshgrid(k, k, indexing="ij")
    amplitude = np.abs(bessel_j(kk, args.weight) * bessel_j(ll, args.weight))
    high = np.maximum(np.abs(kk), np.abs(ll)) >= 5
    print(f"largest |J_k J_l| with max(|k|,|l|) >= 5: {amplitude[high].max():.2e}; below 5: {amplitude[~high].max():.2e}")

    config = ModelConfig(dims=1, out_channels=1, input_frequencies=2, width=1, bandlimit=(15,), low_bandlimit=(15,))
    model = SinusoidalINR(config, torch.tensor([[1], [15]])).double()
    with torch.no_grad():
        model.hidden[0].weight.fill_(args.weight / model.hidden[0].omega_g)
        model.hidden[0].bias.fill_(0.01)
        model.head.weight.fill_(1.0)
    predicted = predict_spectrum(model, max_order=16, tol=1e-16)
    measured = centered(model_spectrum(model, spacing=4.0 / 1024, dims=1), 130)[:, 0]
    dense = predicted.dense(130)[:, 0]
    print(f"max |predicted - FFT| over |q| <= 130: {np.abs(dense - measured).max():.2e}")

    q = np.arange(0, 131)
    chart = line_chart(
        [(q, np.abs(measured[130:]) + 1e-18, (30, 80, 220), "FFT of the network"),
         (q, np.abs(dense[130:]) + 1e-18, (230, 120, 0), "predicted (Bessel)")],
        "input frequencies 1 and 15: generated q = k + 15 l", "lattice frequency q", marks=np.array([1, 15]),
        floor_db=-200.0,
    )
    level = np.log10(np.maximum(amplitude, 1e-20))
    table = colour_ramp((level + 12) / 12)
    table[high] = (table[high] * 0.5).astype(np.uint8)
    grid = titled(Image.fromarray(table).resize((300, 300), Image.Resampling.NEAREST),
                  "|J_k(c) J_l(c)|, k -8..8 down, l across; dim: max(|k|,|l|)>=5")
    figure = stack([grid, chart])
    args.out.parent.mkdir(parents=True, exist_ok=True)
    figure.save(args.out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
