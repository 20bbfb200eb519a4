"""Per-column bounds of the first hidden layer.

Column ``j`` of the hidden weight matrix ``W`` multiplies input neuron ``j``.
With ``|omega_g W_ij| <= c_j <= 2`` the Bessel amplitudes of the generated
frequencies fall off at least exponentially (METHOD.md section 4), which is
what keeps the network's spectrum under control.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch


def column_bounds(
    frequencies: torch.Tensor,
    low_bandlimit: Sequence[int],
    c_low: float,
    c_high: float,
) -> torch.Tensor:
    """Bound ``c_j`` for every input frequency.

    Parameters
    ----------
    frequencies:
        Integer lattice frequencies ``[m, d]``.
    low_bandlimit:
        Per-axis extent ``L`` of the low block.
    c_low, c_high:
        Bound for columns whose frequency lies in the low block
        ``|f_i| <= L_i`` (all axes), and for the others.

    Returns
    -------
    torch.Tensor
        ``[m]`` float32 bounds.
    """
    limit = torch.as_tensor(list(low_bandlimit), dtype=frequencies.dtype, device=frequencies.device)
    low = (frequencies.abs() <= limit).all(dim=1)
    return torch.where(low, torch.tensor(float(c_low)), torch.tensor(float(c_high))).to(torch.float32)


@torch.no_grad()
def project_columns_(weight: torch.Tensor, bounds: torch.Tensor, scale: float = 1.0) -> None:
    """Clamp ``|scale * weight[:, j]| <= bounds[j]`` in place.

    Parameters
    ----------
    weight:
        ``[n, m]`` weight matrix.
    bounds:
        ``[m]`` positive bounds, one per column.
    scale:
        Factor ``omega_g`` that multiplies the weight in the forward pass; the
        bound applies to the scaled weight.
    """
    limit = (bounds / scale).unsqueeze(0)
    torch.clamp_(weight, min=-limit, max=limit)
