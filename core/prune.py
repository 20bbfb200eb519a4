"""Pruning and the add-prune loop: find an adequate size for a signal (METHOD.md section 5).

The public names of pruning, re-exported from the modules that hold them
(one idea each):

* :mod:`inrkit.importance`: how much each neuron matters
  (:func:`input_importance`, a proven bound on the output change of removing
  an input neuron; :func:`hidden_importance`; :func:`hidden_weights`), and
  the spectrum's view (:func:`spectral_contribution`).
* :mod:`inrkit.surgery`: removing neurons (:func:`remove_inputs`,
  :func:`remove_hidden`, :func:`shrink_to`, :func:`widths_at`) and replacing
  input neurons with new lattice frequencies (:func:`swap_inputs`,
  :func:`residual_candidates`, :func:`random_candidates`).
* :mod:`inrkit.phases`: a pruned fit (:func:`pruned_fit`,
  :class:`PruneOptions`, :class:`PrunedFit`): one budget sliced into phases
  of fitting, pruning and fine-tuning, with an optional L1 penalty
  (:func:`l1_penalty`, :func:`with_l1`).

This module only re-exports; it defines nothing.
"""

from __future__ import annotations

from inrkit.importance import hidden_importance, hidden_weights, input_importance, spectral_contribution
from inrkit.phases import PrunedFit, PruneOptions, l1_penalty, pruned_fit, with_l1
from inrkit.surgery import (
    random_candidates,
    remove_hidden,
    remove_inputs,
    residual_candidates,
    shrink_to,
    swap_inputs,
    widths_at,
)

# Importable from here as before the split, though not in __all__.
from inrkit.phases import measured_psnr  # noqa: F401
from inrkit.surgery import NEW_WEIGHT_SCALE  # noqa: F401

__all__ = [
    "PruneOptions",
    "PrunedFit",
    "pruned_fit",
    "hidden_importance",
    "hidden_weights",
    "input_importance",
    "l1_penalty",
    "random_candidates",
    "remove_hidden",
    "remove_inputs",
    "residual_candidates",
    "shrink_to",
    "spectral_contribution",
    "swap_inputs",
    "widths_at",
    "with_l1",
]
