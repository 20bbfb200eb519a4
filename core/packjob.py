"""``inrkit pack``: a run directory into an ``.inr`` file, choosing the bit depth of each tensor.

Three goals, one search (:func:`search_plan`):

* default: the smallest file whose PSNR stays within :data:`PACK_TOLERANCE_DB` of the float model's;
* ``target_psnr``: the smallest file reaching that PSNR;
* ``target_size``: the best PSNR in a file of at most that many bytes.

The PSNR is measured against the signal the run was fitted to (reloaded as
``inrkit prune`` does), or, when it is not at hand, against the float
model's own output on the signal's grid (or on random points of the cube).
A short quantisation-aware finish (:mod:`inrkit.qat`) runs on the chosen
plan and is kept only if it raises the PSNR; the search then continues
from the finished weights.
"""

from __future__ import annotations

import copy
import math
import re
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from inrkit.errors import ConfigError, InputError, InrkitWarning
from inrkit.metrics import psnr
from inrkit.packing import (
    SUFFIX,
    TensorPlan,
    default_plan,
    is_packed,
    pack,
    quantised_state,
)
from inrkit.quantise import EXACT_BITS, MAX_BITS, MIN_BITS

#: PSNR (dB) the default pack may give up against the float model.
PACK_TOLERANCE_DB = 0.3
#: Steps and peak learning rate of the quantisation-aware finish (0 steps: none; the rate's warm-up and decay:
#: :func:`inrkit.qat.finish_lr`). Measured on astronaut at 256x256 (5,905 parameters, four layers, packed into
#: 4,096 bytes; float model 26.56 dB, rounding alone 23.98 dB): 300 full-batch steps at 1e-5 gave +0.30 dB,
#: 3e-5 +0.08 dB, 1e-4 -0.26 dB; the former 100 steps at 3e-6 on random half-batches +0.05 dB.
QAT_STEPS = 300
QAT_LR = 1e-5
#: Samples the search evaluates at most (a fixed random subset of larger signals).
SEARCH_SAMPLES = 1 << 18
#: Coder used while searching (fast); the written file uses the smallest coder.
SEARCH_CODER = "range"

_SIZE = re.compile(r"^\s*([0-9]*\.?[0-9]+)\s*([kKmM]i?[bB]?|[bB])?\s*$")
_UNITS = {"": 1, "b": 1, "k": 1000, "kb": 1000, "kib": 1024, "ki": 1024, "m": 10**6, "mb": 10**6, "mib": 2**20,
          "mi": 2**20}


def parse_size(text: str) -> int:
    """``2400``, ``2.4KB`` (1000s), ``4KiB`` (1024s), ``1MB``... as bytes; a one-line error otherwise."""
    match = _SIZE.match(str(text))
    unit = (match.group(2) or "").lower() if match else None
    if not match or unit not in _UNITS:
        raise ConfigError(f"--target-size {text!r} is not a size; use bytes or a suffix, like 2400, 2.4KB or 4KiB")
    size = int(float(match.group(1)) * _UNITS[unit])
    if size < 1:
        raise ConfigError(f"--target-size {text!r} is less than one byte; give a positive size like 2400 or 2.4KB")
    return size


#: The greedy paths of :func:`search_plan`, all tried: (steps in half bits, taken in turn; choose by slope).
#: No one path won on every photo of the four-layer default (``benchmarks/README.md``, "Half bits"): whole then
#: half bits by the largest saving gave camera 4,286 bytes and chelsea 12,430, half bits by the steepest
#: slope astronaut 12,245 and coffee 12,437; each path costs 1-6 s of a pack.
SEARCH_PATHS = (((2, 1), False), ((1,), True), ((2, 1), True))
#: The path also taken from one bit past the first uniform depth that holds (above it for a PSNR goal, below it
#: for a size). Chelsea's 12,273-parameter default fit, rounding alone: 0.3 dB allowed, 12,817 bytes from the
#: first depth, 11,964 from the bit above (478 evaluations instead of 169); 6,000 bytes, 25.76 dB from the first
#: depth, 27.35 from the bit below; 9,000 bytes, 34.71 against 36.84 dB. Two bits past gave no more.
HEADROOM_PATH = ((1,), True)


