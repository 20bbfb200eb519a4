"""Uniform quantisation of model tensors, per tensor or per channel (row), at 2 to 16 bits.

The quantiser is symmetric and mid-tread: ``q = rint(x / step)`` with
``step = max |x| / (2^(bits-1) - 1)`` over the tensor (or over each row), so
zero is a level and ``q`` lies in ``[-(2^(bits-1) - 1), 2^(bits-1) - 1]``.
Weights concentrate near zero, which is what the entropy coder
(:mod:`inrkit.entropy`) then exploits. Steps are float32 (per row: float16 when every
row's step is a normal float16, rounded up, which halves their bytes); dequantisation is
``float32(q) * step`` in float32, so a packed file and
:func:`dequantise` give the same numbers bit for bit.

A tensor may also be kept exact (:data:`EXACT_BITS`, raw float32): the
output map's offset and scale, a handful of numbers that set the signal's
units.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from inrkit.errors import ConfigError

#: Bit depths a quantised tensor may have.
MIN_BITS, MAX_BITS = 2, 16
#: The "bit depth" of a tensor stored exactly as float32.
EXACT_BITS = 32
#: Quantisation granularities: one step for the tensor, or one per row (output channel) of a matrix.
GRANULARITIES = ("tensor", "channel")


@dataclass(frozen=True)
class Quantised:
    """A quantised tensor: integer levels, the step of each row (one row for ``tensor``), its shape."""

    levels: np.ndarray  # int32, flattened
    steps: np.ndarray  # float32, one per row
    shape: tuple[int, ...]
    bits: int
    granularity: str
    step_dtype: str = "f4"  # how the steps are stored: float32, or float16 (exactly these values) for rows
    half: bool = False  # levels of half a bit fewer than ``bits`` (:func:`largest_level`)

    @property
    def largest(self) -> int:
        """The largest level magnitude the bit depth allows."""
        return largest_level(self.bits, self.half)


def largest_level(bits: int, half: bool = False) -> int:
    """``2^(bits-1) - 1``: the largest |q| at this bit depth (2 bits: levels -1, 0, 1).

    ``half``: half a bit lower, ``round(2^(bits-1.5)) - 1`` (9 bits: 180 instead of 255), still stored at
    ``bits`` (its levels lie within that depth's range, so a reader needs only the step it stores). Needs
    ``bits >= 3``.
    """
    if half:
        if bits < 3:
            raise ConfigError(f"half a bit below {bits} bits leaves no level besides zero")
        return int(round(2.0 ** (bits - 1.5))) - 1
    return (1 << (bits - 1)) - 1


def check_bits(bits: int, what: str = "--bits") -> int:
    """``bits`` as an int in ``[MIN_BITS, MAX_BITS]``, or a one-line :class:`ConfigError`."""
    if isinstance(bits, bool) or not isinstance(bits, (int, np.integer)) or not MIN_BITS <= int(bits) <= MAX_BITS:
        raise ConfigError(f"{what} must be a whole number from {MIN_BITS} to {MAX_BITS}, got {bits!r}")
    return int(bits)


def _rows(values: np.ndarray, granularity: str) -> np.ndarray:
    if granularity == "channel" and values.ndim >= 2:
        return values.reshape(values.shape[0], -1)
    return values.reshape(1, -1)


def quantise(values: np.ndarray, bits: int, granularity: str = "tensor", half: bool = False) -> Quantised:
    """Quantise a float tensor (numpy, any shape) to ``bits`` bits, per tensor or per row.

    ``half``: to the levels of half a bit fewer (:func:`largest_level`), stored at ``bits``.

    Raises
    ------
    ConfigError
        On a bit depth outside 2..16, an unknown granularity or non-finite values.
    """
    bits = check_bits(bits)
    if granularity not in GRANULARITIES:
        raise ConfigError(f"granularity must be one of {', '.join(GRANULARITIES)}, got {granularity!r}")
    values = np.asarray(values, dtype=np.float32)
    if not np.all(np.isfinite(values)):
        raise ConfigError("the model holds NaN or infinite weights; it cannot be quantised (refit it)")
    rows = _rows(values, granularity)
    largest = largest_level(bits, half)
    peak = np.abs(rows).max(axis=1) if rows.size else np.zeros(rows.shape[0], np.float32)
    steps = (peak.astype(np.float64) / largest).astype(np.float32)
    step_dtype = "f4"
    if len(steps) > 1:  # one step per row: float16 when every step is a normal float16 (rounded up), half the bytes
        half = steps.astype(np.float16)
        half = np.where(half.astype(np.float32) < steps, np.nextafter(half, np.float16(np.inf)), half)
        positive = half[steps > 0]
        if np.all(np.isfinite(half)) and (positive.size == 0 or positive.min() >= np.finfo(np.float16).tiny):
            steps, step_dtype = half.astype(np.float32), "f2"
    safe = np.where(steps > 0, steps, np.float32(1))
    levels = np.clip(np.rint(rows / safe[:, None]), -largest, largest).astype(np.int32)
    levels[steps == 0] = 0
    return Quantised(levels.reshape(-1), steps, tuple(values.shape), bits, granularity, step_dtype, half)


def dequantise(levels: np.ndarray, steps: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """``float32(q) * step`` per row, reshaped to ``shape`` (float32; the file's numbers exactly)."""
    steps = np.asarray(steps, dtype=np.float32)
    rows = np.asarray(levels, dtype=np.int32).reshape(len(steps), -1).astype(np.float32)
    return (rows * steps[:, None]).astype(np.float32).reshape(shape)


def round_trip(values: np.ndarray, bits: int, granularity: str = "tensor") -> np.ndarray:
    """The values a packed file at this bit depth gives back (quantise then dequantise)."""
    quantised = quantise(values, bits, granularity)
    return dequantise(quantised.levels, quantised.steps, quantised.shape)


__all__ = ["EXACT_BITS", "GRANULARITIES", "MAX_BITS", "MIN_BITS", "Quantised", "check_bits", "dequantise",
           "largest_level", "quantise", "round_trip"]
