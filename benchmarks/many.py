"""Signals per minute: one `inrkit fit` process per signal vs `inrkit fit-many` (local, a process pool, Ray).

    python benchmarks/many.py --part photos --out benchmarks/results/many_cpu_photos.md   # 64 photos 64x64
    python benchmarks/many.py --part sdf --out benchmarks/results/many_cpu_sdf.md         # 16 SDF banks

The data are made at run time, never committed: 64 photos of 64x64 cropped
at different places and scales from the bundled photos (datasets/*-128.png,
astronaut-256.png; RGB) and 16 SDF banks of the bundled bunny scan (one
sample bank per seed: a manifest with `option seed=K`). Every contender
fits every signal at equal steps from the same options; the wall clock runs
from the first process started to the last run written (start-up, loading,
training, writing the run directories, and for Ray starting a local
cluster). Each fit-many model's final PSNR is compared with the same
signal's single fit (the per-process runs).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
PHOTOS = ["astronaut-256.png", "astronaut-128.png", "chelsea-128.png", "coffee-128.png", "camera-128.png"]


def make_photos(folder: Path, count: int = 64, size: int = 64) -> list[Path]:
    """``count`` crops (different places and scales) of the bundled photos, resized to ``size`` (LANCZOS), RGB."""
    folder.mkdir(parents=True)
    paths = []
    per_source = -(-count // len(PHOTOS))
    for name in PHOTOS:
        image = Image.open(ROOT / "datasets" / name).convert("RGB")
        width, height = image.size
        for j in range(per_source):
            if len(paths) == count:
                break
            side = int(width * (0.45 + 0.045 * j))
            x, y = (j * 17) % (width - side + 1), (j * 29) % (height - side + 1)
            path = folder / f"photo{len(paths):02d}.png"
            image.crop((x, y, x + side, y + side)).resize((size, size), Image.LANCZOS).save(path)
            paths.append(path)
    return paths


def make_banks(folder: Path, count: int = 16) -> Path:
    """A manifest of ``count`` SDF sample banks of the bundled bunny: one per bank seed."""
    folder.mkdir(parents=True)
    manifest = folder / "banks.jsonl"
    mesh = ROOT / "datasets" / "bunny-scan.ply"
    manifest.write_text("".join(json.dumps({"path": str(mesh), "name": f"bank{k:02d}", "option": {"seed": k}}) + "\n"
                                for k in range(count)))
    return manifest


def cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "inrkit.cli", *args]


def per_process(signals: list[tuple[str, Path, dict]], out: Path, options: list[str]) -> float:
    """One `inrkit fit` process per signal, one after the other; wall seconds."""
    start = time.perf_counter()
    for name, path, loader in signals:
        extra = [f"--option={k}={v}" for k, v in loader.items()]
        done = subprocess.run(cli("fit", str(path), "-o", str(out / name), *options, *extra, "-q"), check=False,
                              stderr=subprocess.PIPE, text=True)
        if done.returncode != 0:
            raise SystemExit(f"inrkit fit {path} failed:\n{done.stderr[-3000:]}")
    return time.perf_counter() - start


def fit_many(inputs: list[Path], out: Path, options: list[str], executor: list[str]) -> float:
    start = time.perf_counter()
    done = subprocess.run(cli("fit-many", *map(str, inputs), "-o", str(out), *options, *executor, "-q"),
                          check=False, stderr=subprocess.PIPE, text=True)
    if done.returncode != 0:
        raise SystemExit(f"inrkit fit-many {' '.join(executor)} failed:\n{done.stderr[-3000:]}")
    return time.perf_counter() - start


def psnrs(out: Path, names: list[str]) -> dict[str, float]:
    return {n: json.loads((out / n / "metrics.json").read_text())["final"]["psnr"] for n in names}


def steps_per_second(out: Path, names: list[str]) -> float:
    """Model-steps per second of training (steps over the training seconds each run recorded; batched runs share
    their seconds, so the group's seconds count once)."""
    seen, steps, seconds = set(), 0, 0.0
    for n in names:
        metrics = json.loads((out / n / "metrics.json").read_text())
        steps += metrics["steps"]
        key = round(metrics["train_seconds"], 9)
        if key not in seen:
            seen.add(key)
            seconds += metrics["train_seconds"]
    return steps / seconds if seconds else float("nan")


def child_cpu_seconds() -> float:
    """User plus system CPU seconds of every finished child process so far (the contenders' processes, their
    pools' workers; Ray's daemons are not children of this process and are not counted)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def uptime() -> str:
    try:
        return Path("/proc/loadavg").read_text().split(" ")[:3].__str__()
    except OSError:
        return "?"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--part", choices=["photos", "sdf"], required=True)
    parser.add_argument("--steps", type=int, default=None, help="equal steps (photos 300, sdf 100)")
    parser.add_argument("--count", type=int, default=None, help="signals (photos 64, sdf 16)")
    parser.add_argument("--contenders", default="process,local,batched,ray")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    contenders = args.contenders.split(",")
    scratch = Path(tempfile.mkdtemp(prefix="inrkit-many-bench-"))
    try:
        if args.part == "photos":
            steps, count = args.steps or 300, args.count or 64
            paths = make_photos(scratch / "photos", count)
            signals = [(p.stem, p, {}) for p in paths]
            inputs = [scratch / "photos"]
            options = ["--steps", str(steps), "--device", "cpu"]
        else:
            steps, count = args.steps or 100, args.count or 16
            manifest = make_banks(scratch / "banks", count)
            signals = [(f"bank{k:02d}", ROOT / "datasets" / "bunny-scan.ply", {"seed": k}) for k in range(count)]
            inputs = [manifest]
            options = ["--steps", str(steps), "--device", "cpu", "--params", "4000"]
        names = [name for name, _, _ in signals]
        executors = {"local": ["--executor", "local"], "pool": ["--executor", "local", "--workers", "2"],
                     "batched": ["--executor", "local", "--workers", "1", "--group-size", str(len(names))],
                     "ray": ["--executor", "ray"]}
        rows, load = {}, {"before": uptime()}
        for contender in contenders:
            out = scratch / f"out-{contender}"
            cpu = child_cpu_seconds()
            if contender == "process":
                wall = per_process(signals, out, options)
            else:
                wall = fit_many(inputs, out, options, executors[contender])
            cpu = child_cpu_seconds() - cpu
            rows[contender] = {"wall_s": wall, "signals_per_minute": 60 * len(names) / wall,
                               "psnr": psnrs(out, names), "model_steps_per_s": steps_per_second(out, names),
                               "cpu_s_per_signal": None if contender == "ray" else cpu / len(names)}
            load[contender] = uptime()
            print(f"{contender}: {wall:.1f} s, {rows[contender]['signals_per_minute']:.1f} signals/min", flush=True)
        report(args, rows, names, steps, load, options)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def report(args, rows: dict, names: list[str], steps: int, load: dict, options: list[str]) -> None:
    import torch

    base = rows.get("process")
    lines = [f"# fit-many throughput, {args.part}: {len(names)} signals, {steps} steps each (equal steps)", "",
             (f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch "
              f"{torch.__version__}, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}. Options: "
              f"`{' '.join(options)}`. Load average (1/5/15 min) before and after each contender: {load}."), "",
             ("| contender | wall s | signals / minute | x per-process | model-steps / s (training) | "
              "max abs PSNR diff vs single fit (dB) | mean PSNR (dB) | CPU s / signal | ceiling x per-process |"),
             "|---|---|---|---|---|---|---|---|---|"]
    cores = os.cpu_count() or 1
    for contender, row in rows.items():
        ratio = f"{row['signals_per_minute'] / base['signals_per_minute']:.2f}x" if base else "-"
        diff = max(abs(row["psnr"][n] - base["psnr"][n]) for n in names) if base else float("nan")
        mean = sum(row["psnr"].values()) / len(names)
        cpu = row.get("cpu_s_per_signal")
        # The most any executor doing this contender's CPU work could gain: all cores busy all the time.
        ceiling = f"{base['wall_s'] / (cpu * len(names) / cores):.2f}x" if base and cpu else "-"
        lines.append(f"| {contender} | {row['wall_s']:.1f} | {row['signals_per_minute']:.1f} | {ratio} | "
                     f"{row['model_steps_per_s']:.0f} | {diff:.4f} | {mean:.2f} | "
                     f"{f'{cpu:.2f}' if cpu else '-'} | {ceiling} |")
    lines += ["", ("process: one `inrkit fit` process per signal, one after the other; local: `fit-many` as shipped, "
                   "the default: on a CPU a pool of one process per core (two here), one thread each, groups batched "
                   "up to the CPU's cache limit (single fits for 64x64 photos); batched: `fit-many --workers 1 "
                   "--group-size N`, one process, every same-shape signal in one batched computation (torch's default "
                   "threads); pool: `--workers 2`; ray: `fit-many --executor ray` on a local Ray cluster it starts "
                   "(2 CPUs, one task per CPU, groups batched as local). CPU s / signal: user plus system seconds of the "
                   "contender's processes per signal (Ray's daemons are not counted); ceiling: the per-process wall "
                   "clock over this CPU work spread perfectly over every core, the most an executor doing the "
                   "same work could gain.")]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines) + "\n")
    args.out.with_suffix(".json").write_text(json.dumps({"steps": steps, "signals": names, "load": load,
                                                          "options": options, "rows": rows}, indent=2))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
