"""Write maps on a reference scan's grid (or its feature grid) for medical viewers.

NIfTI (``.nii``/``.nii.gz``, nibabel): float32, the reference's affine as sform and qform
(codes copied from a NIfTI reference, else 1 = scanner), ``cal_min``/``cal_max`` set to a
display window, ``descrip`` naming method, layer and target. NRRD / MHA (SimpleITK): the
same geometry as LPS origin/spacing/direction. Every file is written atomically
(:func:`volsal.io.atomic_write`) and gets a JSON sidecar ``<name>.json`` (method, options,
target, scores, versions, reference) unless ``sidecar=False``.
"""

from __future__ import annotations

import json
import platform
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import GeometryError, GeometryWarning, InputValueError, VolsalIOError
from .atomic import atomic_write, check_writable, full_suffix
from .read import as_scan, lps_to_ras
from .resample import as_map_tensor
from .scan import Scan, as_affine

__all__ = [
    "save_like",
    "save_feature_map",
    "feature_grid_affine",
    "feature_to_input_matrix",
    "display_window",
    "sidecar_path",
    "WRITE_SUFFIXES",
]

WRITE_SUFFIXES = (".nii", ".nii.gz", ".nrrd", ".mha")
_DESCRIP_BYTES = 80


# ---------------------------------------------------------------------------- helpers
def sidecar_path(path: str | Path) -> Path:
    """``heat.nii.gz`` -> ``heat.json`` (same folder)."""
    p = Path(path)
    suffix = full_suffix(p)
    stem = p.name[: len(p.name) - len(suffix)] if suffix else p.name
    return p.with_name(stem + ".json")


def display_window(data: np.ndarray) -> tuple[float, float]:
    """``(cal_min, cal_max)``: ``0 .. p99.9`` for non-negative maps, ``-a .. a`` with ``a`` the
    99.9th percentile of ``|map|`` for signed maps (finite values only; the maximum is used
    when the percentile is 0, e.g. for very sparse maps)."""
    v = np.asarray(data, dtype=np.float64)
    v = v[np.isfinite(v)]
    if v.size == 0:
        return 0.0, 1.0
    if v.min() >= 0:
        hi = float(np.percentile(v, 99.9))
        hi = hi if hi > 0 else float(v.max())
        return 0.0, hi if hi > 0 else 1.0
    a = float(np.percentile(np.abs(v), 99.9))
    a = a if a > 0 else float(np.abs(v).max())
    return -a, a


def feature_to_input_matrix(
    stride: int | Sequence[int], offset: float | Sequence[float] | None, spatial_dims: int
) -> np.ndarray:
    """``(4, 4)`` feature-voxel -> input-voxel matrix: ``i_in = stride * i_feat + offset``.

    The default offset is ``(stride - 1) / 2`` input voxels: a cell of a "same"-padded
    stride-``s`` pyramid is centred there (USER_NEEDS P1/P17).
    """
    k = spatial_dims
    s = np.broadcast_to(np.asarray(stride, dtype=np.float64), (k,)).copy()
    if np.any(s <= 0):
        raise GeometryError(f"stride must be positive; got {tuple(s)}.")
    off = (s - 1.0) / 2.0 if offset is None else np.broadcast_to(np.asarray(offset, float), (k,))
    m = np.eye(4)
    m[:k, :k] = np.diag(s)
    m[:k, 3] = off
    return m


def feature_grid_affine(reference_affine: Any, matrix: Any) -> np.ndarray:
    """Affine of the feature grid: ``reference_affine @ feature_to_input_voxel``."""
    return as_affine(reference_affine) @ as_affine(matrix, "feature-to-input matrix")


def _versions() -> dict[str, str]:
    out: dict[str, str] = {"python": platform.python_version()}
    from .. import __version__ as volsal_version

    out["volsal"] = volsal_version
    out["torch"] = torch.__version__
    out["numpy"] = np.__version__
    for mod, name in (("nibabel", "nibabel"), ("SimpleITK", "SimpleITK"), ("monai", "monai")):
        try:
            m = __import__(mod)
            out[name] = str(getattr(m, "__version__", None) or m.Version_VersionString())
        except Exception:  # pragma: no cover - optional at write time
            pass
    return out


