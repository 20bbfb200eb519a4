"""Train K same-shape models at once: stacked weights, one batched computation, one optimiser step for all.

Fits of many signals of one shape (all 128x128 photos, all SDF banks of one
size) are K independent problems of identical shape. Here their weights are
stacked along a leading axis (``[K, n, m]``), the forward pass is a chain of
``torch.bmm``, the loss is the sum of the K models' own losses (so each
model's gradient is exactly its own), and one :class:`~inrkit.optim.Adam`
step, element-wise, advances all K. Everything that decides a single fit is
kept per model: its initialisation (the prepared job's model), its sampler
and random stream (seeded as :func:`inrkit.train.fit` seeds them), its
hold-out split, its loss (the job's loss function, called once per model
with that model's slice of the batched output), the learning-rate schedule,
the bound projection. Each model's result equals its single fit to float32
rounding (tests/core/test_batched.py: weights within 1e-4, PSNR within
0.01 dB after 30 steps).

What is not batched (the job then trains alone, :meth:`FitJob.run`): models
other than the lattice/uniform :class:`~inrkit.model.SinusoidalINR` in
``project`` bound mode, pruning, checkpoints, ``--spectrum-every``, a target
PSNR with mini-batches, and losses that call the model themselves (they need
gradients with respect to the coordinates: found at the first step, before
anything is updated). A model whose loss turns NaN or infinite leaves the
batch and is fitted again alone, with the single fit's rollbacks. Observers
get ``inrkit_fit_start``, ``inrkit_step_end`` and ``inrkit_fit_end`` for
every model, as from a single fit; when some observer takes ``inrkit_step_end``,
each recorded step first copies the model's slice of the stack into its own
model, so the observer sees that step's weights.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from inrkit.events import FitEnded, FitStarted, StepEnded, TrainSettings
from inrkit.metrics import psnr_from_mse
from inrkit.model import SinusoidalINR, carry_past, stored_parameter_count
from inrkit.optim import Adam
from inrkit.plugin_types import FitContext, SamplerContext
from inrkit.signal import Batch
from inrkit.train import FitResult, _progress, holdout_split, lr_at, progress_of

#: Most models trained at once on a CPU.
CPU_GROUP_LIMIT = 64
#: On a CPU, the most bytes one stacked activation (models x rows x widest layer, float32) may take: the step is
#: bound by memory traffic there, and measured per model and step on the 2-core EPYC (64x64 photos, m = n = 51,
#: one thread), K = 1, 2, 4, 8, 16 took 5.7, 7.9, 7.7, 11.4, 15.5 ms: stacks beyond the caches cost more than they
#: save. Small models (a few thousand rows, narrow layers) still batch by the dozen.
CPU_BATCH_BYTES = 1 << 20
#: Most models trained at once on a GPU.
GPU_GROUP_LIMIT = 4096
#: Share of the free device memory (CUDA) or of the available memory (CPU) one group may take.
MEMORY_SHARE = 0.5


class NotBatchable(Exception):
    """Raised inside a batched step when a loss does what a batched model cannot serve (the group then fits alone)."""


def batch_key(job: Any) -> tuple | None:
    """What must be equal for prepared jobs (:class:`inrkit.pipeline.FitJob`) to train together; None: never batched."""
    model, config = job.model, job.train_config
    if type(model) is not SinusoidalINR or model.config.bound_mode != "project" or model.direct is not None:
        return None
    if job.prune is not None and job.prune.active or job.checkpointing is not None or job.start is not None:
        return None
    if job.spectrum_every is not None or (config.target_psnr is not None and config.batch_size is not None):
        return None
    shapes = tuple((name, tuple(t.shape)) for name, t in model.state_dict().items())
    train = {k: v for k, v in config.to_dict().items() if k != "seed"}
    signal = job.signal
    return (shapes, model.config.omega_g, model.config.hidden_layers, model.config.skip, signal.samples, signal.dims, signal.channels,
            tuple(sorted(signal.attributes)), repr(sorted(train.items())), job.loss.name, str(job.device))


def model_bytes(job: Any) -> int:
    """Device memory one model of a batched group needs (basis, activations, weights with Adam's moments), roughly."""
    config, signal = job.model.config, job.signal
    rows = job.train_config.batch_size or signal.samples
    m, n = config.input_frequencies, config.width
    activations = rows * (3 * m + 3 * n * config.hidden_layers + 4 * signal.channels)
    weights = 4 * stored_parameter_count(job.model)
    return 4 * (2 * signal.samples * m + activations + weights + signal.samples * (signal.dims + signal.channels))


def group_limit(job: Any) -> int:
    """How many models like ``job`` one batched group may hold on its device (memory and :data:`CPU_GROUP_LIMIT`)."""
    device = job.device
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        budget, most = free * MEMORY_SHARE, GPU_GROUP_LIMIT
    else:
        config = job.model.config
        rows = job.train_config.batch_size or job.signal.samples
        cached = CPU_BATCH_BYTES // (4 * rows * max(config.input_frequencies, config.width))
        budget, most = _available_memory() * MEMORY_SHARE, min(CPU_GROUP_LIMIT, cached)
    return int(max(1, min(most, budget // max(1, model_bytes(job)))))


def _available_memory() -> int:
    try:
        with open("/proc/meminfo") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    import os

    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 4


class _BatchedBasisLinear(torch.autograd.Function):
    """:class:`inrkit.model._BasisLinear` for K models: ``D_k W_k^T`` with ``D_k = S_k cos(phi_k) + C_k sin(phi_k)``."""

    @staticmethod
    def forward(ctx, sin_part, cos_part, phases, weight):
        cos_phi, sin_phi = torch.cos(phases).unsqueeze(1), torch.sin(phases).unsqueeze(1)
        ctx.save_for_backward(sin_part, cos_part, cos_phi, sin_phi, weight)
        return torch.bmm(sin_part * cos_phi + cos_part * sin_phi, weight.transpose(1, 2))

    @staticmethod
    def backward(ctx, grad_output):
        sin_part, cos_part, cos_phi, sin_phi, weight = ctx.saved_tensors
        grad_t = grad_output.transpose(1, 2)
        m_sin, m_cos = torch.bmm(grad_t, sin_part), torch.bmm(grad_t, cos_part)
        grad_weight = m_sin * cos_phi + m_cos * sin_phi
        grad_phases = (weight * (m_cos * cos_phi - m_sin * sin_phi)).sum(dim=1)
        return None, None, grad_phases, grad_weight


@dataclass
class _Stack:
    """K models' weights stacked along a first axis, on the device."""

    phases: torch.Tensor
    weights: list[torch.Tensor]
    biases: list[torch.Tensor]
    bounds: list[torch.Tensor]
    head_weight: torch.Tensor
    head_bias: torch.Tensor
    offset: torch.Tensor
    scale: torch.Tensor
    omega_g: float
    skip: float

    @classmethod
    def of(cls, models: list[SinusoidalINR], device: torch.device) -> _Stack:
        def stacked(get: Callable[[SinusoidalINR], torch.Tensor], trained: bool = True) -> torch.Tensor:
            tensor = torch.stack([get(m).detach() for m in models]).to(device)
            return tensor.requires_grad_(trained)

        layers = range(len(models[0].hidden))
        return cls(
            phases=stacked(lambda m: m.input.phases),
            weights=[stacked(lambda m, i=i: m.hidden[i].weight) for i in layers],
            biases=[stacked(lambda m, i=i: m.hidden[i].bias) for i in layers],
            bounds=[stacked(lambda m, i=i: m.hidden[i].bounds, False) for i in layers],
            head_weight=stacked(lambda m: m.head.weight), head_bias=stacked(lambda m: m.head.bias),
            offset=stacked(lambda m: m.output.offset, False), scale=stacked(lambda m: m.output.scale, False),
            omega_g=models[0].hidden[0].omega_g, skip=models[0].config.skip)

    def parameters(self) -> list[tuple[torch.Tensor, bool]]:
        """``(tensor, is_phase)`` in a fixed order."""
        hidden = [t for pair in zip(self.weights, self.biases) for t in pair]
        return [(self.phases, True), *((t, False) for t in hidden), (self.head_weight, False), (self.head_bias, False)]

    def forward(self, sin_part: torch.Tensor, cos_part: torch.Tensor) -> torch.Tensor:
        """``[K, B, channels]`` from the K models' cached bases (``[K, B, m]`` each), as ``SinusoidalINR.from_basis``."""
        omega = self.omega_g
        pre = _BatchedBasisLinear.apply(sin_part, cos_part, self.phases, self.weights[0] * omega)
        features = torch.sin(pre + (omega * self.biases[0]).unsqueeze(1))
        for weight, bias in zip(self.weights[1:], self.biases[1:]):
            update = torch.sin(torch.bmm(features, (weight * omega).transpose(1, 2)) + (omega * bias).unsqueeze(1))
            features = carry_past(update, features, self.skip)
        head = torch.baddbmm(self.head_bias.unsqueeze(1), features, self.head_weight.transpose(1, 2))
        return torch.addcmul(self.offset.unsqueeze(1), head, self.scale.unsqueeze(1))

    @torch.no_grad()
    def project_(self) -> None:
        """Every layer's bound ``|omega_g W_ij| <= c_j``, per model."""
        for weight, bounds in zip(self.weights, self.bounds):
            limit = (bounds / self.omega_g).unsqueeze(1)
            torch.clamp_(weight, min=-limit, max=limit)

    def snapshot(self, k: int) -> list[torch.Tensor]:
        return [t[k].detach().clone() for t, _ in self.parameters()]

    @torch.no_grad()
    def write_back(self, k: int, model: SinusoidalINR, saved: list[torch.Tensor] | None) -> None:
        """Copy model ``k``'s weights (or a snapshot of them) into ``model``."""
        values = saved if saved is not None else [t[k] for t, _ in self.parameters()]
        targets = [model.input.phases, *(p for layer in model.hidden for p in (layer.weight, layer.bias)),
                   model.head.weight, model.head.bias]
        for target, value in zip(targets, values):
            target.copy_(value.to(target.device))


class _Proxy:
    """What a loss sees as ``context.model`` in a batched step: any use of it means the group cannot be batched."""

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        raise NotBatchable("the loss calls the model itself")

    def __getattr__(self, name: str) -> Any:
        raise NotBatchable(f"the loss uses the model's {name}")


@dataclass
class _Member:
    """One model of the group: its job, sampler, basis and bookkeeping."""

    job: Any
    sampler: Callable[[int], Batch]
    basis: tuple[torch.Tensor, torch.Tensor]
    train_index: torch.Tensor
    holdout_index: torch.Tensor
    signal: Any
    curve: list[dict[str, float]] = field(default_factory=list)
    active: bool = True
    diverged: bool = False
    stop_reason: str = ""
    steps: int = 0
    saved: list[torch.Tensor] | None = None


def _member(job: Any) -> _Member:
    """Seed, split, sampler and basis as :func:`inrkit.train._setup` makes them (same order, same streams)."""
    config, device = job.train_config, job.device
    torch.manual_seed(config.seed)
    generator = torch.Generator().manual_seed(config.seed)
    train_index, holdout_index = holdout_split(job.signal.samples, config.holdout, config.seed)
    job.model.to(device)
    on_device = job.signal.to(device)
    sampler = job.host.sampler(config.sampler).make(
        SamplerContext(on_device, train_index.to(device), config.batch_size, generator, device))
    with torch.no_grad():
        basis = job.model.input.basis(on_device.coordinates().to(device))
    return _Member(job, sampler, basis, train_index, holdout_index, on_device)


class _Inputs:
    """The stacked basis rows and targets of one step's K batches (reused while the batches are the same objects)."""

    def __init__(self) -> None:
        self.batches: list[Batch] | None = None
        self.stacked: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None

    def of(self, members: list[_Member], batches: list[Batch]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        if self.batches is not None and all(a is b for a, b in zip(self.batches, batches)):
            return self.stacked
        rows = {b.target.shape for b in batches}
        if len(rows) != 1 or any(b.index is None for b in batches):
            raise NotBatchable("the batches differ in shape or carry no sample index")
        sin_all = torch.stack([m.basis[0] for m in members])
        cos_all = torch.stack([m.basis[1] for m in members])
        index = torch.stack([b.index for b in batches])
        if not all(index.shape[1] == m.basis[0].shape[0] and torch.equal(b.index, _arange(b.index))
                   for b, m in zip(batches, members)):
            picked = index.unsqueeze(2).expand(-1, -1, sin_all.shape[2])
            sin_all, cos_all = sin_all.gather(1, picked), cos_all.gather(1, picked)
        self.batches = list(batches)
        self.stacked = (sin_all, cos_all, torch.stack([b.target for b in batches]))
        return self.stacked


def _arange(index: torch.Tensor) -> torch.Tensor:
    return torch.arange(index.numel(), device=index.device)


def train_batched(jobs: list[Any], progress: Callable[[float, int, float], None] | None = None) -> list[FitResult]:
    """Train the prepared jobs' models together (their :func:`batch_key` s must be equal); one result per job.

    A model that left the batch because its loss diverged gets a result with
    ``stop_reason == "diverged"`` and its untouched model: fit it alone.
    ``progress(fraction, step, seconds)`` is called after every step.

    Raises
    ------
    NotBatchable
        When a loss needs the model itself, or the batches do not stack; nothing was updated then only if raised
        at the first step, so callers fit the group alone from the prepared (untouched) models.
    KeyboardInterrupt
        Ctrl-C: nothing is kept of the group.
    """
    first = jobs[0]
    config, device, hook = first.train_config.for_model(first.model.config), first.device, first.host.pm.hook
    members = [_member(job) for job in jobs]
    stack = _Stack.of([job.model for job in jobs], device)
    optimizer = Adam([(t, config.phase_lr_scale if phase else 1.0) for t, phase in stack.parameters()],
                     lr=config.lr, betas=(0.9, config.beta2))
    settings = TrainSettings.of(config)
    inputs, proxy = _Inputs(), _Proxy()
    check_every = 1 if device.type == "cpu" else 10
    observed = hook if hook.inrkit_step_end.get_hookimpls() else None  # copy weights out only for an observer
    for member in members:
        hook.inrkit_fit_start(info=FitStarted(signal=member.job.signal, model=member.job.model, config=settings,
                                              device=device, parameters=stored_parameter_count(member.job.model)))
    began, step = time.perf_counter(), 0
    while any(m.active for m in members):
        seconds = time.perf_counter() - began
        if config.steps is not None and step >= config.steps or \
                config.max_seconds is not None and seconds >= config.max_seconds:
            _stop_all(members, "steps" if config.steps is not None and step >= config.steps else "max_seconds",
                      step)
            break
        lr = lr_at(config, progress_of(config, step, seconds))
        optimizer.lr = lr
        batches = [m.sampler(step) for m in members]
        sin_all, cos_all, targets = inputs.of(members, batches)
        output = stack.forward(sin_all, cos_all)
        served: set[int] = set()
        losses = [m.job.loss.fn(FitContext(proxy, m.signal, _predictor(k, batches, output, served), step, settings),
                                batches[k]) for k, m in enumerate(members)]
        final = config.steps is not None and step == config.steps - 1
        if step % check_every == 0 or final:
            _record(members, stack, losses, output, targets, step, seconds, lr, config, observed)
        live = [value for value, m in zip(losses, members) if m.active]
        if not live:
            break
        optimizer.zero_grad()
        torch.stack(live).sum().backward()
        optimizer.step()
        stack.project_()
        step += 1
        if progress is not None:
            progress(progress_of(config, step, time.perf_counter() - began), step, time.perf_counter() - began)
    seconds = time.perf_counter() - began
    results = []
    for k, member in enumerate(members):
        model = member.job.model
        if not member.diverged:
            stack.write_back(k, model, member.saved)
        result = FitResult(model=model, curve=member.curve, steps=member.steps, seconds=seconds,
                           stop_reason=member.stop_reason, train_index=member.train_index,
                           holdout_index=member.holdout_index)
        if not member.diverged:
            hook.inrkit_fit_end(result=FitEnded.of(result))
        results.append(result)
    return results


def _predictor(k: int, batches: list[Batch], output: torch.Tensor, served: set[int]) -> Callable[[Batch], torch.Tensor]:
    """Model ``k``'s ``predict`` for one step: its slice of the batched output, for its own batch, once."""
    def predict(batch: Batch) -> torch.Tensor:
        if batch is not batches[k] or k in served:
            raise NotBatchable("the loss predicts a batch other than the step's, or twice")
        served.add(k)
        return output[k]
    return predict


def _stop_all(members: list[_Member], reason: str, step: int) -> None:
    for member in members:
        if member.active:
            member.active, member.stop_reason, member.steps = False, reason, step


def _record(members: list[_Member], stack: _Stack, losses: list[torch.Tensor], output: torch.Tensor,
            targets: torch.Tensor, step: int, seconds: float, lr: float, config: Any, hook: Any = None) -> None:
    """Each active model's curve point; a non-finite loss drops the model, a reached target PSNR stops it.

    With ``hook``, each recorded point also goes to the ``inrkit_step_end`` observers, with the model
    holding this step's weights (the ones the step's loss was computed with).
    """
    with torch.no_grad():
        values = torch.stack([v.detach() for v in losses]).tolist()
        errors = ((output.detach() - targets) ** 2).mean(dim=(1, 2)).tolist()
    for k, member in enumerate(members):
        if not member.active:
            continue
        if not math.isfinite(values[k]):
            member.active, member.diverged, member.stop_reason = False, True, "diverged"
            continue
        psnr = psnr_from_mse(errors[k], member.signal.data_range)
        point = {"step": step, "seconds": seconds, "loss": values[k], "psnr": psnr, "lr": lr}
        member.curve.append(point)
        if hook is not None:
            stack.write_back(k, member.job.model, None)
            hook.inrkit_step_end(step=StepEnded(**point, progress=_progress(config, step, seconds, psnr),
                                                model=member.job.model))
        if config.target_psnr is not None and psnr >= config.target_psnr:
            member.active, member.stop_reason, member.steps = False, "target_psnr", step
            member.saved = stack.snapshot(k)


__all__ = ["CPU_BATCH_BYTES", "CPU_GROUP_LIMIT", "GPU_GROUP_LIMIT", "MEMORY_SHARE", "NotBatchable", "batch_key", "group_limit",
           "model_bytes", "train_batched"]
