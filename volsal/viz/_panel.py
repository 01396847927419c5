"""Shared drawing pieces: figure/axes creation, one slice panel, labels, colorbar."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from matplotlib import patheffects
from matplotlib.axes import Axes
from matplotlib.cm import ScalarMappable
from matplotlib.figure import Figure
from matplotlib.image import AxesImage

from ..errors import ParameterError
from .colors import MapColors, visible
from .geometry import Plane

__all__ = [
    "axes_grid",
    "draw_panel",
    "add_colorbar",
    "grid_shape",
    "opacity",
    "ORIENTATION_GID",
]

ORIENTATION_GID = "volsal-orientation"
_OUTLINE = [patheffects.withStroke(linewidth=2, foreground="black")]


def grid_shape(n: int, ncols: int | None = None) -> tuple[int, int]:
    """Rows and columns of a near-square montage of ``n`` panels."""
    cols = ncols if ncols is not None else (n if n <= 4 else math.ceil(math.sqrt(n)))
    cols = max(1, min(cols, n))
    return math.ceil(n / cols), cols


def axes_grid(
    n_rows: int,
    n_cols: int,
    *,
    ax: Axes | Sequence[Axes] | None,
    fig: Figure | None,
    panel_size: float = 2.2,
    extra_width: float = 0.8,
) -> tuple[Figure, list[Axes]]:
    """``n_rows * n_cols`` axes (row-major) on ``fig``, or the given ``ax`` (one or a sequence).

    A new pyplot figure (``constrained`` layout) is made when neither is given; close it with
    :func:`volsal.viz.save_figure` or ``plt.close(fig)``.
    """
    n = n_rows * n_cols
    if ax is not None:
        axes = [ax] if isinstance(ax, Axes) else list(ax)
        if len(axes) != n:
            raise ParameterError(
                f"this plot needs {n} axes; got {len(axes)}. Pass fig= instead, or {n} axes."
            )
        owner = axes[0].figure
        if fig is not None and fig is not owner:
            raise ParameterError("ax= belongs to another figure than fig=.")
        return owner, axes
    if fig is None:
        import matplotlib.pyplot as plt

        fig = plt.figure(
            figsize=(panel_size * n_cols + extra_width, panel_size * n_rows + 0.5),
            layout="constrained",
        )
    grid = fig.subplots(n_rows, n_cols, squeeze=False)
    return fig, [a for row in grid for a in row]


def draw_panel(
    ax: Axes,
    anatomy: np.ndarray | None,
    attr: np.ndarray | None,
    *,
    plane: Plane | None,
    colors: MapColors | None,
    anat_limits: tuple[float, float],
    alpha: float,
    threshold: float | None,
    aspect: float = 1.0,
    labels: dict[str, str] | None = None,
    fade: bool = True,
) -> AxesImage | None:
    """Anatomy (grey) with the map over it; returns the map's image artist (None without map).

    ``anatomy`` / ``attr`` are already in display order (row 0 = top) when ``plane`` is None,
    else full volumes sliced by ``plane``. Both layers use ``origin="upper"`` explicitly.
    With ``fade`` the map's opacity is ``alpha * min(|map| / scale, 1)`` (see :func:`opacity`).
    """
    if plane is not None:
        aspect = plane.aspect
        labels = plane.labels
        anatomy = None if anatomy is None else plane.extract(anatomy)
        attr = None if attr is None else plane.extract(attr)
    if anatomy is not None:
        if anatomy.ndim == 3:  # RGB, already in [0, 1]
            ax.imshow(anatomy, origin="upper", interpolation="nearest", aspect=aspect)
        else:
            ax.imshow(
                anatomy,
                cmap="gray",
                vmin=anat_limits[0],
                vmax=anat_limits[1],
                origin="upper",
                interpolation="nearest",
                aspect=aspect,
            )
    img = None
    if attr is not None and colors is not None:
        img = ax.imshow(
            visible(attr, colors, threshold),
            cmap=colors.cmap,
            norm=colors.norm,
            alpha=opacity(attr, colors, alpha, fade) if anatomy is not None else 1.0,
            origin="upper",
            interpolation="nearest",
            aspect=aspect,
        )
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_facecolor("black")
    if labels:
        add_orientation_labels(ax, labels)
    return img


def opacity(attr: np.ndarray, colors: MapColors, alpha: float, fade: bool) -> Any:
    """Map opacity: ``alpha``, or with ``fade`` ``alpha * min(|attr| / scale, 1)`` per pixel,
    so values near zero leave the anatomy visible (the colour still encodes the value)."""
    if not 0.0 <= alpha <= 1.0:
        raise ParameterError(f"alpha must be in [0, 1]; got {alpha!r}.")
    if not fade:
        return alpha
    return alpha * np.clip(np.abs(np.asarray(attr, dtype=np.float64)) / colors.scale, 0.0, 1.0)


def add_orientation_labels(ax: Axes, labels: dict[str, str]) -> None:
    """Letters at the panel's edges (``gid="volsal-orientation"``, for tools and tests)."""
    spots = {
        "left": (0.02, 0.5, "left", "center"),
        "right": (0.98, 0.5, "right", "center"),
        "top": (0.5, 0.98, "center", "top"),
        "bottom": (0.5, 0.02, "center", "bottom"),
    }
    for side, text in labels.items():
        x, y, ha, va = spots[side]
        t = ax.text(
            x,
            y,
            text,
            transform=ax.transAxes,
            ha=ha,
            va=va,
            color="white",
            fontsize=9,
            fontweight="bold",
            gid=ORIENTATION_GID,
        )
        t.set_path_effects(_OUTLINE)


def add_colorbar(
    fig: Figure, axes: Sequence[Axes], colors: MapColors, units: str, **kwargs: Any
) -> Any:
    """One colorbar for all ``axes`` (opaque, even when the overlay is translucent)."""
    sm = ScalarMappable(norm=colors.norm, cmap=colors.cmap)
    kwargs.setdefault("shrink", 0.9)
    if colors.clipped:  # values beyond the colour limit exist: say so with a triangle
        kwargs.setdefault("extend", "both" if colors.signed else "max")
    return fig.colorbar(sm, ax=list(axes), label=units, **kwargs)
