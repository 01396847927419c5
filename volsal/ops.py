"""Explicit normalisation helpers. Never applied inside a method: call them yourself.

All functions take ``(B, C, *spatial)`` tensors and normalise each sample separately unless
``scale`` is given (a shared scale, for comparing maps of several methods or models fairly).
A constant map becomes zeros (never NaN) and a :class:`~volsal.errors.DegenerateMapWarning`.
"""

from __future__ import annotations

import warnings

import torch

from .errors import DegenerateMapWarning

__all__ = ["minmax", "abs_max", "per_sample_reduce"]


def per_sample_reduce(t: torch.Tensor, fn: str) -> torch.Tensor:
    """Reduce every sample of ``(B, ...)`` to one value, shaped ``(B, 1, ..., 1)`` for broadcasting."""
    flat = t.reshape(t.shape[0], -1)
    val = getattr(flat, fn)(dim=1)
    if isinstance(val, tuple):  # torch.max/min with dim return (values, indices)
        val = val[0]
    return val.reshape((t.shape[0],) + (1,) * (t.ndim - 1))


def _safe_divide(num: torch.Tensor, den: torch.Tensor, what: str) -> torch.Tensor:
    zero = den <= 0
    if bool(zero.any()):
        warnings.warn(
            f"{what}: {int(zero.sum())} map(s) are constant; they are returned as zeros.",
            DegenerateMapWarning,
            stacklevel=3,
        )
    return torch.where(zero, torch.zeros_like(num), num / torch.where(zero, 1, den))


def minmax(attr: torch.Tensor, scale: tuple[float, float] | None = None) -> torch.Tensor:
    """Rescale each sample to [0, 1] by its min and max (or by a shared ``(lo, hi)``).

    Note that per-sample min-max maps a map of peak 100 and one of peak 0.001 both to 1
    (USER_NEEDS P3): use a shared ``scale`` to compare maps.
    """
    if scale is not None:
        lo = torch.as_tensor(scale[0], dtype=attr.dtype, device=attr.device)
        hi = torch.as_tensor(scale[1], dtype=attr.dtype, device=attr.device)
    else:
        lo, hi = per_sample_reduce(attr, "amin"), per_sample_reduce(attr, "amax")
    return _safe_divide(attr - lo, hi - lo, "minmax").clamp(0, 1)


def abs_max(attr: torch.Tensor, scale: float | None = None) -> torch.Tensor:
    """Divide each sample by its largest absolute value: signed maps to [-1, 1], zero kept."""
    if scale is not None:
        den = torch.as_tensor(scale, dtype=attr.dtype, device=attr.device)
    else:
        den = per_sample_reduce(attr.abs(), "amax")
    return _safe_divide(attr, den, "abs_max").clamp(-1, 1)