@dataclass
class Judge:
    """PSNR of a model state against reference samples, and the size of its file."""

    model: torch.nn.Module
    coords: torch.Tensor
    target: torch.Tensor
    data_range: float
    sections: dict[str, Any]
    evaluations: int = 0
    _basis: tuple[torch.Tensor, ...] | None = field(default=None, repr=False)

    def psnr(self, state: dict[str, torch.Tensor]) -> float:
        self.model.load_state_dict(state)
        self.evaluations += 1
        return psnr(self._output(), self.target, self.data_range)

    @torch.no_grad()
    def _output(self) -> torch.Tensor:
        """The model at ``coords``. A model with direct lines reuses its basis across the search's many
        evaluations (recomputing thousands of sines per sample made a melody's pack take minutes)."""
        from inrkit.train import BASIS_CACHE_BYTES, evaluate

        model = self.model
        if getattr(model, "direct", None) is None:
            return evaluate(model, self.coords)
        if self._basis is None:
            if self.coords.shape[0] * model.basis_columns() * 4 > BASIS_CACHE_BYTES:
                return evaluate(model, self.coords)
            self._basis = model.basis(self.coords.to(next(model.parameters()).dtype))
        return model.from_basis(*self._basis)

    def measure(self, state: dict[str, torch.Tensor], plan: dict[str, TensorPlan]) -> tuple[int, float]:
        """(file bytes with the search coder, PSNR) of ``state`` packed by ``plan``."""
        size = len(pack(state, self.sections, plan, SEARCH_CODER))
        return size, self.psnr(quantised_state(state, plan))


@dataclass
class Searched:
    """The plan a search chose, its size and PSNR, and every plan it measured on the way (``path``)."""

    plan: dict[str, TensorPlan]
    size: int
    psnr: float
    path: list[dict[str, Any]] = field(default_factory=list)


def _bits(plan: dict[str, TensorPlan]) -> dict[str, float]:
    """Each quantised tensor's effective depth (8.5: half a bit below 9)."""
    return {name: entry.depth for name, entry in plan.items() if entry.bits != EXACT_BITS}


