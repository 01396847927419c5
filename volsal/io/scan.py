"""``Scan``: voxel data as a tensor plus its geometry (a 4x4 voxel -> RAS world affine).

Convention (see ``docs/geometry.md``): ``data`` is ``(C, *spatial)``; the spatial axes are
nibabel's voxel axes ``(i, j, k)`` (``(i, j)`` for 2D), whatever reader loaded the file;
``affine`` maps a voxel index ``(i, j, k, 1)`` of those axes to RAS world millimetres
``(x, y, z, 1)``. For 2D scans the missing index ``k`` is taken as 0.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import GeometryError, InputShapeError

__all__ = ["Scan", "as_affine", "affine_from_geometry"]


def as_affine(affine: Any, what: str = "affine") -> np.ndarray:
    """A float64 ``(4, 4)`` homogeneous matrix from a 4x4 array/tensor (or a 3x3 2D one).

    Raises:
        GeometryError: wrong shape, non-finite or singular spatial part.
    """
    if isinstance(affine, torch.Tensor):
        affine = affine.detach().cpu().numpy()
    a = np.asarray(affine, dtype=np.float64)
    if a.shape == (3, 3):  # 2D homogeneous matrix -> 4x4 with an identity third axis
        b = np.eye(4)
        b[:2, :2] = a[:2, :2]
        b[:2, 3] = a[:2, 2]
        a = b
    if a.shape != (4, 4):
        raise GeometryError(f"{what} must be a 4x4 matrix; got shape {a.shape}.")
    if not np.all(np.isfinite(a)):
        raise GeometryError(f"{what} holds non-finite values: {a.tolist()}.")
    if abs(np.linalg.det(a[:3, :3])) < 1e-12:
        raise GeometryError(
            f"{what} is singular (zero voxel size or collapsed axes): {a.tolist()}. "
            "Fix the file's header (pixdim / sform) or pass a valid affine."
        )
    return a


def affine_from_geometry(
    spacing: Sequence[float],
    origin: Sequence[float] | None = None,
    direction: Any | None = None,
) -> np.ndarray:
    """RAS affine ``A = [[R @ diag(spacing), origin], [0, 1]]`` from geometry (RAS convention).

    Args:
        spacing: mm per spatial axis (2 or 3 values).
        origin: world position (mm, RAS) of voxel 0; zeros by default.
        direction: ``(n, n)`` matrix whose *columns* are the unit world directions of the
            voxel axes (RAS); identity by default.
    """
    sp = [float(s) for s in spacing]
    n = len(sp)
    if n not in (2, 3):
        raise GeometryError(f"spacing needs 2 or 3 values; got {sp}.")
    a = np.eye(4)
    rot = np.eye(n) if direction is None else np.asarray(direction, dtype=np.float64)
    if rot.shape != (n, n):
        raise GeometryError(f"direction must be {n}x{n} for {n} spacings; got {rot.shape}.")
    a[:n, :n] = rot @ np.diag(sp)
    if origin is not None:
        o = np.asarray(origin, dtype=np.float64).ravel()
        a[: len(o), 3] = o
    return as_affine(a)


@dataclass
class Scan:
    """An image: voxel data ``(C, *spatial)`` plus a voxel -> RAS-mm affine.

    Attributes:
        data: ``(C, *spatial)`` tensor, ``spatial`` in nibabel's ``(i, j, k)`` axis order.
        affine: ``(4, 4)`` float64, voxel index of ``data``'s spatial axes -> RAS world mm.
        path: the file it came from, if any.
        meta: free-form metadata (reader, NIfTI qform/sform codes, MONAI meta...).
    """

    data: torch.Tensor
    affine: np.ndarray = field(default_factory=lambda: np.eye(4))
    path: Path | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.data, torch.Tensor):
            self.data = torch.as_tensor(np.asarray(self.data))
        elif type(self.data) is not torch.Tensor:  # MetaTensor or other subclass -> plain
            self.data = self.data.as_subclass(torch.Tensor)
        if self.data.ndim not in (3, 4):
            raise InputShapeError(
                "Scan.data must be (C, H, W) or (C, D, H, W) with a channel axis first; "
                f"got shape {tuple(self.data.shape)}. Use Scan.from_array(...) for arrays "
                "without a channel axis."
            )
        self.affine = as_affine(self.affine)
        if self.path is not None:
            self.path = Path(self.path)

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_array(
        cls,
        array: Any,
        affine: Any | None = None,
        *,
        spacing: Sequence[float] | None = None,
        origin: Sequence[float] | None = None,
        direction: Any | None = None,
        channel_first: bool | None = None,
        path: str | Path | None = None,
        meta: dict[str, Any] | None = None,
    ) -> Scan:
        """A ``Scan`` from a numpy array / tensor and either an affine or spacing/origin/direction.

        Args:
            array: ``(*spatial)`` (2 or 3 axes, a channel axis is added) or ``(C, *spatial)``.
                A 4-axis array is always ``(C, D, H, W)``; for 3-axis arrays pass
                ``channel_first=True`` if the first axis is channels (``(C, H, W)``).
            affine: ``(4, 4)`` voxel -> RAS mm; or give ``spacing`` (+ ``origin``,
                ``direction``, RAS). Identity when none is given.
            channel_first: whether ``array`` already has a channel axis (default: only 4-axis).
        """
        t = array if isinstance(array, torch.Tensor) else torch.as_tensor(np.asarray(array))
        if channel_first is None:
            channel_first = t.ndim == 4
        if not channel_first:
            t = t[None]
        if affine is not None and spacing is not None:
            raise GeometryError("give either affine or spacing/origin/direction, not both.")
        if affine is None:
            k = t.ndim - 1
            if spacing is None:
                spacing = (1.0,) * k
            affine = affine_from_geometry(spacing, origin, direction)
        return cls(
            data=t, affine=affine, path=None if path is None else Path(path), meta=meta or {}
        )

    # ------------------------------------------------------------------ geometry
    @property
    def spatial_dims(self) -> int:
        """Number of spatial axes (2 or 3)."""
        return self.data.ndim - 1

    @property
    def spatial_shape(self) -> tuple[int, ...]:
        """Sizes of the spatial axes, ``(i, j[, k])``."""
        return tuple(int(s) for s in self.data.shape[1:])

    @property
    def spacing(self) -> tuple[float, ...]:
        """Voxel size in mm per spatial axis (column norms of the affine)."""
        k = self.spatial_dims
        return tuple(float(v) for v in np.linalg.norm(self.affine[:3, :k], axis=0))

    @property
    def origin(self) -> tuple[float, float, float]:
        """RAS world position (mm) of voxel ``(0, 0, 0)``."""
        return tuple(float(v) for v in self.affine[:3, 3])  # type: ignore[return-value]

    @property
    def direction(self) -> np.ndarray:
        """``(3, k)`` unit RAS direction of each spatial axis (columns)."""
        k = self.spatial_dims
        cols = self.affine[:3, :k]
        return cols / np.linalg.norm(cols, axis=0, keepdims=True)

    def voxel_to_world(self, idx: Any) -> np.ndarray:
        """Voxel indices ``(..., k)`` (float allowed) -> RAS world mm ``(..., 3)``."""
        ijk = np.asarray(idx, dtype=np.float64)
        k = self.spatial_dims
        if ijk.shape[-1] != k:
            raise InputShapeError(f"expected indices with {k} components; got shape {ijk.shape}.")
        return ijk @ self.affine[:3, :k].T + self.affine[:3, 3]

    def world_to_voxel(self, points: Any) -> np.ndarray:
        """RAS world mm ``(..., 3)`` -> continuous voxel indices ``(..., k)``."""
        p = np.asarray(points, dtype=np.float64)
        if p.shape[-1] != 3:
            raise InputShapeError(f"expected world points (..., 3); got shape {p.shape}.")
        inv = np.linalg.inv(self.affine)
        return (p @ inv[:3, :3].T + inv[:3, 3])[..., : self.spatial_dims]

    def to_batch(self) -> torch.Tensor:
        """The data as a network input ``(1, C, *spatial)``."""
        return self.data[None]

    def __repr__(self) -> str:
        sp = ", ".join(f"{s:.4g}" for s in self.spacing)
        return (
            f"Scan(shape={tuple(self.data.shape)}, dtype={self.data.dtype}, spacing=({sp}), "
            f"path={None if self.path is None else str(self.path)!r})"
        )
