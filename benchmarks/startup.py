"""Time to first result: `inrkit --help` and a whole `inrkit fit --steps 1` process, as ratios to `import torch`.

Issue #16 asks for `inrkit --help` in at most 0.5x and a one-step fit of a
128x128 photo in at most 1.5x the time of a bare ``python -c "import torch"``
measured in the same run. Every command runs as a fresh process, the
contenders interleaved round by round, so that the load of a shared machine
falls on all of them alike; the table gives medians and each one's ratio to
the torch import of the same run.

Optionally ``--before VENV`` times a second installation (e.g. a clone of an
older commit with its own virtual environment) in the same rounds, and
``--parts`` breaks one fit of each down with cProfile (imports, training,
the spectrum report and its parts, the signal's assessment, the rest).

    python benchmarks/startup.py --rounds 7 --before /work/before/.venv --parts
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import pstats
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PHOTO = ROOT / "datasets" / "camera-128.png"
#: Functions whose cumulative time is a "part" of a fit (their names are the same before and after #16).
PARTS = {
    "training": "train.py:fit",
    "spectrum report": "spectrum_report.py:spectrum_report",
    "  predicted spectrum": "spectrum.py:predict_spectrum",
    "  noise estimate": "fourier.py:noise_energy_fraction",
    "signal's assessment (SSIM, pictures)": "image/__init__.py:assess_image",
    "writing the run": "runwriter.py:write_run",
}


def _timed(command: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    subprocess.run(command, check=True, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def _commands(venv: Path, scratch: Path) -> dict[str, list[str]]:
    python, inrkit = str(venv / "bin" / "python"), str(venv / "bin" / "inrkit")
    return {
        "import torch": [python, "-c", "import torch"],
        "inrkit --help": [inrkit, "--help"],
        "inrkit fit --steps 1": [inrkit, "fit", str(PHOTO), "-o", str(scratch / "run"), "--steps", "1",
                                 "--device", "cpu", "-q", "--overwrite"],
    }


def _parts(venv: Path, scratch: Path) -> dict[str, float]:
    """Cumulative seconds of each part of one profiled fit (cProfile slows everything by a similar share)."""
    profile = scratch / "fit.prof"
    subprocess.run([str(venv / "bin" / "python"), "-m", "cProfile", "-o", str(profile), "-m", "inrkit.cli", "fit",
                    str(PHOTO), "-o", str(scratch / "profiled"), "--steps", "1", "--device", "cpu", "-q",
                    "--overwrite"], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    stats = pstats.Stats(str(profile)).stats
    total = max(entry[3] for entry in stats.values())
    found = {}
    for label, suffix in PARTS.items():
        file_part, name = suffix.split(":")
        found[label] = sum(entry[3] for (file, _, function), entry in stats.items()
                           if function == name and file.endswith(file_part))
    imports = sum(entry[3] for (file, _, function), entry in stats.items()
                  if function == "<module>" and file.endswith(("cli/__main__.py",))) - sum(
        entry[3] for (file, _, function), entry in stats.items() if function == "fit" and file.endswith("cli/main.py"))
    return {"whole process (profiled)": total, "start-up before the fit command runs": max(imports, 0.0), **found}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--before", type=Path, help="virtual environment of the installation to compare with")
    parser.add_argument("--before-name", default="before", help="its name in the table (e.g. what differs in it)")
    parser.add_argument("--parts", action="store_true", help="also break one fit of each down with cProfile")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "startup_cpu")
    args = parser.parse_args()
    venvs = {"now": Path(sys.prefix)}
    if args.before:
        venvs = {args.before_name: args.before, **venvs}
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "0"}
    times: dict[tuple[str, str], list[float]] = {}
    with tempfile.TemporaryDirectory() as scratch_dir:
        scratch = Path(scratch_dir)
        for name, venv in venvs.items():  # warm the file cache and the byte-code of every contender once
            for command in _commands(venv, scratch / name).values():
                (scratch / name).mkdir(exist_ok=True)
                _timed(command, env)
        for round_index in range(args.rounds):
            order = list(venvs.items())
            if round_index % 2:
                order.reverse()
            for name, venv in order:
                for label, command in _commands(venv, scratch / name).items():
                    times.setdefault((name, label), []).append(_timed(command, env))
        parts = {name: _parts(venv, scratch / name) for name, venv in venvs.items()} if args.parts else {}
    medians = {key: statistics.median(values) for key, values in times.items()}
    load = os.getloadavg()
    rows = []
    for (name, label), median in medians.items():
        torch_time = medians[(name, "import torch")]
        rows.append({"install": name, "command": label, "median_s": round(median, 3),
                     "ratio_to_import_torch": round(median / torch_time, 2),
                     "all_s": [round(t, 3) for t in times[(name, label)]]})
    result = {"machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
              "load_average_at_end": [round(x, 2) for x in load], "rounds": args.rounds, "rows": rows,
              "parts": {name: {k: round(v, 3) for k, v in p.items()} for name, p in parts.items()}}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps(result, indent=2))
    title = (f"Start-up, {args.rounds} interleaved rounds, medians (load average at the end: "
             f"{', '.join(f'{x:.1f}' for x in load)}; {os.cpu_count()} cores)")
    lines = [title, "",
             "| install | command | median s | x import torch |", "|---|---|---:|---:|"]
    lines += [f"| {r['install']} | `{r['command']}` | {r['median_s']:.2f} | {r['ratio_to_import_torch']:.2f} |"
              for r in rows]
    if parts:
        names = list(parts)
        lines += ["", "Parts of one profiled `inrkit fit --steps 1` (seconds, cProfile's cumulative time):", "",
                  "| part | " + " | ".join(names) + " |", "|---|" + "---:|" * len(names)]
        for label in next(iter(parts.values())):
            lines.append(f"| {label} | " + " | ".join(f"{parts[n][label]:.2f}" for n in names) + " |")
    args.out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
