"""Evaluation metrics for saliency maps, on 2D images and 3D volumes, batched.

- faithfulness: :func:`deletion_curve`, :func:`deletion_auc`, :func:`insertion_curve`,
  :func:`insertion_auc` (Petsiuk et al. 2018);
- localisation against a mask: :func:`pointing_game`, :func:`energy_in_mask`, :func:`auroc`,
  :func:`auprc`; and :func:`sparseness` (Gini index).

Maps are ``(B, C, *spatial)`` and are channel-summed (signed) before ranking or scoring.
Every function returns one value per sample.
"""

from __future__ import annotations

from .faithfulness import deletion_auc, deletion_curve, insertion_auc, insertion_curve
from .localisation import auprc, auroc, energy_in_mask, pointing_game, sparseness

__all__ = [
    "auprc",
    "auroc",
    "deletion_auc",
    "deletion_curve",
    "energy_in_mask",
    "insertion_auc",
    "insertion_curve",
    "pointing_game",
    "sparseness",
]
