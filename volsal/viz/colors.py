"""Colour scales: sequential for unsigned maps, diverging with symmetric limits for signed ones."""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

import matplotlib as mpl
import numpy as np
from matplotlib.colors import Colormap, Normalize

from ..errors import DegenerateMapWarning, ParameterError
from .normalize import percentile_scale

__all__ = [
    "MapColors",
    "map_colors",
    "anatomy_limits",
    "visible",
    "resolve_cmap",
    "SEQUENTIAL",
    "DIVERGING",
]

SEQUENTIAL = "inferno"
DIVERGING = "RdBu_r"


@dataclass(frozen=True)
class MapColors:
    """Colormap and limits of a map: ``(0, scale)`` if unsigned, ``(-scale, scale)`` if signed."""

    cmap: Colormap
    norm: Normalize
    signed: bool
    scale: float
    clipped: bool = False  # some values lie beyond the colour limit


def map_colors(
    attr: np.ndarray | None,
    *,
    signed: bool | None = None,
    scale: float | None = None,
    percentile: float = 99.9,
    cmap: str | Colormap | None = None,
) -> MapColors:
    """Colour scale of ``attr`` (the whole volume, so every slice shares it).

    Args:
        attr: the raw map (any shape); may be None when ``scale`` and ``signed`` are given.
        signed: diverging, symmetric limits; default: whether ``attr`` has negative values.
        scale: colour limit; default the ``percentile`` of ``|attr|`` (its max if that is 0).
        percentile: in (0, 100].
        cmap: colormap name or object; default ``"inferno"`` (unsigned), ``"RdBu_r"`` (signed).
    """
    if signed is None:
        signed = bool(attr is not None and np.min(attr) < 0)
    if scale is None:
        scale = 0.0 if attr is None else percentile_scale(attr, percentile)
        if scale == 0.0:
            warnings.warn(
                "the map is all zero; it is drawn on the scale (0, 1).",
                DegenerateMapWarning,
                stacklevel=4,
            )
            scale = 1.0
    scale = float(scale)
    if not (np.isfinite(scale) and scale > 0):
        raise ParameterError(f"scale must be a finite number > 0; got {scale!r}.")
    cm = resolve_cmap(cmap if cmap is not None else (DIVERGING if signed else SEQUENTIAL))
    norm = Normalize(-scale if signed else 0.0, scale, clip=True)
    clipped = attr is not None and float(np.max(np.abs(attr))) > scale * (1 + 1e-9)
    return MapColors(cm, norm, bool(signed), scale, clipped)


def anatomy_limits(
    vol: np.ndarray, window: tuple[float, float] | None = (1, 99)
) -> tuple[float, float]:
    """Grey-level limits of the anatomy: the ``window`` percentiles (None: min and max)."""
    if window is None:
        lo, hi = float(np.min(vol)), float(np.max(vol))
    else:
        if len(window) != 2 or not (0 <= window[0] < window[1] <= 100):
            raise ParameterError(
                f"window must be two percentiles (lo < hi) in [0, 100]; got {window!r}."
            )
        lo, hi = (float(v) for v in np.percentile(vol, window))
    if hi <= lo:
        hi = lo + 1.0
    return lo, hi


def visible(attr: np.ndarray, colors: MapColors, threshold: float | None) -> np.ma.MaskedArray:
    """``attr`` masked where ``|attr| < threshold * scale`` (those voxels are not drawn)."""
    if threshold is None:
        return np.ma.masked_array(attr, mask=np.zeros(attr.shape, dtype=bool))
    if not 0.0 <= threshold < 1.0:
        raise ParameterError(
            f"threshold is a fraction of the colour limit in [0, 1); got {threshold!r}."
        )
    return np.ma.masked_array(attr, mask=np.abs(attr) < threshold * colors.scale)


def resolve_cmap(cmap: Any) -> Colormap:
    """A colormap from a name, a Colormap, or an ``(N, 3)`` RGB table (0-1 floats or 0-255)."""
    if isinstance(cmap, Colormap):
        return cmap
    if isinstance(cmap, str):
        return mpl.colormaps[cmap]
    table = np.asarray(cmap, dtype=np.float64)
    if table.ndim != 2 or table.shape[1] not in (3, 4):
        raise ParameterError(
            f"cmap must be a name, a Colormap or an (N, 3) table; got {table.shape}."
        )
    if table.max() > 1.0:
        table = table / 255.0
    from matplotlib.colors import ListedColormap

    return ListedColormap(table)
