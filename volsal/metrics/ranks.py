"""Rank helpers shared by the metrics and the sanity checks (pure tensor functions)."""

from __future__ import annotations

import torch

__all__ = ["rankdata", "pearson"]


def rankdata(t: torch.Tensor) -> torch.Tensor:
    """Ranks along the last axis, ties sharing their average rank (1-based).

    The same as ``scipy.stats.rankdata(t, method="average", axis=-1)``: with ``left``/``right``
    the number of values strictly below / below-or-equal to a value, its rank is
    ``(left + right + 1) / 2``. Vectorised with ``searchsorted``: ``O(N log N)`` per row.

    Args:
        t: ``(..., N)`` real tensor.

    Returns:
        ``(..., N)`` ranks in the floating dtype of ``t`` (float32 for integer input).
    """
    dtype = t.dtype if t.is_floating_point() else torch.float32
    srt = t.sort(dim=-1).values.contiguous()
    t = t.contiguous()
    left = torch.searchsorted(srt, t, side="left")
    right = torch.searchsorted(srt, t, side="right")
    return (left + right + 1).to(dtype) / 2


def pearson(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Pearson correlation of ``a`` and ``b`` along the last axis; ``NaN`` where either is constant.

    Args:
        a: ``(..., N)``.
        b: ``(..., N)``.

    Returns:
        ``(...)`` correlations in ``[-1, 1]``.
    """
    a = a - a.mean(-1, keepdim=True)
    b = b - b.mean(-1, keepdim=True)
    den = (a.square().sum(-1) * b.square().sum(-1)).sqrt()
    num = (a * b).sum(-1)
    nan = torch.full_like(num, float("nan"))
    return torch.where(den > 0, num / torch.where(den > 0, den, 1), nan).clamp(-1, 1)
