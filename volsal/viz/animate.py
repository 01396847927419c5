"""GIF through the slices of a volume with its map (matplotlib.animation + Pillow)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from matplotlib.animation import FuncAnimation, PillowWriter
from matplotlib.colors import Colormap

from ..errors import ParameterError
from ._panel import add_colorbar, axes_grid, draw_panel
from .colors import anatomy_limits, map_colors
from .export import atomic_output, check_target
from .geometry import make_plane, resolve_axis
from .slices import _describe, _slice_title, prepare_volume

__all__ = ["save_gif"]


def save_gif(
    image: Any,
    attr: Any | None,
    path: str | Path,
    axis: str | int = "axial",
    fps: float = 8,
    *,
    slices: Sequence[int] | None = None,
    step: int = 1,
    overwrite: bool = False,
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
    dpi: float = 80,
    title: str | None = None,
) -> Path:
    """Write an animated GIF stepping through the slices, map over anatomy, one colour scale.

    Display conventions as in :func:`volsal.viz.plot_slices`. Written atomically; the figure
    used for drawing is closed afterwards.

    Args:
        image, attr: as in :func:`volsal.viz.plot_slices`.
        path: ``.gif`` file to write. axis: plane. fps: frames per second.
        slices: the slice indices to show (default: every ``step``-th slice along ``axis``).
        overwrite: replace an existing file. dpi: resolution of the frames.
        Other args: see :func:`volsal.viz.plot_slices`.

    Returns:
        ``path`` as a ``Path``.

    Raises:
        FileExistsRefusedError: ``path`` exists and not ``overwrite``.
        ParameterError: bad ``fps``, ``step`` or suffix.
    """
    import matplotlib.pyplot as plt

    dest = check_target(path, overwrite)
    if dest.suffix.lower() != ".gif":
        raise ParameterError(f"save_gif writes a .gif file; got {dest.name!r}.")
    if not fps > 0 or int(step) < 1:
        raise ParameterError(f"fps must be > 0 and step >= 1; got fps={fps!r}, step={step!r}.")
    vol, amap, geom = prepare_volume(
        image, attr, affine=affine, spacing=spacing, named=isinstance(axis, str)
    )
    v, plane_name = resolve_axis(axis, geom)
    idx = list(range(0, vol.shape[v], int(step))) if slices is None else [int(i) for i in slices]
    if not idx or any(not 0 <= i < vol.shape[v] for i in idx):
        raise ParameterError(f"slices must be indices in [0, {vol.shape[v]}); got {slices!r}.")
    colors = (
        None
        if amap is None
        else map_colors(amap, signed=signed, scale=scale, percentile=percentile, cmap=cmap)
    )
    lims = anatomy_limits(vol, window)
    fig, (ax,) = axes_grid(1, 1, ax=None, fig=None, panel_size=3.0)
    desc = _describe(geom, plane_name, v, convention)
    fig.suptitle(f"{title}\n{desc}" if title else desc, fontsize=8)
    if colors is not None:
        add_colorbar(fig, [ax], colors, units)

    def frame(t: int) -> list:
        ax.clear()
        i = idx[t]
        draw_panel(
            ax,
            vol,
            amap,
            plane=make_plane(geom, v, i, convention),
            colors=colors,
            anat_limits=lims,
            alpha=alpha,
            threshold=threshold,
            fade=fade,
        )
        ax.set_title(_slice_title(geom, v, i, vol.shape), fontsize=8)
        return []

    try:
        anim = FuncAnimation(fig, frame, frames=len(idx), blit=False)
        with atomic_output(dest, overwrite) as tmp:
            anim.save(tmp, writer=PillowWriter(fps=fps), dpi=dpi)
    finally:
        plt.close(fig)
    return dest
