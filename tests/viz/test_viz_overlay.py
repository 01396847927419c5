from __future__ import annotations

import matplotlib as mpl
import numpy as np
import pytest
import torch
from conftest import gaussian
from PIL import Image

from volsal.errors import InputShapeError, ParameterError
from volsal.viz import overlay, plot_overlay, save_figure


def test_overlay_rgba_hand_computed():
    image = np.array([[0.0, 1.0], [2.0, 4.0]])
    attr = np.array([[0.0, 1.0], [2.0, 4.0]])
    out = overlay(image, attr, alpha=1.0, fade=False, window=None, percentile=100)
    assert out.shape == (2, 2, 4) and (out[..., 3] == 1).all()
    expected = mpl.colormaps["inferno"](attr / 4.0)[..., :3]
    np.testing.assert_allclose(out[..., :3], expected)
    # alpha 0.5, threshold hides |attr| < 0.3 * 4: pixels 0 and 1 keep the grey anatomy
    out = overlay(image, attr, alpha=0.5, fade=False, threshold=0.3, window=None, percentile=100)
    grey = image / 4.0
    np.testing.assert_allclose(out[0, 0, :3], [grey[0, 0]] * 3)
    np.testing.assert_allclose(out[0, 1, :3], [grey[0, 1]] * 3)
    np.testing.assert_allclose(out[1, 1, :3], 0.5 * 1.0 + 0.5 * expected[1, 1])
    # fade: opacity grows with |attr| / scale
    out = overlay(image, attr, alpha=1.0, fade=True, window=None, percentile=100)
    a = attr[1, 0] / 4.0
    np.testing.assert_allclose(out[1, 0, :3], (1 - a) * grey[1, 0] + a * expected[1, 0])


def test_overlay_signed_tensor_channels():
    attr = torch.zeros(2, 3, 3)
    attr[0, 0, 0], attr[1, 0, 0] = -1.0, -1.0  # channel sum -2 at (0, 0)
    attr[0, 2, 2] = 2.0
    out = overlay(torch.zeros(3, 3), attr, alpha=1.0, fade=False, percentile=100)
    cm = mpl.colormaps["RdBu_r"]
    np.testing.assert_allclose(out[0, 0, :3], cm(0.0)[:3])
    np.testing.assert_allclose(out[2, 2, :3], cm(1.0)[:3])
    np.testing.assert_allclose(out[1, 1, :3], cm(0.5)[:3])


def test_overlay_errors():
    with pytest.raises(InputShapeError):
        overlay(np.zeros((4, 4)), np.zeros((5, 5)))
    with pytest.raises(InputShapeError):
        overlay(np.zeros((4, 4, 4, 4)), np.zeros((4, 4)))
    with pytest.raises(ParameterError):
        overlay(np.zeros((4, 4)), np.ones((4, 4)), alpha=2)
    with pytest.raises(ParameterError):
        overlay(np.zeros((4, 4)), np.ones((4, 4)), threshold=1.5)


def test_rendered_png_has_the_peak_colour_at_the_peak(tmp_path):
    rng = np.random.default_rng(0)
    image = rng.uniform(0.3, 0.6, size=(32, 32))
    peak = (9, 22)  # (row, col)
    attr = gaussian((32, 32), peak, sigma=2.5)
    fig = plot_overlay(image, attr, alpha=1.0, percentile=100)
    ax = fig.axes[0]
    assert ax.images[-1].get_clim() == (0.0, pytest.approx(1.0))
    dpi = 80
    fig.set_dpi(dpi)
    fig.canvas.draw()
    x, y = ax.transData.transform((peak[1], peak[0]))
    far_x, far_y = ax.transData.transform((2, 30))
    height = fig.canvas.get_width_height()[1]
    x_right = float(ax.get_window_extent().x1)  # the colorbar lies to the right
    path = save_figure(fig, tmp_path / "overlay.png", dpi=dpi)
    with Image.open(path) as im:
        px = np.asarray(im.convert("RGB")).astype(float) / 255
    top = np.array(mpl.colormaps["inferno"](1.0)[:3])
    at_peak = px[int(round(height - y)), int(round(x))]
    np.testing.assert_allclose(at_peak, top, atol=0.03)
    far = px[int(round(height - far_y)), int(round(far_x))]
    assert np.ptp(far) < 0.02 and np.abs(far - top).max() > 0.15  # grey anatomy only
    # inside the image axes (the colorbar also holds the colour), it occurs only at the peak
    near = np.all(np.abs(px - top) < 0.03, axis=-1)
    near[:, int(x_right) :] = False
    rows, cols = np.nonzero(near)
    assert abs(rows.mean() - (height - y)) < 4 and abs(cols.mean() - x) < 4
