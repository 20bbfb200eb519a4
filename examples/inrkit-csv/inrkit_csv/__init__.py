"""inrkit-csv: numeric CSV time series as an inrkit signal.

Every column is a channel, every row a sample; rows are equally spaced, so
time maps to ``[-1, 1]`` and the Nyquist frequency follows from the row count.
Only the public plugin API (``inrkit.plugin``) is used: a loader with an
option (``--option delimiter=;``), training defaults, one ``assess`` for the
metric and the picture, and an exporter.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from inrkit.plugin import (
    AssessRequest, ConfigError, ExporterType, ExportRequest, FitDefaults, InputError, Option, Signal, SignalType,
    atomic_output, grid_coordinates, hookimpl, lazy_import
)

torch = lazy_import("torch")  # imported at first use: registering plugins must not import torch

INRKIT_HOOK_VERSION = "1.1"
SAMPLE = Path(__file__).with_name("speech_excerpt.csv")


def _rows(path: Path, delimiter: str) -> tuple[list[str], np.ndarray]:
    if not path.is_file():
        raise InputError(f"CSV file {path} does not exist; check the path")
    try:
        with open(path, newline="", encoding="utf-8") as handle:
            rows = [row for row in csv.reader(handle, delimiter=delimiter) if any(cell.strip() for cell in row)]
    except UnicodeDecodeError:
        raise InputError(f"{path} is not a text CSV file; pass comma-separated numbers") from None
    if not rows:
        raise InputError(f"CSV file {path} is empty; it needs at least 2 rows of numbers")
    header: list[str] = []
    try:
        [float(cell) for cell in rows[0]]
    except ValueError:
        header, rows = [cell.strip() for cell in rows[0]], rows[1:]
    if not rows:
        raise InputError(f"CSV file {path} has a header but no data rows; it needs at least 2 rows of numbers")
    width = len(header) or len(rows[0])
    if any(len(row) != width for row in rows):
        raise InputError(f"{path} needs the same number of columns ({width}) in every row")
    try:
        data = np.array([[float(cell) for cell in row] for row in rows], dtype=np.float64)
    except ValueError as error:
        raise InputError(f"{path} has a non-numeric cell ({error}); every cell after the header must be a number") from None
    if data.shape[0] < 2:
        raise InputError(f"{path} has {data.shape[0]} row; it needs at least 2 rows of numbers")
    if not np.isfinite(data).all():
        raise InputError(f"{path} contains NaN or infinite values; clean the data first")
    return header or [f"column{i}" for i in range(width)], data


def load_csv(path: Path, delimiter: str = ",") -> Signal:
    """Load a CSV file as a 1D signal with one channel per column."""
    path = Path(path)
    header, data = _rows(path, delimiter)
    return Signal.from_grid(torch.from_numpy(data).to(torch.float32), (data.shape[0],),
                            metadata={"columns": header, "rows": data.shape[0]}, source=str(path))


def _write(values: np.ndarray, columns: list[str], path: Path) -> None:
    with atomic_output(path) as temporary:
        with open(temporary, "w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(columns)
            writer.writerows([[f"{v:.9g}" for v in row] for row in values])


def export_csv(request: ExportRequest) -> None:
    """Evaluate the model on ``rows`` equally spaced samples (default: the source's) and write a CSV."""
    requested = request.options.get("resolution")
    rows = request.geometry["grid_shape"][0] if requested is None else requested[0]
    if requested is not None and (len(requested) != 1 or rows < 2):
        raise ConfigError(f"a CSV export needs one row count of at least 2, like --resolution 8000; got {requested}")
    coords = grid_coordinates((rows,), request.geometry["extent"])
    _write(request.evaluate(coords).double().numpy(), list(request.metadata["columns"]), request.path)


def assess(request: AssessRequest) -> dict[str, float]:
    """Normalised RMS error per the signal's range on the training samples, and ``plot.png``."""
    signal, reconstruction, train = request.signal, request.reconstruction, request.train_mask
    error = (reconstruction[train] - signal.values[train]).double()
    plot(signal, reconstruction, request.run_dir)
    return {"nrmse": float(error.pow(2).mean().sqrt()) / signal.data_range}


def plot(signal: Signal, reconstruction: torch.Tensor, run_dir: Path) -> None:
    """``plot.png``: each channel's target (grey), reconstruction (blue) and error (red), stacked."""
    width, lane = 1000, 180
    target, recon = signal.values.double().numpy(), reconstruction.double().numpy()
    image = Image.new("RGB", (width, lane * signal.channels), "white")
    draw = ImageDraw.Draw(image)
    xs = np.linspace(0, width - 1, len(target))
    for c in range(signal.channels):
        low, high = float(target[:, c].min()), float(target[:, c].max())
        scale = (lane - 20) / ((high - low) or 1.0)
        top = c * lane + 10

        def line(series, colour):
            ys = top + (high - series) * scale
            draw.line(list(zip(xs.tolist(), ys.tolist())), fill=colour, width=1)

        line(target[:, c], (150, 150, 150))
        line(recon[:, c], (30, 80, 220))
        line(low + (high - low) / 2 + (recon[:, c] - target[:, c]), (220, 30, 30))
        draw.text((5, top), signal.metadata["columns"][c], fill=(0, 0, 0))
    path = run_dir / "plot.png"
    with atomic_output(path) as temporary:
        image.save(temporary, format="PNG")


@hookimpl
def inrkit_register_signals(register):
    register(
        SignalType(
            name="csv",
            load=load_csv,
            extensions=(".csv",),
            description="numeric CSV time series, one channel per column (inrkit-csv)",
            exporter="csv",
            defaults=FitDefaults(bandlimit_fraction=1.0 / 3.0, params_fraction=0.5),
            assess=assess,
            show={"nrmse": "NRMSE {value:.4f}"},
            options=(Option("delimiter", str, default=",", help="column separator", choices=(",", ";", "\t", "|")),),
        )
    )


@hookimpl
def inrkit_register_exporters(register):
    register(ExporterType("csv", "csv", (".csv",), export_csv, "CSV with a header row, any number of rows"))
