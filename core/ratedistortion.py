"""Rate-distortion: fit and pack a signal at several sizes, and set the curve beside the codecs plugins know.

Domain-agnostic: the signal's plugin measures everything through the hook
``inrkit_rate_distortion`` (:mod:`inrkit.hookspecs`). It receives the packed
reconstructions (setting, file bytes, values) and returns rows for them and
for its own codecs (images: JPEG, WebP, AVIF; audio: Ogg Vorbis, Opus,
FLAC), each ``{"method", "setting", "bytes", "rate", "rate_unit",
"metrics": {name: value}}``; the first metric is the one plotted. Without
a plugin answer, inrkit's points are measured by PSNR at bits per sample.
"""

from __future__ import annotations

import math
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
from inrkit.errors import ConfigError

#: Fitting budget (seconds) per rate point, and the sizes (fractions of the default size) fitted.
RD_SECONDS = 60.0
RD_FRACTIONS = (0.125, 0.25, 0.5, 1.0)
_COLOURS = [(200, 30, 30), (30, 90, 200), (20, 150, 60), (150, 60, 180), (220, 140, 0), (0, 150, 150), (90, 90, 90)]


def inrkit_points(path: Path, work: Path, params_list: list[int], seconds: float, steps: int | None,
                  signal_name: str | None, host, progress=None, target_bytes: tuple[int, ...] = ()
                  ) -> tuple[Any, Any, list[tuple[str, int, Any]], list]:
    """Fit and pack ``path`` at each size; returns the signal, its type, (setting, bytes, values) and summaries.

    Each fit is packed at each of ``target_bytes`` that it can reach (``inrkit pack --target-size``), or at
    the default (within 0.3 dB of the float model) when none is given: model size and bit depth both vary.
    """
    from inrkit.checkpoint import load_run
    from inrkit.config import ModelOptions, TrainConfig
    from inrkit.packjob import pack_run
    from inrkit.pipeline import fit_file
    from inrkit.sources import load_signal
    from inrkit.train import evaluate

    signal, signal_type = load_signal(path, signal_name, host)
    reconstructions, summaries, fits = [], [], []
    for params in params_list:
        if progress:
            progress(f"fitting {params:,} parameters")
        config = TrainConfig.with_budget(2000, steps=steps, max_seconds=None if steps else seconds)
        run_dir = work / f"run-{params}"
        fitted = fit_file(path, run_dir, model_options=ModelOptions(params=params), train_config=config,
                          signal_name=signal_name, host=host, overwrite=True)
        fits.append({"params": fitted.parameters, "steps": fitted.result.steps, "seconds": fitted.result.seconds,
                     "psnr": fitted.metrics["final"].get("psnr")})
        # The default pack, unless sizes are asked for (each pack has its own quantisation-aware finish).
        goals = [(f", at most {size:,} bytes", size) for size in target_bytes] or [("", None)]
        for label, size in goals:
            try:
                summary = pack_run(run_dir, work / f"run-{params}-{size}.inr", target_size=size, host=host)
            except ConfigError:  # this model does not fit in that size
                continue
            values = evaluate(load_run(summary.path).model, signal.coordinates())
            reconstructions.append((f"{params} parameters{label}", summary.bytes, values))
            summaries.append(summary)
    return signal, signal_type, reconstructions, (summaries, fits)


def measure(signal, signal_type, reconstructions: list[tuple[str, int, Any]], host) -> list[dict[str, Any]]:
    """The plugins' rows (inrkit's packed reconstructions and their codecs), or inrkit's PSNR alone."""
    from inrkit.metrics import psnr

    answers = host.pm.hook.inrkit_rate_distortion(signal=signal, signal_type=signal_type.name,
                                                  reconstructions=reconstructions)
    rows = [row for answer in answers if answer for row in answer]
    if rows:
        return rows
    samples = signal.samples * signal.channels
    return [{"method": "inrkit", "setting": setting, "bytes": size, "rate": 8 * size / samples,
             "rate_unit": "bits per sample", "metrics": {"psnr": psnr(values, signal.values, signal.data_range)}}
            for setting, size, values in reconstructions]


