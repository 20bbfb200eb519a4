"""Choosing layer widths from a parameter budget.

The budget counts every number stored in the model file, frozen frequencies
included (see :func:`inrkit.model.stored_parameter_count`).
"""

from __future__ import annotations

import math

from inrkit.errors import ConfigError

#: Input frequencies per hidden neuron when widths follow from ``--params``.
DEFAULT_INPUT_RATIO = 1.0


def stored_count(
    architecture: str,
    dims: int,
    channels: int,
    input_frequencies: int,
    width: int,
    hidden_layers: int,
    bound_mode: str = "project",
) -> int:
    """Number of stored values of a model with these widths (closed form).

    Parameters
    ----------
    architecture:
        ``lattice``/``uniform`` or ``siren``.
    dims, channels:
        Input dimension and output channels.
    input_frequencies, width:
        ``m`` (first-layer width) and ``n`` (hidden width).
    hidden_layers:
        Hidden layers (for SIREN, the hidden-to-hidden layers).
    bound_mode:
        ``tanh`` stores one extra trainable bound per column of each hidden layer.
    """
    m, n = input_frequencies, width
    head = n * channels + channels + 2 * channels  # weights, bias, output offset and scale
    if architecture in ("siren", "finer"):
        return (dims * n + n) + hidden_layers * (n * n + n) + head
    if architecture == "ffn":  # frozen Gaussian matrix B [m, d], then ReLU layers on [cos, sin] (2m features)
        return m * dims + (2 * m * n + n) + (hidden_layers - 1) * (n * n + n) + head
    if architecture == "hashgrid":
        raise ConfigError("a hashgrid's size depends on its tables: use hashgrid_count")
    per_column = 1 if bound_mode == "tanh" else 0
    first = m * dims + m  # frozen frequencies + phases
    hidden = (m * n + n + per_column * m) + (hidden_layers - 1) * (n * n + n + per_column * n)
    return first + hidden + head


def widths_for_params(
    params: int,
    architecture: str,
    dims: int,
    channels: int,
    hidden_layers: int = 1,
    input_ratio: float = DEFAULT_INPUT_RATIO,
    bound_mode: str = "project",
) -> tuple[int, int]:
    """Largest widths ``(m, n)`` whose stored count is at most ``params``.

    For the lattice models ``m = round(input_ratio * n)``; for SIREN ``m = n``.

    Raises
    ------
    ConfigError
        If even the smallest model (``n = 1``) exceeds the budget.
    """
    ratio = 1.0 if architecture in ("siren", "finer") else input_ratio

    def count(n: int) -> int:
        m = max(dims, round(ratio * n))
        return stored_count(architecture, dims, channels, m, n, hidden_layers, bound_mode)

    if count(1) > params:
        raise ConfigError(
            f"--params {params} is too small: the smallest {architecture} model for this signal "
            f"stores {count(1)} numbers; ask for more parameters"
        )
    low, high = 1, 1
    while count(high * 2) <= params:
        high *= 2
    high *= 2
    while high - low > 1:
        mid = (low + high) // 2
        if count(mid) <= params:
            low = mid
        else:
            high = mid
    return max(dims, round(ratio * low)), low


# The multiresolution hash encoding of Instant-NGP (Mueller et al. 2022), sized without building it.

#: Features per table entry ``F`` and coarsest resolution ``N_min`` (Instant-NGP's defaults).
HASH_FEATURES = 2
HASH_MIN_RESOLUTION = 16
#: Most levels (Instant-NGP's ``L = 16``) and the MLP widths tried, widest first (Instant-NGP uses 64).
HASH_MAX_LEVELS = 16
HASH_WIDTHS = (64, 32, 16, 8)
#: Share of the budget the MLP may take at most; the tables get the rest.
HASH_MLP_SHARE = 0.25


def hash_resolutions(levels: int, min_resolution: int, max_resolution: int) -> list[int]:
    """Grid resolution ``N_l = floor(N_min b^l)`` per level, ``b = exp((ln N_max - ln N_min) / (L - 1))``."""
    if levels == 1:
        return [min_resolution]
    growth = (math.log(max_resolution) - math.log(min_resolution)) / (levels - 1)
    return [max(1, math.floor(min_resolution * math.exp(growth * level) + 1e-9)) for level in range(levels)]


def hash_table_rows(dims: int, levels: int, table_size: int, min_resolution: int, max_resolution: int) -> list[int]:
    """Entries stored per level: ``(N_l + 1)^d`` vertices while that is at most ``T`` (indexed 1:1), else ``T`` (hashed)."""
    return [min(table_size, (n + 1) ** dims) for n in hash_resolutions(levels, min_resolution, max_resolution)]


def hashgrid_count(dims: int, channels: int, levels: int, table_size: int, features: int, min_resolution: int,
                   max_resolution: int, width: int, hidden_layers: int) -> int:
    """Stored values of a hash-grid model: the tables, a ReLU MLP on the ``L F`` encoded features, the head."""
    tables = features * sum(hash_table_rows(dims, levels, table_size, min_resolution, max_resolution))
    mlp = (levels * features * width + width) + (hidden_layers - 1) * (width * width + width)
    return tables + mlp + width * channels + 3 * channels


def plan_hashgrid(params: int, dims: int, channels: int, hidden_layers: int, max_resolution: int) -> dict[str, int]:
    """Levels, table size and MLP width of the largest hash-grid model within ``params`` stored values.

    The rule (Instant-NGP's hyper-parameters scaled to a small budget): ``F = 2``
    and ``N_min = 16``; the MLP is the widest of 64, 32, 16, 8 whose size (with 16
    levels) is at most a quarter of the budget; the levels are as many as the
    tables can give twice the coarsest grid's ``(N_min + 1)^d`` entries each
    (2 to 16); the table size ``T`` is then the largest that fits.

    Raises
    ------
    ConfigError
        If the budget cannot hold one table entry per level beside the MLP.
    """
    low = min(HASH_MIN_RESOLUTION, max_resolution)
    high = max(low, max_resolution)

    def mlp(levels: int, width: int) -> int:
        return hashgrid_count(dims, channels, levels, 0, HASH_FEATURES, low, high, width, hidden_layers)

    width = next((w for w in HASH_WIDTHS if mlp(HASH_MAX_LEVELS, w) <= HASH_MLP_SHARE * params), HASH_WIDTHS[-1])
    per_level = 2 * HASH_FEATURES * (low + 1) ** dims
    levels = int(min(HASH_MAX_LEVELS, max(2, (params - mlp(HASH_MAX_LEVELS, width)) // per_level)))

    def count(table: int) -> int:
        return hashgrid_count(dims, channels, levels, table, HASH_FEATURES, low, high, width, hidden_layers)

    if count(1) > params:
        raise ConfigError(f"--params {params} is too small for --architecture hashgrid: its smallest model for this "
                          f"signal ({levels} level(s), a {width}-wide MLP) stores {count(1)} numbers; ask for more "
                          "parameters")
    dense = (high + 1) ** dims  # a larger table than the finest grid's vertices stores nothing more
    table, top = 1, 2
    while top < dense and count(top) <= params:
        table, top = top, top * 2
    top = min(top, dense)
    if count(top) <= params:
        table = top
    while top - table > 1:
        middle = (table + top) // 2
        table, top = (middle, top) if count(middle) <= params else (table, middle)
    return {"hash_levels": levels, "hash_table_size": table, "hash_features": HASH_FEATURES,
            "hash_min_resolution": low, "hash_max_resolution": high, "width": width}
