"""The weights file of a run, checked before anything is built from it.

:func:`read_safetensors_header` reads the header of ``model.safetensors``
(never its data) and checks that it is well formed and that the file is as
long as the header says; :func:`check_tensors` compares those tensors with
the shapes the model configuration implies (:func:`expected_tensors`,
computed without building the model), so that a config claiming a huge model
is refused before anything is allocated. Failures are one-line
:class:`~inrkit.errors.RunDirError` s.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping
from dataclasses import MISSING, dataclass, fields
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from inrkit.config import ModelConfig
from inrkit.errors import RunDirError
from inrkit.sizing import hash_table_rows

from inrkit.runschema import (
    DAMAGED,
    FLOAT_DTYPES,
    INT_DTYPES,
    INTEGER_TENSORS,
    MAX_HEADER_BYTES,
    MAX_STORED_NUMBERS,
    _is_int,
    _shown,
)


def _model_view(config: ModelConfig | Mapping[str, Any]) -> Any:
    """``config``, or a checked model section read like a ModelConfig (defaults filled in, nothing allocated)."""
    if not isinstance(config, Mapping):
        return config
    defaults = {f.name: f.default for f in fields(ModelConfig) if f.default is not MISSING}
    return SimpleNamespace(**{**defaults, **config})


def expected_tensors(config: ModelConfig | Mapping[str, Any]) -> dict[str, tuple[int, ...]]:
    """Name and shape of every tensor a model of ``config`` stores, without building it.

    ``config`` is a :class:`~inrkit.config.ModelConfig` or a model section
    already checked by :func:`check_run_config`. The result matches
    ``build_model(config).state_dict()`` (:class:`~inrkit.model.SinusoidalINR`,
    :class:`~inrkit.model.Siren` and the peers of :mod:`inrkit.peers`).
    """
    config = _model_view(config)
    d, c, m, n = config.dims, config.out_channels, config.input_frequencies, config.width
    shapes: dict[str, tuple[int, ...]] = {}
    if config.architecture in ("siren", "finer"):
        for index in range(config.hidden_layers + 1):
            shapes[f"layers.{index}.weight"] = (n, d if index == 0 else n)
            shapes[f"layers.{index}.bias"] = (n,)
    elif config.architecture in ("ffn", "hashgrid"):
        if config.architecture == "ffn":
            shapes["matrix"] = (m, d)
            encoded = 2 * m
        else:
            rows = hash_table_rows(d, config.hash_levels, config.hash_table_size, config.hash_min_resolution,
                                   config.hash_max_resolution)
            shapes["encoding.table"] = (sum(rows), config.hash_features)
            encoded = config.hash_levels * config.hash_features
        for index in range(config.hidden_layers):
            shapes[f"layers.{index}.weight"] = (n, encoded if index == 0 else n)
            shapes[f"layers.{index}.bias"] = (n,)
    else:
        shapes["input.frequencies"] = (m, d)
        shapes["input.phases"] = (m,)
        for index in range(config.hidden_layers):
            fan_in = m if index == 0 else n
            shapes[f"hidden.{index}.bias"] = (n,)
            if config.bound_mode == "tanh":
                shapes[f"hidden.{index}.raw_weight"] = (n, fan_in)
                shapes[f"hidden.{index}.column_scale"] = (fan_in,)
            else:
                shapes[f"hidden.{index}.weight"] = (n, fan_in)
    shapes["head.weight"] = (c, n)
    shapes["head.bias"] = (c,)
    shapes["output.offset"] = (c,)
    shapes["output.scale"] = (c,)
    if getattr(config, "direct", 0):
        shapes["direct.frequencies"] = (config.direct, d)
        shapes["direct.weight"] = (c, 2 * config.direct)
    return shapes


@dataclass(frozen=True)
class TensorEntry:
    """One tensor of a safetensors header: its dtype name (``F32``...), shape and byte range in the data."""

    dtype: str
    shape: tuple[int, ...]
    begin: int
    end: int


def read_safetensors_header(path: Path) -> dict[str, TensorEntry]:
    """The tensors a safetensors file holds, from its header alone (no tensor data is read).

    Checks that the header is well formed, that every tensor's byte range
    fits its dtype and shape, that the ranges tile the data without gaps or
    overlaps, and that the file is exactly as long as the header says.

    Raises
    ------
    RunDirError
        If any of that fails (damaged, truncated or forged file).
    """
    path = Path(path)

    def fail(problem: str) -> RunDirError:
        return RunDirError(f"{path} is not a readable safetensors file ({problem}); {DAMAGED}")

    size = path.stat().st_size
    with open(path, "rb") as handle:
        prefix = handle.read(8)
        if len(prefix) < 8:
            raise fail(f"{size} bytes, shorter than the 8-byte header length")
        length = int.from_bytes(prefix, "little")
        if length > MAX_HEADER_BYTES:
            raise fail(f"its header claims {length:,} bytes, more than the {MAX_HEADER_BYTES:,} a model's header "
                       "may have")
        if 8 + length > size:
            raise RunDirError(f"{path} is truncated: its header claims {length:,} bytes but the file holds {size:,} "
                              f"bytes in all; {DAMAGED}")
        raw = handle.read(length)
    try:
        header = json.loads(raw)
    except (ValueError, RecursionError) as error:
        raise fail(f"its header is not valid JSON: {_shown(str(error), 80)}") from None
    if not isinstance(header, dict) or not header:
        raise fail(f"its header is {_shown(header)}, not a table of tensors")
    entries: dict[str, TensorEntry] = {}
    for name, entry in header.items():
        if name == "__metadata__":
            if entry is not None and not isinstance(entry, dict):
                raise fail(f"its __metadata__ is {_shown(entry)}, not a JSON object")
            continue
        entries[name] = _entry(name, entry, fail)
    position = 0
    for name, entry in sorted(entries.items(), key=lambda item: (item[1].begin, item[1].end)):
        if entry.begin != position:
            raise fail(f"tensor {_shown(name)} starts at byte {entry.begin:,} of the data, expected {position:,}")
        position = entry.end
    data = size - 8 - length
    if position > data:
        raise RunDirError(f"{path} is truncated: its header describes {position:,} bytes of tensors but the file holds "
                          f"{data:,}; {DAMAGED}")
    if position < data:
        raise fail(f"{data - position:,} bytes after the last tensor")
    return entries


def _entry(name: str, entry: Any, fail: Callable[[str], RunDirError]) -> TensorEntry:
    what = f"tensor {_shown(name)}"
    if not isinstance(entry, dict):
        raise fail(f"{what} is described by {_shown(entry)}, not a JSON object")
    dtype, shape, offsets = entry.get("dtype"), entry.get("shape"), entry.get("data_offsets")
    sizes = {**FLOAT_DTYPES, **INT_DTYPES}
    if not isinstance(dtype, str) or dtype not in sizes:
        raise fail(f"{what} has dtype {_shown(dtype)}; a model stores {', '.join(sizes)}")
    if not isinstance(shape, list) or not all(_is_int(n) and n >= 0 for n in shape):
        raise fail(f"{what} has shape {_shown(shape)}, not a list of whole numbers >= 0")
    if (not isinstance(offsets, list) or len(offsets) != 2 or not all(_is_int(n) for n in offsets)
            or not 0 <= offsets[0] <= offsets[1]):
        raise fail(f"{what} has data_offsets {_shown(offsets)}, not [begin, end] with 0 <= begin <= end")
    needed = math.prod(shape) * sizes[dtype]
    if offsets[1] - offsets[0] != needed:
        raise fail(f"{what} of shape {shape} and dtype {dtype} needs {needed:,} bytes, its data_offsets "
                   f"span {offsets[1] - offsets[0]:,}")
    return TensorEntry(dtype, tuple(shape), offsets[0], offsets[1])


def check_tensors(found: Mapping[str, tuple[tuple[int, ...], str]], config: ModelConfig | Mapping[str, Any],
                  path: Path | str) -> None:
    """Check tensors (name -> (shape, safetensors dtype)) against the shapes ``config`` implies.

    ``config`` is as in :func:`expected_tensors`; a model section can be
    checked before a :class:`~inrkit.config.ModelConfig` is made of it.

    Raises
    ------
    RunDirError
        If a tensor is missing, unexpected, of another shape or of a non-number
        dtype, or if the model stores more than :data:`MAX_STORED_NUMBERS`.
    """
    config = _model_view(config)
    expected = expected_tensors(config)
    missing = [name for name in expected if name not in found]
    unexpected = sorted(name for name in found if name not in expected)
    if missing or unexpected:
        what = []
        if missing:
            what.append(f"no tensor {', '.join(missing[:3])}{', ...' if len(missing) > 3 else ''}")
        if unexpected:
            shown = ", ".join(_shown(name, 40) for name in unexpected[:3])
            what.append(f"unexpected tensor {shown}{', ...' if len(unexpected) > 3 else ''}")
        kind = ("an inrkit lattice model" if config.architecture in ("lattice", "uniform")
                else f"an inrkit {config.architecture} model")
        raise RunDirError(f"{path} does not match config.json ({'; '.join(what)} for {kind} with "
                          f"{config.hidden_layers} hidden layer(s)); {DAMAGED}")
    for name, shape in expected.items():
        have, dtype = found[name]
        if tuple(have) != shape:
            raise RunDirError(f"{path} does not match config.json (tensor {name} has shape {list(have)}, the model "
                              f"section needs {list(shape)}); {DAMAGED}")
        allowed = INT_DTYPES if name in INTEGER_TENSORS else FLOAT_DTYPES
        if dtype not in allowed:
            raise RunDirError(f"{path}: tensor {name} holds {dtype} values, it must hold {'/'.join(allowed)}; "
                              f"{DAMAGED}")
    numbers = sum(math.prod(shape) for shape in expected.values())
    if numbers > MAX_STORED_NUMBERS:
        raise RunDirError(f"{path} holds a model of {numbers:,} stored numbers, more than the "
                          f"{MAX_STORED_NUMBERS:,} inrkit loads; the run directory is damaged or was edited by hand")


__all__ = ["TensorEntry", "check_tensors", "expected_tensors", "read_safetensors_header"]
