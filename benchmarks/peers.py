"""Peers (issue 16): inrkit's default against SIREN, FINER, FFN and a hash grid, at equal parameters and wall clock.

Every architecture is built by ``inrkit fit --architecture NAME --params P``
(the same planner, trainer, loss and sampler as the CLI) and trained back to
back in this one process for the same training seconds:

* ``lattice``: inrkit's default as shipped (``--bandlimit auto``; images four, audio three hidden layers at lr 1e-3,
  with the skip where they are at least 40 wide);
* ``lattice-4L`` / ``lattice-2L`` (``--archs``): inrkit with four hidden layers at lr 1e-3, or two at 2e-3;
* ``siren``: Sitzmann et al. 2020, 3 hidden layers, first-layer omega0 30 (images, SDF) / 3000 (audio);
* ``finer``: Liu et al., CVPR 2024, SIREN's layout with sin(omega (|z| + 1) z);
* ``ffn``: Tancik et al. 2020, Gaussian Fourier features (sigma 10 on images) + 3 ReLU layers;
* ``hashgrid``: Mueller et al. 2022, multiresolution hash encoding + 2-layer ReLU MLP.

P is a quarter of the signal's sample values (128x128 RGB: 12,288; gray 4,096;
2 s at 16 kHz: 8,000); for the SDF, the SDF plugin's default size. Every
contender uses inrkit's Adam with beta2 0.99 and the learning rate decaying
10x over the budget; each peer's learning rate is the best of a short sweep
(its paper's value, inrkit's 2e-3 and a third) on one photo, on the speech
clip and on the bunny SDF (``--part sweep``; the lowest Chamfer wins there; a JSON
without an SDF sweep gives the SDF the photo's choice).

Quality: PSNR (dB) for photos, SNR (dB) for audio (the audio plugin's
``snr_db``), Chamfer distance (% of the bounding-box diagonal, lower is
better; the SDF plugin's report at 128^3) for the SDF. Reported per signal:
quality at the wall-clock budget, steps and steps/s, quality at equal steps
(the fewest steps any contender made), and the training seconds each needed
to reach the best other contender's final quality; one quality-vs-seconds
plot per signal (``peers_<signal>.png``). Photos and audio also get the size of each model packed as
``inrkit pack`` packs by default (the smallest ``.inr`` within 0.3 dB of the float model; the same search
and coders for every architecture): quality per byte, next to quality per parameter.

Run it in parts (each part adds to the JSON; ``--report`` rewrites the table
and the plots from it), under the shared lock::

    flock /tmp/inrkit-cpu.lock python benchmarks/peers.py --part sweep photos --signals chelsea-128.png speech-16k.wav
    flock /tmp/inrkit-cpu.lock python benchmarks/peers.py --part photos audio --signals camera-128.png speech-16k.wav melody-16k.wav
    flock /tmp/inrkit-cpu.lock python benchmarks/peers.py --part photos sdf --signals astronaut-128.png coffee-128.png bunny-scan.ply
    flock /tmp/inrkit-cpu.lock python benchmarks/peers.py --part photos --signals rocket-128.png brick-128.png
    python benchmarks/peers.py --report

Smoke run (< 1 min): ``python benchmarks/peers.py --part all --seconds 2 --sweep-seconds 1
--signals camera-128.png speech-16k.wav --out /tmp/peers.md``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from common import ROOT, fit_contender, machine

from inrkit.config import ModelOptions, TrainConfig
from inrkit.host import get_host
from inrkit.metrics import psnr
from inrkit.model import stored_parameter_count
from inrkit.pipeline import load_signal
from inrkit.planning import default_params
from inrkit.train import evaluate

ARCHITECTURES = ("lattice", "siren", "finer", "ffn", "hashgrid")
#: inrkit variants that are not the default (``--variants``): a contender name, its model options and learning
#: rate. They are reported in the tables but never count as "the best peer" nor as inrkit's default.
VARIANTS = {"lattice-4L": ({"hidden_layers": 4}, 1e-3), "lattice-2L": ({"hidden_layers": 2}, 2e-3)}
#: Each paper's learning rate (SIREN 1e-4, FINER's code 5e-4, FFN 1e-3, Instant-NGP 1e-2); inrkit's: None, its default.
PAPER_LR = {"lattice": None, "siren": 1e-4, "finer": 5e-4, "ffn": 1e-3, "hashgrid": 1e-2}
SWEEP = {"siren": (1e-4, 5e-4, 2e-3), "finer": (1e-4, 5e-4, 2e-3), "ffn": (1e-3, 2e-3, 1e-2),
         "hashgrid": (2e-3, 1e-2, 3e-2)}
PHOTOS = ("camera-128.png", "astronaut-128.png", "coffee-128.png", "chelsea-128.png", "rocket-128.png",
          "brick-128.png")
AUDIO = ("speech-16k.wav", "melody-16k.wav")
SDF = ("bunny-scan.ply",)
SWEEP_SIGNALS = {"image": "chelsea-128.png", "audio": "speech-16k.wav", "sdf": "bunny-scan.ply"}
COLOURS = {"lattice": (200, 30, 30), "siren": (30, 90, 200), "finer": (40, 160, 60), "ffn": (150, 60, 170),
           "hashgrid": (230, 140, 20), "lattice-4L": (120, 20, 20), "lattice-2L": (240, 120, 120)}
#: Fractions of the budget at which an SDF model is snapshotted for its Chamfer curve.
SDF_MARKS = (0.125, 0.25, 0.5, 1.0)


class Snapshots:
    """Observer that copies the model's tensors when training passes given seconds (for SDF quality curves)."""

    def __init__(self, seconds: list[float]):
        self.marks, self.taken = list(seconds), []

    def inrkit_fit_start(self, info) -> None:
        pass

    def inrkit_fit_end(self, result) -> None:
        pass

    def inrkit_step_end(self, step) -> None:
        while self.marks and step.seconds >= self.marks[0]:
            self.marks.pop(0)
            state = {k: v.detach().clone() for k, v in step.model.state_dict().items()}
            self.taken.append((step.seconds, step.step, state))


