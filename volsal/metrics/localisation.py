"""Localisation metrics: does the map point at the annotated region (lesion mask)?

All functions take a map ``attr (B, C, *spatial)`` (1 to 3 spatial dims) that is
**channel-summed** (signed) first, and a mask on the same grid: ``(*spatial)``,
``(B, *spatial)`` or ``(B, 1, *spatial)``, boolean or numeric (``> 0`` is inside). They return
one value per sample, ``(B,)``; where a value is undefined (empty mask, no positive
attribution...) it is ``NaN`` and a :class:`~volsal.errors.DegenerateMapWarning` is issued.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..errors import ParameterError
from ._common import check_map, check_mask, voxel_scores, warn_degenerate
from .ranks import rankdata

__all__ = ["pointing_game", "energy_in_mask", "auroc", "auprc", "sparseness"]

_CONV = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}


def _dilate(mask: torch.Tensor, spatial: tuple[int, ...], tolerance: float) -> torch.Tensor:
    """Dilate ``(B, N)`` masks by a Euclidean ball of radius ``tolerance`` voxels."""
    r = int(tolerance)
    if r < 1:
        return mask
    k = len(spatial)
    axes = torch.meshgrid(*[torch.arange(-r, r + 1, dtype=torch.float32)] * k, indexing="ij")
    ball = (sum(a.square() for a in axes) <= float(tolerance) ** 2).float()
    m = mask.reshape((mask.shape[0], 1) + spatial).float()
    hit = _CONV[k](m, ball.to(m.device)[None, None], padding=r)
    return (hit > 0.5).flatten(1)


def pointing_game(attr: torch.Tensor, mask: torch.Tensor, tolerance: float = 0) -> torch.Tensor:
    """Is the map's peak inside the mask (or within ``tolerance`` voxels of it)?

    The peak is the maximum of the channel-summed map. When several voxels tie for the
    maximum, the sample counts as a hit only if *all* of them are within the tolerance (a flat
    map does not score by luck). The tolerance is a Euclidean distance in voxels (anisotropic
    spacing is not taken into account): the mask is dilated by a ball of that radius, which
    costs one convolution with a ``(2 r + 1)^k`` kernel.

    Reference: Zhang et al., "Top-down Neural Attention by Excitation Backprop", ECCV 2016
    (tolerance 15 pixels there).

    Args:
        attr: ``(B, C, *spatial)``.
        mask: region on ``attr``'s grid (see the module docstring).
        tolerance: distance in voxels (``>= 0``).

    Returns:
        ``(B,)`` bool tensor. An empty mask gives ``False``.

    Example:
        >>> import torch
        >>> from volsal.metrics import pointing_game
        >>> mask = torch.zeros(1, 1, 4, 4, 4, dtype=torch.bool); mask[0, 0, 1, 2, 3] = True
        >>> pointing_game(mask.float(), mask).tolist()
        [True]
    """
    attr = check_map(attr)
    if isinstance(tolerance, bool) or not float(tolerance) >= 0:
        raise ParameterError(f"tolerance must be a number of voxels >= 0; got {tolerance!r}.")
    m = check_mask(mask, attr)
    inside = _dilate(m, tuple(attr.shape[2:]), float(tolerance))
    s = voxel_scores(attr)
    peak = s == s.amax(1, keepdim=True)
    return ~(peak & ~inside).any(1)


def energy_in_mask(attr: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Share of the positive attribution that falls inside the mask.

    ``sum(relu(a)[mask]) / sum(relu(a))`` on the channel-summed map ``a``: 1 when all
    positive evidence is inside. This is the energy-based pointing game of Score-CAM.
    ``NaN`` (with a warning) for maps without positive values.

    Reference: Wang et al., "Score-CAM: Score-Weighted Visual Explanations for Convolutional
    Neural Networks", CVPR workshops 2020.

    Args:
        attr: ``(B, C, *spatial)``.
        mask: region on ``attr``'s grid.

    Returns:
        ``(B,)`` in ``[0, 1]``.
    """
    attr = check_map(attr)
    m = check_mask(mask, attr)
    pos = voxel_scores(attr).clamp_min(0)
    total = pos.sum(1)
    inside = (pos * m).sum(1)
    bad = total <= 0
    warn_degenerate(bad, "energy_in_mask (no positive attribution)")
    return torch.where(bad, torch.full_like(total, float("nan")), inside / total.clamp_min(1e-300))