def search_plan(judge: Judge, state: dict[str, torch.Tensor], granularity: str, *, min_psnr: float | None = None,
                max_size: int | None = None, start: dict[str, TensorPlan] | None = None,
                headroom: bool = True) -> Searched:
    """The smallest plan reaching ``min_psnr``, or the best-PSNR plan within ``max_size`` bytes.

    First one bit depth for every tensor (the smallest that reaches the PSNR, or the largest that fits),
    then tensor by tensor along each of :data:`SEARCH_PATHS`, keeping the best end: lower one tensor's depth
    while the PSNR holds, or raise one while the file fits, by whole bits and then half bits (levels to
    ``round(2^(b-1.5)) - 1``), or by half bits from the start, each round taking the largest step (saving or
    gain) or the steepest (bytes per dB). Also :data:`HEADROOM_PATH` from one bit past that first depth (above
    it for a PSNR goal, below it for a size), where the large tensors can go further than the first depth
    while the small ones keep their depth (``headroom=False``: without it).
    """
    path: list[dict[str, Any]] = []
    seen: dict[tuple, tuple[int, float]] = {}  # the paths share their first plans: measure each plan once

    def measured(plan: dict[str, TensorPlan]) -> tuple[int, float]:
        key = tuple(sorted(plan.items()))
        if key not in seen:
            seen[key] = judge.measure(state, plan)
            path.append({"bits": _bits(plan), "bytes": seen[key][0], "psnr": seen[key][1]})
        return seen[key]

    def ok(size: int, value: float) -> bool:
        return value >= min_psnr if min_psnr is not None else size <= max_size

    if start is None:
        best = None
        depths = range(MIN_BITS, MAX_BITS + 1) if min_psnr is not None else range(MAX_BITS, MIN_BITS - 1, -1)
        for bits in depths:
            plan = default_plan(state, bits, granularity)
            size, value = measured(plan)
            if ok(size, value):
                best = Searched(plan, size, value)
                break
        if best is None:
            return Searched(plan, size, value, path)  # the caller says what was not reached
        starts = [best]
        beyond = bits + (1 if min_psnr is not None else -1)
        if headroom and MIN_BITS <= beyond <= MAX_BITS:
            # One bit past the first depth that holds (above it for a PSNR goal, below it for a size): room
            # to move the large tensors further than that depth while the small ones stay deep (a greedy
            # walk from the first depth alone only lowers tensors, or only raises them).
            other = default_plan(state, beyond, granularity)
            starts.append(Searched(other, *measured(other)))
    else:
        best = Searched(start, *measured(start))
        if not ok(best.size, best.psnr):  # the caller's weights changed since ``start`` was chosen
            return best
        starts = [best]
    names = [name for name, entry in best.plan.items() if entry.bits != EXACT_BITS]
    shrink = min_psnr is not None

    def greedy(best: Searched, strides: tuple[int, ...], slope: bool) -> Searched:
        for half_bits in strides:
            while True:
                trials = []
                for name in names:
                    shifted = best.plan[name].shifted(-half_bits if shrink else half_bits)
                    if shifted is None:
                        continue
                    plan = {**best.plan, name: shifted}
                    size, value = measured(plan)
                    if ok(size, value) and (size < best.size or not shrink):
                        trials.append(Searched(plan, size, value))
                if not trials:
                    break
                if slope:  # bytes saved per dB given up, or dB gained per byte spent
                    chosen = max(trials, key=lambda t: (best.size - t.size) / max(best.psnr - t.psnr, 1e-3) if shrink
                                 else (t.psnr - best.psnr) / max(t.size - best.size, 1))
                else:  # the largest saving, or the largest gain
                    chosen = min(trials, key=lambda t: t.size) if shrink else max(trials, key=lambda t: t.psnr)
                if not shrink and chosen.psnr <= best.psnr:
                    break
                best = chosen
        return best

    found = [greedy(starts[0], strides, slope) for strides, slope in SEARCH_PATHS]
    found += [greedy(first, *HEADROOM_PATH) for first in starts[1:]]
    best = min(found, key=lambda t: (t.size, -t.psnr)) if shrink else max(found, key=lambda t: (t.psnr, -t.size))
    best.path = path
    return best


@dataclass
class PackSummary:
    """What ``inrkit pack`` did: the file, its size against the float model's, the PSNRs and the plan."""

    path: Path
    bytes: int
    float_bytes: int
    coder: str
    bits: dict[str, int]
    granularity: str
    psnr_float: float
    psnr: float
    reference: str
    qat: dict[str, Any]
    goal: dict[str, Any]
    path_taken: list[dict[str, Any]]

    def to_dict(self) -> dict[str, Any]:
        return {"file": str(self.path), "bytes": self.bytes, "float32_model_bytes": self.float_bytes,
                "ratio": self.bytes / self.float_bytes, "coder": self.coder, "bits": self.bits,
                "granularity": self.granularity, "psnr_float": self.psnr_float, "psnr": self.psnr,
                "psnr_loss": self.psnr_float - self.psnr, "reference": self.reference, "qat": self.qat,
                "goal": self.goal, "search_evaluations": len(self.path_taken)}


def reference_samples(run, source: Path | None, host) -> tuple[torch.Tensor, torch.Tensor, float, str]:
    """Coordinates, values, peak-to-peak range and a word on what they are, to measure a packed model against."""
    from inrkit.signal import grid_coordinates
    from inrkit.sources import reload_source
    from inrkit.train import evaluate

    try:
        signal, _, _ = reload_source(run, source, host, strict=False)
        coords, values = signal.coordinates(), signal.values
        return coords, values, float(signal.data_range), "signal"
    except InputError:
        if source is not None:
            raise
    geometry = run.signal
    if geometry.get("grid_shape"):
        coords = grid_coordinates(geometry["grid_shape"], geometry["extent"])
    else:
        coords = torch.rand(SEARCH_SAMPLES, run.model_config.dims, generator=torch.Generator().manual_seed(0)) * 2 - 1
    warnings.warn(f"the signal {run.path} was fitted to is not at hand (pass it with --input FILE); the PSNR is "
                  "measured against the float model's own output", InrkitWarning, stacklevel=2)
    return coords, evaluate(run.model, coords), float(geometry.get("data_range") or 2.0), "float model"


