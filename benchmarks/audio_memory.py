"""Peak memory of fitting and exporting a minute of stereo 44.1 kHz audio on the CPU.

Builds a 60 s stereo 44,100 Hz 16-bit WAV from the bundled speech sample
(resampled, repeated with varying gain; the right channel is delayed by 0.1 s
and a little quieter), then measures the peak resident memory of
``inrkit fit`` (default size, a short run) and of ``inrkit export`` as
separate processes, with GNU time.

    python benchmarks/audio_memory.py --steps 10 --out benchmarks/results/audio_memory_cpu.md
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile
from scipy.signal import resample_poly

from common import ROOT, machine, peak_rss, write_report


def long_recording(path: Path, seconds: float = 60.0, rate: int = 44100) -> None:
    speech, source_rate = soundfile.read(ROOT / "datasets" / "speech-16k.wav")
    speech = resample_poly(speech, rate // 100, source_rate // 100)
    frames = int(seconds * rate)
    repeats = int(np.ceil(frames / len(speech))) + 1
    gains = 0.5 + 0.5 * np.abs(np.sin(np.arange(repeats)))
    mono = np.concatenate([g * speech for g in gains])
    delay = int(0.1 * rate)
    left, right = mono[:frames], 0.8 * mono[delay : delay + frames]
    soundfile.write(path, np.stack([left, right], axis=1) * 0.9, rate, subtype="PCM_16")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "audio_memory_cpu.md")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        wav = Path(scratch) / "minute-stereo-44k.wav"
        long_recording(wav)
        info = soundfile.info(wav)
        cli = [sys.executable, "-m", "inrkit.cli"]
        run = Path(scratch) / "run"
        fit_mib, fit_s, _ = peak_rss([*cli, "fit", str(wav), "-o", str(run), "--steps", str(args.steps), "--quiet"])
        metrics = json.loads((run / "metrics.json").read_text())
        config = json.loads((run / "config.json").read_text())
        export_mib, export_s, _ = peak_rss([*cli, "export", str(run), "-o", str(Path(scratch) / "out.flac"), "--sample-rate", "48000"])
        exported = soundfile.info(Path(scratch) / "out.flac")
    lines = [
        f"Machine: {machine('cpu')}; {time.strftime('%Y-%m-%d')}",
        "",
        "| input | model (stored params, m x n) | batch | step | peak RSS | wall |",
        "|---|---|---|---|---|---|",
        f"| {info.duration:.0f} s, {info.channels} ch, {info.samplerate} Hz ({info.frames} frames) "
        f"| {metrics['parameters']}, {config['model']['input_frequencies']} x {config['model']['width']} "
        f"| {config['train']['batch_size']} ({config['train']['sampler']}) | fit, {metrics['steps']} steps + metrics + pictures + WAV | {fit_mib:.0f} MiB | {fit_s:.0f} s |",
        f"| same run | | | export FLAC at 48 kHz ({exported.frames} frames, {exported.channels} ch) | | {export_mib:.0f} MiB | {export_s:.0f} s |",
    ]
    write_report(args.out, "\n".join(lines) + "\n", None)


if __name__ == "__main__":
    main()
