"""Peer architectures, trained by the same trainer for side-by-side comparisons.

* :class:`Finer`: FINER (Liu et al., "FINER: Flexible spectral-bias tuning in
  Implicit NEural Representation by Variable-periodic Activation Functions",
  CVPR 2024): SIREN's layers with the activation ``sin(omega (|z| + 1) z)``.
* :class:`FourierFeatureMLP`: Gaussian Fourier features and a ReLU MLP
  (Tancik et al., "Fourier Features Let Networks Learn High Frequency
  Functions in Low Dimensional Domains", NeurIPS 2020).
* :class:`HashGrid`: a multiresolution hash encoding and a tiny ReLU MLP
  (Mueller et al., "Instant Neural Graphics Primitives with a Multiresolution
  Hash Encoding", SIGGRAPH 2022), in plain PyTorch (CPU and GPU).

Each takes coordinates ``[N, d]`` in ``[-1, 1]`` and returns ``[N, channels]``
through the same per-channel output map as the lattice model, so every
architecture works on values of order one. Their sizes come from
:mod:`inrkit.sizing` (``stored_count``, ``plan_hashgrid``); the planner
(:func:`inrkit.planning.plan_model`) fills them in from ``--params``.
"""

from __future__ import annotations

import math
from itertools import pairwise

import torch
from torch import nn

from inrkit.config import ModelConfig
from inrkit.model import INIT_SEED_OFFSET, OutputMap, _head
from inrkit.sizing import hash_resolutions, hash_table_rows

#: Instant-NGP's spatial-hash primes (the first is 1, for cache coherence), one per input axis.
HASH_PRIMES = (1, 2654435761, 805459861, 3674653429)
#: Instant-NGP initialises the hash tables with U(-1e-4, 1e-4).
HASH_INIT = 1e-4


def finer_activation(z: torch.Tensor, omega: float) -> torch.Tensor:
    """``sin(omega (|z| + 1) z)``, differentiated exactly: ``d/dz = omega (2 |z| + 1) cos(omega (|z| + 1) z)``.

    (FINER's reference code can also treat ``|z| + 1`` as a constant in backpropagation, its
    ``scale_req_grad=False``; the exact derivative is used here so that gradients with respect to the
    coordinates, which SDF losses take, are those of the function the paper defines.)
    """
    return torch.sin(omega * (z.abs() + 1) * z)


def _uniform(shape: tuple[int, ...], limit: float, generator: torch.Generator) -> torch.Tensor:
    return (torch.rand(*shape, generator=generator) * 2 - 1) * limit


def _glorot_normal(layer: nn.Linear, generator: torch.Generator) -> None:
    """Glorot-normal weights and zero biases (the defaults of the ``stax.Dense`` layers FFN's code used)."""
    fan_out, fan_in = layer.weight.shape
    with torch.no_grad():
        layer.weight.copy_(torch.randn(fan_out, fan_in, generator=generator) * math.sqrt(2.0 / (fan_in + fan_out)))
        layer.bias.zero_()


class Finer(nn.Module):
    """FINER (Liu et al., CVPR 2024).

    SIREN's architecture and weight initialisation (first layer
    ``U(-1/d, 1/d)``, later ones ``U(-sqrt(6/n)/omega, sqrt(6/n)/omega)``)
    with the variable-periodic activation ``sin(omega (|z| + 1) z)``, and the
    first layer's bias drawn from ``U(-k, k)`` with ``k = finer_first_bias``
    (the paper's initialisation: a wider bias range selects higher-frequency
    parts of the activation). ``hidden_layers`` counts the layers after the
    first, as for :class:`~inrkit.model.Siren` (the paper's 3 x 256 MLP).
    """

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        generator = torch.Generator().manual_seed(config.seed + INIT_SEED_OFFSET)
        width, hidden_omega = config.width, config.siren_hidden_omega0
        sizes = [(config.dims, width)] + [(width, width)] * config.hidden_layers
        self.omegas = [config.siren_omega0] + [hidden_omega] * config.hidden_layers
        self.layers = nn.ModuleList()
        for index, (fan_in, fan_out) in enumerate(sizes):
            layer = nn.Linear(fan_in, fan_out)
            limit = 1.0 / fan_in if index == 0 else math.sqrt(6.0 / fan_in) / hidden_omega
            bias = config.finer_first_bias if index == 0 else 1.0 / math.sqrt(fan_in)
            with torch.no_grad():
                layer.weight.copy_(_uniform((fan_out, fan_in), limit, generator))
                layer.bias.copy_(_uniform((fan_out,), bias, generator))
            self.layers.append(layer)
        self.head = _head(width, config.out_channels, hidden_omega, generator)
        self.output = OutputMap(config.output_offset, config.output_scale)

    def forward(self, coords: torch.Tensor) -> torch.Tensor:
        features = coords
        for omega, layer in zip(self.omegas, self.layers):
            features = finer_activation(layer(features), omega)
        return self.output(self.head(features))


