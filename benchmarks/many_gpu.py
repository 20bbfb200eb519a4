"""fit-many on one GPU: 1,000 photos of 128x128 at the default settings, batched; goal under 2 minutes (H100-class).

    python benchmarks/many_gpu.py --out benchmarks/results/many_gpu.md     # about 3-4 minutes in all

Made to fit in 5 minutes of a lent GPU machine: the photos are made at run
time (crops at random places and scales, flips, of the bundled photos,
resized to 128x128 with LANCZOS; never committed), then one
`inrkit fit-many --device cuda` over all of them (the default 2,000 steps,
default size: every model is what `inrkit fit` would make), timed from
outside; then `--singles` of the same photos fitted by one `inrkit fit`
process each, for the per-process rate and each model's PSNR difference
from its single fit. A step limit (`--steps`) and a wall-clock limit on the
batch keep the script inside its budget on a slower GPU; the table says
which were used.
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from PIL import Image, ImageOps

ROOT = Path(__file__).resolve().parents[1]


def make_photos(folder: Path, count: int, size: int = 128, seed: int = 0) -> list[Path]:
    folder.mkdir(parents=True)
    sources = [Image.open(p).convert("RGB") for p in sorted((ROOT / "datasets").glob("*.png"))
               if min(Image.open(p).size) >= size]
    rng = random.Random(seed)
    paths = []
    for k in range(count):
        image = sources[k % len(sources)]
        width, height = image.size
        side = rng.randint(int(0.4 * min(width, height)), min(width, height))
        x, y = rng.randint(0, width - side), rng.randint(0, height - side)
        crop = image.crop((x, y, x + side, y + side)).resize((size, size), Image.LANCZOS)
        if rng.random() < 0.5:
            crop = ImageOps.mirror(crop)
        path = folder / f"photo{k:04d}.png"
        crop.save(path)
        paths.append(path)
    return paths


def cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "inrkit.cli", *args]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--steps", type=int, default=2000, help="equal steps for every fit (2000: inrkit fit's default)")
    parser.add_argument("--singles", type=int, default=8, help="photos also fitted one process each")
    parser.add_argument("--limit", type=float, default=200.0, help="wall-clock seconds the batch may take")
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    import torch

    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    scratch = Path(tempfile.mkdtemp(prefix="inrkit-many-gpu-"))
    began = time.perf_counter()
    try:
        paths = make_photos(scratch / "photos", args.count)
        options = ["--steps", str(args.steps), "--device", args.device]
        start = time.perf_counter()
        try:
            batch = subprocess.run(cli("fit-many", str(scratch / "photos"), "-o", str(scratch / "many"), *options,
                                       "-q"), capture_output=True, text=True, timeout=args.limit, check=False)
            status, stderr = batch.returncode, batch.stderr
        except subprocess.TimeoutExpired as stopped:
            status, stderr = f"stopped after the {args.limit:.0f} s limit", str(stopped.stderr or "")
        wall = time.perf_counter() - start
        summary_path = scratch / "many" / "summary.json"
        summary = json.loads(summary_path.read_text()) if summary_path.exists() else {"signals": [], "counts": {}}
        done = [row for row in summary["signals"] if row["status"] == "done"]
        singles, single_wall = {}, 0.0
        for path in paths[: args.singles]:
            start = time.perf_counter()
            subprocess.run(cli("fit", str(path), "-o", str(scratch / "single" / path.stem), *options, "-q"),
                           check=True, timeout=120)
            single_wall += time.perf_counter() - start
            singles[path.stem] = json.loads((scratch / "single" / path.stem / "metrics.json").read_text())
        diffs = []
        for name, metrics in singles.items():
            if not (scratch / "many" / name / "metrics.json").exists():
                continue
            mine = json.loads((scratch / "many" / name / "metrics.json").read_text())
            diffs.append(abs(mine["final"]["psnr"] - metrics["final"]["psnr"]))
        batched_rate = 60 * len(done) / wall
        single_rate = 60 * len(singles) / single_wall if singles else float("nan")
        ratio = batched_rate / single_rate if singles else float("nan")
        psnr_mean = sum(row["metrics"].get("psnr", 0.0) for row in done) / max(1, len(done))
        failed = summary["counts"].get("failed", 0)
        single_psnr = sum(m["final"]["psnr"] for m in singles.values()) / max(1, len(singles))
        met = "met" if wall < 120 and len(done) == args.count else "not met"
        worst = max(diffs) if diffs else float("nan")
        lines = [f"# fit-many on one GPU: {args.count} photos of 128x128, {args.steps} steps each", "",
                 (f"GPU: {gpu}; torch {torch.__version__}; {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; "
                  f"options `{' '.join(options)}` (default size, defaults otherwise)."), "",
                 "| contender | signals | wall s | signals / minute | mean PSNR (dB) |", "|---|---|---|---|---|",
                 (f"| fit-many (batched, one process) | {len(done)} done, {failed} failed | {wall:.1f} | "
                  f"{batched_rate:.1f} | {psnr_mean:.2f} |"),
                 (f"| one `inrkit fit` process per photo | {len(singles)} | {single_wall:.1f} | {single_rate:.1f} | "
                  f"{single_psnr:.2f} |"), "",
                 (f"Batched / per-process rate: {ratio:.1f}x. Largest PSNR difference of a batched model from its "
                  f"single fit ({len(diffs)} photos): {worst:.4f} dB. Goal: {args.count} photos in under 120 s: "
                  f"{met} ({wall:.1f} s). Whole script: {time.perf_counter() - began:.0f} s. fit-many exit status "
                  f"{status}.")]
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text("\n".join(lines) + "\n")
        args.out.with_suffix(".json").write_text(json.dumps(
            {"gpu": gpu, "count": args.count, "steps": args.steps, "wall_s": wall, "done": len(done),
             "batched_per_minute": batched_rate, "single_per_minute": single_rate, "psnr_diffs": diffs,
             "psnr_mean": psnr_mean, "stderr_tail": stderr[-2000:]}, indent=2))
        print("\n".join(lines))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
