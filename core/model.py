"""The sinusoidal INR ``f(x) = L(S(D(x)))`` and the SIREN baseline.

* :class:`LatticeSine` is ``D``: ``sin(omega_j . x + phi_j)`` with frozen
  integer-lattice frequencies ``omega_j = 2 pi f_j / p`` and trainable phases.
* :class:`BoundedSine` is ``S``: ``sin(omega_g (W y + b))`` with the per-column
  bound ``|omega_g W_ij| <= c_j``.
* :class:`SinusoidalINR` chains them with a linear head ``L``. Bounded layers after the
  first may carry a share ``s`` of their input past them (``ModelConfig.skip``):
  ``y <- s y + (1 - s) sin(omega_g (W y + b))``, a sum of functions of the same
  integer frequency combinations, so the spectrum stays on the lattice.
* :class:`Siren` is the baseline of Sitzmann et al. (2020).

Tensor conventions: coordinates ``x`` are ``[N, d]`` float32 in ``[-1, 1]``;
outputs are ``[N, channels]``.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import torch
from torch import nn

from inrkit.bounds import column_bounds, project_columns_
from inrkit.config import PEER_ARCHITECTURES, ModelConfig
from inrkit.direct import DirectSines
from inrkit.errors import ConfigError
from inrkit.lattice import sample_lattice_frequencies, sample_uniform_frequencies

if TYPE_CHECKING:
    from inrkit.signal import Signal

#: Offset of the weight-initialisation generator's seed from ``ModelConfig.seed`` (the lattice sampling
#: uses the seed itself, so the two streams differ).
INIT_SEED_OFFSET = 1


class _BasisLinear(torch.autograd.Function):
    """``D W^T`` with ``D = S cos(phi) + C sin(phi)``, from a cached basis ``S, C``.

    The backward pass never forms the ``[N, m]`` gradient of ``D``: with
    ``M_S = G^T S`` and ``M_C = G^T C`` (``[n, m]`` each),
    ``dW = M_S cos(phi) + M_C sin(phi)`` and
    ``dphi_j = sum_i W_ij (M_C cos(phi) - M_S sin(phi))_ij``.
    Two matmuls and small ``[n, m]`` arithmetic replace a matmul and several
    ``[N, m]`` element-wise passes.
    """

    @staticmethod
    def forward(ctx, sin_part, cos_part, phases, weight):
        cos_phi, sin_phi = torch.cos(phases), torch.sin(phases)
        ctx.save_for_backward(sin_part, cos_part, cos_phi, sin_phi, weight)
        return (sin_part * cos_phi + cos_part * sin_phi) @ weight.T

    @staticmethod
    def backward(ctx, grad_output):
        sin_part, cos_part, cos_phi, sin_phi, weight = ctx.saved_tensors
        grad_t = grad_output.T
        m_sin, m_cos = grad_t @ sin_part, grad_t @ cos_part
        grad_weight = m_sin * cos_phi + m_cos * sin_phi
        grad_phases = (weight * (m_cos * cos_phi - m_sin * sin_phi)).sum(dim=0)
        return None, None, grad_phases, grad_weight


class LatticeSine(nn.Module):
    """Input layer ``D(x) = sin(2 pi / p * f . x + phi)`` with frozen integer ``f``.

    Parameters
    ----------
    frequencies:
        Integer lattice frequencies ``f`` of shape ``[m, d]``; stored as a
        buffer (saved, never trained).
    period:
        Period ``p``.
    generator:
        Randomness for the phases ``phi ~ U(-pi/2, pi/2)``.
    """

    def __init__(self, frequencies: torch.Tensor, period: float, generator: torch.Generator | None = None):
        super().__init__()
        self.period = float(period)
        self.register_buffer("frequencies", frequencies.to(torch.int32))
        phases = (torch.rand(frequencies.shape[0], generator=generator) - 0.5) * math.pi
        self.phases = nn.Parameter(phases)

    @property
    def omega(self) -> torch.Tensor:
        """Angular frequencies ``[m, d]``: ``2 pi f / p``, in the phases' dtype."""
        return self.frequencies.to(self.phases.dtype) * (2.0 * math.pi / self.period)

    def basis(self, coords: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``sin(omega . x)`` and ``cos(omega . x)``, each ``[N, m]``.

        They do not depend on trainable parameters, so a trainer with a fixed
        coordinate set computes them once (METHOD.md section 6).
        """
        angle = coords @ self.omega.T
        return torch.sin(angle), torch.cos(angle)

    def from_basis(self, sin_part: torch.Tensor, cos_part: torch.Tensor) -> torch.Tensor:
        """``sin(a + phi) = sin(a) cos(phi) + cos(a) sin(phi)`` from a cached basis."""
        return sin_part * torch.cos(self.phases) + cos_part * torch.sin(self.phases)

    def forward(self, coords: torch.Tensor) -> torch.Tensor:
        return torch.sin(coords @ self.omega.T + self.phases)


class BoundedSine(nn.Module):
    """Hidden layer ``sin(omega_g (W y + b))`` with ``|omega_g W_ij| <= c_j``.

    Parameters
    ----------
    in_features, out_features:
        ``m`` and ``n``.
    bounds:
        ``[m]`` per-column bounds ``c_j`` on the scaled weight.
    omega_g:
        Pre-activation scale.
    mode:
        ``project``: ``W`` is a plain parameter clamped by :meth:`project_`
        after every optimiser step. ``tanh``: ``omega_g W = c tanh(V)`` with a
        trainable per-column ``c`` (initialised to ``bounds``), always within
        the bound ``|c|`` by construction.
    generator:
        Randomness for the initialisation ``omega_g W ~ U(-sqrt(6/m), sqrt(6/m))``
        (clamped to the bounds).
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        bounds: torch.Tensor,
        omega_g: float = 30.0,
        mode: str = "project",
        generator: torch.Generator | None = None,
    ):
        super().__init__()
        self.omega_g = float(omega_g)
        self.mode = mode
        limit = math.sqrt(6.0 / in_features)
        scaled = (torch.rand(out_features, in_features, generator=generator) * 2 - 1) * limit
        scaled = torch.maximum(torch.minimum(scaled, bounds), -bounds)
        bias_limit = 1.0 / math.sqrt(in_features)
        self.bias = nn.Parameter((torch.rand(out_features, generator=generator) * 2 - 1) * bias_limit)
        if mode == "tanh":
            self.column_scale = nn.Parameter(bounds.clone())
            ratio = (scaled / bounds).clamp(-0.999, 0.999)
            self.raw_weight = nn.Parameter(torch.atanh(ratio))
        else:
            # Derivable from the frequencies and the config, so not saved.
            self.register_buffer("bounds", bounds.clone(), persistent=False)
            self.weight = nn.Parameter(scaled / self.omega_g)

    def scaled_weight(self) -> torch.Tensor:
        """``omega_g W`` as ``[n, m]`` (the matrix the bound applies to)."""
        if self.mode == "tanh":
            return self.column_scale * torch.tanh(self.raw_weight)
        return self.weight * self.omega_g

    def effective_bounds(self) -> torch.Tensor:
        """Current per-column bound ``[m]`` on ``|omega_g W_ij|``."""
        if self.mode == "tanh":
            return self.column_scale.detach().abs()
        return self.bounds

    @torch.no_grad()
    def project_(self) -> None:
        """Enforce the bound (no-op in ``tanh`` mode, which cannot leave it)."""
        if self.mode == "project":
            project_columns_(self.weight, self.bounds, self.omega_g)

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        return torch.sin(inputs @ self.scaled_weight().T + self.omega_g * self.bias)


