"""Exact affine resampling of a map from one voxel grid to another (both known by affines).

For every target voxel centre ``t`` the source position is ``s = inv(A_map) @ A_target @ t``
(a voxel -> voxel matrix); the map is sampled at exactly ``s`` by (bi/tri)linear
interpolation between voxel centres (what ``grid_sample(..., align_corners=True)`` does, but
with weights computed in float64, so positions on voxel centres return the voxel's value
bit for bit and single-voxel axes need no special case). A target voxel whose source position is outside the map's field
of view (beyond half a voxel from the outer voxel centres) gets 0; inside that half-voxel
rim the nearest edge value is used.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from ..errors import GeometryError, InputShapeError, ParameterError
from .scan import as_affine

__all__ = ["resample_to", "voxel_to_voxel", "as_map_tensor"]

_MAX_POINTS = 1 << 21  # target points per grid_sample call (bounds memory on big volumes)


def as_map_tensor(m: Any, spatial_dims: int, what: str = "map") -> tuple[torch.Tensor, int]:
    """``m`` as ``(1, C, *spatial)`` plus how many leading axes it had (0, 1 or 2).

    Accepts ``(*spatial)``, ``(C, *spatial)`` and ``(1, C, *spatial)`` tensors or arrays.
    """
    t = m if isinstance(m, torch.Tensor) else torch.as_tensor(np.asarray(m))
    if type(t) is not torch.Tensor:
        t = t.as_subclass(torch.Tensor)
    lead = t.ndim - spatial_dims
    if lead == 0:
        t = t[None, None]
    elif lead == 1:
        t = t[None]
    elif lead == 2:
        if t.shape[0] != 1:
            raise InputShapeError(
                f"{what} has a batch of {t.shape[0]}; give one sample (1, C, *spatial) or "
                "index the batch first (maps[i])."
            )
    else:
        raise InputShapeError(
            f"{what} of shape {tuple(t.shape)} does not fit a {spatial_dims}D grid: expected "
            f"(*spatial), (C, *spatial) or (1, C, *spatial) with {spatial_dims} spatial axes."
        )
    return t, lead


def _sample(
    flat: torch.Tensor, src: torch.Tensor, n_src: torch.Tensor, strides: torch.Tensor, mode: str
) -> torch.Tensor:
    """Interpolate ``flat`` ``(C, N)`` at voxel positions ``src`` ``(P, k)`` -> ``(C, P)``.

    Weights are computed in float64 from the exact positions, so a position on a voxel centre
    returns that voxel's value bit for bit. Within half a voxel outside the outer centres the
    edge value is used; farther out the value is 0.
    """
    k = src.shape[1]
    inside = ((src >= -0.5 - 1e-6) & (src <= n_src - 0.5 + 1e-6)).all(-1)
    pos = torch.minimum(src.clamp(min=0.0), n_src - 1)
    if mode == "nearest":
        near = torch.floor(pos + 0.5).long()
        near = torch.minimum(near, (n_src - 1).long())
        vals = flat[:, (near * strides).sum(-1)]
        return vals * inside.to(flat.dtype)
    top = (n_src - 1).long()
    lo = torch.minimum(torch.floor(pos).long(), (top - 1).clamp(min=0))
    frac = pos - lo  # in [0, 1]; 0 on single-voxel axes
    hi = torch.minimum(lo + 1, top)
    vals = flat.new_zeros((flat.shape[0], src.shape[0]))
    for corner in itertools.product((0, 1), repeat=k):
        c = torch.tensor(corner, dtype=torch.bool, device=src.device)
        pick = torch.where(c, hi, lo)
        w = torch.where(c, frac, 1.0 - frac).prod(-1)
        used = w > 0
        if not bool(used.any()):
            continue
        gathered = flat[:, (pick[used] * strides).sum(-1)]
        vals[:, used] += gathered * w[used].to(flat.dtype)
    return vals * inside.to(flat.dtype)


def _restore(t: torch.Tensor, lead: int) -> torch.Tensor:
    return t[0, 0] if lead == 0 else (t[0] if lead == 1 else t)


def voxel_to_voxel(from_affine: Any, to_affine: Any, spatial_dims: int) -> np.ndarray:
    """``(k+1, k+1)`` matrix taking voxel indices of grid ``to`` to voxel indices of grid ``from``.

    ``inv(from_affine) @ to_affine`` restricted to the ``k`` spatial axes (2D: the third voxel
    index is 0, and the result must not depend on it being exactly in-plane).
    """
    m = np.linalg.inv(as_affine(from_affine)) @ as_affine(to_affine)
    k = spatial_dims
    idx = list(range(k)) + [3]
    out = m[np.ix_(idx, idx)]
    if k == 2 and np.any(np.abs(m[2, [0, 1, 3]]) > 1e-4):
        raise GeometryError(
            "the two 2D grids do not lie in the same plane (the mapping moves points out of "
            "plane); 2D maps can only be resampled between in-plane grids."
        )
    return out


def resample_to(
    m: Any,
    map_affine: Any,
    target_shape: Sequence[int],
    target_affine: Any,
    *,
    mode: str = "linear",
) -> torch.Tensor:
    """Resample a map from its grid to a target grid, both given by voxel -> world affines.

    Args:
        m: ``(*spatial)``, ``(C, *spatial)`` or ``(1, C, *spatial)`` on the map's grid.
        map_affine: ``(4, 4)`` voxel -> world of the map's grid.
        target_shape: spatial shape of the target grid (2 or 3 sizes).
        target_affine: ``(4, 4)`` voxel -> world of the target grid (same world frame).
        mode: ``"linear"`` (bi/trilinear, default: maps are continuous) or ``"nearest"``.

    Returns:
        Float tensor with the same leading axes as ``m`` and the target spatial shape, on
        ``m``'s device; 0 outside the map's field of view.
    """
    k = len(target_shape)
    if k not in (2, 3):
        raise InputShapeError(f"target_shape must have 2 or 3 sizes; got {tuple(target_shape)}.")
    if mode not in ("linear", "nearest"):
        raise ParameterError(f"mode must be 'linear' or 'nearest'; got {mode!r}.")
    t, lead = as_map_tensor(m, k)
    if not t.is_floating_point():
        t = t.float()
    src_shape = tuple(int(n) for n in t.shape[2:])
    mat = torch.as_tensor(voxel_to_voxel(map_affine, target_affine, k), dtype=torch.float64)
    lin, shift = mat[:k, :k].to(t.device), mat[:k, k].to(t.device)
    n_src = torch.tensor(src_shape, dtype=torch.float64, device=t.device)
    flat = t[0].reshape(t.shape[1], -1)  # (C, N)
    strides = torch.tensor(
        [int(np.prod(src_shape[d + 1 :])) for d in range(k)], dtype=torch.long, device=t.device
    )
    out = t.new_zeros((t.shape[1], *target_shape))
    plane = int(np.prod(target_shape[1:]))
    rows = max(1, _MAX_POINTS // max(plane, 1))
    rest = [torch.arange(s, dtype=torch.float64, device=t.device) for s in target_shape[1:]]
    for start in range(0, int(target_shape[0]), rows):
        stop = min(start + rows, int(target_shape[0]))
        first = torch.arange(start, stop, dtype=torch.float64, device=t.device)
        idx = torch.stack(torch.meshgrid(first, *rest, indexing="ij"), dim=-1).reshape(-1, k)
        src = idx @ lin.T + shift  # (P, k) source voxel positions
        vals = _sample(flat, src, n_src, strides, mode)
        out[:, start:stop] = vals.reshape(t.shape[1], stop - start, *target_shape[1:])
    out = out[None]
    return _restore(out, lead)
