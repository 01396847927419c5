"""Side-by-side comparison grids: input plus several maps on the same slices and colour scale.

For comparing methods, or a trained model with its randomised copies (Adebayo et al.,
"Sanity checks for saliency maps", NeurIPS 2018): rows are slices, columns are the input and
then each map. With ``shared_scale=True`` every map is drawn on one colour scale, so a map
that is weak relative to the others looks weak (per-map scaling would hide it, USER_NEEDS P3).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from matplotlib.colors import Colormap
from matplotlib.figure import Figure

from ..errors import ParameterError
from ._inputs import is_scan_like, map_volume, to_numpy
from ._panel import add_colorbar, axes_grid, draw_panel
from .colors import anatomy_limits, map_colors
from .geometry import make_plane, resolve_axis
from .normalize import percentile_scale
from .overlay import _map_2d, image_2d
from .slices import _describe, _slice_title, pick_slices, prepare_volume

__all__ = ["compare"]


def _rank(image: Any, maps: list[Any], spatial_dims: int | None) -> int:
    if spatial_dims is not None:
        if spatial_dims not in (2, 3):
            raise ParameterError(f"spatial_dims must be 2 or 3; got {spatial_dims!r}.")
        return spatial_dims
    if is_scan_like(image):
        return to_numpy(image.data).ndim - 1
    nd = to_numpy(image).ndim
    if nd == 2 or any(to_numpy(m).ndim == 2 for m in maps):
        return 2
    return 3  # (D, H, W) and (C, D, H, W); pass spatial_dims=2 for (C, H, W) images


def compare(
    image: Any,
    maps: Mapping[str, Any],
    *,
    axis: str | int = "axial",
    slices: int | Sequence[int] | None = None,
    shared_scale: bool = True,
    overlay: bool = False,
    spatial_dims: int | None = None,
    affine: Any | None = None,
    spacing: Sequence[float] | None = None,
    alpha: float = 0.8,
    threshold: float | None = None,
    fade: bool = True,
    window: tuple[float, float] | None = (1, 99),
    cmap: str | Colormap | None = None,
    signed: bool | None = None,
    percentile: float = 99.9,
    units: str = "attribution",
    convention: str = "radiological",
    input_title: str = "input",
    title: str | None = None,
    fig: Figure | None = None,
) -> Figure:
    """Grid: one row per slice, columns ``input | map 1 | map 2 | ...``, same slices and scale.

    Args:
        image: 2D ``(H, W)`` / ``(C, H, W)`` or 3D ``(D, H, W)`` / ``(C, D, H, W)`` array or
            tensor, or a Scan-like object (``.data``, ``.affine``).
        maps: ``{name: map}``; each map on the image's grid (``(*spatial)`` or
            ``(C, *spatial)``, channels summed with their sign).
        axis: plane of the slices (3D), as in :func:`volsal.viz.plot_slices`.
        slices: slice index or indices (3D); default the slice of the first map's peak.
        shared_scale: one colour scale (the ``percentile`` of ``|map|`` pooled over all maps)
            and one colorbar; False: each map its own scale and colorbar.
        overlay: draw maps over the anatomy (default: the maps alone, as in ``tileInputAndMaps``).
        spatial_dims: 2 or 3; inferred otherwise (a 3-axis array is a volume unless a map is
            2-axis, so pass ``spatial_dims=2`` for ``(C, H, W)`` images with ``(C, H, W)`` maps).
        signed: diverging scale; default: whether any map has negative values.
        Other args: see :func:`volsal.viz.plot_slices`.

    Returns:
        The ``Figure``.

    Raises:
        ParameterError: no maps, bad options. InputShapeError: a map is not on the image grid.
    """
    if not maps:
        raise ParameterError("compare needs at least one map: {name: map}.")
    names = list(maps)
    k = _rank(image, list(maps.values()), spatial_dims)
    if k == 2:
        src = image.data if is_scan_like(image) else image
        img, lims = image_2d(src, window)
        amaps = [_map_2d(maps[n], img.shape[:2]) for n in names]
        planes: list[Any] = [None]
        desc = "2D, row 0 at the top"
    else:
        vol, _, geom = prepare_volume(
            image, None, affine=affine, spacing=spacing, named=isinstance(axis, str)
        )
        img = vol
        lims = anatomy_limits(vol, window)
        amaps = [map_volume(maps[n], vol.shape) for n in names]
        v, plane_name = resolve_axis(axis, geom)
        if slices is None:
            idx = pick_slices(amaps[0], v, 1, "peak")
        else:
            idx = pick_slices(vol, v, 1, [slices] if isinstance(slices, int) else slices)
        planes = [make_plane(geom, v, i, convention) for i in idx]
        desc = _describe(geom, plane_name, v, convention)
    if signed is None:
        signed = any(float(np.min(m)) < 0 for m in amaps)
    if shared_scale:
        pooled = percentile_scale(np.concatenate([m.ravel() for m in amaps]), percentile)
        common = map_colors(
            None if pooled > 0 else amaps[0], signed=signed, scale=pooled or None, cmap=cmap
        )
        colors = [common] * len(amaps)
    else:
        colors = [map_colors(m, signed=signed, percentile=percentile, cmap=cmap) for m in amaps]
    n_cols = 1 + len(names)
    fig, axes = axes_grid(len(planes), n_cols, ax=None, fig=fig, panel_size=2.0)
    for r, plane in enumerate(planes):
        row = axes[r * n_cols : (r + 1) * n_cols]
        draw_panel(
            row[0],
            img,
            None,
            plane=plane,
            colors=None,
            anat_limits=lims,
            alpha=alpha,
            threshold=None,
        )
        for a, m, c in zip(row[1:], amaps, colors):
            draw_panel(
                a,
                img if overlay else None,
                m,
                plane=plane,
                colors=c,
                anat_limits=lims,
                alpha=alpha,
                threshold=threshold,
                fade=fade,
            )
        if plane is not None:
            row[0].set_ylabel(_slice_title(geom, plane.axis, plane.index, img.shape), fontsize=8)
        if r == 0:
            for a, name in zip(row, [input_title] + names):
                a.set_title(name, fontsize=9)
    if shared_scale:
        add_colorbar(fig, [a for i, a in enumerate(axes) if i % n_cols], colors[0], units)
    else:
        for j, c in enumerate(colors, start=1):
            add_colorbar(fig, axes[j::n_cols], c, units, location="bottom", shrink=0.8)
    fig.suptitle(f"{title}\n{desc}" if title else desc, fontsize=9)
    return fig