def _jsonable(v: Any) -> Any:
    if isinstance(v, torch.Tensor):
        v = v.detach().cpu().numpy()
    if isinstance(v, np.ndarray):
        return v.tolist()
    if isinstance(v, (np.generic,)):
        return v.item()
    if isinstance(v, (str, int, float, bool)) or v is None:
        return v
    if isinstance(v, (list, tuple)):
        return [_jsonable(u) for u in v]
    if isinstance(v, dict):
        return {str(k): _jsonable(u) for k, u in v.items()}
    if isinstance(v, Path):
        return str(v)
    return repr(v)


def _descrip(method, layer, target) -> bytes:
    parts = [f"volsal {method or 'map'}"]
    if layer:
        parts.append(f"layer={layer}")
    if target is not None:
        parts.append(f"target={target}")
    text = " ".join(str(p) for p in parts).encode("ascii", "replace")
    return text[:_DESCRIP_BYTES]


def _map_array(m: Any, spatial_dims: int, allow_nonfinite: bool) -> np.ndarray:
    t, _ = as_map_tensor(m, spatial_dims)
    arr = t[0].detach().cpu().to(torch.float32).numpy()  # (C, *spatial)
    bad = int((~np.isfinite(arr)).sum())
    if bad:
        msg = f"the map holds {bad} non-finite values (NaN/Inf)"
        if not allow_nonfinite:
            raise InputValueError(
                f"{msg}; viewers cannot window such a file. Replace them "
                "(torch.nan_to_num(map)) or pass allow_nonfinite=True to write them anyway."
            )
        warnings.warn(f"{msg}; written as they are.", GeometryWarning, stacklevel=3)
    return arr


# ---------------------------------------------------------------------------- writers
def _write_nifti(arr: np.ndarray, affine: np.ndarray, ref: Scan, dest: Path, descrip, window, ow):
    import nibabel as nib

    k = arr.ndim - 1
    data = arr[0] if arr.shape[0] == 1 else np.moveaxis(arr, 0, -1)
    if arr.shape[0] > 1 and k == 2:
        data = data[:, :, None, :]  # (X, Y, 1, C): channels on the 4th NIfTI axis
    img = nib.Nifti1Image(np.ascontiguousarray(data, dtype=np.float32), affine)
    hdr = img.header
    codes = _nifti_codes(ref)
    img.set_sform(affine, code=codes[1])
    img.set_qform(affine, code=codes[0])
    hdr.set_xyzt_units(xyz="mm")
    hdr["cal_min"], hdr["cal_max"] = window
    hdr["descrip"] = descrip
    atomic_write(dest, lambda tmp: nib.save(img, str(tmp)), overwrite=ow)


def _nifti_codes(ref: Scan) -> tuple[int, int]:
    """(qform_code, sform_code) copied from a NIfTI reference; 1 (scanner) otherwise."""
    q, s = ref.meta.get("qform_code"), ref.meta.get("sform_code")
    if isinstance(q, (int, np.integer)) and isinstance(s, (int, np.integer)) and (q or s):
        return int(q), int(s)
    return 1, 1


def _write_sitk(arr: np.ndarray, affine: np.ndarray, dest: Path, descrip, window, ow) -> None:
    import SimpleITK as sitk

    k = arr.ndim - 1
    rev = tuple(range(k - 1, -1, -1))
    if arr.shape[0] == 1:
        img = sitk.GetImageFromArray(np.ascontiguousarray(np.transpose(arr[0], rev)))
    else:
        vec = np.moveaxis(arr, 0, -1)  # (*spatial, C)
        vec = np.transpose(vec, rev + (k,))
        img = sitk.GetImageFromArray(np.ascontiguousarray(vec), isVector=True)
    lps = lps_to_ras @ affine
    cols = lps[:k, :k]
    if k == 2 and np.any(np.abs(lps[2, :2]) > 1e-6 * np.abs(cols).max()):
        warnings.warn(
            "the 2D map's plane is tilted in 3D; its out-of-plane part cannot be stored "
            "in a 2D NRRD/MHA and is dropped.",
            GeometryWarning,
            stacklevel=3,
        )
    spacing = np.linalg.norm(lps[:3, :k], axis=0) if k == 3 else np.linalg.norm(cols, axis=0)
    direction = cols / spacing
    try:
        img.SetSpacing([float(v) for v in spacing])
        img.SetOrigin([float(v) for v in lps[:k, 3]])
        img.SetDirection([float(v) for v in direction.ravel()])
    except Exception as err:
        raise GeometryError(
            f"SimpleITK cannot store this geometry ({err}); write NIfTI instead."
        ) from err
    img.SetMetaData("volsal_descrip", descrip.decode("ascii"))
    img.SetMetaData("volsal_cal_min", repr(window[0]))
    img.SetMetaData("volsal_cal_max", repr(window[1]))
    atomic_write(dest, lambda tmp: sitk.WriteImage(img, str(tmp), True), overwrite=ow)


