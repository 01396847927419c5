"""Spatial helpers shared by every method: input checks, resizing, broadcasting, reduction.

Tensors are ``(B, C, *spatial)`` with 1, 2 or 3 spatial dims; one code path serves them all.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from .errors import InputShapeError, InputValueError

__all__ = [
    "check_input",
    "spatial_dims_of",
    "resize",
    "broadcast_to_spatial",
    "reduce_channels",
    "check_mode",
]

_LINEAR_MODES = {1: "linear", 2: "bilinear", 3: "trilinear"}


def check_input(x: torch.Tensor, *, name: str = "x", allow_1d: bool = False) -> int:
    """Validate a network input and return its number of spatial dims.

    Args:
        x: input batch ``(B, C, H, W)`` or ``(B, C, D, H, W)`` (``(B, C, L)`` when ``allow_1d``).
        name: how the argument is called in messages.
        allow_1d: accept ``(B, C, L)`` inputs. Off by default: a 3-dim tensor is far more often
            a single volume ``(D, H, W)`` that lacks its batch and channel axes.

    Returns:
        ``x.ndim - 2``, the number of spatial dims.

    Raises:
        InputShapeError: not a tensor, or wrong rank; the message says how to add axes.
        InputValueError: non-floating dtype, or NaN/Inf values.
    """
    if not isinstance(x, torch.Tensor):
        raise InputShapeError(
            f"{name} must be a torch.Tensor of shape (B, C, H, W) or (B, C, D, H, W); "
            f"got {type(x).__name__}. Fix: torch.as_tensor(array, dtype=torch.float32), "
            "then add batch and channel axes."
        )
    lo = 3 if allow_1d else 4
    if not lo <= x.ndim <= 5:
        if x.ndim in (2, 3) and not (allow_1d and x.ndim == 3):
            hint = (
                f"a single {x.ndim}D image/volume without batch and channel axes? "
                f"Use {name}[None, None] (shape {(1, 1, *x.shape)})."
            )
        elif x.ndim == 4 and not allow_1d:
            hint = f"a volume with a channel axis but no batch axis? Use {name}[None]."
        else:
            hint = "put the batch first and the channels second."
        raise InputShapeError(
            f"{name} must have shape (B, C, H, W) or (B, C, D, H, W); got {tuple(x.shape)} "
            f"({x.ndim} dims). Fix: {hint}"
        )
    if any(s == 0 for s in x.shape):
        raise InputShapeError(f"{name} has an empty axis: shape {tuple(x.shape)}.")
    if not torch.is_floating_point(x):
        raise InputValueError(
            f"{name} must be a floating-point tensor; got dtype {x.dtype}. "
            f"Fix: {name}.float() (after any intensity scaling your model expects)."
        )
    if not bool(torch.isfinite(x).all()):
        n_bad = int((~torch.isfinite(x)).sum())
        raise InputValueError(
            f"{name} holds {n_bad} NaN/Inf value(s). Fix: replace them, e.g. "
            f"torch.nan_to_num({name}), or mask them out before explaining."
        )
    return x.ndim - 2


def spatial_dims_of(t: torch.Tensor) -> int:
    """Number of spatial dims of a ``(B, C, *spatial)`` tensor."""
    return t.ndim - 2


def check_mode(mode: str | None, x: torch.Tensor) -> None:
    """Check a seed-style ``mode="2D"|"3D"`` flag against the input's rank (it selects nothing).

    Raises:
        InputShapeError: the flag disagrees with ``x``.
    """
    if mode is None:
        return
    expected = {"1D": 3, "2D": 4, "3D": 5}.get(str(mode).upper())
    if expected is None:
        raise InputShapeError(f"mode must be '2D' or '3D'; got {mode!r}.")
    if x.ndim != expected:
        raise InputShapeError(
            f"mode={mode!r} expects a {expected}-dim input (B, C, *spatial); got shape "
            f"{tuple(x.shape)}. Fix: pass mode='{x.ndim - 2}D' or leave mode out."
        )


def resize(t: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
    """Resize a ``(B, C, *spatial)`` map to ``size`` with (bi/tri)linear interpolation.

    Uses ``align_corners=False`` (half-pixel centres): exact for maps whose cells are
    centred like those of an even pooling pyramid (see ``volsal.receptive`` for the exact
    receptive-field placement used by CAMs).

    Args:
        t: map ``(B, C, *spatial)``, floating point.
        size: target spatial size, one int per spatial dim.

    Returns:
        ``(B, C, *size)``; ``t`` itself when it already has that size.
    """
    size = tuple(int(s) for s in size)
    k = t.ndim - 2
    if len(size) != k:
        raise InputShapeError(f"resize: size {size} has {len(size)} dims, map has {k}.")
    if tuple(t.shape[2:]) == size:
        return t
    return F.interpolate(t, size=size, mode=_LINEAR_MODES[k], align_corners=False)


def broadcast_to_spatial(w: torch.Tensor, spatial_dims: int) -> torch.Tensor:
    """Append ``spatial_dims`` singleton axes: ``(B, C) -> (B, C, 1, ..., 1)``."""
    return w[(...,) + (None,) * spatial_dims]


def reduce_channels(attr: torch.Tensor, how: str = "sum") -> torch.Tensor:
    """Reduce ``(B, C, *spatial)`` to ``(B, 1, *spatial)``.

    Args:
        attr: attribution map.
        how: ``"sum"`` (signed sum), ``"abs_sum"`` (sum of absolute values, the seed-004 and
            PAIR grayscale convention), ``"abs_max"`` (max absolute value), ``"norm"`` (L2 over
            channels) or ``"mean"``.
    """
    if how == "sum":
        return attr.sum(1, keepdim=True)
    if how == "abs_sum":
        return attr.abs().sum(1, keepdim=True)
    if how == "abs_max":
        return attr.abs().amax(1, keepdim=True)
    if how == "norm":
        return attr.norm(dim=1, keepdim=True)
    if how == "mean":
        return attr.mean(1, keepdim=True)
    raise ValueError(
        f"reduce_channels: unknown how={how!r}; use sum, abs_sum, abs_max, norm or mean."
    )
