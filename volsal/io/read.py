"""Load scans (NIfTI, MHA/MHD, NRRD, DICOM series) into a :class:`Scan` with one axis convention.

Both readers give the same tensor: nibabel's voxel axes ``(i, j, k)`` and a RAS affine.
SimpleITK's numpy view is ``(z, y, x)`` and its geometry is LPS, so its array is transposed
to ``(x, y, z)`` (= ``(i, j, k)``) and its affine built from spacing/origin/direction and
flipped on the first two world axes (LPS -> RAS). A voxel at world point ``p`` is at the same
tensor index whichever reader loaded the file.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import ImageReadError, VolsalWarning
from .atomic import full_suffix
from .scan import Scan, as_affine

__all__ = ["load", "as_scan", "NIBABEL_SUFFIXES", "SITK_SUFFIXES", "lps_to_ras"]

NIBABEL_SUFFIXES = (".nii", ".nii.gz")
SITK_SUFFIXES = (".nii", ".nii.gz", ".mha", ".mhd", ".nrrd", ".nhdr", ".dcm")
_FIX_4D = (
    "pass volume=N to load one volume (0-based), or channels=True to stack the volumes as "
    "channels (C, *spatial)"
)

# LPS <-> RAS: negate the first two world axes (the same matrix both ways)
lps_to_ras = np.diag([-1.0, -1.0, 1.0, 1.0])


def _sitk():
    import SimpleITK as sitk

    return sitk


def as_scan(obj: Any, **load_kwargs: Any) -> Scan:
    """Anything image-like -> :class:`Scan`: a ``Scan``, a MONAI ``MetaTensor``, a path,
    a nibabel image, or any object with ``.data`` and ``.affine``."""
    if isinstance(obj, Scan):
        return obj
    if isinstance(obj, (str, Path)):
        return load(obj, **load_kwargs)
    try:
        from monai.data import MetaTensor
    except ImportError:  # pragma: no cover - monai is a dependency
        MetaTensor = ()  # type: ignore[assignment]  # noqa: N806
    if isinstance(obj, MetaTensor):
        from .metatensor import from_metatensor

        return from_metatensor(obj)
    import nibabel as nib

    if isinstance(obj, nib.spatialimages.SpatialImage):
        return _from_nibabel_image(obj, None, **load_kwargs)
    if hasattr(obj, "data") and hasattr(obj, "affine"):
        return Scan(data=obj.data, affine=obj.affine, meta=dict(getattr(obj, "meta", {}) or {}))
    raise TypeError(
        f"cannot use a {type(obj).__name__} as an image; give a volsal.io.Scan, a MONAI "
        "MetaTensor, a nibabel image or a file path."
    )


def load(
    path: str | Path,
    *,
    reader: str | None = None,
    volume: int | None = None,
    channels: bool = False,
    series: str | None = None,
    allow_nonfinite: bool = False,
    dtype: torch.dtype | None = torch.float32,
) -> Scan:
    """Read a scan from disk.

    Args:
        path: ``.nii``/``.nii.gz`` (nibabel, or SimpleITK with ``reader="sitk"``),
            ``.mha``/``.mhd``/``.nrrd``/``.nhdr``/``.dcm`` (SimpleITK), or a folder holding a
            DICOM series (SimpleITK's ``ImageSeriesReader``).
        reader: ``"nibabel"`` or ``"sitk"``; default: nibabel for NIfTI, SimpleITK otherwise.
        volume: for a 4D series (``(X, Y, Z, T)``), the 0-based volume to load.
        channels: for a 4D series, load all volumes as channels ``(T, X, Y, Z)``.
        series: DICOM SeriesInstanceUID when the folder holds several series.
        allow_nonfinite: load files holding NaN/Inf (with a warning) instead of raising.
        dtype: tensor dtype (default float32); ``None`` keeps the file's dtype.

    Returns:
        :class:`Scan` with ``data`` ``(C, *spatial)`` in nibabel axis order and a RAS affine.

    Raises:
        ImageReadError: missing file, unknown extension, truncated/corrupt file, a 4D series
            without ``volume``/``channels``, non-finite values (unless allowed).
    """
    p = Path(path)
    if not p.exists():
        raise ImageReadError(f"{p}: no such file or folder. Check the path (cwd: {Path.cwd()}).")
    if reader not in (None, "nibabel", "sitk"):
        raise ImageReadError(f"{p}: reader must be 'nibabel' or 'sitk'; got {reader!r}.")
    if p.is_dir():
        scan = _read_dicom_series(p, series, volume, channels, dtype)
    else:
        suffix = full_suffix(p)
        if suffix not in SITK_SUFFIXES:
            raise ImageReadError(
                f"{p}: unknown image extension {suffix or '(none)'!r}. Supported: "
                f"{', '.join(SITK_SUFFIXES)} files, or a folder holding a DICOM series. "
                "Convert the file (e.g. with SimpleITK) or rename it if the extension is wrong."
            )
        use = reader or ("nibabel" if suffix in NIBABEL_SUFFIXES else "sitk")
        if use == "nibabel" and suffix not in NIBABEL_SUFFIXES:
            raise ImageReadError(f"{p}: nibabel reads only NIfTI here; use reader='sitk'.")
        if use == "nibabel":
            scan = _read_nibabel(p, volume, channels, dtype)
        else:
            scan = _read_sitk_file(p, volume, channels, dtype)
    _check_finite(scan, p, allow_nonfinite)
    return scan


# ---------------------------------------------------------------------------- nibabel
def _read_nibabel(p: Path, volume, channels, dtype) -> Scan:
    import nibabel as nib

    try:
        img = nib.load(str(p))
    except Exception as err:  # ImageFileError, EOFError, zlib.error, OSError, ValueError...
        raise ImageReadError(_corrupt_msg(p, err)) from err
    return _from_nibabel_image(img, p, volume=volume, channels=channels, dtype=dtype)


def _from_nibabel_image(img, p, volume=None, channels=False, dtype=torch.float32) -> Scan:
    name = p if p is not None else "nibabel image"
    try:
        arr = np.asanyarray(img.dataobj)  # applies scl_slope / scl_inter
        arr = np.array(arr, copy=True)
    except Exception as err:
        raise ImageReadError(_corrupt_msg(name, err)) from err
    shape = arr.shape
    if arr.ndim == 5 and shape[3] == 1:  # NIfTI vector image (X, Y, Z, 1, C): components
        arr = np.moveaxis(arr[:, :, :, 0], -1, 0)
    elif arr.ndim == 4:
        arr = _pick_volumes(np.moveaxis(arr, -1, 0), name, volume, channels)
    elif arr.ndim in (2, 3):
        arr = arr[None]
    else:
        raise ImageReadError(
            f"{name}: data of shape {shape} is not a 2D/3D image or a 4D series. "
            "Extract the volume you need first."
        )
    hdr = img.header
    meta: dict[str, Any] = {"reader": "nibabel", "file_shape": tuple(int(s) for s in shape)}
    for key in ("qform_code", "sform_code"):
        try:
            meta[key] = int(hdr[key])
        except (KeyError, TypeError, ValueError):
            pass
    try:
        meta["nifti_header"] = hdr.copy()
    except Exception:  # pragma: no cover - exotic headers
        pass
    try:
        affine = as_affine(img.affine, f"{name}: affine")
    except Exception as err:
        raise ImageReadError(f"{name}: invalid geometry in the header ({err}).") from err
    return Scan(data=_to_tensor(arr, dtype), affine=affine, path=p, meta=meta)


# ---------------------------------------------------------------------------- SimpleITK
def _read_sitk_file(p: Path, volume, channels, dtype) -> Scan:
    sitk = _sitk()
    if full_suffix(p) in NIBABEL_SUFFIXES:
        _check_nifti_complete(p)  # ITK reads truncated NIfTI silently (zero-filled)
    try:
        img = sitk.ReadImage(str(p))
    except Exception as err:  # RuntimeError with ITK's message
        raise ImageReadError(_corrupt_msg(p, err)) from err
    return _from_sitk_image(img, p, volume, channels, dtype, reader="sitk")


def _check_nifti_complete(p: Path) -> None:
    """Raise if a NIfTI file holds fewer bytes than its header promises."""
    import gzip

    import nibabel as nib

    try:
        hdr = nib.load(str(p)).header
        need = int(hdr.get_data_offset()) + int(
            np.prod(hdr.get_data_shape(), dtype=np.int64)
        ) * int(hdr.get_data_dtype().itemsize)
        if full_suffix(p) == ".nii.gz":
            have = 0
            with gzip.open(p, "rb") as fh:
                while chunk := fh.read(1 << 22):
                    have += len(chunk)
        else:
            have = p.stat().st_size
    except Exception as err:
        raise ImageReadError(_corrupt_msg(p, err)) from err
    if have < need:
        raise ImageReadError(
            _corrupt_msg(p, EOFError(f"the header promises {need} bytes, the file holds {have}"))
        )


def _read_dicom_series(folder: Path, series, volume, channels, dtype) -> Scan:
    sitk = _sitk()
    try:
        ids = list(sitk.ImageSeriesReader.GetGDCMSeriesIDs(str(folder)))
    except Exception as err:
        raise ImageReadError(f"{folder}: cannot list DICOM series ({err}).") from err
    if not ids:
        raise ImageReadError(
            f"{folder} is a folder without a DICOM series. Give a file "
            f"({', '.join(SITK_SUFFIXES)}) or a folder of DICOM slices."
        )
    if series is None:
        if len(ids) > 1:
            raise ImageReadError(
                f"{folder} holds {len(ids)} DICOM series: {ids}. Pass series=UID to pick one."
            )
        series = ids[0]
    elif series not in ids:
        raise ImageReadError(f"{folder}: no DICOM series {series!r}; found {ids}.")
    files = sitk.ImageSeriesReader.GetGDCMSeriesFileNames(str(folder), series)
    rd = sitk.ImageSeriesReader()
    rd.SetFileNames(files)
    try:
        img = rd.Execute()
    except Exception as err:
        raise ImageReadError(_corrupt_msg(folder, err)) from err
    scan = _from_sitk_image(img, folder, volume, channels, dtype, reader="sitk-dicom")
    scan.meta["dicom_series"] = series
    scan.meta["dicom_files"] = list(files)
    return scan


def _from_sitk_image(img, p, volume, channels, dtype, reader: str) -> Scan:
    sitk = _sitk()
    dim = img.GetDimension()
    ncomp = img.GetNumberOfComponentsPerPixel()
    try:
        arr = sitk.GetArrayFromImage(img)
    except Exception as err:
        raise ImageReadError(_corrupt_msg(p, err)) from err
    # numpy view: reversed image axes, components last -> image axes (x, y, z[, t]) first
    naxes = dim
    arr = np.transpose(arr, tuple(range(naxes - 1, -1, -1)) + tuple(range(naxes, arr.ndim)))
    if ncomp > 1:
        arr = np.moveaxis(arr, -1, 0)  # components -> channels
        if dim == 4:
            raise ImageReadError(f"{p}: a 4D vector image is not supported; extract a volume.")
    elif dim == 4:
        arr = _pick_volumes(np.moveaxis(arr, -1, 0), p, volume, channels)
    elif dim in (2, 3):
        arr = arr[None]
    else:
        raise ImageReadError(f"{p}: {dim}D images are not supported (2D, 3D or a 4D series).")
    k = min(dim, 3)
    sp = np.asarray(img.GetSpacing(), dtype=np.float64)[:k]
    org = np.asarray(img.GetOrigin(), dtype=np.float64)[:k]
    d = np.asarray(img.GetDirection(), dtype=np.float64).reshape(dim, dim)[:k, :k]
    lps = np.eye(4)
    lps[:k, :k] = d @ np.diag(sp)
    lps[:k, 3] = org
    meta: dict[str, Any] = {"reader": reader}
    try:
        affine = as_affine(lps_to_ras @ lps, f"{p}: geometry")
    except Exception as err:
        raise ImageReadError(f"{p}: invalid geometry ({err}).") from err
    return Scan(data=_to_tensor(arr, dtype), affine=affine, path=p, meta=meta)


# ---------------------------------------------------------------------------- shared
def _pick_volumes(arr: np.ndarray, name, volume, channels) -> np.ndarray:
    """``arr`` is ``(T, *spatial)``: pick one volume or keep all as channels."""
    n = arr.shape[0]
    if volume is not None and channels:
        raise ImageReadError(f"{name}: give either volume=N or channels=True, not both.")
    if volume is not None:
        if not -n <= int(volume) < n:
            raise ImageReadError(f"{name}: volume={volume} out of range for {n} volumes.")
        return arr[int(volume)][None]
    if channels or n == 1:
        return arr
    raise ImageReadError(f"{name} is a 4D series of {n} volumes; {_FIX_4D}.")


def _to_tensor(arr: np.ndarray, dtype) -> torch.Tensor:
    if arr.dtype.byteorder not in ("=", "|"):
        arr = arr.astype(arr.dtype.newbyteorder("="))
    if arr.dtype == np.uint16 or arr.dtype == np.uint32:
        arr = arr.astype(np.int64 if dtype is None else np.float64)
    t = torch.from_numpy(np.ascontiguousarray(arr))
    return t if dtype is None else t.to(dtype)


def _check_finite(scan: Scan, p: Path, allow: bool) -> None:
    if not scan.data.is_floating_point():
        return
    bad = int((~torch.isfinite(scan.data)).sum())
    if bad == 0:
        return
    msg = f"{p} holds {bad} non-finite voxel values (NaN/Inf)"
    if not allow:
        raise ImageReadError(
            f"{msg}. Fix the file, or pass allow_nonfinite=True to load it anyway "
            "(then replace them, e.g. torch.nan_to_num(scan.data), before explaining)."
        )
    warnings.warn(f"{msg}; kept as they are (allow_nonfinite=True).", VolsalWarning, stacklevel=3)


def _corrupt_msg(p, err: BaseException) -> str:
    return (
        f"{p}: cannot read the image ({type(err).__name__}: {err}). The file is truncated, "
        "corrupt or not the format its extension says; re-export or re-download it."
    )