def kind_of(name: str) -> str:
    return "image" if name.endswith(".png") else "audio" if name.endswith(".wav") else "sdf"


def budget(signal, signal_type, kind: str) -> int:
    if kind == "sdf":
        return default_params(signal, signal_type)
    return signal.samples * signal.channels // 4


def train(name: str, architecture: str, lr: float, seconds: float) -> dict:
    """One contender (an architecture or a :data:`VARIANTS` name) on one signal; returns its final quality,
    steps, speed and quality curve."""
    host = get_host()
    kind = kind_of(name)
    signal, signal_type = load_signal(ROOT / "datasets" / name, None, host)
    params = budget(signal, signal_type, kind)
    overrides = VARIANTS[architecture][0] if architecture in VARIANTS else {}
    base = (VARIANTS[architecture][2] if len(VARIANTS[architecture]) > 2 else "lattice") \
        if architecture in VARIANTS else architecture
    snapshots = Snapshots([f * seconds * 0.999 for f in SDF_MARKS]) if kind == "sdf" else None
    config, train_config, result = fit_contender(  # lr None: inrkit's default for this model
        signal, signal_type, ModelOptions(architecture=base, params=params, **overrides),
        TrainConfig(max_seconds=seconds, lr=lr, device="cpu", sampler=None), hook=snapshots)
    out = {"architecture": architecture, "lr": train_config.lr, "params": stored_parameter_count(result.model), "budget": params,
           "steps": result.steps, "seconds": result.seconds, "steps_per_s": result.steps / max(result.seconds, 1e-9),
           "width": config.width, "hidden_layers": config.hidden_layers}
    if kind == "sdf":
        from inrkit.plugins.sdf import sdf_report

        if len(snapshots.taken) < len(SDF_MARKS):  # the budget ended before the last mark: the final model
            state = {k: v.detach().clone() for k, v in result.model.state_dict().items()}
            snapshots.taken.append((result.seconds, result.steps - 1, state))
        curve = []
        with tempfile.TemporaryDirectory() as scratch:
            for at, step, state in snapshots.taken:
                result.model.load_state_dict(state)
                report = sdf_report(signal, lambda x: evaluate(result.model, x), Path(scratch))
                curve.append([round(at, 3), step, 100 * report["chamfer"]])
        out.update(quality=curve[-1][2], curve=curve, higher_is_better=False)
        return out
    reconstruction = evaluate(result.model, signal.coordinates())
    out["packed"] = packed_size(result.model, config, signal)
    offset = 0.0
    if kind == "audio":
        from inrkit.plugins.audio.quality import snr_db

        out["quality"] = snr_db(reconstruction, signal.values)
        power = float((signal.values.double() ** 2).mean())
        offset = 10 * math.log10(signal.data_range**2 / power)  # SNR = PSNR - offset, the same MSE
    else:
        out["quality"] = psnr(reconstruction, signal.values, signal.data_range)
    out["curve"] = [[round(p["seconds"], 3), p["step"], round(p["psnr"] - offset, 4)] for p in result.curve
                    if p["psnr"] == p["psnr"]]
    out["higher_is_better"] = True
    return out