class FourierFeatureMLP(nn.Module):
    """Gaussian Fourier features and a ReLU MLP (Tancik et al., NeurIPS 2020).

    ``gamma(v) = [cos(2 pi B v), sin(2 pi B v)]`` with ``v = (x + 1) / 2`` in
    ``[0, 1]^d`` (the paper's domain, so ``sigma`` keeps its meaning) and a
    frozen ``B ~ N(0, sigma^2)`` of shape ``[m, d]`` (stored in the model file,
    so it counts in ``--params``); then ``hidden_layers`` ReLU layers of width
    ``n`` and a linear head (the paper's 4-layer MLP is 3 ReLU layers and its
    output layer; the output map replaces its final sigmoid, which is
    specific to images in ``[0, 1]``).
    """

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        generator = torch.Generator().manual_seed(config.seed)
        matrix = torch.randn(config.input_frequencies, config.dims, generator=generator) * config.ffn_sigma
        self.register_buffer("matrix", matrix)
        generator = torch.Generator().manual_seed(config.seed + INIT_SEED_OFFSET)
        sizes = [2 * config.input_frequencies] + [config.width] * config.hidden_layers
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in pairwise(sizes))
        self.head = nn.Linear(config.width, config.out_channels)
        for layer in [*self.layers, self.head]:
            _glorot_normal(layer, generator)
        self.output = OutputMap(config.output_offset, config.output_scale)
        self._cache: tuple | None = None

    def encode(self, coords: torch.Tensor) -> torch.Tensor:
        """``[cos(2 pi B v), sin(2 pi B v)]``, ``[N, 2m]``."""
        angle = (coords + 1) * math.pi @ self.matrix.T.to(coords.dtype)  # 2 pi B v with v = (x + 1) / 2
        return torch.cat([torch.cos(angle), torch.sin(angle)], dim=1)

    def forward(self, coords: torch.Tensor) -> torch.Tensor:
        # The encoding depends on nothing trainable: that of the last coordinates is cached (training repeats them).
        key = (coords._version, self.matrix._version, self.matrix.device)
        if coords.requires_grad:
            features = self.encode(coords)
        elif self._cache is not None and self._cache[0] is coords and self._cache[1] == key:
            features = self._cache[2]
        else:
            with torch.no_grad():
                features = self.encode(coords)
            self._cache = (coords, key, features)
        for layer in self.layers:
            features = torch.relu(layer(features))
        return self.output(self.head(features))


