"""Bring a map computed on a preprocessed network input back to the source scan's grid.

Two routes, both exact for what they cover:

1. **MONAI's own inverse.** A MONAI-preprocessed input is a ``MetaTensor`` whose
   ``applied_operations`` record every invertible transform (``Orientation``, ``Spacing``,
   ``CropForeground``, ``Resize``, ``SpatialPad``...). The map gets a ``MetaTensor`` carrying
   the preprocessed image's affine, meta and a copy of those records (interpolation switched
   to linear: maps are continuous), and the records are inverted last to first, each by its
   transform class's ``inverse`` (or by ``transform.inverse`` when the transform is given).
   Intensity transforms (``ScaleIntensity``, ``NormalizeIntensity``) move no voxel and are not
   recorded, so they are skipped.
2. **Affine resampling** (:func:`volsal.io.resample_to`) from the map's grid (the
   preprocessed image's affine) to the source grid, when only the two affines are known, or
   as the fallback when MONAI's inverse misbehaves (MONAI #7392: a Spacing inverse returning
   zeros when the map tensor does not carry the input's affine) and every recorded transform
   is a spatial-affine one (orientation, spacing, resize, zoom, flip, rotate, crop, pad).

The result is checked: it must lie on the source grid (shape and affine) and must not be
zero-filled when the map is not.
"""

from __future__ import annotations

import copy
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from ..errors import GeometryError, GeometryWarning, InputShapeError, ParameterError
from .metatensor import metatensor_affine_ras
from .read import as_scan, lps_to_ras
from .resample import _restore, as_map_tensor, resample_to

__all__ = ["to_source", "AFFINE_TRANSFORMS", "NonInvertibleTransformError"]

# transforms that only move voxels by an affine map of the grid (the MetaTensor's affine
# tracks them exactly), so affine resampling inverts them
AFFINE_TRANSFORMS = frozenset(
    {
        "Orientation",
        "Spacing",
        "SpatialResample",
        "ResampleToMatch",
        "Resize",
        "Zoom",
        "RandZoom",
        "Flip",
        "RandFlip",
        "RandAxisFlip",
        "Rotate90",
        "RandRotate90",
        "Rotate",
        "RandRotate",
        "Affine",
        "Crop",
        "SpatialCrop",
        "CenterSpatialCrop",
        "CenterScaleCrop",
        "CropForeground",
        "RandSpatialCrop",
        "RandScaleCrop",
        "Pad",
        "SpatialPad",
        "BorderPad",
        "DivisiblePad",
        "ResizeWithPadOrCrop",
        "Identity",
    }
)
# recorded "mode" is a grid_sample / spline mode for these ...
_GRID_MODE = frozenset(
    {
        "Spacing",
        "SpatialResample",
        "ResampleToMatch",
        "Rotate",
        "RandRotate",
        "Affine",
        "RandAffine",
    }
)
# ... and a torch.nn.functional.interpolate mode for these
_INTERP_MODE = frozenset({"Resize", "Zoom", "RandZoom"})


class NonInvertibleTransformError(GeometryError):
    """Internal marker: a recorded transform has no inverse volsal can replay."""


def _interp_name(k: int) -> str:
    return {1: "linear", 2: "bilinear", 3: "trilinear"}[k]


def _linear_records(ops: list, k: int, mode: str) -> list:
    """Deep copy of the records with interpolation set to linear (or nearest) for maps."""
    out = []
    for op in copy.deepcopy(list(ops)):
        name = op.get("class", "")
        extra = op.get("extra_info")
        if isinstance(extra, dict) and "mode" in extra:
            if name in _GRID_MODE:
                extra["mode"] = "bilinear" if mode == "linear" else "nearest"
            elif name in _INTERP_MODE:
                extra["mode"] = _interp_name(k) if mode == "linear" else "nearest"
        out.append(op)
    return out


def _inverter(name: str, k: int) -> Any:
    """An instance of the recorded transform class whose ``inverse`` uses only the record."""
    import monai.transforms as mt

    factories: dict[str, Callable[[], Any]] = {
        "Orientation": lambda: mt.Orientation(axcodes="RAS", labels=None),
        "Spacing": lambda: mt.Spacing(pixdim=1.0),
        "SpatialResample": mt.SpatialResample,
        "ResampleToMatch": mt.ResampleToMatch,
        "Resize": lambda: mt.Resize(spatial_size=(1,) * k),
        "Zoom": lambda: mt.Zoom(zoom=1.0),
        "Rotate90": mt.Rotate90,
        "Rotate": lambda: mt.Rotate(angle=0.0),
        "Affine": mt.Affine,
        "CropForeground": mt.CropForeground,
        "SpatialCrop": lambda: mt.SpatialCrop(roi_slices=[slice(None)] * k),
        "CenterSpatialCrop": lambda: mt.CenterSpatialCrop(roi_size=(1,) * k),
        "SpatialPad": lambda: mt.SpatialPad(spatial_size=(1,) * k),
        "BorderPad": lambda: mt.BorderPad(spatial_border=0),
        "DivisiblePad": lambda: mt.DivisiblePad(k=1),
        "Pad": mt.Pad,
        "ResizeWithPadOrCrop": lambda: mt.ResizeWithPadOrCrop(spatial_size=(1,) * k),
    }
    if name not in factories:
        raise NonInvertibleTransformError(name)
    return factories[name]()