def packed_size(model, config, signal) -> dict:
    """The model as ``inrkit pack`` stores it by default: the smallest ``.inr`` within 0.3 dB of the float model.

    The same search and coders for every architecture (no quantisation-aware finish, which is inrkit's
    own step); the quality is the PSNR on the signal's samples. Returns bytes and both PSNRs.
    """
    import copy
    from dataclasses import asdict

    from inrkit.packing import pack, quantised_state
    from inrkit.packjob import PACK_TOLERANCE_DB, Judge, search_plan

    state = {name: tensor.detach().cpu().clone() for name, tensor in model.state_dict().items()}
    sections = {"model": asdict(config), "signal": {"dims": signal.dims, "channels": signal.channels}}
    judge = Judge(copy.deepcopy(model), signal.coordinates(), signal.values, signal.data_range, sections)
    float_psnr = judge.psnr(state)
    found = search_plan(judge, state, "tensor", min_psnr=float_psnr - PACK_TOLERANCE_DB)
    data = pack(state, sections, found.plan, "auto")
    return {"bytes": len(data), "psnr": judge.psnr(quantised_state(state, found.plan)), "float_psnr": float_psnr,
            "float32_bytes": 4 * sum(t.numel() for t in state.values())}


def load(path: Path) -> dict:
    return json.loads(path.read_text()) if path.exists() else {"signals": {}, "sweep": {}, "parts": []}


def save(path: Path, data: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=1) + "\n")


def uptime() -> str:
    return " ".join(f"{v:.2f}" for v in os.getloadavg())


def chosen_lr(data: dict, kind: str, architecture: str) -> float:
    if architecture in VARIANTS:
        return VARIANTS[architecture][1]
    if architecture == "lattice":
        return PAPER_LR["lattice"]
    # An SDF without its own sweep (JSONs before it had one) takes the photo's choice.
    sweep = data["sweep"].get(kind, {}).get(architecture) or (
        data["sweep"].get("image", {}).get(architecture) if kind == "sdf" else None)
    if not sweep:
        return PAPER_LR[architecture]
    return float(best_of(sweep, kind if architecture in data["sweep"].get(kind, {}) else "image"))


def best_of(results: dict[str, float], kind: str) -> str:
    """The learning rate (a key of ``results``) with the best quality: the lowest Chamfer for an SDF, else the
    highest PSNR/SNR."""
    pick = min if kind == "sdf" else max
    return pick(results, key=lambda lr: results[lr])


