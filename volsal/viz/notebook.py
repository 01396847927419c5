"""Notebook viewer: a slice slider when ipywidgets is installed, a static montage otherwise."""

from __future__ import annotations

import importlib
from typing import Any

__all__ = ["view"]


def view(image: Any, attr: Any | None, axis: str | int = "axial", **kwargs: Any) -> Any:
    """Browse the slices of a volume with its map in a notebook.

    With ``ipywidgets`` (``pip install volsal[notebook]``): returns a widget (a slider over the
    slice index and the rendered slice; the colour scale is fixed over the whole volume).
    Without it: returns the static :func:`volsal.viz.plot_slices` montage Figure.

    Args:
        image, attr, axis: as in :func:`volsal.viz.plot_slices`.
        **kwargs: passed to :func:`volsal.viz.plot_slices` (``n``, ``pick``, ``alpha``...).

    Returns:
        An ``ipywidgets.Widget``, or a ``matplotlib.figure.Figure`` without ipywidgets.
    """
    from .slices import plot_slices

    try:
        widgets = importlib.import_module("ipywidgets")
    except ImportError:
        return plot_slices(image, attr, axis, **kwargs)
    import matplotlib.pyplot as plt
    from IPython.display import display

    from .colors import map_colors
    from .geometry import resolve_axis
    from .slices import pick_slices, prepare_volume

    vol, amap, geom = prepare_volume(
        image,
        attr,
        affine=kwargs.get("affine"),
        spacing=kwargs.get("spacing"),
        named=isinstance(axis, str),
        channel=kwargs.get("channel", 0),
    )
    v, _ = resolve_axis(axis, geom)
    start = pick_slices(amap if amap is not None else vol, v, 1, "peak")[0]
    if amap is not None and kwargs.get("scale") is None:  # one scale for every slice
        c = map_colors(amap, signed=kwargs.get("signed"), percentile=kwargs.get("percentile", 99.9))
        kwargs = {**kwargs, "scale": c.scale, "signed": c.signed}
    kwargs = {k: val for k, val in kwargs.items() if k not in ("n", "pick", "ax", "fig")}
    out = widgets.Output()
    slider = widgets.IntSlider(value=start, min=0, max=vol.shape[v] - 1, description="slice")

    def render(change: Any = None) -> None:
        out.clear_output(wait=True)
        with out:
            fig = plot_slices(image, attr, axis, n=1, pick=[slider.value], **kwargs)
            display(fig)
            plt.close(fig)

    slider.observe(render, names="value")
    render()
    return widgets.VBox([slider, out])
