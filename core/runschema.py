"""The schema of a run directory, checked before anything is built from it.

Run directories are exchanged between people, so :func:`inrkit.checkpoint.load_run`
treats them as untrusted input:

* :func:`check_run_config` checks every section of ``config.json`` that inrkit
  reads (the top level, ``model``, ``signal`` and ``train``): types, ranges,
  lengths, and that the signal section agrees with the model section.
* :mod:`inrkit.tensorcheck` checks the weights file the same way, from its
  header alone, against the shapes the model section implies.

Every failure is a :class:`~inrkit.errors.RunDirError` whose message is one
line: what is wrong (the key and what was found), what is valid, what to do.
The checks are explicit code on plain values; no schema library is needed.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable
from dataclasses import MISSING, dataclass, fields
from pathlib import Path
from typing import Any

from inrkit.config import ARCHITECTURES, BOUND_MODES, INPUT_SAMPLINGS, LATTICE_ARCHITECTURES, ModelConfig
from inrkit.errors import RunDirError

#: What to do about a run directory that fails a check.
DAMAGED = "the run directory is damaged or was edited by hand"
#: Largest ``config.json`` read (bytes).
MAX_CONFIG_BYTES = 64 * 1024 * 1024
#: Largest safetensors header read (bytes), as the safetensors library's own limit.
MAX_HEADER_BYTES = 100_000_000
#: Most numbers (parameters and buffers) a loaded model may store: 400 MB as float32.
MAX_STORED_NUMBERS = 100_000_000
#: Most hidden layers a loaded model may have.
MAX_HIDDEN_LAYERS = 64
#: Largest hash-grid settings a loaded model may have (levels, features per entry, grid resolution, input axes).
MAX_HASH_LEVELS = 64
MAX_HASH_FEATURES = 64
MAX_HASH_RESOLUTION = 1 << 24
MAX_HASH_DIMS = 4
#: Most samples a recorded grid may have (an export renders the model on that grid).
MAX_GRID_SAMPLES = 1 << 31
#: Largest whole number in a list (bandlimits become int64 tensors).
MAX_INT64 = (1 << 63) - 1
#: Seeds ``torch.Generator.manual_seed`` accepts, less one (the model seeds with ``seed + 1``).
SEED_RANGE = (-(1 << 63), (1 << 64) - 2)
#: Names of signal types, exporters, samplers and losses (as :mod:`inrkit.plugin` requires).
NAME = re.compile(r"^[a-z][a-z0-9_-]*$")

#: Bytes per number of the safetensors dtypes a model file may use.
FLOAT_DTYPES = {"F16": 2, "BF16": 2, "F32": 4, "F64": 8}
INT_DTYPES = {"I8": 1, "I16": 2, "I32": 4, "I64": 8}
#: Tensors holding integers (the frozen lattice frequencies); every other tensor holds floats.
INTEGER_TENSORS = frozenset({"input.frequencies", "direct.frequencies"})


def _shown(value: Any, limit: int = 60) -> str:
    """``repr`` of a value from the file, on one line and at most ``limit`` characters."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