def run_sweep(data: dict, args) -> None:
    for kind, name in SWEEP_SIGNALS.items():
        if args.signals and name not in args.signals:
            continue
        for architecture in args.archs:
            if architecture == "lattice":
                continue
            results = {}
            for lr in SWEEP[architecture]:
                run = train(name, architecture, lr, args.sweep_seconds)
                results[f"{lr:g}"] = run["quality"]
                print(f"sweep {name} {architecture} lr {lr:g}: {run['quality']:.3f} in {run['steps']} steps")
            data["sweep"].setdefault(kind, {})[architecture] = results
        data["sweep"]["seconds"] = args.sweep_seconds
        data["sweep"].setdefault("signals", {})[kind] = name


def run_signals(data: dict, names: list[str], args) -> None:
    for name in names:
        kind = kind_of(name)
        entry = data["signals"].setdefault(name, {"kind": kind, "runs": {}})
        for architecture in args.archs:
            if architecture in VARIANTS and kind not in args.variant_kinds:
                continue
            run = train(name, architecture, chosen_lr(data, kind, architecture), args.seconds)
            entry["runs"][architecture] = run
            entry["seconds"] = args.seconds
            print(f"{name} {architecture}: quality {run['quality']:.3f} after {run['steps']} steps "
                  f"({run['steps_per_s']:.1f}/s), {run['params']} params, lr {run['lr']:g}")


def at_step(curve: list, steps: int) -> float | None:
    """Quality after ``steps`` optimiser steps (curve points count steps from 0)."""
    for _, at, quality in curve:
        if at + 1 >= steps:
            return quality
    return None


def first_seconds(curve: list, level: float, higher: bool) -> float | None:
    for seconds, _, quality in curve:
        if (quality >= level) if higher else (quality <= level):
            return seconds
    return None


def plot(name: str, entry: dict, out_dir: Path, prefix: str = "peers") -> str:
    from inrkit.plots import line_chart

    runs = entry["runs"]
    series = [(np.array([p[0] for p in r["curve"]]), np.array([p[2] for p in r["curve"]]), COLOURS.get(a, (128, 128, 128)), a)
              for a, r in runs.items() if r["curve"]]
    what = {"image": "PSNR (dB)", "audio": "SNR (dB)", "sdf": "Chamfer (% of diagonal, lower is better)"}[entry["kind"]]
    title = f"{name}: {what} vs training seconds. " + ", ".join(f"{a} {_colour_name(a)}" for a in runs)
    image = line_chart(series, title, "training seconds", log_y=False, size=(820, 340))
    path = out_dir / f"{prefix}_{Path(name).stem}.png"
    image.save(path)
    return path.name


def _packed_cell(run: dict) -> str:
    packed = run.get("packed")
    if not packed:
        return "n/a"
    return f"{packed['bytes']:,} ({packed['float_psnr'] - packed['psnr']:.2f})"


def _colour_name(architecture: str) -> str:
    return {"lattice": "red", "siren": "blue", "finer": "green", "ffn": "purple", "hashgrid": "orange",
            "lattice-4L": "dark red", "lattice-2L": "pink"}.get(architecture, "grey")