def _labels_and_scores(attr, mask, what):
    attr = check_map(attr)
    m = check_mask(mask, attr)
    s = voxel_scores(attr)
    if s.dtype not in (torch.float64,):
        s = s.double()
    n_pos = m.sum(1)
    bad = (n_pos == 0) | (n_pos == m.shape[1])
    warn_degenerate(bad, f"{what} (the mask is empty or covers every voxel)")
    return s, m, n_pos.to(torch.float64), bad


def auroc(attr: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Area under the ROC curve of the voxel scores as a detector of the mask.

    The Mann-Whitney U statistic with midranks for ties:
    ``AUROC = (R_pos - n_pos (n_pos + 1) / 2) / (n_pos n_neg)`` where ``R_pos`` is the sum of
    the ranks of the inside voxels. It is the probability that a random inside voxel scores
    higher than a random outside voxel, ties counting one half; 0.5 for an uninformative map.
    Computed in float64.

    Args:
        attr: ``(B, C, *spatial)`` (channel-summed, signed).
        mask: region on ``attr``'s grid.

    Returns:
        ``(B,)`` float64 in ``[0, 1]``; ``NaN`` where the mask is empty or full.
    """
    s, m, n_pos, bad = _labels_and_scores(attr, mask, "auroc")
    n_neg = m.shape[1] - n_pos
    r_pos = (rankdata(s) * m).sum(1)
    u = r_pos - n_pos * (n_pos + 1) / 2
    return torch.where(bad, torch.full_like(u, float("nan")), u / (n_pos * n_neg).clamp_min(1))


def auprc(attr: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Average precision of the voxel scores as a detector of the mask (area under the PR curve).

    ``AP = sum_n (R_n - R_{n-1}) P_n`` over the distinct score thresholds in decreasing order
    (precision ``P_n`` and recall ``R_n`` of the voxels scoring at least the ``n``-th
    threshold): tied voxels enter together, so the value does not depend on their order. The
    same definition as scikit-learn's ``average_precision_score`` (no interpolation). Equals the
    mask's share of voxels for an uninformative map. Computed in float64.

    Args:
        attr: ``(B, C, *spatial)`` (channel-summed, signed).
        mask: region on ``attr``'s grid.

    Returns:
        ``(B,)`` float64 in ``[0, 1]``; ``NaN`` where the mask is empty or full.
    """
    s, m, n_pos, bad = _labels_and_scores(attr, mask, "auprc")
    n = s.shape[1]
    srt, order = s.sort(dim=1, descending=True, stable=True)
    tp = m.gather(1, order).to(torch.float64).cumsum(1)
    # number of voxels scoring >= each voxel's score = index of the end of its tie group + 1
    asc = srt.flip(1).contiguous()
    at_least = n - torch.searchsorted(asc, s.contiguous(), side="left")
    precision = tp.gather(1, at_least - 1) / at_least.to(torch.float64)
    ap = (precision * m).sum(1) / n_pos.clamp_min(1)
    return torch.where(bad, torch.full_like(ap, float("nan")), ap)


def sparseness(attr: torch.Tensor) -> torch.Tensor:
    """Gini index of the absolute channel-summed map: 0 for a flat map, close to 1 for one voxel.

    With ``c_1 <= ... <= c_N`` the sorted absolute values,
    ``G = 1 - 2 sum_k (c_k / ||c||_1) (N - k + 1/2) / N`` (Hurley and Rickard 2009), as used
    for saliency maps by Chalasani et al. A one-hot map gives ``1 - 1/N``. ``NaN`` (with a
    warning) for an all-zero map.

    Reference: Chalasani, Chen, Chowdhury, Wu and Jha, "Concise Explanations of Neural Networks
    using Adversarial Training", ICML 2020.

    Args:
        attr: ``(B, C, *spatial)``.

    Returns:
        ``(B,)`` in ``[0, 1)``.
    """
    attr = check_map(attr)
    c = voxel_scores(attr).abs().to(torch.float64).sort(dim=1).values
    n = c.shape[1]
    total = c.sum(1)
    k = torch.arange(1, n + 1, dtype=torch.float64, device=c.device)
    g = 1 - 2 * ((c / total.clamp_min(1e-300)[:, None]) * (n - k + 0.5) / n).sum(1)
    bad = total <= 0
    warn_degenerate(bad, "sparseness (all-zero map)")
    return torch.where(bad, torch.full_like(g, float("nan")), g)