@dataclass(frozen=True)
class _Where:
    """Builds the errors of one file: ``FILE: KEY must be VALID, got VALUE; the run directory is damaged...``."""

    file: str

    def fail(self, key: str, valid: str, got: Any) -> RunDirError:
        # Keys can come from the file (an unknown model key): shown escaped and short, so the message stays one line.
        key = "".join(c if c.isprintable() else repr(c)[1:-1] for c in key)
        key = key if len(key) <= 80 else key[:77] + "..."
        return RunDirError(f"{self.file}: {key} must be {valid}, got {_shown(got)}; {DAMAGED}")

    def integer(self, key: str, value: Any, low: int = 1, high: int | None = None) -> int:
        if not _is_int(value) or value < low or (high is not None and value > high):
            valid = f"a whole number from {low} to {high}" if high is not None else f"a whole number >= {low}"
            raise self.fail(key, valid, value)
        return value

    def number(self, key: str, value: Any, low: float | None = None, *, strict: bool = True,
               high: float | None = None, strict_high: bool = False) -> float:
        ok = _is_number(value)
        if ok and low is not None:
            ok = value > low if strict else value >= low
        if ok and high is not None:
            ok = value < high if strict_high else value <= high
        if not ok:
            parts = []
            if low is not None:
                parts.append(f"{'>' if strict else '>='} {low:g}")
            if high is not None:
                parts.append(f"{'<' if strict_high else '<='} {high:g}")
            raise self.fail(key, "a finite number" + (f" {' and '.join(parts)}" if parts else ""), value)
        return value

    def string(self, key: str, value: Any, choices: Iterable[str] | None = None) -> str:
        if choices is not None:
            choices = tuple(choices)
            if value not in choices or not isinstance(value, str):
                raise self.fail(key, f"one of {', '.join(repr(c) for c in choices)}", value)
        elif not isinstance(value, str):
            raise self.fail(key, "a string", value)
        return value

    def name(self, key: str, value: Any) -> str:
        if not isinstance(value, str) or not NAME.match(value):
            raise self.fail(key, "a name of lower-case letters, digits, '-' and '_' (like 'image')", value)
        return value

    def mapping(self, key: str, value: Any) -> dict:
        if not isinstance(value, dict):
            raise self.fail(key, "a JSON object", value)
        return value

    def int_list(self, key: str, value: Any, low: int = 1, length: int | None = None,
                 high: int = MAX_INT64) -> list[int]:
        self._list(key, value, length, f"whole numbers >= {low}")
        for index, item in enumerate(value):
            self.integer(f"{key}[{index}]", item, low, high)
        return value

    def number_list(self, key: str, value: Any, low: float | None = None, *, strict: bool = True,
                    length: int | None = None) -> list[float]:
        bound = "" if low is None else f" {'>' if strict else '>='} {low:g}"
        self._list(key, value, length, f"finite numbers{bound}")
        for index, item in enumerate(value):
            self.number(f"{key}[{index}]", item, low, strict=strict)
        return value

    def _list(self, key: str, value: Any, length: int | None, what: str) -> None:
        if not isinstance(value, list):
            count = "a list of" if length is None else f"a list of {length}"
            raise self.fail(key, f"{count} {what}", value)
        if length is not None and len(value) != length:
            raise self.fail(key, f"a list of {length} {what} (one per axis or channel)", value)


def _optional(check: Callable[[_Where, str, Any], Any]) -> Callable[[_Where, str, Any], Any]:
    """``check`` that also accepts ``null``."""
    return lambda where, key, value: None if value is None else check(where, key, value)


def _seed(where: _Where, key: str, value: Any) -> None:
    where.integer(key, value, *SEED_RANGE)


# The model section: every ModelConfig field. Lengths and cross-field rules are in _check_model.
MODEL_CHECKS: dict[str, Callable[[_Where, str, Any], Any]] = {
    "dims": lambda w, k, v: w.integer(k, v),
    "out_channels": lambda w, k, v: w.integer(k, v),
    "input_frequencies": lambda w, k, v: w.integer(k, v),
    "width": lambda w, k, v: w.integer(k, v),
    "hidden_layers": lambda w, k, v: w.integer(k, v, 1, MAX_HIDDEN_LAYERS),
    "architecture": lambda w, k, v: w.string(k, v, ARCHITECTURES),
    "bandlimit": lambda w, k, v: w.int_list(k, v),
    "low_bandlimit": lambda w, k, v: w.int_list(k, v),
    "low_fraction": lambda w, k, v: w.number(k, v, 0.0, strict=False, high=1.0),
    "period": lambda w, k, v: w.number(k, v, 0.0),
    "c_low": lambda w, k, v: w.number(k, v, 0.0),
    "c_high": lambda w, k, v: w.number(k, v, 0.0),
    "omega_g": lambda w, k, v: w.number(k, v, 0.0),
    "bound_mode": lambda w, k, v: w.string(k, v, BOUND_MODES),
    "input_sampling": lambda w, k, v: w.string(k, v, INPUT_SAMPLINGS),
    "skip": lambda w, k, v: w.number(k, v, 0.0, strict=False, high=1.0, strict_high=True),
    "direct": lambda w, k, v: w.integer(k, v, 0, MAX_STORED_NUMBERS),
    "siren_omega0": lambda w, k, v: w.number(k, v, 0.0),
    "siren_hidden_omega0": lambda w, k, v: w.number(k, v, 0.0),
    "finer_first_bias": lambda w, k, v: w.number(k, v, 0.0),
    "ffn_sigma": lambda w, k, v: w.number(k, v, 0.0),
    "hash_levels": lambda w, k, v: w.integer(k, v, 1, MAX_HASH_LEVELS),
    "hash_table_size": lambda w, k, v: w.integer(k, v, 1, MAX_STORED_NUMBERS),
    "hash_features": lambda w, k, v: w.integer(k, v, 1, MAX_HASH_FEATURES),
    "hash_min_resolution": lambda w, k, v: w.integer(k, v, 1, MAX_HASH_RESOLUTION),
    "hash_max_resolution": lambda w, k, v: w.integer(k, v, 1, MAX_HASH_RESOLUTION),
    "output_offset": lambda w, k, v: w.number_list(k, v),
    "output_scale": lambda w, k, v: w.number_list(k, v, 0.0),
    "seed": _seed,
}

