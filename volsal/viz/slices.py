"""3D views: a montage of slices with the map over the anatomy, and three orthogonal views.

Orientation is taken from the image's affine (a ``volsal.io.Scan`` or ``affine=``), never
guessed from the array order; see :mod:`volsal.viz.geometry` for the display conventions.
Without an affine, an integer ``axis`` shows plain array axes (no anatomical labels), and a
named plane assumes the array is RAS-oriented with a :class:`~volsal.errors.GeometryWarning`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from matplotlib.axes import Axes
from matplotlib.colors import Colormap
from matplotlib.figure import Figure

from ..errors import ParameterError
from ._inputs import image_volume, map_volume
from ._panel import add_colorbar, axes_grid, draw_panel, grid_shape
from .colors import anatomy_limits, map_colors
from .geometry import Geometry, make_geometry, make_plane, resolve_axis

__all__ = ["plot_slices", "plot_orthogonal", "pick_slices", "prepare_volume"]

_AXIS_NAMES = "ijk"
_WORLD_NAMES = "xyz"


def pick_slices(
    attr: np.ndarray, axis: int, n: int, pick: str | Sequence[int] = "peak"
) -> list[int]:
    """Slice indices (ascending) along voxel ``axis`` of a ``(*spatial)`` map.

    Args:
        attr: the map ``(*spatial)`` (or the anatomy, for ``"uniform"`` / ``"center"``).
        axis: voxel axis.
        n: number of slices (at most the axis length).
        pick: ``"peak"``: ``n`` evenly spaced slices across the map's extent (slices whose
            largest ``|attr|`` is at least 25% of the map's peak), always including the slice
            of the peak; widened to ``n`` consecutive slices around it when the extent is
            thinner than ``n``. ``"uniform"``: ``n`` evenly spaced interior slices
            (``linspace(0, size - 1, n + 2)[1:-1]``). ``"center"``: ``n`` consecutive slices
            around the middle. A sequence of ints: those slices.

    Returns:
        Sorted, unique, in-range slice indices.

    Raises:
        ParameterError: unknown ``pick``, ``n < 1``, or an index out of range.
    """
    size = attr.shape[axis]
    if not isinstance(pick, str):
        idx = sorted({int(i) for i in pick})
        if not idx or idx[0] < -size or idx[-1] >= size:
            raise ParameterError(f"slice indices must be in [0, {size}); got {list(pick)!r}.")
        return sorted({i % size for i in idx})
    if int(n) < 1:
        raise ParameterError(f"n must be >= 1; got {n!r}.")
    n = min(int(n), size)
    if pick == "uniform":
        return sorted({int(round(v)) for v in np.linspace(0, size - 1, n + 2)[1:-1]})
    if pick == "center":
        return _window((size - 1) // 2, n, size)
    if pick != "peak":
        raise ParameterError(
            f"pick must be 'peak', 'uniform', 'center' or a sequence of ints; got {pick!r}."
        )
    other = tuple(a for a in range(attr.ndim) if a != axis)
    per_slice = np.abs(attr).max(axis=other)
    peak = int(np.argmax(per_slice))
    if n == 1:
        return [peak]
    top = per_slice[peak]
    inside = np.nonzero(per_slice >= 0.25 * top)[0] if top > 0 else np.array([peak])
    lo, hi = int(inside.min()), int(inside.max())
    if hi - lo + 1 <= n:
        return _window(peak, n, size)
    chosen = [int(round(v)) for v in np.linspace(lo, hi, n)]
    nearest = int(np.argmin([abs(c - peak) for c in chosen]))
    chosen[nearest] = peak
    return sorted(set(chosen))


def _window(centre: int, n: int, size: int) -> list[int]:
    start = min(max(centre - (n - 1) // 2, 0), size - n)
    return list(range(start, start + n))


def prepare_volume(
    image: Any,
    attr: Any | None,
    *,
    affine: Any | None,
    spacing: Sequence[float] | None,
    named: bool,
    channel: int = 0,
) -> tuple[np.ndarray, np.ndarray | None, Geometry]:
    """Anatomy ``(*spatial)``, map ``(*spatial)`` (or None) and geometry of a 3D view."""
    vol, aff = image_volume(image, affine, 3, channel)
    amap = None if attr is None else map_volume(attr, vol.shape)
    geom = make_geometry(aff, spacing, 3, assume=named and aff is None)
    return vol, amap, geom


def _slice_title(geom: Geometry, axis: int, index: int, shape: tuple[int, ...]) -> str:
    title = f"{_AXIS_NAMES[axis]}={index}"
    if geom.affine is not None and not geom.assumed:
        centre = (np.asarray(shape, dtype=np.float64) - 1) / 2
        centre[axis] = index
        world = geom.affine[:3, :3] @ centre + geom.affine[:3, 3]
        w = int(geom.ornt[axis, 0])
        title += f"  {_WORLD_NAMES[w]}={world[w]:+.1f} mm"
    return title


def _describe(geom: Geometry, plane_name: str | None, axis: int, convention: str) -> str:
    if plane_name is None:
        return f"voxel axis {axis} (no affine: array axes, row 0 at the top)"
    text = f"{plane_name}, {geom.codes} image"
    if geom.oblique:
        text += ", oblique (nearest planes)"
    if geom.assumed:
        text += ", orientation ASSUMED (no affine)"
    if plane_name != "sagittal":
        text += f", {convention}"
    return text


def plot_slices(
    image: Any,
    attr: Any | None,
    axis: str | int = "axial",
    n: int = 9,
    pick: str | Sequence[int] = "peak",
    *,
    affine: Any | None = None,
    spacing: Sequence[float] | None = None,
    alpha: float = 0.8,
    threshold: float | None = None,
    fade: bool = True,
    window: tuple[float, float] | None = (1, 99),
    cmap: str | Colormap | None = None,
    signed: bool | None = None,
    scale: float | None = None,
    percentile: float = 99.9,
    units: str = "attribution",
    convention: str = "radiological",
    ncols: int | None = None,
    channel: int = 0,
    title: str | None = None,
    ax: Axes | Sequence[Axes] | None = None,
    fig: Figure | None = None,
) -> Figure:
    """Montage of ``n`` slices of a 3D image with the map over it, one shared colour scale.

    Display: anterior (axial) / superior (coronal, sagittal) up; in axial and coronal views
    patient-left on the screen's right (``convention="radiological"``) or left
    (``"neurological"``); sagittal views have anterior on the left. Orientation letters are drawn
    at the panel edges; pixel aspect is the voxel spacing ratio. The colour limit is the
    ``percentile`` of ``|map|`` over the whole volume (``scale=`` to share it between figures);
    a map with negative values gets a diverging colormap with symmetric limits.

    Args:
        image: ``(D, H, W)`` / ``(C, D, H, W)`` array or tensor, or a ``volsal.io.Scan``-like
            object (``.data`` ``(C, *spatial)``, ``.affine`` voxel -> RAS mm).
        attr: the map on the image's grid: ``(*spatial)``, ``(C, *spatial)`` or
            ``(1, C, *spatial)`` (channels summed, sign kept); None draws the anatomy only.
        axis: ``"axial"``, ``"coronal"``, ``"sagittal"`` (chosen from the affine) or a voxel
            axis index. Without an affine a named plane assumes RAS (with a GeometryWarning).
        n: number of slices. pick: ``"peak"``, ``"uniform"``, ``"center"`` or indices
            (see :func:`pick_slices`).
        affine: ``(4, 4)`` voxel -> RAS mm for a plain array. spacing: mm per axis, when no
            affine is known (aspect only).
        alpha: opacity of the map. threshold: hide ``|map| < threshold * scale``.
        fade: opacity ``alpha * min(|map| / scale, 1)``, so near-zero values leave the anatomy
            visible (the colour still encodes the value); False: uniform ``alpha``.
        window: anatomy grey-level percentiles (None: min-max).
        cmap: colormap; default ``"inferno"`` (unsigned) / ``"RdBu_r"`` (signed).
        signed: force a diverging (True) or sequential (False) scale.
        scale: colour limit (e.g. from :func:`volsal.viz.shared_scale`). percentile: in (0, 100].
        units: colorbar label. convention: ``"radiological"`` or ``"neurological"``.
        ncols: montage columns. channel: image channel drawn. title: figure title.
        ax: ``n`` axes to draw into (one per slice). fig: figure to draw into.

    Returns:
        The ``Figure`` (never shown; save it with :func:`volsal.viz.save_figure`).

    Raises:
        InputShapeError: image not 3D, or map not on the image's grid.
        ParameterError: bad ``axis``, ``pick``, ``window``, ``threshold`` ...

    Example:
        >>> import numpy as np
        >>> vol = np.random.rand(16, 16, 16)
        >>> fig = plot_slices(vol, vol, axis=2, n=4)
    """
    vol, amap, geom = prepare_volume(
        image, attr, affine=affine, spacing=spacing, named=isinstance(axis, str), channel=channel
    )
    voxel_axis, plane_name = resolve_axis(axis, geom)
    idx = pick_slices(amap if amap is not None else vol, voxel_axis, n, pick)
    rows, cols = grid_shape(len(idx), ncols)
    fig, axes = axes_grid(rows, cols, ax=ax, fig=fig)
    colors = (
        None
        if amap is None
        else map_colors(amap, signed=signed, scale=scale, percentile=percentile, cmap=cmap)
    )
    lims = anatomy_limits(vol, window)
    for a, i in zip(axes, idx):
        plane = make_plane(geom, voxel_axis, i, convention)
        draw_panel(
            a,
            vol,
            amap,
            plane=plane,
            colors=colors,
            anat_limits=lims,
            alpha=alpha,
            threshold=threshold,
            fade=fade,
        )
        a.set_title(_slice_title(geom, voxel_axis, i, vol.shape), fontsize=8)
    for a in axes[len(idx) :]:
        a.set_axis_off()
    if colors is not None:
        add_colorbar(fig, axes, colors, units)
    desc = _describe(geom, plane_name, voxel_axis, convention)
    fig.suptitle(f"{title}\n{desc}" if title else desc, fontsize=9)
    return fig


def plot_orthogonal(
    image: Any,
    attr: Any | None,
    at: str | Sequence[int] = "peak",
    *,
    affine: Any | None = None,
    spacing: Sequence[float] | None = None,
    alpha: float = 0.8,
    threshold: float | None = None,
    fade: bool = True,
    window: tuple[float, float] | None = (1, 99),
    cmap: str | Colormap | None = None,
    signed: bool | None = None,
    scale: float | None = None,
    percentile: float = 99.9,
    units: str = "attribution",
    convention: str = "radiological",
    crosshair: bool = True,
    channel: int = 0,
    title: str | None = None,
    ax: Sequence[Axes] | None = None,
    fig: Figure | None = None,
) -> Figure:
    """Sagittal, coronal and axial views through one voxel, with the map over the anatomy.

    Same display conventions and colour options as :func:`plot_slices`.

    Args:
        image, attr: as in :func:`plot_slices`.
        at: ``"peak"`` (the voxel of the largest ``|map|``; the image centre without a map) or
            voxel indices ``(i, j, k)`` of the image's spatial axes.
        crosshair: draw lines through the point.
        ax: three axes (sagittal, coronal, axial). Other args: see :func:`plot_slices`.

    Returns:
        The ``Figure``.

    Raises:
        ParameterError: ``at`` is not ``"peak"`` or a voxel inside the image.
    """
    vol, amap, geom = prepare_volume(
        image, attr, affine=affine, spacing=spacing, named=True, channel=channel
    )
    if isinstance(at, str):
        if at != "peak":
            raise ParameterError(f"at must be 'peak' or voxel indices (i, j, k); got {at!r}.")
        point = (
            tuple(int(v) for v in np.unravel_index(np.argmax(np.abs(amap)), amap.shape))
            if amap is not None
            else tuple(s // 2 for s in vol.shape)
        )
    else:
        point = tuple(int(v) for v in at)
        if len(point) != 3 or any(not 0 <= p < s for p, s in zip(point, vol.shape)):
            raise ParameterError(f"at must be 3 voxel indices inside {vol.shape}; got {at!r}.")
    fig, axes = axes_grid(1, 3, ax=ax, fig=fig, panel_size=2.6)
    colors = (
        None
        if amap is None
        else map_colors(amap, signed=signed, scale=scale, percentile=percentile, cmap=cmap)
    )
    lims = anatomy_limits(vol, window)
    for a, name in zip(axes, ("sagittal", "coronal", "axial")):
        v, _ = resolve_axis(name, geom)
        plane = make_plane(geom, v, point[v], convention)
        draw_panel(
            a,
            vol,
            amap,
            plane=plane,
            colors=colors,
            anat_limits=lims,
            alpha=alpha,
            threshold=threshold,
            fade=fade,
        )
        if crosshair:
            r, c = plane.to_display(point, vol.shape)
            a.axhline(r, color="cyan", lw=0.6, alpha=0.7)
            a.axvline(c, color="cyan", lw=0.6, alpha=0.7)
        a.set_title(f"{name}  {_slice_title(geom, v, point[v], vol.shape)}", fontsize=8)
    if colors is not None:
        add_colorbar(fig, axes, colors, units)
    desc = f"through voxel {point}, {geom.codes} image"
    if geom.oblique:
        desc += ", oblique (nearest planes)"
    if geom.assumed:
        desc += ", orientation ASSUMED (no affine)"
    fig.suptitle(f"{title}\n{desc}" if title else desc, fontsize=9)
    return fig
