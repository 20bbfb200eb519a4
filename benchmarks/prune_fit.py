"""Pruning benchmarks (issue #6), every comparison side by side in one run.

1. Prune vs scratch: for each photo and each final size (1/2, 1/4, 1/8 of the
   default model), fit the default model on a fifth of the budget, cut it to
   the final size at once (least important neurons first) and fine-tune for
   the rest; against a model of the final size (same shape, scaled widths)
   trained from scratch for the whole budget. Same wall-clock budget. (A
   30 s trial on camera at 1/4: one cut after 15%/25%/50% of the budget gave
   24.23/24.17/23.70 dB against 23.80 dB from scratch; four gradual cuts
   after 50% gave 23.70 dB.)
2. Redundancy: ``inrkit fit --prune`` at the default size (L1 1e-7, prune in
   rounds while the PSNR stays within 0.5 dB of the first fit); how many
   stored parameters it removes, and at what PSNR.
3. Add-prune vs scratch at one fixed size, same number of steps.
4. One prune-vs-scratch row each for audio (speech) and an SDF (bunny scan).

``--oversized`` runs only the redundancy measurement, from models four times
the default size (one of them at a low fixed bandlimit), into
``prune_cpu_oversized.md``.

    python benchmarks/prune_fit.py --seconds 40 --out benchmarks/results/prune_cpu.md
    python benchmarks/prune_fit.py --oversized      # ~4 min
"""

from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path

import torch

from common import ROOT, machine, write_report
from inrkit.config import TrainConfig
from inrkit.host import get_host
from inrkit.metrics import psnr
from inrkit.model import build_model, stored_parameter_count
from inrkit.pipeline import ModelOptions, default_params, load_signal, plan_model
from inrkit.prune import PruneOptions, pruned_fit, widths_at
from inrkit.train import evaluate, fit

IMAGES = ("camera-128.png", "astronaut-128.png", "chelsea-128.png")


def setup(name: str, signal_name: str | None = None, params: int | None = None):
    host = get_host()
    signal, signal_type = load_signal(ROOT / "datasets" / name, signal_name, host)
    config = plan_model(signal, signal_type, ModelOptions(params=params))
    train = TrainConfig(max_seconds=1.0, sampler=signal_type.sampler, batch_size=signal_type.batch_size)
    return host, signal, signal_type, config, train


def quality(model, signal) -> float:
    return psnr(evaluate(model, signal.coordinates()), signal.values, signal.data_range)


def extra(signal_type, signal, model) -> str:
    if signal_type.name != "sdf":
        return ""
    import tempfile

    with tempfile.TemporaryDirectory() as scratch:
        metrics = signal_type.report(signal, lambda coords: evaluate(model, coords), Path(scratch))
    return f" (Chamfer {100 * metrics['chamfer']:.3f}%)"


def prune_vs_scratch(name: str, fraction: float, seconds: float, signal_name=None, params=None) -> dict:
    host, signal, signal_type, config, train = setup(name, signal_name, params)
    loss, sampler = host.loss(signal_type.loss), host.sampler(train.sampler)
    budget = replace(train, max_seconds=seconds)
    start_model = build_model(config)
    start_params = stored_parameter_count(start_model)
    target = int(start_params * fraction)
    pruned = pruned_fit(start_model, signal, budget, loss.fn, sampler.make,
                        PruneOptions(target_params=target, rounds=1, fit_fraction=0.2))
    m, n = widths_at(config, target)
    scratch_model = build_model(replace(config, input_frequencies=m, width=n))
    scratch = fit(scratch_model, signal, budget, loss.fn, sampler.make)
    return {
        "signal": name, "fraction": fraction, "start": start_params,
        "end_pruned": stored_parameter_count(pruned.result.model), "end_scratch": stored_parameter_count(scratch.model),
        "psnr_pruned": quality(pruned.result.model, signal), "psnr_scratch": quality(scratch.model, signal),
        "extra_pruned": extra(signal_type, signal, pruned.result.model),
        "extra_scratch": extra(signal_type, signal, scratch.model),
        "seconds_pruned": pruned.result.seconds, "seconds_scratch": scratch.seconds,
    }


