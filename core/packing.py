"""``.inr``: one self-contained, compressed model file.

Layout (all integers little-endian)::

    magic      8 bytes   b"\\x89INRKIT\\n"
    version    u16       PACK_VERSION (a newer one is refused before anything else is read)
    lengths    3 x u32   header, coded and raw section lengths
    header     deflate-compressed JSON (raw deflate, zlib, preset dictionary HEADER_DICTIONARY): format, format_version, the run's model and
               signal sections (architecture, geometry, output map), loss, and per tensor its bit depth
               and granularity, the coder and each coded stream's model parameters
    coded      entropy-coded integers (inrkit.entropy): quantised weights, then the lattice frequencies
               one coordinate column at a time (a direct line's first column as differences: DELTA_TENSORS)
    raw        each quantised tensor's steps (float32, or float16 per row), and the tensors kept exact (float32:
               the output map)
    checksum   8 bytes   the first 8 bytes of the SHA-256 of everything before it

Loading parses JSON and numbers only (no code runs, no pickle), checks the
checksum, the lengths, the version, the header (the run schema of
:mod:`inrkit.runschema` and the tensor shapes of :mod:`inrkit.tensorcheck`)
before decoding, and gives the model the exact numbers
:func:`quantised_state` computes (bit for bit).
"""

from __future__ import annotations

import hashlib
import json
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from inrkit import runschema
from inrkit.entropy import CODERS, Stream, decode, encode
from inrkit.errors import RunDirError
from inrkit.quantise import (
    EXACT_BITS,
    GRANULARITIES,
    MAX_BITS,
    MIN_BITS,
    dequantise,
    quantise,
)

MAGIC = b"\x89INRKIT\n"
PACK_FORMAT = "inrkit-packed"
PACK_VERSION = 1
SUFFIX = ".inr"
_PREAMBLE = struct.Struct("<8sHIII")
_CHECKSUM_BYTES = 8
#: Largest .inr file read (bytes): a model of inrkit's largest size at 16 bits, with room.
MAX_PACKED_BYTES = 256 * 1024 * 1024
#: Preset dictionary of the header's deflate stream (format version 1): the keys and values most headers share,
#: so that a small model's header costs little. Part of the format: changing it needs a new PACK_VERSION.
HEADER_DICTIONARY = (
    b'{"low":-1,"high":1},{"low":0,"high":0,"family":"laplace","mean":0.0,"scale":1.0},{"low":-127,"high":127,'
    b'"family":"gaussian","mean":0.0,"scale":1.0}],"sample_rate":16000,"channels":1,"frames":32000,"format":"WAV",'
    b'"subtype":"PCM_16","duration_seconds":2.0},"signal_type":"audio","exporter":"wav"},"transform":'
    b'{"format":"inrkit-packed","format_version":1,"model":{"dims":2,"out_channels":3,"input_frequencies":1,'
    b'"width":1,"hidden_layers":2,"architecture":"lattice","bandlimit":[1,1],"low_bandlimit":[1,1],'
    b'"bound_mode":"tanh","output_offset":[0.0,0.0,0.0],"output_scale":[1.0,1.0,1.0]},"signal":{"kind":"image",'
    b'"dims":2,"channels":3,"grid_shape":[256,256],"extent":[1.0,1.0],"nyquist":[63.75,63.75],"data_range":2.0,'
    b'"metadata":{"mode":"RGB","bit_depth":8,"peak":255,"source_mode":"RGB","height":256,"width":256},'
    b'"signal_type":"image","exporter":"png"},"loss":"mse","inrkit_version":"0.1.0","coder":"range","tensors":'
    b'[{"name":"input.phases","bits":8,"granularity":"tensor","streams":1},{"name":"input.frequencies",'
    b'"bits":"integer","streams":2},{"name":"hidden.0.bias","bits":8,"granularity":"tensor","streams":1},'
    b'{"name":"hidden.0.weight","bits":8,"granularity":"tensor","streams":1},{"name":"head.weight","bits":8,'
    b'"granularity":"tensor","streams":1},{"name":"head.bias","bits":8,"granularity":"tensor","streams":1},'
    b'{"name":"output.offset","bits":32},{"name":"output.scale","bits":32}],"streams":[{"low":-127,"high":127,'
    b'"family":"laplace","mean":0.0,"scale":'
)
#: Largest decompressed header.
MAX_HEADER_JSON = 16 * 1024 * 1024
#: Tensors kept exact (float32) whatever the bit depth: a few numbers that set the signal's units.
EXACT_TENSORS = ("output.offset", "output.scale")
#: Integer tensors (the run schema's list), coded losslessly column by column.
INTEGER_TENSORS = runschema.INTEGER_TENSORS
#: Integer tensors whose first column is stored as differences from the row before (the first row: from 0). The
#: direct lines come sorted by it (:func:`inrkit.direct.strongest_bins`), so the differences are small: 1,333 lines
#: of a 2 s clip take about 6 bits each instead of 15.
DELTA_TENSORS = ("direct.frequencies",)
#: The run sections a packed file carries (the run's training settings and metrics stay in the run directory).
CARRIED = ("model", "signal", "loss", "inrkit_version")
#: Signal keys left out of a packed file (where the signal came from; see :func:`carried_sections`).
DROPPED_SIGNAL_KEYS = ("source", "source_sha256", "provenance")


