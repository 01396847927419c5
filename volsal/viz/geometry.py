"""Display geometry of a slice: which array axes go on screen, flips, aspect, L/R A/P S/I labels.

Conventions (all explicit, never imshow's default): the anatomical plane of a voxel axis comes
from the affine (``nibabel.orientations.io_orientation``; the closest world axis for oblique
affines). "axial" is the voxel axis closest to world S-I, "coronal" to A-P, "sagittal" to L-R.
On screen, anterior (axial) or superior (coronal, sagittal) is up. In axial and coronal views
patient-left is on the screen's right (``convention="radiological"``, the default) or on its
left (``"neurological"``). Sagittal views put anterior on the screen's left (ITK-SNAP and
Slicer). Every image is drawn with ``origin="upper"``: row 0 of the displayed array is the top.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
from nibabel.orientations import aff2axcodes, io_orientation

from ..errors import GeometryError, GeometryWarning, ParameterError

__all__ = ["Geometry", "Plane", "PLANES", "make_geometry", "resolve_axis", "make_plane"]

PLANES = {"sagittal": 0, "coronal": 1, "axial": 2}  # plane name -> world axis it slices
_VIEW = {0: (1, 2), 1: (0, 2), 2: (0, 1)}  # sliced world axis -> (horizontal, vertical) world
_LETTER = {(0, 1): "R", (0, -1): "L", (1, 1): "A", (1, -1): "P", (2, 1): "S", (2, -1): "I"}
_OBLIQUE_TOL = 1e-3


@dataclass(frozen=True)
class Geometry:
    """Voxel grid geometry of a 3D image.

    Attributes:
        affine: ``(4, 4)`` voxel -> RAS mm, or None (no anatomical orientation known).
        spacing: mm per voxel axis.
        assumed: the affine was assumed (identity), not given.
    """

    affine: np.ndarray | None
    spacing: tuple[float, ...]
    assumed: bool = False

    @property
    def ornt(self) -> np.ndarray:
        """``(3, 2)``: world axis (0=x L-R, 1=y P-A, 2=z I-S) and direction (+1/-1) per voxel axis."""
        return io_orientation(self.affine)

    @property
    def codes(self) -> str:
        """Orientation code such as ``"LPS"`` (the direction each voxel axis increases toward)."""
        return "".join(aff2axcodes(self.affine)) if self.affine is not None else "?"

    @property
    def oblique(self) -> bool:
        """The voxel axes are not aligned with the world axes."""
        if self.affine is None:
            return False
        cols = self.affine[:3, :3] / np.linalg.norm(self.affine[:3, :3], axis=0)
        return bool(np.any(np.abs(cols).max(axis=0) < 1.0 - _OBLIQUE_TOL))


def make_geometry(
    affine: np.ndarray | None,
    spacing: tuple[float, ...] | None,
    ndim: int = 3,
    *,
    assume: bool = False,
) -> Geometry:
    """Geometry from an affine, or from ``spacing`` (assumed RAS-aligned when ``assume``).

    Without an affine and with ``assume=True`` (a named plane was asked for), the identity
    orientation (RAS) scaled by ``spacing`` is assumed and a :class:`GeometryWarning` says so.
    """
    if affine is not None:
        if spacing is not None:
            raise ParameterError("give either an affine or spacing=, not both.")
        a = np.asarray(affine, dtype=np.float64)
        sp = tuple(float(v) for v in np.linalg.norm(a[:3, :ndim], axis=0))
        if min(sp) <= 0 or abs(np.linalg.det(a[:3, :3])) < 1e-12:
            raise GeometryError(f"the affine is singular: {a.tolist()}.")
        return Geometry(a, sp)
    sp = (1.0,) * ndim if spacing is None else tuple(float(v) for v in spacing)
    if len(sp) != ndim or min(sp) <= 0:
        raise ParameterError(f"spacing needs {ndim} positive values; got {spacing!r}.")
    if not assume:
        return Geometry(None, sp)
    warnings.warn(
        "no affine given: the named plane and the L/R, A/P, S/I labels assume the array axes "
        "are RAS (identity orientation). Pass a volsal.io.Scan or affine= for true labels, or "
        "an integer axis for plain array axes.",
        GeometryWarning,
        stacklevel=4,
    )
    return Geometry(np.diag(list(sp) + [1.0]), sp, assumed=True)


def resolve_axis(axis: str | int, geom: Geometry) -> tuple[int, str | None]:
    """The voxel axis to slice along, and the plane's name (None without an affine)."""
    if isinstance(axis, str):
        key = axis.lower()
        if key not in PLANES:
            raise ParameterError(
                f"axis must be 'axial', 'coronal', 'sagittal' or an int in 0..2; got {axis!r}."
            )
        if geom.affine is None:
            raise GeometryError("a named plane needs an affine (internal: call make_geometry).")
        voxel = int(np.nonzero(geom.ornt[:, 0] == PLANES[key])[0][0])
        return voxel, key
    if isinstance(axis, (int, np.integer)) and not isinstance(axis, bool) and -3 <= axis < 3:
        voxel = int(axis) % 3
        if geom.affine is None:
            return voxel, None
        world = int(geom.ornt[voxel, 0])
        return voxel, next(k for k, v in PLANES.items() if v == world)
    raise ParameterError(
        f"axis must be 'axial', 'coronal', 'sagittal' or an int in -3..2; got {axis!r}."
    )