# The train section (read by `inrkit prune`): TrainConfig's fields, each optional and possibly null.
TRAIN_CHECKS: dict[str, Callable[[_Where, str, Any], Any]] = {
    name: _optional(check) for name, check in {
        "steps": lambda w, k, v: w.integer(k, v),
        "max_seconds": lambda w, k, v: w.number(k, v, 0.0),
        "target_psnr": lambda w, k, v: w.number(k, v, 0.0),
        "lr": lambda w, k, v: w.number(k, v, 0.0),
        "lr_final": lambda w, k, v: w.number(k, v, 0.0),
        "batch_size": lambda w, k, v: w.integer(k, v),
        "sampler": lambda w, k, v: w.name(k, v),
        "holdout": lambda w, k, v: w.number(k, v, 0.0, strict=False, high=1.0, strict_high=True),
        "seed": _seed,
        "device": lambda w, k, v: w.string(k, v),
        "loss_weight": lambda w, k, v: w.number(k, v, 0.0, strict=False),
        "beta2": lambda w, k, v: w.number(k, v, 0.0, high=1.0, strict_high=True),
        "phase_lr_scale": lambda w, k, v: w.number(k, v, 0.0),
    }.items()
}

#: Keys a (non-empty) signal section must have: what ``Signal.geometry()`` writes, the metadata and the type.
SIGNAL_REQUIRED = ("dims", "channels", "grid_shape", "extent", "nyquist", "data_range", "metadata", "signal_type")
#: Keys it may have: ``kind`` (the signal type's name again), where the signal came from, the exporter.
SIGNAL_OPTIONAL = ("kind", "source", "source_sha256", "provenance", "load_options", "exporter")


def check_run_config(config: Any, file: Path | str, newest_version: int) -> None:
    """Check a whole parsed ``config.json`` (see the module docstring).

    The ``signal`` section may be absent or empty (a model saved by library
    code without a signal); when present it must be complete. ``train`` is
    optional. Keys inrkit does not read are allowed, so that later versions
    of the same run format can add facts.

    Raises
    ------
    RunDirError
        On the first problem, with a one-line message.
    """
    where = _Where(str(file))
    where.mapping("the file", config)
    version = config.get("format_version")
    where.integer("format_version", version)
    if version > newest_version:
        raise RunDirError(f"{Path(file).parent} was written by a newer inrkit (run format {version}, this inrkit reads "
                          f"up to {newest_version}); upgrade inrkit")
    if "model" not in config:
        raise where.fail("the model section", "present (a JSON object of the model's configuration)", None)
    model = where.mapping("model", config["model"])
    _check_model(where, model)
    signal = config.get("signal")
    if signal is not None:
        where.mapping("signal", signal)
        if signal:
            _check_signal(where, signal, model)
    train = config.get("train")
    if train is not None:
        for key, value in where.mapping("train", train).items():
            if key in TRAIN_CHECKS:
                TRAIN_CHECKS[key](where, f"train.{key}", value)
    for key, check in (("loss", _optional(lambda w, k, v: w.name(k, v))),
                       ("inrkit_version", _optional(lambda w, k, v: w.string(k, v))),
                       ("stored_parameters", _optional(lambda w, k, v: w.integer(k, v, 0))),
                       ("environment", _optional(lambda w, k, v: w.mapping(k, v)))):
        if key in config:
            check(where, key, config[key])