def _write(
    arr: np.ndarray,
    affine: np.ndarray,
    ref: Scan,
    path: str | Path,
    *,
    overwrite: bool,
    sidecar: bool,
    info: dict[str, Any],
) -> Path:
    dest = Path(path)
    suffix = full_suffix(dest)
    if suffix not in WRITE_SUFFIXES:
        hint = (
            " (.mhd/.nhdr keep the data in a second file; use .mha or .nrrd)"
            if suffix
            in (
                ".mhd",
                ".nhdr",
            )
            else ""
        )
        raise VolsalIOError(
            f"cannot write {dest}: unsupported extension {suffix or '(none)'!r}{hint}. "
            f"Use one of {', '.join(WRITE_SUFFIXES)}."
        )
    check_writable(dest, overwrite)
    side = sidecar_path(dest)
    if sidecar:
        check_writable(side, overwrite)
    window = display_window(arr)
    descrip = _descrip(info.get("method"), info.get("layer"), info.get("target"))
    if suffix in (".nii", ".nii.gz"):
        _write_nifti(arr, affine, ref, dest, descrip, window, overwrite)
    else:
        _write_sitk(arr, affine, dest, descrip, window, overwrite)
    if sidecar:
        doc = {
            "file": dest.name,
            **{k: _jsonable(v) for k, v in info.items()},
            "reference": None if ref.path is None else str(ref.path),
            "reference_shape": list(ref.spatial_shape),
            "shape": list(arr.shape[1:]) if arr.shape[0] == 1 else list(arr.shape),
            "affine_ras": affine.tolist(),
            "cal_min": window[0],
            "cal_max": window[1],
            "versions": _versions(),
        }
        text = json.dumps(doc, indent=2, allow_nan=True) + "\n"
        atomic_write(side, lambda tmp: tmp.write_text(text, encoding="utf-8"), overwrite=overwrite)
    return dest


def _info(explanation, method, layer, target, scores, options, extra) -> dict[str, Any]:
    info: dict[str, Any] = {}
    if explanation is not None:
        info.update(explanation.metadata())
    for key, val in (
        ("method", method),
        ("layer", layer),
        ("target", target),
        ("scores", scores),
        ("options", options),
    ):
        if val is not None:
            info[key] = val
    for key in ("method", "layer", "target", "scores", "options"):
        info.setdefault(key, None)
    info.update(extra)
    return info


# ---------------------------------------------------------------------------- public
def save_like(
    m: Any,
    reference: Any,
    path: str | Path,
    *,
    overwrite: bool = False,
    method: str | None = None,
    layer: str | None = None,
    target: Any = None,
    scores: Any = None,
    options: dict[str, Any] | None = None,
    sidecar: bool = True,
    explanation: Any = None,
    allow_nonfinite: bool = False,
) -> Path:
    """Write a map on the reference scan's grid, with the reference's geometry.

    Args:
        m: ``(*spatial)``, ``(1, *spatial)``, ``(C, *spatial)`` or ``(1, C, *spatial)`` tensor or
            array whose spatial shape is the reference's.
        reference: ``Scan``, MONAI ``MetaTensor``, nibabel image or path of the scan.
        path: ``.nii``/``.nii.gz`` (nibabel) or ``.nrrd``/``.mha`` (SimpleITK).
        overwrite: replace existing files (map and sidecar); otherwise refuse.
        method, layer, target, scores, options: recorded in ``descrip`` and the sidecar
            (taken from ``explanation`` — a :class:`volsal.Explanation` — when not given).
        sidecar: also write ``<name>.json``.
        allow_nonfinite: write NaN/Inf values (with a warning) instead of raising.

    Returns:
        The written path.

    Raises:
        GeometryError: the map's spatial shape is not the reference's (the message names both
            and the fix). FileExistsRefusedError: a file exists and ``overwrite`` is False.
    """
    ref = as_scan(reference)
    k = ref.spatial_dims
    arr = _map_array(m, k, allow_nonfinite)
    if tuple(arr.shape[1:]) != ref.spatial_shape:
        raise GeometryError(
            f"the map's spatial shape {tuple(arr.shape[1:])} does not match the reference "
            f"{'' if ref.path is None else str(ref.path) + ' '}{ref.spatial_shape}. Bring it "
            "to the scan's grid with volsal.io.to_source(map, preprocessed, source=scan) "
            "(a map on a preprocessed network input), or write a map on a CAM layer's "
            "feature grid with volsal.io.save_feature_map(map, reference, path, stride=...)."
        )
    info = _info(explanation, method, layer, target, scores, options, {"grid": "reference"})
    return _write(arr, ref.affine, ref, path, overwrite=overwrite, sidecar=sidecar, info=info)


