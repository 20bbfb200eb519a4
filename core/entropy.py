"""Entropy coding of integer streams (quantised weights, lattice frequencies) with well-kept coders.

Three coders, chosen by measurement (``benchmarks/results/rd_coders.md``):

``range``
    constriction's range coder (:mod:`constriction.stream.queue`) with a
    parametric model per stream: a quantised Laplace or Gaussian
    distribution over the stream's integer range, whichever codes it in
    fewer bits; its mean and scale go into the file's header. All streams
    share one coder, so there is a single 32-bit word of padding.
``zstd``, ``lzma``
    the streams as little-endian bytes (offset by their minimum), compressed
    by zstandard (level 22) or the standard library's lzma (raw, preset 9e).

Decoding needs only the header's numbers: nothing is learned or executed.
"""

from __future__ import annotations

import lzma
from dataclasses import dataclass

import numpy as np
from inrkit.errors import ConfigError

CODERS = ("range", "zstd", "lzma")
#: Families of the range coder's per-stream model.
FAMILIES = ("laplace", "gaussian")
#: Smallest scale given to the range coder's models (a constant stream is coded without the coder).
MIN_SCALE = 0.05
_LZMA_FILTERS = [{"id": lzma.FILTER_LZMA2, "preset": 9 | lzma.PRESET_EXTREME}]


@dataclass(frozen=True)
class Stream:
    """Integers ``symbols`` (int32) known to lie in ``[low, high]``."""

    symbols: np.ndarray
    low: int
    high: int

    @classmethod
    def of(cls, symbols: np.ndarray) -> Stream:
        symbols = np.ascontiguousarray(symbols, dtype=np.int32).reshape(-1)
        if not symbols.size:
            return cls(symbols, 0, 0)
        return cls(symbols, int(symbols.min()), int(symbols.max()))


def _constriction():
    """constriction (its submodules are attributes, not importable modules); a one-line error if missing."""
    try:
        import constriction
    except ImportError:
        raise ConfigError("the range coder needs the constriction package: pip install constriction "
                          "(or choose --coder zstd or lzma)") from None
    return constriction


def _model(family: str, low: int, high: int):
    models = _constriction().stream.model
    return (models.QuantizedLaplace if family == "laplace" else models.QuantizedGaussian)(low, high)


def _fit(stream: Stream, family: str) -> tuple[float, float]:
    values = stream.symbols.astype(np.float64)
    mean = float(np.median(values)) if family == "laplace" else float(values.mean())
    spread = np.abs(values - mean).mean() if family == "laplace" else values.std()
    # Three significant digits: the model only has to be the same on both sides, and the header stays short.
    return float(f"{mean:.3g}"), float(f"{max(float(spread), MIN_SCALE):.3g}")


def _encode_range(encoder, stream: Stream, family: str, mean: float, scale: float) -> None:
    count = stream.symbols.size
    encoder.encode(stream.symbols, _model(family, stream.low, stream.high),
                   np.full(count, mean, np.float64), np.full(count, scale, np.float64))


def _range_parameters(stream: Stream) -> dict:
    """The family (with its mean and scale) that codes ``stream`` in the fewest bits."""
    best = None
    for family in FAMILIES:
        mean, scale = _fit(stream, family)
        trial = _constriction().stream.queue.RangeEncoder()
        _encode_range(trial, stream, family, mean, scale)
        if best is None or trial.num_bits() < best[0]:
            best = (trial.num_bits(), {"family": family, "mean": mean, "scale": scale})
    return best[1]


def encode(streams: list[Stream], coder: str = "range") -> tuple[bytes, list[dict]]:
    """Code the streams into one byte string; returns it and each stream's parameters (for the header)."""
    if coder not in CODERS:
        raise ConfigError(f"coder must be one of {', '.join(CODERS)}, got {coder!r}")
    params = [{"low": s.low, "high": s.high} for s in streams]
    coded = [(s, p) for s, p in zip(streams, params) if s.high > s.low]
    if coder == "range":
        encoder = _constriction().stream.queue.RangeEncoder()
        for stream, entry in coded:
            entry.update(_range_parameters(stream))
            _encode_range(encoder, stream, entry["family"], entry["mean"], entry["scale"])
        words = encoder.get_compressed() if coded else np.zeros(0, np.uint32)
        return np.asarray(words, dtype="<u4").tobytes(), params
    raw = b"".join(_as_bytes(stream) for stream, _ in coded)
    if coder == "zstd":
        import zstandard

        return zstandard.ZstdCompressor(level=22).compress(raw), params
    return lzma.compress(raw, format=lzma.FORMAT_RAW, filters=_LZMA_FILTERS), params


def _width(low: int, high: int) -> str:
    return "<u1" if high - low < 256 else "<u2" if high - low < 65536 else "<u4"


def _as_bytes(stream: Stream) -> bytes:
    return (stream.symbols.astype(np.int64) - stream.low).astype(_width(stream.low, stream.high)).tobytes()


def decode(data: bytes, params: list[dict], counts: list[int], coder: str) -> list[np.ndarray]:
    """The streams back from :func:`encode`'s bytes, parameters and each stream's length.

    Raises
    ------
    ValueError
        If the data cannot be decoded with these parameters (the caller reports a damaged file).
    """
    if coder not in CODERS:
        raise ValueError(f"unknown coder {coder!r}")
    out: list[np.ndarray] = []
    if coder == "range":
        if len(data) % 4:
            raise ValueError("range-coded data is not a whole number of 32-bit words")
        decoder = _constriction().stream.queue.RangeDecoder(np.frombuffer(data, dtype="<u4").astype(np.uint32)) if data else None
        for entry, count in zip(params, counts):
            low, high = int(entry["low"]), int(entry["high"])
            if high <= low or count == 0:
                out.append(np.full(count, low, np.int32))
                continue
            if decoder is None or entry.get("family") not in FAMILIES:
                raise ValueError("a coded stream has no data or no model")
            mean, scale = float(entry["mean"]), float(entry["scale"])
            symbols = decoder.decode(_model(entry["family"], low, high), np.full(count, mean, np.float64),
                                     np.full(count, scale, np.float64))
            out.append(np.asarray(symbols, dtype=np.int32))
        return out
    raw = _decompress(data, coder, sum(_stream_bytes(p, c) for p, c in zip(params, counts)))
    position = 0
    for entry, count in zip(params, counts):
        low, high = int(entry["low"]), int(entry["high"])
        if high <= low:
            out.append(np.full(count, low, np.int32))
            continue
        size = _stream_bytes(entry, count)
        chunk = np.frombuffer(raw[position:position + size], dtype=_width(low, high))
        if chunk.size != count:
            raise ValueError("the compressed data ends early")
        out.append((chunk.astype(np.int64) + low).astype(np.int32))
        position += size
    return out


def _stream_bytes(entry: dict, count: int) -> int:
    low, high = int(entry["low"]), int(entry["high"])
    return 0 if high <= low else count * np.dtype(_width(low, high)).itemsize


def _decompress(data: bytes, coder: str, expected: int) -> bytes:
    if coder == "zstd":
        import zstandard

        return zstandard.ZstdDecompressor().decompress(data, max_output_size=expected)
    decompressor = lzma.LZMADecompressor(format=lzma.FORMAT_RAW, filters=_LZMA_FILTERS)
    return decompressor.decompress(data, max_length=expected)


__all__ = ["CODERS", "FAMILIES", "Stream", "decode", "encode"]