def report(data: dict, out: Path) -> None:
    lines = ["# Peers: inrkit's default against SIREN, FINER, FFN and a hash grid (`benchmarks/peers.py`)", "",
             f"Machine: {data.get('machine', '?')}; torch {torch.__version__}.", ""]
    if data.get("note"):
        lines += [data["note"], ""]
    for part in data.get("parts", []):
        lines.append(f"* part `{part['part']}` ({', '.join(part['signals'])}): started {part['started']}, load average "
                     f"before {part['load_before']}, after {part['load_after']}")
    sweep = data.get("sweep", {})
    if sweep:
        lines += ["", f"Learning-rate sweep ({sweep.get('seconds')} s per run; quality at the end; the best is used):",
                  "", "| signal | architecture | " + " | ".join(["lr: quality"] * 3) + " | chosen |", "|---|---|---|---|---|---|"]
        for kind in ("image", "audio", "sdf"):
            for architecture, results in sweep.get(kind, {}).items():
                best = best_of(results, kind)
                cells = " | ".join(f"{lr}: {q:.3f}" if kind == "sdf" else f"{lr}: {q:.2f}" for lr, q in results.items())
                lines.append(f"| {sweep.get('signals', {}).get(kind, kind)} | {architecture} | {cells} | {best} |")
    summary = {"image": [], "audio": [], "sdf": []}
    variants: dict[str, list[float]] = {}
    for name, entry in data["signals"].items():
        runs = entry["runs"]
        higher = entry["kind"] != "sdf"
        unit = {"image": "PSNR dB", "audio": "SNR dB", "sdf": "Chamfer %"}[entry["kind"]]
        fewest = min(r["steps"] for r in runs.values())
        lines += ["", f"## {name} ({unit}, {entry.get('seconds')} s of training each)", "",
                  (f"| architecture | params | lr | steps | steps/s | {unit} at {entry.get('seconds')} s | "
                   f"{unit} at {fewest} steps | s to reach the best other's final | packed bytes (dB lost) |"),
                  "|---|---|---|---|---|---|---|---|---|"]
        for architecture, run in runs.items():
            others = [r["quality"] for a, r in runs.items() if a != architecture]
            target = (max(others) if higher else min(others)) if others else None
            reach = first_seconds(run["curve"], target, higher) if target is not None else None
            equal = at_step(run["curve"], fewest) if entry["kind"] != "sdf" else None
            lines.append(f"| {architecture} | {run['params']:,} | {run['lr']:g} | {run['steps']:,} | "
                         f"{run['steps_per_s']:.1f} | {run['quality']:.3f} | "
                         f"{'n/a' if equal is None else f'{equal:.2f}'} | "
                         f"{'not reached' if reach is None else f'{reach:.1f}'} | {_packed_cell(run)} |")
        if "lattice" in runs and len(runs) > 1:
            peers = {a: r["quality"] for a, r in runs.items() if a != "lattice" and a not in VARIANTS}
            best = max(peers, key=peers.get) if higher else min(peers, key=peers.get)
            lead = runs["lattice"]["quality"] - peers[best]
            summary[entry["kind"]].append((name, lead if higher else -lead, best,
                                           min(runs["lattice"]["quality"] - q for q in peers.values())
                                           if higher else None))
            lines.append(f"\ninrkit minus the best peer ({best}): {lead:+.2f} {unit.split()[-1]}"
                         + (" (lower is better)" if not higher else ""))
            for variant in (v for v in VARIANTS if v in runs):
                gap = runs[variant]["quality"] - peers[best]
                variants.setdefault(variant, []).append(gap if higher else -gap)
                lines.append(f"{variant} (not the default) minus the best peer ({best}): {gap:+.2f} {unit.split()[-1]}")
        prefix = "peers" if out.stem == "peers_cpu" else out.stem  # each run's own pictures
        lines.append(f"\n![{name}]({plot(name, entry, out.parent, prefix)})")
    if summary["image"]:
        leads = [s[1] for s in summary["image"]]
        lines += ["", "## Summary", "",
                  (f"Photos: inrkit minus the best peer, mean {np.mean(leads):+.2f} dB over {len(leads)} photos; "
                   f"smallest margin to any peer {min(s[3] for s in summary['image']):+.2f} dB.")]
    for variant, gaps in variants.items():
        lines.append(f"{variant} (not the default): minus the best peer, mean {np.mean(gaps):+.2f} over {len(gaps)} signals.")
    for name, lead, best, _ in summary["audio"]:
        lines.append(f"Audio {name}: inrkit minus the best peer ({best}) {lead:+.2f} dB SNR.")
    for name, lead, best, _ in summary["sdf"]:
        lines.append(f"SDF {name}: the best peer's ({best}) Chamfer minus inrkit's {lead:+.4f} % (positive: inrkit better).")
    out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


