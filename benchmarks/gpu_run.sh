#!/usr/bin/env bash
# The device check, as one script: install inrkit offline into the GPU machine's
# Python (soundfile and its needs carried as wheels in .whl/), run the CLI on CUDA
# end to end, the GPU check, and short image and audio benchmarks.
set -uo pipefail
export PYTHONUNBUFFERED=1
OUT=${OUT:-/tmp/out}
nvidia-smi --query-gpu=name,memory.total --format=csv
if ls .whl/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl && export PYTHONPATH=/tmp/site
fi
python3 -m pip install -q --no-deps --no-build-isolation -e . 2>&1 | tail -2
python3 -m inrkit.cli fit datasets/astronaut-256.png -o /tmp/run --max-seconds 10 --device cuda --quiet && \
  python3 -m inrkit.cli export /tmp/run --resolution 2048x2048 -o "$OUT/astronaut-2048.png" --device cuda && \
  cp /tmp/run/comparison.png "$OUT/gpu-comparison.png" && cp /tmp/run/spectrum.png "$OUT/gpu-spectrum.png"
python3 benchmarks/gpu_check.py --out "$OUT/gpu_check.md"
python3 benchmarks/image_fit.py --device cuda --seconds 10 --images camera-128.png astronaut-128.png --equal-steps 1000 --out "$OUT/image_fit_gpu.md"
python3 benchmarks/audio_fit.py --device cuda --seconds 10 --out "$OUT/audio_fit_gpu.md"