class HashEncoding(nn.Module):
    """Multiresolution hash encoding (Mueller et al. 2022) of points in ``[-1, 1]^d``.

    Level ``l`` is a grid of resolution ``N_l`` (:func:`inrkit.sizing.hash_resolutions`)
    over ``[0, 1]^d``; a point's ``2^d`` surrounding vertices are looked up
    in the level's table (1:1 while the grid has at most ``T`` vertices,
    else by the spatial hash ``(xor_i c_i pi_i mod 2^32) mod T``) and their
    ``F`` features interpolated d-linearly. All levels' tables are stored as
    one ``[rows, F]`` tensor ``table``. The lookup indices and weights of
    the last coordinates seen are cached (training evaluates one fixed
    coordinate set; they depend on nothing trainable).
    """

    def __init__(self, config: ModelConfig, generator: torch.Generator):
        super().__init__()
        self.dims, self.features = config.dims, config.hash_features
        self.table_size = config.hash_table_size
        self.resolutions = hash_resolutions(config.hash_levels, config.hash_min_resolution, config.hash_max_resolution)
        rows = hash_table_rows(config.dims, config.hash_levels, config.hash_table_size, config.hash_min_resolution,
                               config.hash_max_resolution)
        self.offsets = [sum(rows[:level]) for level in range(len(rows))]
        self.rows = rows
        self.table = nn.Parameter(_uniform((sum(rows), config.hash_features), HASH_INIT, generator))
        corners = torch.tensor([[(corner >> axis) & 1 for axis in range(self.dims)] for corner in range(2**self.dims)])
        self.register_buffer("corners", corners, persistent=False)
        self._cache: tuple | None = None

    def lookup(self, coords: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Row of ``table`` and d-linear weight of every corner: ``[levels, N, 2^d]`` each."""
        # Weights differentiable in the coordinates when they need a gradient (eikonal and normal losses).
        unit = ((coords if coords.requires_grad else coords.detach().to(torch.float64)) + 1) / 2
        unit = unit.clamp(0.0, 1.0)
        indices, weights = [], []
        corners = self.corners.to(coords.device)
        for level, resolution in enumerate(self.resolutions):
            position = unit * resolution
            base = position.detach().floor().clamp(max=resolution - 1)
            fraction = position - base
            vertex = base.long()[:, None, :] + corners[None]  # [N, 2^d, d]
            weight = torch.where(corners[None].bool(), fraction[:, None, :], 1 - fraction[:, None, :]).prod(dim=2)
            if (resolution + 1) ** self.dims <= self.table_size:
                strides = torch.tensor([(resolution + 1) ** axis for axis in range(self.dims)], device=coords.device)
                index = (vertex * strides).sum(dim=2)
            else:
                index = torch.zeros_like(vertex[..., 0])
                for axis in range(self.dims):
                    index = index ^ (vertex[..., axis] * HASH_PRIMES[axis])
                index = (index & 0xFFFFFFFF) % self.table_size
            indices.append(index + self.offsets[level])
            weights.append(weight)
        return torch.stack(indices), torch.stack(weights).to(coords.dtype)

    def forward(self, coords: torch.Tensor) -> torch.Tensor:
        cache = self._cache
        if coords.requires_grad:
            indices, weights = self.lookup(coords)
        elif cache is not None and cache[0] is coords and cache[1] == coords._version:
            indices, weights = cache[2], cache[3]
        else:
            indices, weights = self.lookup(coords)
            self._cache = (coords, coords._version, indices, weights)
        values = self.table[indices]  # [levels, N, 2^d, F]
        encoded = (values * weights[..., None]).sum(dim=2)  # [levels, N, F]
        return encoded.permute(1, 0, 2).reshape(coords.shape[0], -1)


class HashGrid(nn.Module):
    """Instant-NGP (Mueller et al. 2022): :class:`HashEncoding` then a ReLU MLP and a linear head.

    ``hidden_layers`` ReLU layers of width ``n`` (Instant-NGP's 2 x 64); the
    tables, levels and width follow from ``--params``
    (:func:`inrkit.sizing.plan_hashgrid`).
    """

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        generator = torch.Generator().manual_seed(config.seed + INIT_SEED_OFFSET)
        self.encoding = HashEncoding(config, generator)
        sizes = [config.hash_levels * config.hash_features] + [config.width] * config.hidden_layers
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in pairwise(sizes))
        self.head = nn.Linear(config.width, config.out_channels)
        for layer in [*self.layers, self.head]:
            _glorot_normal(layer, generator)
        self.output = OutputMap(config.output_offset, config.output_scale)

    def forward(self, coords: torch.Tensor) -> torch.Tensor:
        features = self.encoding(coords)
        for layer in self.layers:
            features = torch.relu(layer(features))
        return self.output(self.head(features))


PEERS = {"finer": Finer, "ffn": FourierFeatureMLP, "hashgrid": HashGrid}


def build_peer(config: ModelConfig) -> nn.Module:
    """Initialise the peer model ``config.architecture`` (deterministic given ``config.seed``)."""
    return PEERS[config.architecture](config)


__all__ = ["HASH_PRIMES", "PEERS", "Finer", "FourierFeatureMLP", "HashEncoding", "HashGrid", "build_peer",
           "finer_activation"]
