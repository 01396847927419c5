"""Visualisation: display normalisation, 2D overlays, 3D slice montages, comparison grids.

Every plotting function accepts ``ax=`` / ``fig=``, returns the ``Figure``, never calls
``plt.show()`` and works on the Agg backend. Orientation comes from the image's affine
(``volsal.io.Scan`` or ``affine=``); see :mod:`volsal.viz.geometry` for the conventions.
"""

from __future__ import annotations

from .animate import save_gif
from .colors import MapColors, map_colors
from .compare import compare
from .export import save_figure
from .normalize import diverging, grayscale, shared_scale
from .notebook import view
from .overlay import overlay, plot_overlay
from .slices import pick_slices, plot_orthogonal, plot_slices

__all__ = [
    "grayscale",
    "diverging",
    "shared_scale",
    "overlay",
    "plot_overlay",
    "plot_slices",
    "plot_orthogonal",
    "pick_slices",
    "compare",
    "save_gif",
    "view",
    "save_figure",
    "map_colors",
    "MapColors",
]