def carry_past(update: torch.Tensor, features: torch.Tensor, skip: float) -> torch.Tensor:
    """``skip * features + (1 - skip) * update``: a bounded layer's output with ``skip`` of its input carried past it."""
    return torch.lerp(update, features, skip) if skip else update


class OutputMap(nn.Module):
    """Per-channel ``offset + scale * y`` after the linear head (buffers, saved with the model)."""

    def __init__(self, offset: tuple[float, ...], scale: tuple[float, ...]):
        super().__init__()
        self.register_buffer("offset", torch.tensor(offset, dtype=torch.float32))
        self.register_buffer("scale", torch.tensor(scale, dtype=torch.float32))

    def forward(self, values: torch.Tensor) -> torch.Tensor:
        return torch.addcmul(self.offset.to(values.dtype), values, self.scale.to(values.dtype))


def _head(width: int, channels: int, omega_g: float, generator: torch.Generator | None) -> nn.Linear:
    head = nn.Linear(width, channels)
    limit = math.sqrt(6.0 / width) / omega_g
    with torch.no_grad():
        head.weight.copy_((torch.rand(channels, width, generator=generator) * 2 - 1) * limit)
        head.bias.zero_()
    return head


class SinusoidalINR(nn.Module):
    """``f(x) = L(S(D(x)))``: lattice input layer, bounded sine layer(s), linear head.

    Build with :func:`build_model`; the constructor takes the frozen
    frequencies explicitly so a saved model is rebuilt exactly.

    Parameters
    ----------
    config:
        Shapes, bounds and scales.
    frequencies:
        ``[m, d]`` integer lattice frequencies.
    """

    def __init__(self, config: ModelConfig, frequencies: torch.Tensor, direct_frequencies: torch.Tensor | None = None):
        super().__init__()
        self.config = config
        generator = torch.Generator().manual_seed(config.seed + INIT_SEED_OFFSET)
        self.input = LatticeSine(frequencies, config.period, generator)
        first_bounds = column_bounds(frequencies, config.low_bandlimit, config.c_low, config.c_high)
        layers = [BoundedSine(frequencies.shape[0], config.width, first_bounds, config.omega_g, config.bound_mode, generator)]
        for _ in range(config.hidden_layers - 1):
            deep_bounds = torch.full((config.width,), float(config.c_low))
            layers.append(BoundedSine(config.width, config.width, deep_bounds, config.omega_g, config.bound_mode, generator))
        self.hidden = nn.ModuleList(layers)
        self.head = _head(config.width, config.out_channels, config.omega_g, generator)
        self.output = OutputMap(config.output_offset, config.output_scale)
        self.direct: DirectSines | None = None
        if config.direct:
            if direct_frequencies is None or tuple(direct_frequencies.shape) != (config.direct, config.dims):
                raise ConfigError(f"a model with {config.direct} direct lines needs their [{config.direct}, "
                                  f"{config.dims}] frequencies")
            self.direct = DirectSines(direct_frequencies, config.period, config.out_channels)

    def from_features(self, features: torch.Tensor, lines: torch.Tensor | None = None) -> torch.Tensor:
        """``L(S(y))`` for input-layer activations ``y = D(x)`` of shape ``[N, m]``, plus the direct
        ``lines`` (``[N, channels]``, a model with :attr:`direct` only)."""
        return self._after_first(self.hidden[0](features), lines)

    def _after_first(self, features: torch.Tensor, lines: torch.Tensor | None = None) -> torch.Tensor:
        """The deeper bounded layers (each carrying ``config.skip`` of its input past it), the head, the lines."""
        for layer in self.hidden[1:]:
            features = carry_past(layer(features), features, self.config.skip)
        out = self.head(features)
        return self.output(out if lines is None else out + lines)

    def forward(self, coords: torch.Tensor) -> torch.Tensor:
        return self.from_features(self.input(coords), None if self.direct is None else self.direct(coords))

    def basis_columns(self) -> int:
        """Columns of :meth:`basis` per sample, all parts together (what a cache of it costs, in float32 x 4 bytes)."""
        lines = 0 if self.direct is None else self.direct.frequencies.shape[0]
        return 2 * (self.input.frequencies.shape[0] + lines)

    def basis(self, coords: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """What :meth:`from_basis` takes for ``coords``: the input basis, and the direct lines' basis if any."""
        if self.direct is None:
            return self.input.basis(coords)
        return (*self.input.basis(coords), self.direct.basis(coords))

    def from_basis(self, sin_part: torch.Tensor, cos_part: torch.Tensor, line_part: torch.Tensor | None = None
                   ) -> torch.Tensor:
        """The output from a cached basis (:meth:`basis`): ``sin(omega . x)``, ``cos(omega . x)`` (``[N, m]``
        each) and, for a model with direct lines, theirs (``[N, 2 k]``).

        Equal to ``forward(x)``; faster in training (see :class:`_BasisLinear`).
        """
        first = self.hidden[0]
        pre = _BasisLinear.apply(sin_part, cos_part, self.input.phases, first.scaled_weight())
        lines = None
        if self.direct is not None:
            if line_part is None:
                raise ConfigError("this model has direct lines: pass their basis too (SinusoidalINR.basis)")
            lines = self.direct.from_basis(line_part)
        return self._after_first(torch.sin(pre + first.omega_g * first.bias), lines)

    def phase_parameters(self) -> list[nn.Parameter]:
        """The input phases: the trainer scales their learning rate (``TrainConfig.phase_lr_scale``)."""
        return [self.input.phases]

    @torch.no_grad()
    def project_(self) -> None:
        """Enforce every layer's bound; call after each optimiser step."""
        for layer in self.hidden:
            layer.project_()


class Siren(nn.Module):
    """SIREN baseline (Sitzmann et al., NeurIPS 2020).

    ``hidden_layers`` counts the hidden-to-hidden sine layers after the first
    layer, as in the reference implementation: 3 hidden layers means four sine
    layers and a linear head. The first layer is ``sin(omega0 (A x + a))``
    with ``A ~ U(-1/d, 1/d)`` and ``omega0 = siren_omega0``; later ones
    ``sin(w (W y + b))`` with ``w = siren_hidden_omega0`` and
    ``W ~ U(-sqrt(6/n)/w, sqrt(6/n)/w)``, as in the reference code's
    ``first_omega_0`` / ``hidden_omega_0``.
    """

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        generator = torch.Generator().manual_seed(config.seed + INIT_SEED_OFFSET)
        hidden_omega = config.siren_hidden_omega0
        dims, width = config.dims, config.width
        sizes = [(dims, width)] + [(width, width)] * config.hidden_layers
        self.omegas = [config.siren_omega0] + [hidden_omega] * config.hidden_layers
        self.layers = nn.ModuleList()
        for index, (fan_in, fan_out) in enumerate(sizes):
            layer = nn.Linear(fan_in, fan_out)
            limit = 1.0 / fan_in if index == 0 else math.sqrt(6.0 / fan_in) / hidden_omega
            with torch.no_grad():
                layer.weight.copy_((torch.rand(fan_out, fan_in, generator=generator) * 2 - 1) * limit)
                bias_limit = 1.0 / math.sqrt(fan_in)
                layer.bias.copy_((torch.rand(fan_out, generator=generator) * 2 - 1) * bias_limit)
            self.layers.append(layer)
        self.head = _head(width, config.out_channels, hidden_omega, generator)
        self.output = OutputMap(config.output_offset, config.output_scale)

    def forward(self, coords: torch.Tensor) -> torch.Tensor:
        features = coords
        for omega, layer in zip(self.omegas, self.layers):
            features = torch.sin(omega * layer(features))
        return self.output(self.head(features))

    def project_(self) -> None:
        """SIREN has no bounds; present so trainers treat every model alike."""


def build_model(config: ModelConfig, signal: Signal | None = None) -> nn.Module:
    """Initialise a model from its configuration (deterministic given ``config.seed``).

    ``lattice``/``uniform``: :class:`SinusoidalINR`; ``siren``: :class:`Siren`;
    ``finer``/``ffn``/``hashgrid``: the peers of :mod:`inrkit.peers`.
    ``signal``: the target, needed by ``input_sampling="spectrum"`` (a signal
    without a grid keeps the box sampler there).

    Raises
    ------
    ConfigError
        ``input_sampling="spectrum"`` without a signal.
    """
    if config.architecture == "siren":
        return Siren(config)
    if config.architecture in PEER_ARCHITECTURES:
        from inrkit.peers import build_peer

        return build_peer(config)
    generator = torch.Generator().manual_seed(config.seed)
    if config.architecture == "lattice" and config.input_sampling == "spectrum":
        if signal is None:
            raise ConfigError("input_sampling 'spectrum' draws the frequencies from the signal: pass it to build_model")
        from inrkit.spectral_init import signal_frequencies

        frequencies = signal_frequencies(signal, config.input_frequencies, config.bandlimit, config.low_bandlimit,
                                         config.low_fraction, generator, config.period)
    elif config.architecture == "lattice":
        frequencies = sample_lattice_frequencies(
            config.input_frequencies, config.bandlimit, config.low_bandlimit, config.low_fraction, generator
        )
    else:
        frequencies = sample_uniform_frequencies(config.input_frequencies, config.bandlimit, generator)
    if not config.direct:
        return SinusoidalINR(config, frequencies)
    from inrkit.direct import attach_lines

    return attach_lines(config, frequencies, signal)


def stored_parameter_count(model: nn.Module) -> int:
    """Every number saved in the model file: parameters and buffers (frozen frequencies included)."""
    return sum(t.numel() for t in model.state_dict().values())
