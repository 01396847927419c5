"""Conversions between :class:`Scan` and MONAI's ``MetaTensor`` (affine and meta kept)."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import InputShapeError
from .read import lps_to_ras
from .scan import Scan

__all__ = ["to_metatensor", "from_metatensor", "metatensor_affine_ras"]

_NOT_CARRIED = ("applied_operations", "affine", "original_affine", "space", "nifti_header")


def metatensor_affine_ras(mt: Any) -> np.ndarray:
    """The RAS ``(4, 4)`` float64 affine of a ``MetaTensor`` (converted if its space is LPS)."""
    a = mt.affine
    a = a.detach().cpu().numpy() if isinstance(a, torch.Tensor) else np.asarray(a)
    a = np.asarray(a, dtype=np.float64)
    if a.ndim == 3:  # batched affine
        a = a[0]
    if a.shape == (3, 3):
        b = np.eye(4)
        b[:2, :2], b[:2, 3] = a[:2, :2], a[:2, 2]
        a = b
    if str(mt.meta.get("space", "RAS")).upper().endswith("LPS"):
        a = lps_to_ras @ a
    return a


def to_metatensor(scan: Scan) -> Any:
    """A MONAI ``MetaTensor`` ``(C, *spatial)`` carrying the scan's RAS affine.

    ``meta`` gets ``filename_or_obj``, ``original_affine`` (so :func:`volsal.io.to_source` can
    find the source grid after preprocessing), ``space="RAS"`` and ``spatial_shape``, plus the
    scan's own ``meta`` entries that MONAI can carry (numbers, strings, arrays).
    """
    from monai.data import MetaTensor

    meta: dict[str, Any] = {}
    for k, v in scan.meta.items():
        if k in _NOT_CARRIED:
            continue
        if isinstance(v, (str, int, float, bool, np.ndarray, tuple, list)):
            meta[k] = copy.deepcopy(v)
    meta.update(
        {
            "filename_or_obj": "" if scan.path is None else str(scan.path),
            "original_affine": scan.affine.copy(),
            "space": "RAS",
            "spatial_shape": np.asarray(scan.spatial_shape),
            "original_channel_dim": 0,
        }
    )
    return MetaTensor(
        scan.data.clone(), affine=torch.as_tensor(scan.affine, dtype=torch.float64), meta=meta
    )


def from_metatensor(mt: Any, *, path: str | Path | None = None) -> Scan:
    """A :class:`Scan` from a MONAI ``MetaTensor`` ``(C, *spatial)``; its meta (including
    ``applied_operations``) is kept in ``scan.meta``.

    An LPS MetaTensor (``meta["space"] == "LPS"``) gets its affine converted to RAS.
    """
    if getattr(mt, "is_batch", False):
        if mt.shape[0] != 1:
            raise InputShapeError(
                f"from_metatensor needs one image (C, *spatial); got a batch of {mt.shape[0]}. "
                "Use monai.data.decollate_batch(...) and convert each item."
            )
        from monai.data import decollate_batch

        mt = decollate_batch(mt)[0]
    meta = dict(mt.meta)
    meta["applied_operations"] = copy.deepcopy(list(mt.applied_operations))
    meta["reader"] = meta.get("reader", "monai")
    affine = metatensor_affine_ras(mt)
    if path is None:
        fn = meta.get("filename_or_obj")
        path = fn if isinstance(fn, (str, Path)) and str(fn) else None
    return Scan(data=mt.as_tensor().detach().clone(), affine=affine, path=path, meta=meta)
