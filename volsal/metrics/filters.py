"""Separable Gaussian filtering for ``(B, C, *spatial)`` tensors, 1 to 3 spatial dims.

Used for the ``"blur"`` baseline of the faithfulness curves and the SSIM window.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from ..errors import ParameterError

__all__ = ["gaussian_kernel1d", "gaussian_filter"]

_CONV = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}


def gaussian_kernel1d(
    sigma: float, radius: int, *, dtype: torch.dtype, device: torch.device | str | None = None
) -> torch.Tensor:
    """Normalised 1-D Gaussian of standard deviation ``sigma`` on ``[-radius, radius]``."""
    if not sigma > 0:
        raise ParameterError(f"sigma must be > 0; got {sigma}.")
    pos = torch.arange(-radius, radius + 1, dtype=torch.float64)
    k = torch.exp(-0.5 * (pos / sigma) ** 2)
    return (k / k.sum()).to(dtype=dtype, device=device)


def gaussian_filter(
    t: torch.Tensor,
    sigma: float,
    *,
    truncate: float = 4.0,
    padding: str = "replicate",
    radius: int | None = None,
) -> torch.Tensor:
    """Gaussian-filter every channel of ``t`` along its spatial axes (separably).

    Args:
        t: ``(B, C, *spatial)`` floating tensor, 1 to 3 spatial dims.
        sigma: standard deviation in voxels (the same on every axis).
        truncate: the kernel radius is ``ceil(truncate * sigma)`` unless ``radius`` is given.
        padding: ``"replicate"`` (output has ``t``'s size; the border value is repeated, as
            ``scipy.ndimage``'s ``mode="nearest"``) or ``"valid"`` (no padding: each axis shrinks
            by ``2 * radius``).
        radius: explicit kernel radius in voxels.

    Returns:
        The filtered tensor.
    """
    k = t.ndim - 2
    if k not in _CONV:
        raise ParameterError(
            f"gaussian_filter needs 1 to 3 spatial dims; got shape {tuple(t.shape)}."
        )
    if padding not in ("replicate", "valid"):
        raise ParameterError(f"padding must be 'replicate' or 'valid'; got {padding!r}.")
    r = int(math.ceil(truncate * sigma)) if radius is None else int(radius)
    if r <= 0:
        return t
    c = t.shape[1]
    kern = gaussian_kernel1d(sigma, r, dtype=t.dtype, device=t.device)
    out = t
    for axis in range(k):
        shape = [c, 1] + [1] * k
        shape[2 + axis] = 2 * r + 1
        if padding == "replicate":
            pad = [0, 0] * k
            # F.pad lists pads from the last axis backwards.
            pad[2 * (k - 1 - axis)] = r
            pad[2 * (k - 1 - axis) + 1] = r
            out = F.pad(out, pad, mode="replicate")
        out = _CONV[k](out, kern.reshape(shape), groups=c)
    return out
