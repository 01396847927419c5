"""Turn the images and maps users pass (arrays, tensors, Scan-like objects) into numpy arrays."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from ..errors import InputShapeError, InputValueError, ParameterError

__all__ = ["to_numpy", "image_volume", "map_volume", "is_scan_like"]


def to_numpy(x: Any) -> np.ndarray:
    """A float64 numpy copy of a tensor (any device, with grad) or array-like."""
    if isinstance(x, torch.Tensor):
        return x.detach().cpu().to(torch.float64).numpy()
    return np.asarray(x, dtype=np.float64)


def is_scan_like(image: Any) -> bool:
    """Duck type of ``volsal.io.Scan``: has ``.data`` ``(C, *spatial)`` and ``.affine``."""
    return hasattr(image, "data") and hasattr(image, "affine")


def image_volume(
    image: Any, affine: Any | None, spatial_dims: int, channel: int = 0
) -> tuple[np.ndarray, np.ndarray | None]:
    """``(*spatial)`` anatomy to draw and the affine (or None).

    ``image`` is ``(*spatial)``, ``(C, *spatial)`` (channel ``channel`` is drawn) or Scan-like
    (``.data`` ``(C, *spatial)``, ``.affine`` voxel -> RAS mm).
    """
    if is_scan_like(image):
        if affine is not None:
            raise ParameterError(
                "the image carries its own affine (it has .affine); do not pass affine= too."
            )
        affine = image.affine
        data = to_numpy(image.data)
        if data.ndim != spatial_dims + 1:
            raise InputShapeError(
                f"expected the image's .data as (C, *spatial) with {spatial_dims} spatial axes; "
                f"got shape {data.shape}."
            )
    else:
        data = to_numpy(image)
    if data.ndim == spatial_dims + 1:
        if not -data.shape[0] <= channel < data.shape[0]:
            raise ParameterError(f"channel={channel} is out of range for {data.shape[0]} channels.")
        data = data[channel]
    if data.ndim != spatial_dims:
        want = "(D, H, W) / (C, D, H, W)" if spatial_dims == 3 else "(H, W) / (C, H, W)"
        raise InputShapeError(
            f"expected a {spatial_dims}D image {want}; got shape {data.shape}."
            + (" For a 2D image use plot_overlay / overlay." if spatial_dims == 3 else "")
        )
    if not np.all(np.isfinite(data)):
        raise InputValueError("the image holds NaN or inf values.")
    if affine is not None:
        affine = to_numpy(affine)
        if affine.shape != (4, 4):
            raise ParameterError(f"affine must be a 4x4 matrix; got shape {affine.shape}.")
    return data, affine


def map_volume(attr: Any, spatial_shape: tuple[int, ...]) -> np.ndarray:
    """``(*spatial)`` map: ``(*spatial)``, ``(C, *spatial)`` or ``(1, C, *spatial)`` (channels summed,
    keeping the sign), checked against the image's grid."""
    a = to_numpy(attr)
    k = len(spatial_shape)
    if a.ndim == k + 2 and a.shape[0] == 1:
        a = a[0]
    if a.ndim == k + 1:
        a = a.sum(axis=0)
    if a.shape != tuple(spatial_shape):
        raise InputShapeError(
            f"the map's spatial shape {a.shape} does not match the image's {tuple(spatial_shape)}. "
            "Expected (*spatial), (C, *spatial) or (1, C, *spatial) on the image's grid; resample "
            "the map to the image first (volsal.spatial.resize or volsal.io.to_source)."
        )
    if not np.all(np.isfinite(a)):
        raise InputValueError("the map holds NaN or inf values.")
    return a
