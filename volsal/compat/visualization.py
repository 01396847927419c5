"""The seeds' plotting interfaces, as thin adapters over :mod:`volsal.viz`.

- ``VisualizeImageGrayscale`` / ``VisualizeImageDiverging``: the PAIR saliency library
  (SmoothGrad, Smilkov et al. 2017), ``image_3d`` is ``(H, W, C)`` with channels LAST.
- ``saliency_plot``: pytorch-saliency's batch plot (``(B, C, H, W)`` / ``(B, C, D, H, W)``).
- ``tile_input_and_maps``: MATLAB "Compare Gradient Attribution Maps" ``tileInputAndMaps``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from matplotlib.colors import Colormap
from matplotlib.figure import Figure

from ..errors import InputShapeError, ParameterError
from ..viz._inputs import to_numpy
from ..viz._panel import add_colorbar, axes_grid, draw_panel
from ..viz.colors import anatomy_limits, map_colors, resolve_cmap
from ..viz.geometry import Geometry, make_plane
from ..viz.normalize import diverging, grayscale

__all__ = [
    "VisualizeImageGrayscale",
    "VisualizeImageDiverging",
    "saliency_plot",
    "tile_input_and_maps",
]


def _channels_last(image_3d: Any) -> int | None:
    nd = image_3d.ndim
    if nd == 3:
        return -1
    if nd == 2:
        return None
    raise InputShapeError(
        f"expected image_3d as (H, W, C) with channels last (or (H, W)); got shape "
        f"{tuple(image_3d.shape)}."
    )


def VisualizeImageGrayscale(image_3d: Any, percentile: float = 99) -> Any:
    """PAIR: sum ``|image_3d|`` over channels, clip at the percentile, return a 2D map in [0, 1].

    ``out = clip(sum_c |x_c| / p, 0, 1)`` with ``p`` the ``percentile`` of the summed map.
    Unlike PAIR's code, the minimum is not subtracted first, so zero stays zero (the seed's
    description: "normalized between 0 to 1"); for non-negative maps whose minimum is 0 the
    two agree. A constant map gives zeros and a DegenerateMapWarning instead of NaN.

    Args:
        image_3d: ``(H, W, C)`` array or tensor (channels last), or ``(H, W)``.
        percentile: in (0, 100].

    Returns:
        ``(H, W)``, same kind as the input.
    """
    return grayscale(image_3d, percentile, channel_axis=_channels_last(image_3d))


def VisualizeImageDiverging(image_3d: Any, percentile: float = 99) -> Any:
    """PAIR: sum ``image_3d`` over channels, clip at the percentile, return a 2D map in [-1, 1].

    ``out = clip(sum_c x_c / p, -1, 1)`` with ``p`` the ``percentile`` of ``|sum_c x_c|``;
    zero stays zero, as the seed describes. (PAIR's code maps zero to 0.5 and takes the
    percentile of the signed values; we follow the documented behaviour.)

    Args:
        image_3d: ``(H, W, C)`` array or tensor (channels last), or ``(H, W)``.
        percentile: in (0, 100].

    Returns:
        ``(H, W)``, same kind as the input.
    """
    return diverging(image_3d, percentile, channel_axis=_channels_last(image_3d))


def saliency_plot(
    input_batch: Any,
    maps: Any,
    mode: str = "2D",
    alpha: float = 0.8,
    *,
    axis: int = 0,
    cmap: str | Colormap | None = None,
    fig: Figure | None = None,
) -> Figure:
    """pytorch-saliency: one row per sample, the input and the map over it.

    All samples share one colour scale (the maximum ``|map|`` of the batch). For 3D the row
    shows the slice (along spatial ``axis``, default 0 = D) through the sample's map peak,
    in array order (row 0 at the top; no affine, so no anatomical labels).

    Args:
        input_batch: ``(B, C, H, W)`` (``mode="2D"``) or ``(B, C, D, H, W)`` (``mode="3D"``).
            The first channel is drawn (3 channels in 2D: RGB).
        maps: ``(B, 1, *spatial)`` (or ``(B, C, *spatial)``, channels summed).
        mode: ``"2D"`` or ``"3D"``; checked against ``input_batch``.
        alpha: map opacity. axis: slice axis for 3D. cmap: colormap. fig: figure to draw into.

    Returns:
        The ``Figure`` (not shown).

    Raises:
        InputShapeError: rank does not match ``mode``, or maps do not match the inputs.
        ParameterError: unknown ``mode``.
    """
    if mode not in ("2D", "3D"):
        raise ParameterError(f"mode must be '2D' or '3D'; got {mode!r}.")
    x, m = to_numpy(input_batch), to_numpy(maps)
    k = 2 if mode == "2D" else 3
    if x.ndim != k + 2:
        raise InputShapeError(
            f"mode={mode!r} expects input_batch of shape (B, C, {'H, W' if k == 2 else 'D, H, W'});"
            f" got {x.shape}."
        )
    if m.ndim == k + 1:
        m = m[:, None]
    if m.ndim != k + 2 or m.shape[0] != x.shape[0] or m.shape[2:] != x.shape[2:]:
        raise InputShapeError(
            f"maps must be (B, 1, *spatial) matching input_batch {x.shape}; got {m.shape}."
        )
    m = m.sum(axis=1)
    colors = map_colors(m, percentile=100, cmap=cmap)
    fig, axes = axes_grid(x.shape[0], 2, ax=None, fig=fig, panel_size=2.4)
    for b in range(x.shape[0]):
        left, right = axes[2 * b], axes[2 * b + 1]
        if k == 2:
            img = np.moveaxis(x[b], 0, -1) if x.shape[1] == 3 else x[b, 0]
            lims = anatomy_limits(img, (1, 99))
            if img.ndim == 3:
                img = np.clip((img - lims[0]) / (lims[1] - lims[0]), 0, 1)
            for a, amap in ((left, None), (right, m[b])):
                draw_panel(
                    a,
                    img,
                    amap,
                    plane=None,
                    colors=colors,
                    anat_limits=lims,
                    alpha=alpha,
                    threshold=None,
                )
            left.set_ylabel(f"sample {b}", fontsize=8)
        else:
            ax3 = axis % 3
            other = tuple(i for i in range(3) if i != ax3)
            idx = int(np.argmax(np.abs(m[b]).max(axis=other)))
            plane = make_plane(Geometry(None, (1.0, 1.0, 1.0)), ax3, idx)
            lims = anatomy_limits(x[b, 0], (1, 99))
            for a, amap in ((left, None), (right, m[b])):
                draw_panel(
                    a,
                    x[b, 0],
                    amap,
                    plane=plane,
                    colors=colors,
                    anat_limits=lims,
                    alpha=alpha,
                    threshold=None,
                )
            left.set_ylabel(f"sample {b}, slice {idx} (axis {ax3})", fontsize=8)
    axes[0].set_title("input", fontsize=9)
    axes[1].set_title("saliency", fontsize=9)
    add_colorbar(fig, axes[1::2], colors, "saliency")
    return fig


def _rgb_or_gray(image: Any) -> tuple[np.ndarray, tuple[float, float]]:
    raw = image.detach().cpu().numpy() if hasattr(image, "detach") else np.asarray(image)
    img = raw.astype(np.float64)
    if img.ndim == 3 and img.shape[-1] not in (1, 3, 4) and img.shape[0] in (1, 3):
        img = np.moveaxis(img, 0, -1)  # (C, H, W) tensor -> channels last
    if img.ndim == 3 and img.shape[-1] == 1:
        img = img[..., 0]
    if img.ndim == 3 and img.shape[-1] == 4:
        img = img[..., :3]
    if img.ndim not in (2, 3):
        raise InputShapeError(f"expected an (H, W) or (H, W, 3) image; got shape {raw.shape}.")
    if raw.dtype == np.uint8:
        img = img / 255.0
    elif img.ndim == 3 and (img.min() < 0 or img.max() > 1):
        img = (img - img.min()) / max(float(img.max() - img.min()), 1e-12)
    lims = (0.0, 1.0) if (raw.dtype == np.uint8 or img.ndim == 3) else anatomy_limits(img, None)
    return img, lims


def tile_input_and_maps(
    image: Any,
    maps: Sequence[Any],
    titles: Sequence[str],
    cmap: Any = None,
    title: str | None = None,
    *,
    fig: Figure | None = None,
) -> Figure:
    """MATLAB ``tileInputAndMaps``: the input and each map in one row, maps on one colour scale.

    Args:
        image: ``(H, W)``, ``(H, W, 3)`` (uint8 0-255 or float) or a ``(C, H, W)`` tensor.
        maps: list of ``(H, W)`` maps (e.g. in [0, 1]).
        titles: ``len(maps) + 1`` titles (the input's first, e.g. the predicted label), or
            ``len(maps)`` (the input is titled "input").
        cmap: colormap name, Colormap, or an ``(N, 3)`` table (0-255 or 0-1, as in the
            seed's ``[ones(255,1) linspace(1,0,255)' linspace(1,0,255)']*255``).
        title: figure title.
        fig: figure to draw into.

    Returns:
        The ``Figure``.

    Raises:
        ParameterError: wrong number of titles. InputShapeError: a map is not ``(H, W)``.
    """
    maps = [to_numpy(mp) for mp in maps]
    if not maps:
        raise ParameterError("tile_input_and_maps needs at least one map.")
    titles = list(titles)
    if len(titles) == len(maps):
        titles = ["input"] + titles
    if len(titles) != len(maps) + 1:
        raise ParameterError(
            f"give len(maps) + 1 = {len(maps) + 1} titles (input first); got {len(titles)}."
        )
    img, lims = _rgb_or_gray(image)
    for mp in maps:
        if mp.shape != img.shape[:2]:
            raise InputShapeError(f"each map must be {img.shape[:2]}; got {mp.shape}.")
    pooled = np.stack(maps)
    colors = map_colors(pooled, percentile=100, cmap=None if cmap is None else resolve_cmap(cmap))
    fig, axes = axes_grid(1, len(maps) + 1, ax=None, fig=fig, panel_size=2.4)
    draw_panel(
        axes[0], img, None, plane=None, colors=None, anat_limits=lims, alpha=1.0, threshold=None
    )
    for a, mp in zip(axes[1:], maps):
        draw_panel(
            a, None, mp, plane=None, colors=colors, anat_limits=lims, alpha=1.0, threshold=None
        )
    for a, t in zip(axes, titles):
        a.set_title(str(t), fontsize=9)
    add_colorbar(fig, axes[1:], colors, "attribution")
    if title:
        fig.suptitle(title)
    return fig
