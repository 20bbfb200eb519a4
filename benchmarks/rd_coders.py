"""Which entropy coder for .inr files: constriction's range coder, zstandard or lzma, at every bit depth.

Fits the bundled photos and speech at the default size for a fixed number of steps (CPU, deterministic),
then packs each model at 2..16 bits per tensor and per channel with each coder and records the file size,
the PSNR against the float model's output, and the time to pack and to load.

    python benchmarks/rd_coders.py --steps 500
    python benchmarks/rd_coders.py --runs DIR   # existing fits DIR/<input stem> (pack_default.py's)

Writes benchmarks/results/rd_coders.md and .json.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
INPUTS = ["camera-128.png", "astronaut-128.png", "chelsea-128.png", "coffee-128.png", "speech-16k.wav"]
CODERS = ("range", "zstd", "lzma")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=500)
    parser.add_argument("--runs", type=Path, default=None, help="folder of existing fits (DIR/<input stem>)")
    args = parser.parse_args()

    from inrkit.checkpoint import load_run
    from inrkit.config import TrainConfig
    from inrkit.metrics import psnr
    from inrkit.packing import default_plan, pack, unpack
    from inrkit.pipeline import fit_file
    from inrkit.signal import grid_coordinates
    from inrkit.train import evaluate

    rows = []
    load = os.getloadavg()
    with tempfile.TemporaryDirectory() as work:
        for name in INPUTS:
            run_dir = (args.runs or Path(work)) / Path(name).stem
            if args.runs is None:
                fit_file(ROOT / "datasets" / name, run_dir, train_config=TrainConfig(steps=args.steps, device="cpu"))
            run = load_run(run_dir)
            state = {name: tensor.clone() for name, tensor in run.model.state_dict().items()}  # not views
            coords = grid_coordinates(run.signal["grid_shape"], run.signal["extent"])
            reference = evaluate(run.model, coords)
            float_bytes = (run_dir / "model.safetensors").stat().st_size
            for granularity in ("tensor", "channel"):
                for bits in range(2, 17):
                    plan = default_plan(state, bits, granularity)
                    entry = {"input": name, "granularity": granularity, "bits": bits, "float_bytes": float_bytes}
                    for coder in CODERS:
                        started = time.perf_counter()
                        data = pack(state, run.config, plan, coder)
                        packed = time.perf_counter() - started
                        started = time.perf_counter()
                        _, tensors = unpack(data)
                        loaded = time.perf_counter() - started
                        entry[coder] = {"bytes": len(data), "pack_ms": 1000 * packed, "load_ms": 1000 * loaded}
                    run.model.load_state_dict(tensors)
                    entry["psnr_vs_float"] = psnr(evaluate(run.model, coords), reference, run.signal["data_range"])
                    run.model.load_state_dict(state)
                    rows.append(entry)
    results = ROOT / "benchmarks" / "results"
    steps = "the default fits' 2,000" if args.runs else str(args.steps)
    (results / "rd_coders.json").write_text(json.dumps({"steps": steps, "load": load, "rows": rows}, indent=1))
    (results / "rd_coders.md").write_text(report(rows, steps, load))


def report(rows: list[dict], steps: str, load) -> str:
    lines = ["# Entropy coders for .inr files", "",
             (f"Models: the default size, {steps} steps on the CPU (load average {load[0]:.2f}). Bytes of the whole "
             "file (header, coded weights and frequencies, raw steps, checksum); the smallest per row in bold. "
             "PSNR: the packed model against the float model's own output (how much rounding costs)."), ""]
    for name in dict.fromkeys(r["input"] for r in rows):
        lines += [(f"## {name} (float32 model file {rows[[r['input'] for r in rows].index(name)]['float_bytes']:,} "
                  "bytes)"), "", "| granularity | bits | range | zstd | lzma | PSNR vs float (dB) |",
                  "|---|---|---|---|---|---|"]
        for r in (r for r in rows if r["input"] == name):
            best = min(r[c]["bytes"] for c in CODERS)
            cells = [f"**{r[c]['bytes']:,}**" if r[c]["bytes"] == best else f"{r[c]['bytes']:,}" for c in CODERS]
            lines.append(f"| {r['granularity']} | {r['bits']} | " + " | ".join(cells) + f" | {r['psnr_vs_float']:.2f} |")
        lines.append("")
    wins = {c: sum(r[c]["bytes"] == min(r[k]["bytes"] for k in CODERS) for r in rows) for c in CODERS}
    total = {c: sum(r[c]["bytes"] for r in rows) for c in CODERS}
    timing = {c: (sum(r[c]["pack_ms"] for r in rows) / len(rows), sum(r[c]["load_ms"] for r in rows) / len(rows))
              for c in CODERS}
    lines += ["## Summary", "", "| coder | smallest in rows | total bytes | mean pack ms | mean load ms |",
              "|---|---|---|---|---|"]
    lines += [f"| {c} | {wins[c]} of {len(rows)} | {total[c]:,} | {timing[c][0]:.1f} | {timing[c][1]:.1f} |"
              for c in CODERS]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
