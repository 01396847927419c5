from __future__ import annotations

import numpy as np
import pytest
import torch

from volsal.compat.visualization import (
    VisualizeImageDiverging,
    VisualizeImageGrayscale,
    saliency_plot,
    tile_input_and_maps,
)
from volsal.errors import InputShapeError, ParameterError


def test_visualize_image_grayscale_channels_last():
    x = np.zeros((2, 2, 3))
    x[0, 0] = [1.0, -1.0, 0.0]  # |.| sum 2
    x[1, 1] = [0.0, 0.0, -4.0]  # 4
    out = VisualizeImageGrayscale(x, percentile=100)
    assert out.shape == (2, 2)
    np.testing.assert_allclose(out, [[0.5, 0.0], [0.0, 1.0]])


def test_visualize_image_diverging_keeps_zero_and_sign():
    x = torch.zeros(2, 2, 3)
    x[0, 0] = torch.tensor([1.0, -3.0, 0.0])  # sum -2
    x[1, 1] = torch.tensor([2.0, 2.0, 0.0])  # 4
    out = VisualizeImageDiverging(x, percentile=100)
    assert isinstance(out, torch.Tensor) and out.shape == (2, 2)
    torch.testing.assert_close(out, torch.tensor([[-0.5, 0.0], [0.0, 1.0]]))
    with pytest.raises(InputShapeError):
        VisualizeImageGrayscale(np.zeros((1, 2, 2, 3)))


def test_saliency_plot_2d_and_3d():
    x = torch.rand(2, 3, 8, 8)
    maps = torch.rand(2, 1, 8, 8)
    fig = saliency_plot(x, maps, mode="2D", alpha=0.8)
    assert len([a for a in fig.axes if a.images]) == 4
    x3 = torch.rand(2, 1, 6, 8, 8)
    m3 = torch.zeros(2, 1, 6, 8, 8)
    m3[0, 0, 4, 2, 2] = 1.0
    m3[1, 0, 1, 5, 5] = 2.0
    fig = saliency_plot(x3, m3, mode="3D")
    panels = [a for a in fig.axes if a.images]
    assert "slice 4" in panels[0].get_ylabel() and "slice 1" in panels[2].get_ylabel()
    assert panels[1].images[-1].get_clim() == (0.0, 2.0)  # one scale for the batch
    with pytest.raises(InputShapeError):
        saliency_plot(x3, m3, mode="2D")
    with pytest.raises(ParameterError):
        saliency_plot(x, maps, mode="4D")


def test_tile_input_and_maps_seed_colormap_table():
    img = (np.random.rand(8, 8, 3) * 255).astype(np.uint8)
    maps = [np.random.rand(8, 8) for _ in range(3)]
    cmap = np.stack([np.ones(255), np.linspace(1, 0, 255), np.linspace(1, 0, 255)], 1) * 255
    fig = tile_input_and_maps(img, maps, ["dog", "a", "b", "c"], cmap.astype(np.uint8), "T")
    panels = [a for a in fig.axes if a.images]
    assert [a.get_title() for a in panels] == ["dog", "a", "b", "c"]
    assert fig._suptitle.get_text() == "T"
    assert len({a.images[-1].get_clim() for a in panels[1:]}) == 1
    with pytest.raises(ParameterError):
        tile_input_and_maps(img, maps, ["only", "two"])