def curves(rows: list[dict[str, Any]]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Per method, its best-quality envelope: (rates, first metric) sorted by rate, keeping only points
    better than every cheaper point (a larger file of worse quality is never the one to pick).

    The first metric is taken as "higher is better" (PSNR, SNR).
    """
    out: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for method in dict.fromkeys(row["method"] for row in rows):
        mine = sorted((row["rate"], next(iter(row["metrics"].values()))) for row in rows if row["method"] == method)
        kept: list[tuple[float, float]] = []
        for rate, value in mine:
            if not math.isfinite(value):
                continue
            if not kept or value > kept[-1][1]:
                kept.append((rate, value))
        out[method] = (np.array([r for r, _ in kept]), np.array([m for _, m in kept]))
    return out


def interpolate(rates: np.ndarray, values: np.ndarray, at: float) -> float | None:
    """The curve's value at rate ``at`` (linear in log rate), or None outside its range."""
    if len(rates) == 0 or at < rates.min() or at > rates.max():
        return None
    order = np.argsort(rates)
    return float(np.interp(math.log(at), np.log(rates[order]), values[order]))


def crossings(mine: tuple[np.ndarray, np.ndarray], other: tuple[np.ndarray, np.ndarray]) -> list[float]:
    """Rates where the two curves cross, within the rates both cover (log-rate linear interpolation).

    A curve with no finite point (a lossless codec's infinite SNR) crosses nothing.
    """
    if len(mine[0]) == 0 or len(other[0]) == 0:
        return []
    low, high = max(mine[0].min(), other[0].min()), min(mine[0].max(), other[0].max())
    if low >= high:
        return []
    grid = np.clip(np.exp(np.linspace(math.log(low), math.log(high), 400)), low, high)  # exp(log(x)) may miss x
    difference = np.array([interpolate(*mine, r) - interpolate(*other, r) for r in grid])
    found = []
    for i in np.nonzero(np.diff(np.sign(difference)))[0]:
        a, b = difference[i], difference[i + 1]
        found.append(float(grid[i] + (grid[i + 1] - grid[i]) * a / (a - b)))
    return found


def best_within(line: tuple[np.ndarray, np.ndarray], budget: float) -> tuple[float, float] | None:
    """The best (rate, value) of a curve at a rate of at most ``budget`` (what that many bytes buy), or None."""
    inside = [(r, v) for r, v in zip(*line) if r <= budget * (1 + 1e-9)]
    return max(inside, key=lambda p: p[1]) if inside else None


def comparison(rows: list[dict[str, Any]], rates: tuple[float, ...]) -> dict[str, Any]:
    """inrkit against every codec at each of ``rates``, and where the curves cross.

    At a rate R, inrkit's best file of at most R is compared with the codec's curve interpolated at that
    file's own rate: both sides at the same file size.
    """
    lines = curves(rows)
    mine = lines.get("inrkit")
    out: dict[str, Any] = {}
    if mine is None:
        return out
    for method, line in lines.items():
        if method == "inrkit":
            continue
        at = {}
        for rate in rates:
            point = best_within(mine, rate)
            ours = None if point is None else float(point[1])
            theirs = None if point is None else interpolate(*line, float(point[0]))
            at[f"{rate:g}"] = {"inrkit": ours, method: theirs, "rate": None if point is None else float(point[0]),
                               "difference": None if ours is None or theirs is None else ours - theirs}
        out[method] = {"at": at, "crossings": crossings(mine, line)}
    return out


def chart_window(lines: dict[str, tuple[np.ndarray, np.ndarray]]) -> tuple[float, float] | None:
    """The rates the chart shows: inrkit's own, from half its cheapest to twice its dearest file.

    The codecs' sweeps run to several bits per pixel; drawn whole, they squeeze inrkit's few points
    into a corner. None (every rate) when inrkit has no point.
    """
    mine = lines.get("inrkit")
    if mine is None or len(mine[0]) == 0:
        return None
    return float(mine[0].min()) / 2, float(mine[0].max()) * 2


def chart(rows: list[dict[str, Any]], title: str):
    """The curves, one colour per method, over inrkit's rates (:func:`chart_window`), every point dotted."""
    from inrkit.plots import line_chart

    lines = curves(rows)
    unit = rows[0]["rate_unit"] if rows else "rate"
    metric = next(iter(rows[0]["metrics"])) if rows else "psnr"
    series = [(x, y, _COLOURS[i % len(_COLOURS)], method) for i, (method, (x, y)) in enumerate(lines.items())]
    return line_chart(series, f"{title}: {metric} against {unit}", unit, log_y=False, size=(760, 420),
                      x_window=chart_window(lines), dots=True)


def table(rows: list[dict[str, Any]]) -> str:
    """A Markdown table of every row."""
    names = list(dict.fromkeys(name for row in rows for name in row["metrics"]))
    unit = rows[0]["rate_unit"] if rows else "rate"
    lines = [f"| method | setting | bytes | {unit} | " + " | ".join(names) + " |",
             "|---|---|---|---|" + "---|" * len(names)]
    for row in sorted(rows, key=lambda r: (r["method"], r["rate"])):
        values = [row["metrics"].get(name) for name in names]
        shown = " | ".join("" if v is None else f"{v:.3f}" for v in values)
        lines.append(f"| {row['method']} | {row['setting']} | {row['bytes']:,} | {row['rate']:.4f} | {shown} |")
    return "\n".join(lines) + "\n"


def rate_distortion(path: Path, picture: Path, *, params_list: list[int] | None = None, seconds: float = RD_SECONDS,
                    steps: int | None = None, signal_name: str | None = None, rates: tuple[float, ...] = (),
                    target_bytes: tuple[int, ...] = (), host=None, progress=None) -> dict[str, Any]:
    """Fit and pack ``path`` at several sizes, measure against the codecs, write the chart, table and JSON.

    ``picture`` is a ``.png``; the table goes beside it as ``.md`` and everything as ``.json``.
    """
    from inrkit.atomic import atomic_output, write_json
    from inrkit.host import get_host
    from inrkit.planning import default_params
    from inrkit.sources import load_signal

    picture = Path(picture)
    if picture.suffix.lower() != ".png":
        raise ConfigError(f"-o {picture} must end in .png (the table goes beside it as .md and .json)")
    if not (math.isfinite(seconds) and seconds > 0):
        raise ConfigError(f"--max-seconds must be a positive number, got {seconds}")
    host = host or get_host()
    if params_list is None:
        signal, signal_type = load_signal(path, signal_name, host)
        base = default_params(signal, signal_type)
        params_list = [max(500, int(base * f)) for f in RD_FRACTIONS]
    if any(p < 100 for p in params_list):
        raise ConfigError(f"--params values must be at least 100, got {params_list}")
    with tempfile.TemporaryDirectory(prefix=".inrkit-rd-", dir=picture.parent if picture.parent.exists() else None) \
            as work:
        signal, signal_type, reconstructions, (summaries, fits) = inrkit_points(
            Path(path), Path(work), params_list, seconds, steps, signal_name, host, progress, target_bytes)
    rows = measure(signal, signal_type, reconstructions, host)
    result = {"input": str(path), "seconds_per_point": None if steps else seconds, "steps_per_point": steps,
              "params": params_list, "fits": fits, "packed": [s.to_dict() | {"file": None} for s in summaries], "rows": rows,
              "comparison": comparison(rows, rates)}
    image = chart(rows, Path(path).name)
    with atomic_output(picture) as temporary:
        image.save(temporary, format="PNG")
    with atomic_output(picture.with_suffix(".md")) as temporary:
        temporary.write_text(table(rows))
    write_json(picture.with_suffix(".json"), result)
    return result


__all__ = ["RD_FRACTIONS", "RD_SECONDS", "comparison", "crossings", "curves", "interpolate", "measure",
           "rate_distortion", "table"]