def save_feature_map(
    m: Any,
    reference: Any,
    path: str | Path,
    *,
    stride: int | Sequence[int] | None = None,
    offset: float | Sequence[float] | None = None,
    matrix: Any = None,
    overwrite: bool = False,
    method: str | None = None,
    layer: str | None = None,
    target: Any = None,
    scores: Any = None,
    options: dict[str, Any] | None = None,
    sidecar: bool = True,
    explanation: Any = None,
    allow_nonfinite: bool = False,
) -> Path:
    """Write a map on a layer's feature grid (``upsample=False``) with its true geometry.

    The affine is ``reference.affine @ M`` with ``M`` the feature-voxel -> input-voxel matrix:
    ``diag(stride)`` plus ``offset`` (default ``(stride - 1) / 2`` input voxels, the centre of
    a "same"-padded stride-``s`` cell), or an explicit ``(4, 4)`` ``matrix`` (e.g. computed
    from the layer chain for unpadded convolutions). Without ``stride`` and ``matrix``, the
    stride is ``reference_shape / map_shape`` when that is an integer on every axis.

    Raises:
        GeometryError: the stride cannot be inferred, or feature cells fall outside the
            reference grid (the map does not belong to this reference).
    """
    ref = as_scan(reference)
    k = ref.spatial_dims
    arr = _map_array(m, k, allow_nonfinite)
    fshape = tuple(arr.shape[1:])
    rshape = ref.spatial_shape
    if matrix is not None and (stride is not None or offset is not None):
        raise GeometryError("give either matrix= or stride=/offset=, not both.")
    if matrix is None:
        if stride is None:
            ratio = np.asarray(rshape, float) / np.asarray(fshape, float)
            if not np.allclose(ratio, np.round(ratio)) or np.any(np.round(ratio) < 1):
                raise GeometryError(
                    f"cannot infer the stride: the map's shape {fshape} does not divide the "
                    f"reference's {rshape}. Pass stride= (and offset=) or matrix= (the "
                    "feature-to-input voxel matrix of the layer)."
                )
            stride = tuple(int(r) for r in np.round(ratio))
        mat = feature_to_input_matrix(stride, offset, k)
    else:
        mat = as_affine(matrix, "feature-to-input matrix")
    # every feature cell centre must fall inside the reference's field of view
    corners = np.array(np.meshgrid(*[[0, n - 1] for n in fshape], indexing="ij")).reshape(k, -1)
    centres = mat[:k, :k] @ corners + mat[:k, 3:4]
    lim = np.asarray(rshape, float)[:, None]
    if np.any(centres < -0.5 - 1e-6) or np.any(centres > lim - 0.5 + 1e-6):
        raise GeometryError(
            f"the map's spatial shape {fshape} matches neither the reference's {rshape} nor "
            f"its feature grid for this stride/matrix (cell centres reach input voxel "
            f"{centres.max(axis=1).round(2).tolist()}). Check stride=/offset=/matrix=, or "
            "upsample the map to the input and use save_like."
        )
    affine = feature_grid_affine(ref.affine, mat)
    info = _info(
        explanation,
        method,
        layer,
        target,
        scores,
        options,
        {"grid": "feature", "feature_to_input_voxel": mat.tolist()},
    )
    return _write(arr, affine, ref, path, overwrite=overwrite, sidecar=sidecar, info=info)
