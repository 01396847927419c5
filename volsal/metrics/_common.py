"""Input checks shared by the metrics: maps, masks, per-voxel scores."""

from __future__ import annotations

import warnings

import torch

from ..errors import DegenerateMapWarning, InputShapeError, InputValueError


def check_map(attr: object, name: str = "attr") -> torch.Tensor:
    """Check an attribution map ``(B, C, *spatial)`` (1 to 3 spatial dims) and return it."""
    if not isinstance(attr, torch.Tensor):
        raise InputShapeError(
            f"{name} must be a torch.Tensor of shape (B, C, *spatial); got {type(attr).__name__}."
        )
    if not 3 <= attr.ndim <= 5:
        raise InputShapeError(
            f"{name} must have shape (B, C, H, W) or (B, C, D, H, W); got {tuple(attr.shape)}. "
            f"Fix: add batch and channel axes, e.g. {name}[None, None] for a single map."
        )
    if not attr.is_floating_point():
        attr = attr.float()
    if not bool(torch.isfinite(attr).all()):
        raise InputValueError(f"{name} holds NaN/Inf values; replace them before scoring.")
    return attr


def voxel_scores(attr: torch.Tensor) -> torch.Tensor:
    """Channel-summed (signed) map flattened per sample: ``(B, C, *spatial) -> (B, N)``."""
    return attr.sum(1).flatten(1)


def check_mask(mask: object, attr: torch.Tensor) -> torch.Tensor:
    """Turn a mask into ``(B, N)`` booleans on ``attr``'s grid.

    Accepts ``(*spatial)``, ``(B, *spatial)`` or ``(B, 1, *spatial)``; boolean, or numeric
    (voxels ``> 0`` are inside).

    Raises:
        InputShapeError: the mask is not on the map's grid.
    """
    spatial = tuple(attr.shape[2:])
    b = attr.shape[0]
    m = torch.as_tensor(mask, device=attr.device)
    if m.ndim == len(spatial) + 2 and m.shape[1] == 1:
        m = m[:, 0]
    if m.ndim == len(spatial) and tuple(m.shape) == spatial:
        m = m.expand((b,) + spatial)
    if m.ndim != len(spatial) + 1 or tuple(m.shape[1:]) != spatial or m.shape[0] != b:
        raise InputShapeError(
            f"mask has shape {tuple(torch.as_tensor(mask).shape)}; expected {spatial}, "
            f"({b}, *{spatial}) or ({b}, 1, *{spatial}) to match attr {tuple(attr.shape)}. "
            "Fix: resample the mask to the map's grid (nearest neighbour)."
        )
    return (m > 0).flatten(1) if m.dtype != torch.bool else m.flatten(1)


def warn_degenerate(bad: torch.Tensor, what: str) -> None:
    """Warn (stacklevel 3: the caller's caller) when some samples give an undefined value."""
    if bool(bad.any()):
        warnings.warn(
            f"{what}: undefined for {int(bad.sum())} sample(s); NaN returned for them.",
            DegenerateMapWarning,
            stacklevel=3,
        )