def _replay(mt_map: Any, k: int) -> Any:
    out = mt_map
    while len(out.applied_operations):
        name = out.applied_operations[-1].get("class", "?")
        inv = _inverter(name, k)
        out = inv.inverse(out)
    return out


def _source_geometry(preprocessed: Any, source: Any) -> tuple[tuple[int, ...], np.ndarray] | None:
    if source is not None:
        src = as_scan(source)
        return src.spatial_shape, src.affine
    meta = preprocessed.meta
    ops = list(preprocessed.applied_operations)
    orig = meta.get("original_affine")
    if orig is None or not ops or "orig_size" not in ops[0]:
        return None
    a = orig.detach().cpu().numpy() if isinstance(orig, torch.Tensor) else np.asarray(orig)
    a = np.asarray(a, dtype=np.float64)
    if str(meta.get("space", "RAS")).upper().endswith("LPS"):
        a = lps_to_ras @ a
    return tuple(int(s) for s in ops[0]["orig_size"]), a


def _problem(out: torch.Tensor, out_affine: np.ndarray | None, geom, m: torch.Tensor) -> str | None:
    """Why MONAI's inverse result is not acceptable (``None`` when it is)."""
    if geom is not None:
        shape, affine = geom
        if tuple(out.shape[2:]) != tuple(shape):
            return f"shape {tuple(out.shape[2:])} instead of the source's {tuple(shape)}"
        if out_affine is not None and not np.allclose(out_affine, affine, atol=1e-3, rtol=1e-4):
            return "an affine different from the source's"
    finite_in = bool(torch.isfinite(m).all())
    if finite_in and not bool(torch.isfinite(out).all()):
        return "non-finite values"
    if bool((m != 0).any()) and not bool((out != 0).any()):
        return "an all-zero map (MONAI #7392)"
    return None