def _check_model(where: _Where, model: dict) -> None:
    known = {f.name: f for f in fields(ModelConfig)}
    unknown = sorted(set(model) - set(known))
    if unknown:
        key = unknown[0]
        raise where.fail(f"model.{key}", f"absent (the model keys are {', '.join(sorted(known))})", model[key])
    for name, field in known.items():
        if name not in model:
            if field.default is MISSING and field.default_factory is MISSING:
                raise where.fail(f"model.{name}", "present", None)
            continue
        if name in MODEL_CHECKS:
            MODEL_CHECKS[name](where, f"model.{name}", model[name])
    dims, channels = model["dims"], model["out_channels"]
    architecture = model.get("architecture", "lattice")
    if model.get("direct", 0) and architecture != "lattice":
        raise where.fail("model.direct", f"0 for a {architecture} model (direct lines belong to the lattice model)",
                         model["direct"])
    if architecture in LATTICE_ARCHITECTURES:
        for name in ("bandlimit", "low_bandlimit"):
            where.int_list(f"model.{name}", model.get(name, []), length=dims)
    if architecture == "hashgrid":
        if dims > MAX_HASH_DIMS:
            raise where.fail("model.dims", f"at most {MAX_HASH_DIMS} for a hashgrid model", dims)
        low, high = model.get("hash_min_resolution", 16), model.get("hash_max_resolution", 512)
        if high < low:
            raise where.fail("model.hash_max_resolution", f"at least model.hash_min_resolution ({low})", high)
    for name in ("output_offset", "output_scale"):
        value = model.get(name, [])
        if value:
            where.number_list(f"model.{name}", value, length=channels)


def _check_signal(where: _Where, signal: dict, model: dict) -> None:
    missing = [key for key in SIGNAL_REQUIRED if key not in signal]
    if missing:
        raise where.fail(f"signal.{missing[0]}", "present (a run's signal section records "
                         f"{', '.join(SIGNAL_REQUIRED)})", None)
    where.name("signal.signal_type", signal["signal_type"])
    # ``kind`` is not compared with ``signal_type``: hook 1.0 loaders chose it themselves (it may differ from the
    # plugin's name), and such runs must keep loading. A relabelled run is caught by the dims/channels checks
    # above and by the exporter of the type it claims.
    dims = where.integer("signal.dims", signal["dims"])
    channels = where.integer("signal.channels", signal["channels"])
    if dims != model["dims"]:
        raise where.fail("signal.dims", f"the model's input dimension {model['dims']} (model.dims)", dims)
    if channels != model["out_channels"]:
        raise where.fail("signal.channels", f"the model's {model['out_channels']} outputs (model.out_channels)",
                         channels)
    shape = signal["grid_shape"]
    if shape is not None:
        where.int_list("signal.grid_shape", shape, length=dims)
        if math.prod(shape) > MAX_GRID_SAMPLES:
            raise where.fail("signal.grid_shape", f"a grid of at most {MAX_GRID_SAMPLES:,} samples", shape)
        if signal["extent"] is None:
            raise where.fail("signal.extent", f"a list of {dims} finite numbers >= 0 for a gridded signal", None)
    if signal["extent"] is not None:
        where.number_list("signal.extent", signal["extent"], 0.0, strict=False, length=dims)
    where.number_list("signal.nyquist", signal["nyquist"], 0.0, length=dims)
    where.number("signal.data_range", signal["data_range"], 0.0)
    where.mapping("signal.metadata", signal["metadata"])
    for key in ("source", "source_sha256"):
        if signal.get(key) is not None:
            where.string(f"signal.{key}", signal[key])
    if signal.get("provenance") is not None:
        for name, digest in where.mapping("signal.provenance", signal["provenance"]).items():
            where.string(f"signal.provenance[{_shown(name, 40)}]", digest)
    if signal.get("load_options") is not None:
        where.mapping("signal.load_options", signal["load_options"])
    if signal.get("exporter") is not None:
        where.name("signal.exporter", signal["exporter"])


__all__ = [
    "DAMAGED", "MAX_CONFIG_BYTES", "MAX_GRID_SAMPLES", "MAX_HEADER_BYTES", "MAX_HIDDEN_LAYERS", "MAX_INT64",
    "MAX_STORED_NUMBERS", "MODEL_CHECKS", "SIGNAL_OPTIONAL", "SIGNAL_REQUIRED", "TRAIN_CHECKS", "check_run_config",
]
