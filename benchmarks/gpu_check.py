"""GPU check: the same fits on CUDA and CPU agree, and how fast CUDA steps are.

Run on a machine with a CUDA GPU::

    python benchmarks/gpu_check.py --out benchmarks/results/gpu_check.md

Prints and writes a Markdown table: steps per second of the lattice model
(cached-basis training path) and of SIREN at the same parameter count, for a
128x128 and a 256x256 photo, plus the CPU-vs-CUDA PSNR after the same number
of steps (they must agree within 0.5 dB: same seed, same algorithm, different
floating-point summation order).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from common import write_report

from inrkit.config import TrainConfig
from inrkit.host import get_host
from inrkit.metrics import psnr
from inrkit.model import build_model, stored_parameter_count
from inrkit.pipeline import ModelOptions, load_signal, plan_model
from inrkit.train import evaluate, fit

ROOT = Path(__file__).resolve().parents[1]


def run(image: str, options: ModelOptions, config: TrainConfig) -> dict:
    host = get_host()
    signal, signal_type = load_signal(ROOT / "datasets" / image, "image", host)
    model = build_model(plan_model(signal, signal_type, options))
    if config.device.startswith("cuda"):
        torch.cuda.synchronize()
    start = time.perf_counter()
    result = fit(model, signal, config, host.loss("mse").fn, host.sampler("full").make)
    if config.device.startswith("cuda"):
        torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    final = psnr(evaluate(result.model, signal.coordinates()), signal.values, signal.data_range)
    return {"steps": result.steps, "seconds": seconds, "psnr": final, "params": stored_parameter_count(result.model)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "gpu_check.md")
    parser.add_argument("--steps", type=int, default=2000)
    args = parser.parse_args()
    name = torch.cuda.get_device_name(0)
    lines = [f"GPU: {name}; torch {torch.__version__}; {time.strftime('%Y-%m-%d')}", "",
             "| image | model | params | device | steps | seconds | steps/s | PSNR |", "|---|---|---|---|---|---|---|---|"]
    for image, params in (("camera-128.png", 12000), ("astronaut-256.png", 50000)):
        for label, options, lr in (
            ("lattice", ModelOptions(params=params), (2e-3, 2e-4, 0.99)),
            ("siren", ModelOptions(architecture="siren", params=params), (1e-4, 1e-4, 0.999)),
        ):
            for device in ("cuda", "cpu"):
                steps = args.steps if device == "cuda" else max(50, args.steps // 10)
                r = run(image, options, TrainConfig(steps=steps, lr=lr[0], lr_final=lr[1], beta2=lr[2], device=device))
                lines.append(f"| {image} | {label} | {r['params']} | {device} | {r['steps']} | {r['seconds']:.2f} "
                             f"| {r['steps'] / r['seconds']:.0f} | {r['psnr']:.2f} |")
                print(lines[-1], flush=True)
    agree = []
    for device in ("cuda", "cpu"):
        agree.append(run("camera-128.png", ModelOptions(params=12000), TrainConfig(steps=300, device=device))["psnr"])
    lines += ["", f"Same seed, 300 steps, camera-128: CUDA {agree[0]:.3f} dB, CPU {agree[1]:.3f} dB, "
              f"difference {abs(agree[0] - agree[1]):.3f} dB ({'OK' if abs(agree[0] - agree[1]) < 0.5 else 'MISMATCH'})."]
    write_report(args.out, "\n".join(lines) + "\n", None)


if __name__ == "__main__":
    main()
