"""The default `inrkit fit --pack` against the float32 model file: size ratio and PSNR lost (issue 14).

Fits each bundled photo and the speech at the default size and budget (2,000 steps, CPU), or reuses fits
already made (``--runs DIR`` holding DIR/<input stem>), then packs each with the defaults of ``inrkit pack``
(the smallest file within 0.3 dB of the float model, with the quantisation-aware finish) and records the
file size against ``model.safetensors``, the PSNRs, the bits chosen and the finish's PSNR before and after.

    python benchmarks/pack_default.py                 # fit and pack
    python benchmarks/pack_default.py --runs /tmp/def # pack existing default fits

Writes benchmarks/results/pack_default.md and .json.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
INPUTS = ["camera-128.png", "astronaut-128.png", "chelsea-128.png", "coffee-128.png", "speech-16k.wav"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=Path, default=None, help="folder of existing default fits (DIR/<stem>)")
    parser.add_argument("--render", action="store_true", help="only rewrite the .md from the .json")
    args = parser.parse_args()
    if args.render:
        saved = json.loads((ROOT / "benchmarks" / "results" / "pack_default.json").read_text())
        render(saved["rows"], *saved["load"])
        return

    import tempfile

    from inrkit.config import FIT_STEPS, TrainConfig
    from inrkit.packjob import pack_run
    from inrkit.pipeline import fit_file

    rows = []
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as work:
        for name in INPUTS:
            run_dir = (args.runs or Path(work)) / Path(name).stem
            if args.runs is None:
                fit_file(ROOT / "datasets" / name, run_dir, train_config=TrainConfig(steps=FIT_STEPS, device="cpu"))
            metrics = json.loads((run_dir / "metrics.json").read_text())
            started = time.perf_counter()
            summary = pack_run(run_dir, Path(work) / f"{Path(name).stem}.inr")
            rows.append({"input": name, "parameters": metrics["parameters"], "steps": metrics["steps"],
                         "pack_seconds": time.perf_counter() - started, **summary.to_dict()})
            print(name, summary.bytes, summary.float_bytes, round(summary.psnr - summary.psnr_float, 3), flush=True)
    out = ROOT / "benchmarks" / "results"
    (out / "pack_default.json").write_text(json.dumps({"load": [load_before, os.getloadavg()], "rows": rows}, indent=1))
    render(rows, load_before, os.getloadavg())


def render(rows: list[dict], load_before, load_after) -> None:
    out = ROOT / "benchmarks" / "results"
    lines = ["# Default `inrkit fit --pack`: size and PSNR against the float32 model", "",
             (f"Default fits (2,000 steps, CPU); packed with `inrkit pack`'s defaults. Load average "
             f"{load_before[0]:.2f} before, {load_after[0]:.2f} after."), "",
             "| input | params | float32 file | .inr | ratio | PSNR float | PSNR packed | lost | bits | finish before -> after |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        bits = ", ".join(f"{k} {v}" for k, v in r["bits"].items())
        q = r["qat"]
        finish = f"{q['psnr_before']:.2f} -> {q['psnr_after']:.2f} ({'kept' if q['kept'] else 'not kept'}" \
                 f"{', a bit lower' if q.get('bits_lowered') else ''})" if q.get("steps") else "none"
        lines.append(f"| {r['input']} | {r['parameters']:,} | {r['float32_model_bytes']:,} | {r['bytes']:,} | "
                     f"{r['ratio']:.3f} | {r['psnr_float']:.2f} | {r['psnr']:.2f} | {r['psnr_loss']:.3f} | {bits} | "
                     f"{finish} |")
    (out / "pack_default.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
