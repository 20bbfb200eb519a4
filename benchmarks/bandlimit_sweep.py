"""`--bandlimit auto` against a sweep of fixed bandlimits (issue 5).

For each photo: fit with each fixed bandlimit and with ``auto`` (same size,
steps, seed and settings otherwise) and report the PSNR table and how far
``auto`` lands from the best fixed value.

    python benchmarks/bandlimit_sweep.py --steps 1000 --out benchmarks/results/bandlimit_sweep.md
"""

from __future__ import annotations

import argparse
import platform
import time
from pathlib import Path

from common import ROOT, write_report
from inrkit.config import TrainConfig
from inrkit.host import get_host
from inrkit.metrics import psnr
from inrkit.model import build_model
from inrkit.pipeline import ModelOptions, load_signal, plan_model
from inrkit.train import evaluate, fit


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", nargs="+", default=["camera-128.png", "astronaut-128.png", "chelsea-128.png"])
    parser.add_argument("--bandlimits", nargs="+", type=int, default=[21, 32, 42, 64, 85, 127])
    parser.add_argument("--params", type=int, default=12000)
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "bandlimit_sweep.md")
    args = parser.parse_args()
    host = get_host()
    rows = []
    for name in args.images:
        signal, signal_type = load_signal(ROOT / "datasets" / name, "image", host)
        results = {}
        for bandlimit in [*args.bandlimits, "auto"]:
            config = plan_model(signal, signal_type, ModelOptions(params=args.params, bandlimit=bandlimit))
            model = build_model(config)
            result = fit(model, signal, TrainConfig(steps=args.steps, device="cpu"), host.loss("mse").fn, host.sampler("full").make)
            value = psnr(evaluate(result.model, signal.coordinates()), signal.values, signal.data_range)
            results[str(bandlimit)] = {"bandlimit": config.bandlimit[0], "psnr": value}
            print(name, bandlimit, config.bandlimit[0], f"{value:.2f}", flush=True)
        best = max((v for k, v in results.items() if k != "auto"), key=lambda v: v["psnr"])
        rows.append({"image": name, "results": results, "best": best, "auto_gap": best["psnr"] - results["auto"]["psnr"]})
    header = "| image | " + " | ".join(f"B={b}" for b in args.bandlimits) + " | auto (B) | best fixed − auto |"
    lines = [f"CPU {platform.processor() or platform.machine()}, {args.params} parameters, {args.steps} steps each, {time.strftime('%Y-%m-%d')}", "",
             header, "|" + "---|" * (len(args.bandlimits) + 3)]
    for row in rows:
        cells = " | ".join(f"{row['results'][str(b)]['psnr']:.2f}" for b in args.bandlimits)
        auto = row["results"]["auto"]
        lines.append(f"| {row['image']} | {cells} | {auto['psnr']:.2f} ({auto['bandlimit']}) | {row['auto_gap']:+.2f} dB |")
    write_report(args.out, "\n".join(lines) + "\n", rows)


if __name__ == "__main__":
    main()