def redundancy(name: str, seconds: float, scale: float = 1.0, bandlimit: int | None = None) -> dict:
    """``--prune`` from the default size times ``scale`` (optionally at a fixed ``bandlimit``)."""
    host, signal, signal_type, config, train = setup(name)
    if scale != 1.0 or bandlimit is not None:
        params = int(stored_parameter_count(build_model(config)) * scale)
        config = plan_model(signal, signal_type, ModelOptions(params=params))
        if bandlimit is not None:
            config = replace(config, bandlimit=(bandlimit,) * config.dims,
                             low_bandlimit=(max(1, bandlimit // 3),) * config.dims)
    loss, sampler = host.loss(signal_type.loss), host.sampler(train.sampler)
    model = build_model(config)
    start = stored_parameter_count(model)
    options = PruneOptions(l1=1e-7, shrink=True, tolerance_db=0.5)
    result = pruned_fit(model, signal, replace(train, max_seconds=seconds), loss.fn, sampler.make, options)
    first = result.path[0]
    return {"signal": name, "scale": scale, "bandlimit": bandlimit or config.bandlimit[0],
            "start": start, "first_psnr": first["psnr"],
            "end": stored_parameter_count(result.result.model), "end_psnr": quality(result.result.model, signal),
            "phases": len(result.path), "accepted": sum(1 for p in result.path if p.get("accepted"))}


def add_prune(name: str, steps: int, every: int) -> dict:
    host, signal, signal_type, config, train = setup(name)
    loss, sampler = host.loss(signal_type.loss), host.sampler(train.sampler)
    budget = replace(train, max_seconds=None, steps=steps)
    swapped = pruned_fit(build_model(config), signal, budget, loss.fn, sampler.make, PruneOptions(add_prune_every=every))
    scratch = fit(build_model(config), signal, budget, loss.fn, sampler.make)
    swaps = sum(p.get("swapped", 0) for p in swapped.path)
    from_residual = sum(p.get("from_residual", 0) for p in swapped.path)
    return {"signal": name, "params": stored_parameter_count(scratch.model), "steps": steps,
            "psnr_add_prune": quality(swapped.result.model, signal), "psnr_scratch": quality(scratch.model, signal),
            "swapped": swaps, "from_residual": from_residual}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=40.0, help="budget of each prune-vs-scratch pair (each side)")
    parser.add_argument("--redundancy-seconds", type=float, default=60.0)
    parser.add_argument("--steps", type=int, default=2000, help="add-prune vs scratch")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "prune_cpu.md")
    parser.add_argument("--oversized", action="store_true",
                        help="only the redundancy runs, from 4x the default size (and 4x at bandlimit 12)")
    args = parser.parse_args()
    torch.set_num_threads(torch.get_num_threads())
    if args.oversized:
        oversized(args)
        return
    data = {"machine": machine("cpu"), "seconds": args.seconds}
    data["prune_vs_scratch"] = [prune_vs_scratch(image, fraction, args.seconds)
                                for image in IMAGES for fraction in (0.5, 0.25, 0.125)]
    data["prune_vs_scratch"].append(prune_vs_scratch("speech-16k.wav", 0.5, args.seconds, params=8000))
    data["prune_vs_scratch"].append(prune_vs_scratch("bunny-scan.ply", 0.5, args.seconds * 3))
    data["redundancy"] = [redundancy(image, args.redundancy_seconds) for image in IMAGES]
    data["add_prune"] = [add_prune(image, args.steps, 100) for image in IMAGES]

    lines = [f"# Pruning, CPU ({data['machine']})\n",
             f"## Fit, prune to a fraction, fine-tune vs the final size from scratch ({args.seconds:.0f} s each side; "
             f"SDF {3 * args.seconds:.0f} s)\n",
             "Pruned: the default model fitted on a fifth of the budget, cut to the final size at once (least "
             "important neurons first), fine-tuned on the rest. Scratch: the final shape trained for the whole budget. "
             "PSNR over all samples (audio: full-scale peak-to-peak 2; SDF: of the sampled distances).\n",
             "| signal | final / start | start params | end params (pruned / scratch) | PSNR pruned | PSNR scratch | gain |",
             "|---|---|---|---|---|---|---|"]
    for row in data["prune_vs_scratch"]:
        lines.append(f"| {row['signal']} | 1/{round(1 / row['fraction'])} | {row['start']:,} | "
                     f"{row['end_pruned']:,} / {row['end_scratch']:,} | {row['psnr_pruned']:.2f} dB{row['extra_pruned']} | "
                     f"{row['psnr_scratch']:.2f} dB{row['extra_scratch']} | {row['psnr_pruned'] - row['psnr_scratch']:+.2f} dB |")
    lines += ["", f"## Redundancy at the default size: `--prune` (L1 1e-7, 0.5 dB tolerance, {args.redundancy_seconds:.0f} s)\n",
              "| image | start params | PSNR after the first fit | end params | removed | PSNR at the end | accepted cuts |",
              "|---|---|---|---|---|---|---|"]
    for row in data["redundancy"]:
        removed = 1 - row["end"] / row["start"]
        lines.append(f"| {row['signal']} | {row['start']:,} | {row['first_psnr']:.2f} dB | {row['end']:,} | "
                     f"{100 * removed:.0f}% | {row['end_psnr']:.2f} dB | {row['accepted']} of {row['phases'] - 1} |")
    lines += ["", f"## Add-prune vs scratch at the default size, {args.steps} steps each\n",
              "Every 100 steps until 75% of the budget, 5% of the input frequencies with the lowest importance are "
              "replaced by unused lattice frequencies where the residual's spectrum is strongest.\n",
              "| image | params | PSNR add-prune | PSNR scratch | gain | frequencies swapped (from the residual) |",
              "|---|---|---|---|---|---|"]
    for row in data["add_prune"]:
        lines.append(f"| {row['signal']} | {row['params']:,} | {row['psnr_add_prune']:.2f} dB | {row['psnr_scratch']:.2f} dB | "
                     f"{row['psnr_add_prune'] - row['psnr_scratch']:+.2f} dB | {row['swapped']} ({row['from_residual']}) |")
    write_report(args.out, "\n".join(lines) + "\n", data)


def oversized(args) -> None:
    """Redundancy where there is some to find: models 4x the default size."""
    out = args.out.with_name(args.out.stem + "_oversized.md") if args.out.name == "prune_cpu.md" else args.out
    rows = [redundancy(image, args.redundancy_seconds, scale=4.0) for image in ("camera-128.png", "chelsea-128.png")]
    rows.append(redundancy("camera-128.png", args.redundancy_seconds, scale=4.0, bandlimit=12))
    lines = [f"# Pruning from oversized models, CPU ({machine('cpu')})\n",
             f"`--prune` (L1 1e-7, 0.5 dB tolerance, {args.redundancy_seconds:.0f} s) from 4x the default size.\n",
             "| image | bandlimit | start params | PSNR after the first fit | end params | removed | PSNR at the end | accepted cuts |",
             "|---|---|---|---|---|---|---|---|"]
    for row in rows:
        removed = 1 - row["end"] / row["start"]
        lines.append(f"| {row['signal']} | {row['bandlimit']} | {row['start']:,} | {row['first_psnr']:.2f} dB | "
                     f"{row['end']:,} | {100 * removed:.0f}% | {row['end_psnr']:.2f} dB | "
                     f"{row['accepted']} of {row['phases'] - 1} |")
    write_report(out, "\n".join(lines) + "\n", {"machine": machine("cpu"), "oversized": rows})


if __name__ == "__main__":
    main()
