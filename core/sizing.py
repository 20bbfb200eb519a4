"""Choosing layer widths from a parameter budget.

The budget counts every number stored in the model file, frozen frequencies
included (see :func:`inrkit.model.stored_parameter_count`).
"""

from __future__ import annotations

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
    if architecture == "siren":
        return (dims * n + n) + hidden_layers * (n * n + n) + head
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
    ratio = 1.0 if architecture == "siren" else input_ratio

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
