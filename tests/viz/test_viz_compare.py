from __future__ import annotations

import sys
import types

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch
from conftest import FakeScan, gaussian
from PIL import Image

from volsal.errors import FileExistsRefusedError, ParameterError
from volsal.viz import compare, save_gif, view

SHAPE = (12, 14, 10)
LPS = np.diag([-1.0, -1.0, 2.0, 1.0])


def test_compare_grid_shares_slices_and_scale():
    a = gaussian(SHAPE, (3, 4, 6))
    maps = {"trained": torch.from_numpy(a), "weak": 0.1 * a, "random": np.random.rand(*SHAPE)}
    fig = compare(FakeScan(np.random.rand(1, *SHAPE), LPS), maps, axis="axial", slices=[2, 6])
    panels = [ax for ax in fig.axes if ax.images]
    assert len(panels) == 2 * 4
    assert [ax.get_title() for ax in panels[:4]] == ["input", "trained", "weak", "random"]
    clims = {ax.images[-1].get_clim() for i, ax in enumerate(panels) if i % 4}
    assert len(clims) == 1  # one scale for every map
    assert panels[0].get_ylabel().startswith("k=2") and panels[4].get_ylabel().startswith("k=6")
    # default: the slice of the first map's peak; per-map scales when asked
    fig = compare(np.random.rand(*SHAPE), maps, axis=2, shared_scale=False)
    panels = [ax for ax in fig.axes if ax.images]
    assert len(panels) == 4 and panels[0].get_ylabel().startswith("k=6")
    assert len({ax.images[-1].get_clim() for ax in panels[1:]}) == 3


def test_compare_2d_and_signed():
    img = np.random.rand(3, 8, 9)
    m = np.random.randn(3, 8, 9)
    fig = compare(img, {"grad": m, "abs": np.abs(m)}, spatial_dims=2)
    panels = [ax for ax in fig.axes if ax.images]
    assert len(panels) == 3
    lo, hi = panels[1].images[-1].get_clim()
    assert lo == -hi  # any signed map -> symmetric shared scale
    with pytest.raises(ParameterError):
        compare(img, {})


def test_save_gif_frames(tmp_path):
    vol = np.random.rand(8, 8, 6)
    path = save_gif(vol, gaussian(vol.shape, (4, 4, 3)), tmp_path / "a.gif", axis=2, fps=4)
    with Image.open(path) as im:
        assert im.format == "GIF" and im.n_frames == 6
    assert plt.get_fignums() == []
    with pytest.raises(FileExistsRefusedError):
        save_gif(vol, None, path, axis=2)
    with pytest.raises(ParameterError):
        save_gif(vol, None, tmp_path / "a.png", axis=2)


def test_view_without_ipywidgets_returns_the_montage(monkeypatch):
    monkeypatch.setitem(sys.modules, "ipywidgets", None)  # import raises ImportError
    fig = view(np.random.rand(*SHAPE), gaussian(SHAPE, (3, 4, 6)), axis=2, n=2)
    assert isinstance(fig, plt.Figure) and len([a for a in fig.axes if a.images]) == 2


def test_view_with_ipywidgets_builds_a_slider(monkeypatch):
    shown = []

    class Widget:
        def __init__(self, *args, **kwargs):
            self.kwargs, self.children = kwargs, args[0] if args else None
            self.value = kwargs.get("value")
            self.callbacks = []

        def observe(self, fn, names):
            self.callbacks.append(fn)

        def clear_output(self, wait=False):
            pass

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

    fake = types.SimpleNamespace(Output=Widget, IntSlider=Widget, VBox=Widget)
    display_mod = types.ModuleType("IPython.display")
    display_mod.display = lambda fig: shown.append(fig.axes[0].get_title())
    monkeypatch.setitem(sys.modules, "ipywidgets", fake)
    monkeypatch.setitem(sys.modules, "IPython", types.ModuleType("IPython"))
    monkeypatch.setitem(sys.modules, "IPython.display", display_mod)
    box = view(np.random.rand(*SHAPE), gaussian(SHAPE, (3, 4, 6)), axis=2)
    slider = box.children[0]
    assert slider.kwargs["value"] == 6 and slider.kwargs["max"] == SHAPE[2] - 1
    slider.value = 2
    slider.callbacks[0]({"new": 2})
    assert shown == ["k=6", "k=2"]
    assert plt.get_fignums() == []