def add_variants(specs: list[str]) -> None:
    """``NAME=ARCH:LR[:JSON]`` (``--variant``, repeatable): a contender ARCH at learning rate LR with model options
    JSON, added to :data:`VARIANTS` (e.g. ``siren-5e-4=siren:5e-4`` or ``lattice-3L=lattice:1e-3:{"hidden_layers": 3}``)."""
    for spec in specs:
        name, _, rest = spec.partition("=")
        architecture, _, rest = rest.partition(":")
        lr, _, options = rest.partition(":")
        if not name or architecture not in ARCHITECTURES or not lr:
            raise SystemExit(f"--variant {spec!r}: expected NAME=ARCH:LR[:JSON] with ARCH one of {ARCHITECTURES}")
        VARIANTS[name] = (json.loads(options) if options else {}, float(lr), architecture)


def main() -> None:
    early = argparse.ArgumentParser(add_help=False)
    early.add_argument("--variant", action="append", default=[])
    add_variants(early.parse_known_args()[0].variant)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variant", action="append", default=[], metavar="NAME=ARCH:LR[:JSON]",
                        help="an extra contender: ARCH at learning rate LR with model options JSON (repeatable)")
    parser.add_argument("--part", nargs="+", choices=("sweep", "photos", "audio", "sdf", "all"), default=None,
                        help="parts to run, in order (each adds to the JSON)")
    parser.add_argument("--signals", nargs="*", default=None, help="subset of the part's signals (file names)")
    parser.add_argument("--archs", nargs="*", default=list(ARCHITECTURES), choices=ARCHITECTURES + tuple(VARIANTS),
                        help=f"contenders; inrkit variants: {', '.join(VARIANTS)} (run on --variant-kinds only)")
    parser.add_argument("--variant-kinds", nargs="*", default=["image"], choices=("image", "audio", "sdf"))
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--sweep-seconds", type=float, default=10.0)
    parser.add_argument("--report", action="store_true", help="only rewrite the table and plots from the JSON")
    parser.add_argument("--sweep-from", type=Path, default=ROOT / "benchmarks" / "results" / "peers_cpu.json",
                        help="JSON whose learning-rate sweep a new --out uses (without --part sweep)")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "peers_cpu.md")
    args = parser.parse_args()
    json_path = args.out.with_suffix(".json")
    data = load(json_path)
    if not data["sweep"] and args.sweep_from.exists() and args.sweep_from != json_path and "sweep" not in (args.part or []):
        # A new --out reuses the learning rates chosen by an earlier sweep (else every peer gets its paper's rate).
        earlier = load(args.sweep_from)
        data["sweep"] = earlier["sweep"]
        data["parts"] += [part for part in earlier["parts"] if part["part"] == "sweep"]
        print(f"learning rates from the sweep in {args.sweep_from}")
    data["machine"] = machine("cpu")
    if args.part is not None:
        parts = ("sweep", "photos", "audio", "sdf") if "all" in args.part else args.part
        for part in parts:
            started, before = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), uptime()
            if part == "sweep":
                run_sweep(data, args)
                names = [n for n in SWEEP_SIGNALS.values() if not args.signals or n in args.signals]
            else:
                names = {"photos": PHOTOS, "audio": AUDIO, "sdf": SDF}[part]
                names = [n for n in names if not args.signals or n in args.signals]
                run_signals(data, names, args)
            data["parts"].append({"part": part, "signals": names, "started": started, "load_before": before,
                                  "load_after": uptime()})
            save(json_path, data)
    report(data, args.out)


if __name__ == "__main__":
    main()
