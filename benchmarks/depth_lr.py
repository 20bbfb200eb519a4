"""Depth and learning rate of the lattice model on photos, short budgets (issue 16; the scan behind the
image default of four hidden layers at lr 1e-3).

Each contender is ``architecture|lr|{ModelOptions as JSON}``; every one is built by the CLI's planner at a
quarter of the photo's sample values in parameters (or ``"params"`` in the JSON) and trained by the CLI's
trainer for ``--seconds``. Besides the PSNR on the photo's own pixels it reports the PSNR *between* them:
the model evaluated on a 2x finer grid against the 256x256 version of the same photo (``datasets/*-256.png``,
made from the same source and crop), with a Lanczos 2x upsampling of the 128x128 pixels as the reference a
model must beat to add anything between samples.

    python benchmarks/depth_lr.py --seconds 20 --photos camera-128.png chelsea-128.png \\
        --contenders 'lattice|0.002|{"hidden_layers": 2}' 'lattice|0.001|{"hidden_layers": 4}' 'siren|0.002|{}'

``--steps N`` trains each contender for N steps instead (the comparison at equal steps); a recording
(``speech-16k.wav``) in ``--photos`` is measured by the audio plugin's SNR. The input-sampling and audio-depth
scans of session 8 (benchmarks/README.md, "Input sampling of the deep default"):

    python benchmarks/depth_lr.py --steps 1500 --photos astronaut-128.png camera-128.png chelsea-128.png \
        --contenders 'lattice|0.001|{"input_sampling": "box"}' 'lattice|0.001|{"input_sampling": "spectrum"}'
    python benchmarks/depth_lr.py --seconds 60 --photos speech-16k.wav melody-16k.wav \
        --contenders 'lattice|0.002|{}' 'lattice|0.001|{"hidden_layers": 2}' 'lattice|0.001|{"hidden_layers": 4}'

``"sampler"`` and ``"batch_size"`` in a contender's JSON choose the trainer's sampler (e.g. mini-batches,
session 9's scan; the signal type's default otherwise):

    python benchmarks/depth_lr.py --seconds 60 --photos rocket-128.png chelsea-128.png --contenders \
        'lattice|0.001|{}' 'lattice|0.001|{"sampler": "stratified", "batch_size": 4096}' \
        'siren|0.002|{"sampler": "stratified", "batch_size": 4096}' 'hashgrid|0.03|{"sampler": "stratified", "batch_size": 4096}'

Prints one JSON line per fit and a Markdown table at the end.
"""

from __future__ import annotations

import argparse
import json
import math

import numpy as np
import torch
from PIL import Image

from common import ROOT, fit_contender

from inrkit.config import ModelOptions, TrainConfig
from inrkit.host import get_host
from inrkit.metrics import psnr
from inrkit.model import stored_parameter_count
from inrkit.pipeline import load_signal
from inrkit.train import evaluate


def between_pixels(model, name: str) -> tuple[float, float] | None:
    """(model PSNR, Lanczos PSNR) on the 2x grid against the 256x256 photo, 2 pixels of border left out."""
    finer = ROOT / "datasets" / name.replace("-128", "-256")
    if "-128" not in name or not name.endswith(".png") or not finer.exists():
        return None
    truth = np.asarray(Image.open(finer), dtype=np.float64) / 255.0
    truth = truth[..., None] if truth.ndim == 2 else truth
    # Pixel i of 128 sits at x = -1 + 2 i / 127 (grid_coordinates); pixel k of 256 covers the same photo area,
    # its centre at 128-pixel position k / 2 - 0.25, i.e. x = -1 + (k - 0.5) / 127.
    axis = -1 + (torch.arange(256, dtype=torch.float32) - 0.5) / 127
    rows, cols = torch.meshgrid(axis, axis, indexing="ij")
    values = evaluate(model, torch.stack([rows.reshape(-1), cols.reshape(-1)], 1)).double().numpy()
    values = np.clip((values.reshape(256, 256, -1) + 1) / 2, 0, 1)  # the image plugin maps [0, 1] to [-1, 1]
    small = Image.open(ROOT / "datasets" / name)
    lanczos = np.asarray(small.resize((256, 256), Image.Resampling.LANCZOS), dtype=np.float64) / 255.0
    lanczos = lanczos[..., None] if lanczos.ndim == 2 else lanczos
    inner = (slice(2, -2), slice(2, -2))
    return tuple(10 * math.log10(1 / float(((x - truth)[inner] ** 2).mean())) for x in (values, lanczos))