def _subset(coords: torch.Tensor, values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    if coords.shape[0] <= SEARCH_SAMPLES:
        return coords, values
    index = torch.randperm(coords.shape[0], generator=torch.Generator().manual_seed(0))[:SEARCH_SAMPLES]
    return coords[index], values[index]


def pack_run(run_dir: Path, output: Path, *, bits: int | None = None, target_psnr: float | None = None,
             target_size: int | None = None, granularity: str = "tensor", coder: str = "auto",
             qat_steps: int = QAT_STEPS, source: Path | None = None, host=None,
             progress: Callable[[str], None] | None = None) -> PackSummary:
    """Pack the run at ``run_dir`` into ``output`` (see the module docstring); written atomically."""
    from inrkit.atomic import atomic_output
    from inrkit.checkpoint import MODEL_FILE, load_run
    from inrkit.host import get_host
    output = Path(output)
    if sum(x is not None for x in (bits, target_psnr, target_size)) > 1:
        raise ConfigError("give at most one of --bits, --target-psnr and --target-size")
    if output.suffix.lower() != SUFFIX:
        raise ConfigError(f"-o {output} must end in {SUFFIX}")
    if output.exists() and (output.is_dir() or not is_packed(output)):
        raise ConfigError(f"-o {output} exists and is not an .inr file; choose another -o (only an .inr file is replaced)")
    if target_psnr is not None and not (math.isfinite(target_psnr) and target_psnr > 0):
        raise ConfigError(f"--target-psnr must be a positive number of dB, got {target_psnr}")
    if not 0 <= qat_steps <= 100_000:
        raise ConfigError(f"--qat-steps must be a whole number from 0 to 100000, got {qat_steps}")
    run = load_run(run_dir)
    state = {name: tensor.detach().cpu().clone() for name, tensor in run.model.state_dict().items()}
    float_file = Path(run_dir) / MODEL_FILE
    float_bytes = float_file.stat().st_size if float_file.is_file() else 4 * sum(t.numel() for t in state.values())
    coords, values, data_range, reference = reference_samples(run, source, host or get_host())
    search_coords, search_values = _subset(coords, values)
    judge = Judge(copy.deepcopy(run.model), search_coords, search_values, data_range, run.config)
    psnr_float = judge.psnr(state)
    goal: dict[str, Any]
    if bits is not None:
        plan = default_plan(state, bits, granularity)
        goal = {"bits": bits}
    else:
        if target_size is not None:
            goal, search = {"target_size": target_size}, {"max_size": target_size}
        else:
            wanted = target_psnr if target_psnr is not None else psnr_float - PACK_TOLERANCE_DB
            if wanted > psnr_float:
                raise ConfigError(f"--target-psnr {target_psnr:g} dB is above the {psnr_float:.2f} dB of the model "
                                  "being packed; a packed file cannot beat it: fit a larger or longer model "
                                  "(`inrkit fit --target-psnr Q --pack`)")
            goal = {"target_psnr": wanted} if target_psnr is not None else {"tolerance_db": PACK_TOLERANCE_DB}
            search = {"min_psnr": wanted}
        found = search_plan(judge, state, granularity, **search)
        _check_reached(found, target_size, search.get("min_psnr"))
        plan = found.plan
    path_taken = list(found.path) if bits is None else []
    original = state
    qat: dict[str, Any] = {"steps": 0}
    if qat_steps:
        if progress:
            progress(f"quantisation-aware finish: {qat_steps} steps")
        wanted = search.get("min_psnr") if bits is None else None
        before = (state, plan)
        state, plan, qat = _finish(judge, coords, values, state, plan, qat_steps, wanted)
        if qat["kept"] and bits is None:
            again = search_plan(judge, state, granularity, start=plan, **search)
            path_taken += again.path
            plan = again.plan
        if target_size is not None and len(pack(state, run.config, plan, SEARCH_CODER)) > target_size:
            state, plan, qat = _replan(judge, state, granularity, target_size, before, qat, path_taken)
    data = pack(state, run.config, plan, coder)
    with atomic_output(output) as temporary:
        temporary.write_bytes(data)
    from inrkit.packing import unpack

    header, _ = unpack(data, str(output))
    judge_full = Judge(judge.model, coords, values, data_range, run.config)
    full = coords is not search_coords
    return PackSummary(output, len(data), float_bytes, header["coder"], _bits(plan), granularity,
                       judge_full.psnr(original) if full else psnr_float,
                       judge_full.psnr(quantised_state(state, plan)), reference, qat, goal, path_taken)


def _lowered(plan: dict[str, TensorPlan], state: dict[str, torch.Tensor]) -> dict[str, TensorPlan] | None:
    """``plan`` with its largest tensor one bit lower (None when it is at the lowest depth already)."""
    quantised = [name for name, entry in plan.items() if entry.bits != EXACT_BITS]
    largest = max(quantised, key=lambda name: state[name].numel())
    lowered = plan[largest].shifted(-2)
    return None if lowered is None else {**plan, largest: lowered}


def _finish(judge: Judge, coords: torch.Tensor, values: torch.Tensor, state: dict[str, torch.Tensor],
            plan: dict[str, TensorPlan], steps: int, wanted: float | None):
    """The quantisation-aware finish (:mod:`inrkit.qat`): (state, plan, facts).

    With a PSNR goal (``wanted``), the finish is tried first on ``plan`` with its largest tensor a bit lower, and
    kept there if it reaches the goal: rounding that the finish recovers from becomes a smaller file. Else on
    ``plan`` itself, kept only if it raises the PSNR.
    """
    from inrkit.qat import quantisation_aware_finish

    before = judge.psnr(quantised_state(state, plan))
    lower = _lowered(plan, state) if wanted is not None else None
    for candidate in ([lower] if lower else []) + [plan]:
        finished = quantisation_aware_finish(judge.model, coords, values, candidate, steps=steps, lr=QAT_LR)
        tuned = {name: tensor.detach().cpu().clone() for name, tensor in finished.state_dict().items()}
        after = judge.psnr(quantised_state(tuned, candidate))
        facts = {"steps": steps, "lr": QAT_LR, "psnr_before": before, "psnr_after": after,
                 "bits_lowered": candidate is lower}
        if candidate is lower:
            if after >= wanted:
                return tuned, candidate, facts | {"kept": True}
            continue
        return (tuned if after > before else state), plan, facts | {"kept": after > before}
    raise AssertionError("unreachable")


def _replan(judge: Judge, state: dict[str, torch.Tensor], granularity: str, target_size: int, before: tuple,
            qat: dict[str, Any], path_taken: list):
    """The finished weights code to more than ``target_size`` bytes: the best plan within it for them, if that
    beats rounding alone (``qat["psnr_before"]``), else the rounding-only state and plan. (On astronaut at
    256x256 the finish raised a 2,877-parameter model from 22.31 to 23.29 dB and then coded 1-3 bytes over
    2,457; keeping the rounding-only file threw the dB away.)"""
    found = search_plan(judge, state, granularity, max_size=target_size)
    path_taken += found.path
    if found.size <= target_size and found.psnr > qat.get("psnr_before", -math.inf):
        return state, found.plan, qat | {"kept": True, "replanned": True, "psnr_after": found.psnr}
    return *before, qat | {"kept": False}


def _check_reached(found: Searched, target_size: int | None, wanted: float | None) -> None:
    if target_size is not None and found.size > target_size:
        raise ConfigError(f"--target-size {target_size:,} bytes is below the smallest file this model packs into "
                          f"({found.size:,} bytes at {MIN_BITS} bits); give a larger size, or fit a smaller model")
    if wanted is not None and found.psnr < wanted:
        raise ConfigError(f"no bit depth up to {MAX_BITS} reaches {wanted:.2f} dB (best {found.psnr:.2f} dB); "
                          "give a lower --target-psnr, or fit a larger or longer model")


__all__ = [
    "PACK_TOLERANCE_DB",
    "QAT_LR",
    "QAT_STEPS",
    "PackSummary",
    "Searched",
    "pack_run",
    "parse_size",
    "reference_samples",
    "search_plan",
]