@dataclass(frozen=True)
class TensorPlan:
    """How one tensor is stored: ``bits`` (2..16, or 32 for exact float32) and the granularity.

    ``half``: quantised to the levels of half a bit fewer (:func:`~inrkit.quantise.largest_level`), and stored
    at ``bits``; a file's reader needs nothing but the levels and the steps, so this is no new format.
    """

    bits: int
    granularity: str = "tensor"
    half: bool = False

    @property
    def depth(self) -> float:
        """The effective bit depth: ``bits``, or ``bits - 0.5`` with ``half``."""
        return self.bits - 0.5 if self.half else self.bits

    def shifted(self, half_bits: int) -> TensorPlan | None:
        """This plan ``half_bits`` half-bits deeper (negative: shallower); None outside 2..16 bits."""
        doubled = 2 * self.bits - self.half + half_bits
        if not 2 * MIN_BITS <= doubled <= 2 * MAX_BITS:
            return None
        return TensorPlan((doubled + 1) // 2, self.granularity, bool(doubled % 2))


def default_plan(state: dict[str, torch.Tensor], bits: int | dict[str, int], granularity: str = "tensor"
                 ) -> dict[str, TensorPlan]:
    """A plan for every float tensor of ``state``: one bit depth for all, or one per name."""
    plan = {}
    for name, tensor in state.items():
        if name in INTEGER_TENSORS:
            continue
        if name in EXACT_TENSORS:
            plan[name] = TensorPlan(EXACT_BITS)
        else:
            chosen = bits[name] if isinstance(bits, dict) else bits
            plan[name] = TensorPlan(chosen, granularity if tensor.ndim >= 2 else "tensor")
    return plan


def quantised_state(state: dict[str, torch.Tensor], plan: dict[str, TensorPlan]) -> dict[str, torch.Tensor]:
    """The state dict a packed file with this plan gives back (quantised then dequantised, float32)."""
    out = {}
    for name, tensor in state.items():
        entry = plan.get(name)
        if entry is None or entry.bits == EXACT_BITS:
            out[name] = tensor.detach().cpu().clone()
            continue
        q = quantise(tensor.detach().cpu().float().numpy(), entry.bits, entry.granularity, entry.half)
        out[name] = torch.from_numpy(dequantise(q.levels, q.steps, q.shape))
    return out


def pack(state: dict[str, torch.Tensor], sections: dict[str, Any], plan: dict[str, TensorPlan],
         coder: str = "auto") -> bytes:
    """The bytes of an ``.inr`` file holding ``state`` quantised by ``plan``, with the run ``sections``.

    ``coder``: one of :data:`inrkit.entropy.CODERS`, or ``auto``, the one giving the smallest file.
    """
    streams, raw, tensors = [], [], []
    for name, tensor in state.items():
        values = tensor.detach().cpu()
        if name in INTEGER_TENSORS:
            columns = values.to(torch.int64).numpy().reshape(values.shape[0], -1)
            if name in DELTA_TENSORS:
                columns = np.concatenate([np.diff(columns[:, :1], axis=0, prepend=0), columns[:, 1:]], axis=1)
            streams += [Stream.of(columns[:, j]) for j in range(columns.shape[1])]
            tensors.append({"name": name, "bits": "integer", "streams": columns.shape[1]})
            continue
        entry = plan[name]
        if entry.bits == EXACT_BITS:
            raw.append(values.float().numpy().astype("<f4").tobytes())
            tensors.append({"name": name, "bits": EXACT_BITS})
            continue
        q = quantise(values.float().numpy(), entry.bits, entry.granularity, entry.half)
        streams.append(Stream.of(q.levels))
        raw.append(q.steps.astype("<" + q.step_dtype).tobytes())
        tensors.append({"name": name, "bits": entry.bits, "granularity": entry.granularity, "streams": 1}
                       | ({"steps": q.step_dtype} if q.step_dtype != "f4" else {}))
    if coder == "auto":  # the smallest of the coders, measured on this model
        trials = [(coder_name, *encode(streams, coder_name)) for coder_name in CODERS]
        coder, coded, params = min(trials, key=lambda trial: len(trial[1]))
    else:
        coded, params = encode(streams, coder)
    header = {"format": PACK_FORMAT, "format_version": PACK_VERSION, **carried_sections(sections),
              "coder": coder, "tensors": tensors, "streams": params}
    text = json.dumps(header, separators=(",", ":"), allow_nan=False).encode()
    squeezer = zlib.compressobj(9, zlib.DEFLATED, -15, 9, zdict=HEADER_DICTIONARY)
    compressed = squeezer.compress(text) + squeezer.flush()
    raw_bytes = b"".join(raw)
    body = _PREAMBLE.pack(MAGIC, PACK_VERSION, len(compressed), len(coded), len(raw_bytes)) + compressed + coded + raw_bytes
    return body + hashlib.sha256(body).digest()[:_CHECKSUM_BYTES]


def carried_sections(sections: dict[str, Any]) -> dict[str, Any]:
    """The run sections an ``.inr`` header carries, made small.

    Model keys at their :class:`~inrkit.config.ModelConfig` defaults are left out (loading fills them in);
    the signal section loses where the signal came from (``source``, ``source_sha256``, ``provenance``):
    a packed file is given to others, and commands that need the signal take ``--input``.
    """
    from dataclasses import MISSING, fields

    from inrkit.config import ModelConfig

    defaults = {f.name: f.default for f in fields(ModelConfig) if f.default is not MISSING}
    model = {key: value for key, value in sections["model"].items()
             if key not in defaults or defaults[key] != value or key == "architecture"}
    signal = {key: value for key, value in (sections.get("signal") or {}).items() if key not in DROPPED_SIGNAL_KEYS}
    carried = {key: sections[key] for key in CARRIED if key in sections}
    return {**carried, "model": model, "signal": signal}


def is_packed(path: Path) -> bool:
    """True when ``path`` is a file starting with the ``.inr`` magic."""
    try:
        with open(path, "rb") as handle:
            return handle.read(len(MAGIC)) == MAGIC
    except OSError:
        return False


def read_packed(path: Path) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """The header and the tensors (dequantised, bit for bit as packed) of an ``.inr`` file.

    Raises
    ------
    RunDirError
        One line for a missing, non-``.inr``, truncated, tampered, newer-version or inconsistent file.
    """
    path = Path(path)
    try:
        size = path.stat().st_size
        if size > MAX_PACKED_BYTES:
            raise RunDirError(f"{path} is {size:,} bytes, more than the {MAX_PACKED_BYTES:,} an .inr file may "
                              "have; it is not a file written by `inrkit pack`")
        data = path.read_bytes()
    except OSError as error:
        raise RunDirError(f"cannot read {path} ({error.strerror or error}); check the path and its permissions") from None
    return unpack(data, str(path))


def unpack(data: bytes, where: str = "the .inr file") -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """:func:`read_packed` on bytes in memory."""
    redo = "pack the run again with `inrkit pack`"
    if len(data) < len(MAGIC) or data[:len(MAGIC)] != MAGIC:
        raise RunDirError(f"{where} is not an .inr file (it does not start with inrkit's packed-model signature); "
                          "pass a run directory or a file written by `inrkit pack`")
    if len(data) < _PREAMBLE.size:
        raise RunDirError(f"{where} is truncated ({len(data)} bytes, shorter than the {_PREAMBLE.size}-byte "
                          f"preamble); {redo}")
    _, version, header_len, coded_len, raw_len = _PREAMBLE.unpack_from(data)
    if version != PACK_VERSION:
        newer = "a newer inrkit; upgrade inrkit" if version > PACK_VERSION else f"an unknown format version; {redo}"
        raise RunDirError(f"{where} is .inr format version {version}, this inrkit reads version {PACK_VERSION}: "
                          f"written by {newer}")
    expected = _PREAMBLE.size + header_len + coded_len + raw_len + _CHECKSUM_BYTES
    if len(data) < expected:
        raise RunDirError(f"{where} is truncated ({len(data):,} bytes, its preamble says {expected:,}); {redo}")
    if len(data) > expected:
        raise RunDirError(f"{where} has {len(data) - expected:,} bytes after its end; it was modified; {redo}")
    body, checksum = data[:-_CHECKSUM_BYTES], data[-_CHECKSUM_BYTES:]
    if hashlib.sha256(body).digest()[:_CHECKSUM_BYTES] != checksum:
        raise RunDirError(f"{where} is damaged: its checksum does not match its contents (corrupted or modified); "
                          f"{redo}")
    start = _PREAMBLE.size
    header = _header(body[start:start + header_len], where)
    coded = body[start + header_len:start + header_len + coded_len]
    raw = body[start + header_len + coded_len:]
    return header, _tensors(header, coded, raw, where)


def _damaged(where: str, problem: str) -> RunDirError:
    return RunDirError(f"{where} is not a valid .inr file ({problem}); pack the run again with `inrkit pack`")


def _header(compressed: bytes, where: str) -> dict[str, Any]:
    from inrkit.checkpoint import RUN_FORMAT_VERSION
    from inrkit.runschema import check_run_config

    try:
        inflater = zlib.decompressobj(-15, zdict=HEADER_DICTIONARY)
        text = inflater.decompress(compressed, MAX_HEADER_JSON)
        if inflater.unconsumed_tail:
            raise _damaged(where, f"its header is larger than {MAX_HEADER_JSON:,} bytes")
        header = json.loads(text)
    except (zlib.error, ValueError, RecursionError) as error:
        raise _damaged(where, f"unreadable header: {str(error)[:120]}") from None
    if not isinstance(header, dict) or header.get("format") != PACK_FORMAT:
        raise _damaged(where, f"its header is not an {PACK_FORMAT} header")
    check_run_config({**header, "format_version": RUN_FORMAT_VERSION}, where, RUN_FORMAT_VERSION)
    if header.get("coder") not in CODERS:
        raise _damaged(where, f"unknown coder {str(header.get('coder'))[:40]!r}")
    if not isinstance(header.get("tensors"), list) or not isinstance(header.get("streams"), list):
        raise _damaged(where, "its header has no tensor list")
    return header


def _tensors(header: dict[str, Any], coded: bytes, raw: bytes, where: str) -> dict[str, torch.Tensor]:
    from inrkit.tensorcheck import expected_tensors

    shapes = expected_tensors(header["model"])
    most = runschema.MAX_STORED_NUMBERS
    if sum(int(np.prod(shape)) for shape in shapes.values()) > most:  # before anything is decoded
        raise _damaged(where, f"its model section asks for more than {most:,} stored numbers")
    entries = header["tensors"]
    names = [e.get("name") if isinstance(e, dict) else None for e in entries]
    if sorted(map(str, names)) != sorted(shapes):
        raise _damaged(where, "its tensors are not the ones its model section needs")
    counts: list[int] = []
    for entry in entries:
        shape, bits = shapes[entry["name"]], entry.get("bits")
        if entry["name"] in INTEGER_TENSORS:
            if bits != "integer" or entry.get("streams") != shape[1]:
                raise _damaged(where, f"tensor {entry['name']} is not stored as integer columns")
            counts += [shape[0]] * shape[1]
        elif bits == EXACT_BITS:
            if entry["name"] not in EXACT_TENSORS:
                raise _damaged(where, f"tensor {entry['name']} cannot be stored exactly")
        elif isinstance(bits, int) and not isinstance(bits, bool) and MIN_BITS <= bits <= MAX_BITS \
                and entry.get("granularity") in GRANULARITIES and entry["name"] not in EXACT_TENSORS:
            counts.append(int(np.prod(shape)))
        else:
            raise _damaged(where, f"tensor {entry['name']} has bit depth {str(bits)[:20]}, valid: {MIN_BITS}..{MAX_BITS}")
    streams = header["streams"]
    if len(streams) != len(counts) or not all(_valid_stream(s) for s in streams):
        raise _damaged(where, "its coded streams do not match its tensors")
    try:
        decoded = decode(coded, streams, counts, header["coder"])
    except Exception as error:  # noqa: BLE001 - the coders' own exception types; the checksum passed
        raise _damaged(where, f"the coded weights do not decode: {type(error).__name__}") from None
    return _assemble(entries, shapes, decoded, raw, where)


def _valid_stream(entry: Any) -> bool:
    if not isinstance(entry, dict):
        return False
    low, high = entry.get("low"), entry.get("high")
    if not all(isinstance(v, int) and not isinstance(v, bool) and abs(v) < 1 << 31 for v in (low, high)):
        return False
    if high <= low:
        return True
    mean, scale = entry.get("mean"), entry.get("scale")
    numbers = all(isinstance(v, (int, float)) and not isinstance(v, bool) and np.isfinite(v) for v in (mean, scale))
    return entry.get("family") in ("laplace", "gaussian", None) and (entry.get("family") is None or (numbers and scale > 0))


def _assemble(entries: list[dict], shapes: dict[str, tuple[int, ...]], decoded: list[np.ndarray], raw: bytes,
              where: str) -> dict[str, torch.Tensor]:
    out, stream, offset = {}, 0, 0

    def floats(count: int, dtype: str = "f4") -> np.ndarray:
        nonlocal offset
        if dtype not in ("f4", "f2"):
            raise _damaged(where, f"unknown step type {str(dtype)[:10]!r}")
        size = count * (4 if dtype == "f4" else 2)
        if offset + size > len(raw):
            raise _damaged(where, "its raw section is too short")
        values = np.frombuffer(raw, dtype="<" + dtype, count=count, offset=offset).astype(np.float32)
        offset += size
        return values

    for entry in entries:
        name, shape, bits = entry["name"], shapes[entry["name"]], entry["bits"]
        if bits == "integer":
            columns = np.stack(decoded[stream:stream + shape[1]], axis=1).astype(np.int64)
            stream += shape[1]
            if name in DELTA_TENSORS:
                columns[:, 0] = np.cumsum(columns[:, 0])
            if np.abs(columns).max(initial=0) >= 1 << 31:
                raise _damaged(where, f"tensor {name} has integers outside 32 bits")
            out[name] = torch.from_numpy(columns.astype(np.int32)).reshape(shape)
        elif bits == EXACT_BITS:
            out[name] = torch.from_numpy(floats(int(np.prod(shape))).reshape(shape).copy())
        else:
            rows = shape[0] if entry["granularity"] == "channel" and len(shape) >= 2 else 1
            steps = floats(rows, entry.get("steps", "f4"))
            levels = decoded[stream]
            stream += 1
            largest = (1 << (bits - 1)) - 1
            if levels.size and np.abs(levels).max() > largest or not np.all(np.isfinite(steps)):
                raise _damaged(where, f"tensor {name} has levels or steps outside its {bits}-bit range")
            out[name] = torch.from_numpy(dequantise(levels, steps, shape).copy())
    if offset != len(raw):
        raise _damaged(where, "its raw section has bytes no tensor uses")
    return out


def load_packed_run(path: Path):
    """An ``.inr`` file as the :class:`~inrkit.checkpoint.Run` its run directory would give (model dequantised)."""
    from inrkit.checkpoint import (
        RUN_FORMAT,
        RUN_FORMAT_VERSION,
        Run,
        _coordinates_check,
        model_from_tensors,
    )
    from inrkit.config import ModelConfig
    from inrkit.errors import ConfigError

    path = Path(path)
    header, tensors = read_packed(path)
    try:
        model_config = ModelConfig.from_dict(header["model"])
    except (KeyError, TypeError, ValueError, ConfigError) as error:
        raise _damaged(str(path), f"invalid model section: {str(error)[:120]}") from None
    model = model_from_tensors(model_config, tensors)
    model.eval()
    signal = header.get("signal") or {}
    if signal:
        model.register_forward_pre_hook(_coordinates_check(path, model_config.dims, signal["signal_type"]))
    packed = {key: header[key] for key in ("coder", "tensors")}
    config = {"format": RUN_FORMAT, "format_version": RUN_FORMAT_VERSION,
              **{key: header[key] for key in CARRIED if key in header}, "packed": packed}
    return Run(path=path, model=model, model_config=model_config, signal=signal, config=config)


__all__ = ["EXACT_TENSORS", "MAGIC", "PACK_FORMAT", "PACK_VERSION", "SUFFIX", "TensorPlan", "default_plan",
           "is_packed", "load_packed_run", "pack", "quantised_state", "read_packed", "unpack"]