@dataclass(frozen=True)
class Plane:
    """How one slice of a volume is put on screen.

    Attributes:
        axis: voxel axis sliced; ``index`` the slice.
        row_axis, col_axis: voxel axes shown as screen rows (top to bottom) and columns.
        flip_row, flip_col: whether those axes are reversed on screen.
        aspect: height / width of one displayed pixel (``spacing[row] / spacing[col]``).
        labels: ``{"left", "right", "top", "bottom"}`` orientation letters (None: no affine).
    """

    axis: int
    index: int
    row_axis: int
    col_axis: int
    flip_row: bool
    flip_col: bool
    aspect: float
    labels: dict[str, str] | None

    def extract(self, vol: np.ndarray) -> np.ndarray:
        """The displayed 2D array (row 0 = top of the screen) of ``vol`` ``(*spatial)``."""
        sl = np.take(vol, self.index, axis=self.axis)
        if self.row_axis > self.col_axis:
            sl = sl.T
        if self.flip_row:
            sl = sl[::-1]
        if self.flip_col:
            sl = sl[:, ::-1]
        return sl

    def to_display(self, ijk: tuple[int, ...], shape: tuple[int, ...]) -> tuple[int, int]:
        """Screen ``(row, col)`` of voxel ``ijk`` in this plane's displayed array."""
        r, c = ijk[self.row_axis], ijk[self.col_axis]
        if self.flip_row:
            r = shape[self.row_axis] - 1 - r
        if self.flip_col:
            c = shape[self.col_axis] - 1 - c
        return int(r), int(c)


def make_plane(geom: Geometry, axis: int, index: int, convention: str = "radiological") -> Plane:
    """The display of slice ``index`` along voxel ``axis`` (see the module docstring)."""
    if convention not in ("radiological", "neurological"):
        raise ParameterError(
            f"convention must be 'radiological' or 'neurological'; got {convention!r}."
        )
    rest = [a for a in range(3) if a != axis]
    if geom.affine is None:
        row, col = rest
        sp = geom.spacing
        return Plane(axis, index, row, col, False, False, sp[row] / sp[col], None)
    ornt = geom.ornt
    w_h, w_v = _VIEW[int(ornt[axis, 0])]
    col = next(a for a in rest if ornt[a, 0] == w_h)
    row = next(a for a in rest if ornt[a, 0] == w_v)
    # screen-right direction on the horizontal world axis; screen-up is always world +
    s_h = 1 if (w_h == 0 and convention == "neurological") else -1
    labels = {
        "left": _LETTER[(w_h, -s_h)],
        "right": _LETTER[(w_h, s_h)],
        "top": _LETTER[(w_v, 1)],
        "bottom": _LETTER[(w_v, -1)],
    }
    sp = geom.spacing
    return Plane(
        axis,
        index,
        row,
        col,
        flip_row=bool(ornt[row, 1] > 0),  # rows go down the screen: world must decrease
        flip_col=bool(ornt[col, 1] != s_h),
        aspect=sp[row] / sp[col],
        labels=labels,
    )