def run(name: str, architecture: str, lr: float, seconds: float | None, options: dict, steps: int | None = None) -> dict:
    host = get_host()
    signal, signal_type = load_signal(ROOT / "datasets" / name, None, host)
    params = options.pop("params", signal.samples * signal.channels // 4)
    sampler, batch_size = options.pop("sampler", None), options.pop("batch_size", None)
    config, train_config, result = fit_contender(
        signal, signal_type, ModelOptions(architecture=architecture, params=params, **options),
        TrainConfig(max_seconds=None if steps else seconds, steps=steps, lr=lr, device="cpu", sampler=sampler,
                    batch_size=batch_size))
    reconstruction = evaluate(result.model, signal.coordinates())
    out = {"photo": name, "architecture": architecture, "lr": lr, "options": options,
           "hidden_layers": config.hidden_layers, "m": config.input_frequencies, "n": config.width,
           "params": stored_parameter_count(result.model), "steps": result.steps,
           "steps_per_s": result.steps / max(result.seconds, 1e-9),
           "input_sampling": config.input_sampling, "sampler": train_config.sampler,
           "batch_size": train_config.batch_size,
           "psnr": psnr(reconstruction, signal.values, signal.data_range)}
    if signal_type.name == "audio":  # the audio plugin's quality: SNR in dB
        from inrkit.plugins.audio.quality import snr_db

        out["snr"] = snr_db(reconstruction, signal.values)
    between = between_pixels(result.model, name)
    if between is not None:
        out["psnr_2x"], out["lanczos_2x"] = between
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--steps", type=int, default=None, help="train for this many steps instead of --seconds")
    parser.add_argument("--photos", nargs="+", default=["camera-128.png", "chelsea-128.png"])
    parser.add_argument("--contenders", nargs="+",
                        default=['lattice|0.002|{"hidden_layers": 2}', 'lattice|0.001|{"hidden_layers": 4}',
                                 'siren|0.002|{}'])
    args = parser.parse_args()
    rows = []
    for name in args.photos:
        for spec in args.contenders:
            architecture, lr, options = spec.split("|")
            row = run(name, architecture, float(lr), args.seconds, json.loads(options), args.steps)
            print(json.dumps(row), flush=True)
            rows.append(row)
    budget = f"{args.steps} steps" if args.steps else f"{args.seconds:g} s"
    print(f"\n| signal | contender | layers, m, n, sampling | params | steps (steps/s) | PSNR dB (audio: SNR), {budget} | "
          "PSNR between pixels (2x) | Lanczos 2x |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        label = f"{r['architecture']} lr {r['lr']:g} {json.dumps(r['options']) if r['options'] else ''}".strip()
        if r["batch_size"]:
            label += f", {r['sampler']} batches of {r['batch_size']:,}"
        print(f"| {r['photo']} | {label} | {r['hidden_layers']}, {r['m']}, {r['n']}, {r['input_sampling']} | {r['params']:,} | "
              f"{r['steps']} ({r['steps_per_s']:.0f}/s) | {r.get('snr', r['psnr']):.2f} | {r.get('psnr_2x', float('nan')):.2f} | "
              f"{r.get('lanczos_2x', float('nan')):.2f} |")


if __name__ == "__main__":
    main()
