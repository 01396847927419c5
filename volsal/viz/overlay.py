"""2D overlays: a figure-free RGBA blend, and a plotted overlay with a colorbar."""

from __future__ import annotations

from typing import Any

import numpy as np
from matplotlib.axes import Axes
from matplotlib.colors import Colormap
from matplotlib.figure import Figure

from ..errors import InputShapeError, ParameterError
from ._inputs import to_numpy
from ._panel import add_colorbar, axes_grid, draw_panel, opacity
from .colors import anatomy_limits, map_colors, visible

__all__ = ["overlay", "plot_overlay", "image_2d"]


def image_2d(
    image: Any, window: tuple[float, float] | None, channel: int | None = None
) -> tuple[np.ndarray, tuple[float, float]]:
    """``(H, W)`` grey or ``(H, W, 3)`` RGB in [0, 1] from ``(H, W)`` or ``(C, H, W)``.

    A 3-channel ``(3, H, W)`` image is shown as RGB unless ``channel`` picks one channel;
    other channel counts show ``channel`` (default 0).
    """
    img = to_numpy(image)
    if img.ndim == 3:
        if img.shape[0] == 3 and channel is None:
            lo, hi = anatomy_limits(img, window)
            return np.clip((np.moveaxis(img, 0, -1) - lo) / (hi - lo), 0, 1), (0.0, 1.0)
        img = img[0 if channel is None else channel]
    if img.ndim != 2:
        raise InputShapeError(
            f"expected a 2D image (H, W) or (C, H, W); got shape {img.shape}. "
            "For volumes use plot_slices / plot_orthogonal."
        )
    return img, anatomy_limits(img, window)


def _map_2d(attr: Any, shape: tuple[int, int]) -> np.ndarray:
    a = to_numpy(attr)
    if a.ndim == 4 and a.shape[0] == 1:
        a = a[0]
    if a.ndim == 3:
        a = a.sum(axis=0)
    if a.shape != shape:
        raise InputShapeError(
            f"the map's shape {a.shape} does not match the image's {shape}; expected (H, W), "
            "(C, H, W) or (1, C, H, W) on the image's grid."
        )
    return a


def overlay(
    image: Any,
    attr: Any,
    *,
    cmap: str | Colormap | None = None,
    alpha: float = 0.8,
    threshold: float | None = None,
    fade: bool = True,
    window: tuple[float, float] | None = (1, 99),
    signed: bool | None = None,
    scale: float | None = None,
    percentile: float = 99.9,
    channel: int | None = None,
) -> np.ndarray:
    """The map blended over a 2D image, as an RGBA float array (no figure).

    ``rgb = (1 - a) * anatomy + a * cmap(norm(map))`` with ``a = alpha`` where the map is drawn
    and 0 where it is hidden by ``threshold``; the alpha channel is 1. Pixel ``[0, 0]`` is the
    array's first row and column (no flip).

    Args:
        image: ``(H, W)`` or ``(C, H, W)`` (3 channels: RGB) array or tensor.
        attr: ``(H, W)``, ``(C, H, W)`` or ``(1, C, H, W)`` map (channels summed, sign kept).
        cmap: default ``"inferno"`` (unsigned) / ``"RdBu_r"`` (signed, symmetric limits).
        alpha: map opacity in [0, 1]. threshold: hide ``|map| < threshold * scale``.
        fade: opacity ``alpha * min(|map| / scale, 1)`` so near-zero values leave the image
            visible (the colour still encodes the value); False: uniform ``alpha``.
        window: anatomy grey-level percentiles. signed, scale, percentile: colour scale
            (see :func:`volsal.viz.plot_slices`). channel: image channel to show.

    Returns:
        ``(H, W, 4)`` float64 in [0, 1].

    Raises:
        InputShapeError: not 2D, or map and image shapes differ.
        ParameterError: ``alpha`` outside [0, 1], bad ``threshold`` / ``window``.
    """
    if not 0.0 <= alpha <= 1.0:
        raise ParameterError(f"alpha must be in [0, 1]; got {alpha!r}.")
    img, (lo, hi) = image_2d(image, window, channel)
    amap = _map_2d(attr, img.shape[:2])
    base = np.clip((img - lo) / (hi - lo), 0, 1)
    if base.ndim == 2:
        base = np.repeat(base[..., None], 3, axis=-1)
    colors = map_colors(amap, signed=signed, scale=scale, percentile=percentile, cmap=cmap)
    shown = visible(amap, colors, threshold)
    rgb = colors.cmap(colors.norm(shown.data))[..., :3]
    a = np.where(np.ma.getmaskarray(shown), 0.0, opacity(amap, colors, alpha, fade))[..., None]
    out = np.ones(img.shape[:2] + (4,))
    out[..., :3] = (1 - a) * base + a * rgb
    return out


def plot_overlay(
    image: Any,
    attr: Any,
    *,
    ax: Axes | None = None,
    fig: Figure | None = None,
    cmap: str | Colormap | None = None,
    alpha: float = 0.8,
    threshold: float | None = None,
    fade: bool = True,
    window: tuple[float, float] | None = (1, 99),
    signed: bool | None = None,
    scale: float | None = None,
    percentile: float = 99.9,
    units: str = "attribution",
    aspect: float = 1.0,
    channel: int | None = None,
    title: str | None = None,
) -> Figure:
    """Draw a 2D image with the map over it and a colorbar (row 0 at the top, ``origin="upper"``).

    Args:
        image, attr, cmap, alpha, threshold, fade, window, signed, scale, percentile, channel:
            as in :func:`overlay`.
        ax: axes to draw into; fig: figure to draw into (a new one by default).
        units: colorbar label. aspect: pixel height / width (e.g. ``spacing_row / spacing_col``).
        title: axes title.

    Returns:
        The ``Figure``.

    Example:
        >>> import numpy as np
        >>> fig = plot_overlay(np.random.rand(8, 8), np.random.rand(8, 8))
    """
    if not 0.0 <= alpha <= 1.0:
        raise ParameterError(f"alpha must be in [0, 1]; got {alpha!r}.")
    img, lims = image_2d(image, window, channel)
    amap = _map_2d(attr, img.shape[:2])
    colors = map_colors(amap, signed=signed, scale=scale, percentile=percentile, cmap=cmap)
    fig, (a,) = axes_grid(1, 1, ax=ax, fig=fig, panel_size=3.2)
    draw_panel(
        a,
        img,
        amap,
        plane=None,
        colors=colors,
        anat_limits=lims,
        alpha=alpha,
        threshold=threshold,
        fade=fade,
        aspect=aspect,
    )
    if title:
        a.set_title(title, fontsize=9)
    add_colorbar(fig, [a], colors, units)
    return fig
