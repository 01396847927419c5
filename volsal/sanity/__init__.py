"""Sanity checks for saliency maps (Adebayo et al., NeurIPS 2018), for 2D and 3D models.

- :func:`check_parameter_randomization` / :func:`check_data_randomization`: the checks, with a
  :class:`RandomizationResult` (table, markdown, similarity curve, map grid);
- :func:`randomized_copies`, :func:`parameter_layers`: randomised deep copies of a model;
- similarity of two maps: :func:`spearman`, :func:`spearman_abs`, :func:`ssim`,
  :func:`hog_similarity`, :func:`topk_intersection`.
"""

from __future__ import annotations

from .check import (
    METRICS,
    RandomizationResult,
    check_data_randomization,
    check_parameter_randomization,
)
from .randomize import parameter_layers, randomize_layers, randomized_copies, select_layers
from .similarity import hog_similarity, spearman, spearman_abs, ssim, topk_intersection

__all__ = [
    "METRICS",
    "RandomizationResult",
    "check_data_randomization",
    "check_parameter_randomization",
    "hog_similarity",
    "parameter_layers",
    "randomize_layers",
    "randomized_copies",
    "select_layers",
    "spearman",
    "spearman_abs",
    "ssim",
    "topk_intersection",
]