def to_source(
    m: Any,
    preprocessed: Any = None,
    *,
    source: Any = None,
    map_affine: Any = None,
    transform: Any = None,
    mode: str = "linear",
    via: str = "auto",
) -> torch.Tensor:
    """Bring a map from the (preprocessed) network-input grid back to the source scan's grid.

    Args:
        m: map on the preprocessed grid: ``(*spatial)``, ``(C, *spatial)`` or
            ``(1, C, *spatial)`` (e.g. ``maps[0]`` of a method's output).
        preprocessed: the network input as MONAI produced it: a ``MetaTensor``
            ``(C, *spatial)`` whose ``applied_operations`` record the preprocessing (or a
            ``Scan``/object with ``.affine``, used as the map's grid).
        source: the source scan (``Scan``, ``MetaTensor``, path...): the target grid. Optional
            with a MetaTensor whose meta has ``original_affine`` (``volsal.io.to_metatensor``
            and MONAI's ``LoadImage`` set it).
        map_affine: ``(4, 4)`` voxel -> RAS affine of the map's grid, when there is no
            ``preprocessed`` MetaTensor (needs ``source``): plain affine resampling.
        transform: the MONAI array transform (e.g. ``Compose``) that made ``preprocessed``;
            when given, its own ``inverse`` is used (needed for transforms whose inverse
            depends on the instance, e.g. ``Flip``).
        mode: ``"linear"`` (default, for continuous maps) or ``"nearest"``.
        via: ``"auto"`` (MONAI's inverse, checked, affine fallback), ``"monai"`` (no
            fallback) or ``"affine"`` (affine resampling only).

    Returns:
        The map on the source grid, same leading axes as ``m``, on ``m``'s device.

    Raises:
        GeometryError: the map's grid does not match ``preprocessed``; a recorded transform
            cannot be inverted (named); the source grid is unknown.
    """
    if via not in ("auto", "monai", "affine"):
        raise ParameterError(f"via must be 'auto', 'monai' or 'affine'; got {via!r}.")
    if mode not in ("linear", "nearest"):
        raise ParameterError(f"mode must be 'linear' or 'nearest'; got {mode!r}.")
    try:
        from monai.data import MetaTensor
    except ImportError:  # pragma: no cover
        MetaTensor = ()  # type: ignore[assignment]  # noqa: N806

    if preprocessed is None or not isinstance(preprocessed, MetaTensor):
        if preprocessed is not None:
            if map_affine is not None:
                raise ParameterError("give either preprocessed or map_affine, not both.")
            map_affine = as_scan(preprocessed).affine
        if map_affine is None or source is None:
            raise ParameterError(
                "to_source needs the preprocessed MetaTensor (with applied_operations), or "
                "both map_affine= (the map grid's voxel -> RAS affine) and source= (the scan)."
            )
        src = as_scan(source)
        return resample_to(m, map_affine, src.spatial_shape, src.affine, mode=mode)

    pre = preprocessed
    if getattr(pre, "is_batch", False):
        if pre.shape[0] != 1:
            raise InputShapeError("preprocessed is a batch; give one item (decollate_batch).")
        from monai.data import decollate_batch

        pre = decollate_batch(pre)[0]
    if len(getattr(pre, "pending_operations", []) or []):
        raise GeometryError(
            "preprocessed has pending (lazy) operations; run the transform with lazy=False "
            "or apply them (monai.transforms.apply_pending) before to_source."
        )
    k = pre.ndim - 1
    t, lead = as_map_tensor(m, k)
    if tuple(t.shape[2:]) != tuple(pre.shape[1:]):
        raise GeometryError(
            f"the map's spatial shape {tuple(t.shape[2:])} is not the preprocessed input's "
            f"{tuple(pre.shape[1:])}. Upsample the map to the network input first (methods do "
            "by default), or use save_feature_map for a feature-grid map."
        )
    device, dtype = t.device, (t.dtype if t.is_floating_point() else torch.float32)
    t = t.detach().to("cpu", dtype)
    ops = list(pre.applied_operations)
    names = [str(op.get("class", "?")) for op in ops]
    geom = _source_geometry(pre, source)
    pre_affine = metatensor_affine_ras(pre)

    def affine_route(reason: str | None) -> torch.Tensor:
        if geom is None:
            raise GeometryError(
                "cannot find the source grid: pass source= (the scan the input came from). "
                + (f"MONAI's inverse gave {reason}." if reason else "")
            )
        bad = [n for n in names if n not in AFFINE_TRANSFORMS]
        if bad:
            raise GeometryError(
                f"cannot invert {bad[0]!r} by affine resampling (not a spatial-affine transform)"
                + (f", and MONAI's inverse gave {reason}" if reason else "")
                + ". Pass transform= (the MONAI transform used) or drop it from preprocessing."
            )
        if reason:
            warnings.warn(
                f"MONAI's inverse of {names} gave {reason}; used exact affine resampling "
                "from the preprocessed grid to the source grid instead.",
                GeometryWarning,
                stacklevel=3,
            )
        out = resample_to(t, pre_affine, geom[0], geom[1], mode=mode)
        return _restore(out.to(device), lead)

    if not ops and geom is None:
        return _restore(t.to(device), lead)  # nothing recorded, nothing to invert
    if via == "affine" or not ops:
        return affine_route(None)

    from monai.transforms.utils import reset_ops_id

    mt_map = MetaTensor(
        t[0].clone(),
        affine=pre.affine.clone() if isinstance(pre.affine, torch.Tensor) else pre.affine,
        meta={key: copy.deepcopy(v) for key, v in pre.meta.items() if key != "affine"},
        applied_operations=_linear_records(ops, k, mode),
    )
    reason: str | None
    try:
        if transform is not None:
            out_mt = transform.inverse(mt_map)
        else:
            out_mt = _replay(reset_ops_id(mt_map), k)
        out_affine = metatensor_affine_ras(out_mt) if isinstance(out_mt, MetaTensor) else None
        out = torch.as_tensor(out_mt).as_subclass(torch.Tensor)[None].to(dtype)
        reason = _problem(out, out_affine, geom, t)
    except NonInvertibleTransformError as err:
        name = str(err)
        if via == "monai" or name not in AFFINE_TRANSFORMS:
            raise GeometryError(
                f"cannot invert the recorded transform {name!r} (from {names}). Pass "
                "transform= (the MONAI transform used), or use a preprocessing whose "
                "spatial steps are Orientation/Spacing/Resize/crop/pad."
            ) from None
        return affine_route(None)  # replayable only through the affine: exact, no warning
    except GeometryError:
        raise
    except Exception as err:  # MONAI raised inside an inverse
        reason = f"an error ({type(err).__name__}: {err})"
        if via == "monai":
            raise GeometryError(f"MONAI's inverse of {names} failed: {err}") from err
    if reason is None:
        return _restore(out.to(device), lead)
    if via == "monai":
        raise GeometryError(f"MONAI's inverse of {names} gave {reason}.")
    return affine_route(reason)
