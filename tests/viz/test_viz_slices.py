from __future__ import annotations

import warnings

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch
from conftest import FakeScan, gaussian
from PIL import Image

from volsal.errors import FileExistsRefusedError, GeometryWarning, InputShapeError, ParameterError
from volsal.viz import pick_slices, plot_orthogonal, plot_slices, save_figure
from volsal.viz._panel import ORIENTATION_GID

SHAPE = (16, 20, 12)
SPACING = (1.0, 2.0, 3.0)
RAS = np.diag(list(SPACING) + [1.0])
LPS = np.diag([-SPACING[0], -SPACING[1], SPACING[2], 1.0])


def oblique_affine():
    """Voxel axis 0 runs (mostly) toward S, axis 1 toward R, axis 2 toward A; 20 deg tilt."""
    perm = np.array([[0.0, 1.0, 0.0], [0.0, 0.0, 1.0], [1.0, 0.0, 0.0]])
    t = np.deg2rad(20)
    rot = np.array([[np.cos(t), -np.sin(t), 0], [np.sin(t), np.cos(t), 0], [0, 0, 1]])
    a = np.eye(4)
    a[:3, :3] = rot @ perm @ np.diag(SPACING)
    return a


def labels(ax):
    """{side: letter} of the orientation letters drawn on a panel (by their position)."""
    out = {}
    for t in ax.texts:
        if t.get_gid() != ORIENTATION_GID:
            continue
        x, y = t.get_position()
        side = "left" if x < 0.1 else "right" if x > 0.9 else "top" if y > 0.9 else "bottom"
        out[side] = t.get_text()
    return out


def map_image(ax):
    return ax.images[-1]


def displayed_peak(ax):
    arr = np.ma.filled(map_image(ax).get_array(), 0)
    return tuple(int(v) for v in np.unravel_index(np.argmax(arr), arr.shape))


def test_pick_slices_hand_computed():
    attr = gaussian((16, 16, 32), (8, 8, 10), sigma=2.0)
    # slices whose max >= 25% of the peak: |dk| <= 3 -> 7..13, 3 evenly spaced
    assert pick_slices(attr, 2, 3, "peak") == [7, 10, 13]
    assert pick_slices(attr, 2, 1, "peak") == [10]
    assert pick_slices(attr, 2, 9, "peak") == list(range(6, 15))  # thinner than n: widened
    assert pick_slices(attr, 2, 3, "uniform") == [8, 16, 23]
    assert pick_slices(attr, 2, 3, "center") == [14, 15, 16]
    assert pick_slices(attr, 2, 3, [5, 1, 5]) == [1, 5]
    with pytest.raises(ParameterError):
        pick_slices(attr, 2, 3, "random")
    with pytest.raises(ParameterError):
        pick_slices(attr, 2, 3, [40])


@pytest.mark.parametrize(
    "affine, expect_axis, expect_labels, display",
    [
        # RAS: axial = voxel axis 2; radiological flips i (R->L) and j (A at the top)
        (RAS, 2, {"left": "R", "right": "L", "top": "A", "bottom": "P"}, "flip_both"),
        # LPS: i already runs R->L and j A->P: no flips
        (LPS, 2, {"left": "R", "right": "L", "top": "A", "bottom": "P"}, "none"),
    ],
    ids=["RAS", "LPS"],
)
def test_axial_labels_aspect_and_peak_location(affine, expect_axis, expect_labels, display):
    peak = (4, 6, 7)
    attr = gaussian(SHAPE, peak)
    img = torch.rand((1,) + SHAPE)
    fig = plot_slices(FakeScan(img, affine), torch.from_numpy(attr), "axial", n=3)
    axes = [a for a in fig.axes if a.images]
    assert len(axes) == 3
    assert "ijk"[expect_axis] == axes[0].get_title()[0]
    assert [a.get_title().split()[0] for a in axes] == ["k=4", "k=7", "k=10"]  # extent |dk| <= 3
    ax = axes[1]
    assert labels(ax) == expect_labels
    # pixel height / width = spacing of j / spacing of i
    assert ax.get_aspect() == pytest.approx(SPACING[1] / SPACING[0])
    r, c = (
        (SHAPE[1] - 1 - peak[1], SHAPE[0] - 1 - peak[0]) if display == "flip_both" else peak[1::-1]
    )
    assert displayed_peak(ax) == (r, c)
    assert map_image(ax).origin == "upper"


def test_neurological_convention_puts_patient_left_on_the_left():
    attr = gaussian(SHAPE, (4, 6, 7))
    fig = plot_slices(
        FakeScan(np.zeros((1,) + SHAPE), RAS), attr, "axial", n=1, convention="neurological"
    )
    ax = next(a for a in fig.axes if a.images)
    assert labels(ax) == {"left": "L", "right": "R", "top": "A", "bottom": "P"}
    assert displayed_peak(ax) == (SHAPE[1] - 1 - 6, 4)  # i not flipped
    assert "neurological" in fig._suptitle.get_text()


def test_sagittal_on_lps_has_anterior_left_superior_up():
    attr = gaussian(SHAPE, (4, 6, 7))
    fig = plot_slices(FakeScan(np.zeros((1,) + SHAPE), LPS), attr, "sagittal", n=1)
    ax = next(a for a in fig.axes if a.images)
    assert ax.get_title().startswith("i=4")
    assert labels(ax) == {"left": "A", "right": "P", "top": "S", "bottom": "I"}
    assert ax.get_aspect() == pytest.approx(SPACING[2] / SPACING[1])
    assert displayed_peak(ax) == (SHAPE[2] - 1 - 7, 6)  # rows k flipped (S up), cols j as-is


def test_oblique_affine_uses_the_closest_axes_and_says_oblique():
    attr = gaussian(SHAPE, (4, 6, 7))
    fig = plot_slices(FakeScan(np.zeros((1,) + SHAPE), oblique_affine()), attr, "axial", n=1)
    ax = next(a for a in fig.axes if a.images)
    # voxel axis 0 is closest to S-I, so "axial" slices axis 0 through the peak
    assert ax.get_title().startswith("i=4")
    assert labels(ax) == {"left": "R", "right": "L", "top": "A", "bottom": "P"}
    assert "oblique" in fig._suptitle.get_text()
    # rows = axis 2 (A-P, A up: flipped), cols = axis 1 (R-L, runs toward R: flipped)
    assert displayed_peak(ax) == (SHAPE[2] - 1 - 7, SHAPE[1] - 1 - 6)
    assert ax.get_aspect() == pytest.approx(SPACING[2] / SPACING[1])


def test_signed_map_gets_symmetric_limits_and_a_diverging_cmap():
    attr = gaussian(SHAPE, (4, 6, 7)) - 0.5 * gaussian(SHAPE, (12, 14, 3))
    fig = plot_slices(np.zeros(SHAPE), attr, 2, n=2, percentile=100)
    lo, hi = map_image(next(a for a in fig.axes if a.images)).get_clim()
    assert lo == pytest.approx(-hi) and hi == pytest.approx(1.0)
    assert map_image(fig.axes[0]).get_cmap().name == "RdBu_r"
    unsigned = plot_slices(np.zeros(SHAPE), np.abs(attr), 2, n=1, scale=0.5)
    assert map_image(unsigned.axes[0]).get_clim() == (0.0, 0.5)
    assert unsigned.axes[-1].get_ylabel() == "attribution"  # the colorbar's units


def test_no_affine_integer_axis_plain_array_no_labels_no_warning():
    attr = gaussian(SHAPE, (4, 6, 7))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fig = plot_slices(np.zeros(SHAPE), attr, 1, n=1, spacing=SPACING)
    ax = next(a for a in fig.axes if a.images)
    assert labels(ax) == {}
    assert displayed_peak(ax) == (4, 7)  # rows axis 0, cols axis 2, no flips
    assert ax.get_aspect() == pytest.approx(SPACING[0] / SPACING[2])


def test_no_affine_named_axis_assumes_ras_with_a_warning():
    with pytest.warns(GeometryWarning, match="assume"):
        fig = plot_slices(np.zeros(SHAPE), gaussian(SHAPE, (4, 6, 7)), "axial", n=1)
    assert "ASSUMED" in fig._suptitle.get_text()


def test_orthogonal_through_peak_and_given_point():
    peak = (4, 6, 7)
    fig = plot_orthogonal(FakeScan(np.zeros((1,) + SHAPE), LPS), gaussian(SHAPE, peak))
    panels = [a for a in fig.axes if a.images]
    assert [a.get_title().split()[:2] for a in panels] == [
        ["sagittal", "i=4"],
        ["coronal", "j=6"],
        ["axial", "k=7"],
    ]
    assert labels(panels[2]) == {"left": "R", "right": "L", "top": "A", "bottom": "P"}
    assert labels(panels[1]) == {"left": "R", "right": "L", "top": "S", "bottom": "I"}
    fig2 = plot_orthogonal(np.zeros(SHAPE), None, at=(1, 2, 3), affine=RAS)
    assert [a.get_title().split()[1] for a in fig2.axes] == ["i=1", "j=2", "k=3"]
    with pytest.raises(ParameterError):
        plot_orthogonal(np.zeros(SHAPE), None, at=(99, 0, 0), affine=RAS)


def test_bad_inputs():
    with pytest.raises(InputShapeError):
        plot_slices(np.zeros(SHAPE), np.zeros((8, 8, 8)), 2)
    with pytest.raises(InputShapeError):
        plot_slices(np.zeros((8, 8)), np.zeros((8, 8)), 0)
    with pytest.raises(ParameterError):
        plot_slices(np.zeros(SHAPE), np.zeros(SHAPE), "transverse", affine=RAS)
    with pytest.raises(ParameterError):
        plot_slices(FakeScan(np.zeros((1,) + SHAPE), RAS), None, affine=RAS)


def test_accepts_ax_and_fig_and_channel_maps():
    fig = plt.figure()
    axes = fig.subplots(1, 2)
    out = plot_slices(np.zeros((2,) + SHAPE), np.ones((3,) + SHAPE), 0, n=2, ax=list(axes))
    assert out is fig
    fig2 = plt.figure()
    assert plot_orthogonal(np.zeros(SHAPE), None, affine=LPS, fig=fig2) is fig2
    with pytest.raises(ParameterError):
        plot_slices(np.zeros(SHAPE), None, 0, n=3, ax=axes[0])


def test_png_headless_save_closes_and_refuses_overwrite(tmp_path):
    fig = plot_slices(FakeScan(np.random.rand(1, *SHAPE), LPS), gaussian(SHAPE, (4, 6, 7)), n=4)
    path = save_figure(fig, tmp_path / "m.png", dpi=50)
    assert plt.get_fignums() == []
    with Image.open(path) as im:
        assert im.format == "PNG" and im.size[0] > 100
        assert np.asarray(im.convert("L")).std() > 5  # not blank
    fig = plot_slices(np.zeros(SHAPE), None, 0, n=1)
    with pytest.raises(FileExistsRefusedError):
        save_figure(fig, path)
    assert plt.get_fignums() == []
    before = path.read_bytes()
    save_figure(plot_slices(np.zeros(SHAPE), None, 0, n=1), path, overwrite=True, dpi=30)
    assert path.read_bytes() != before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.png"]  # no temp files left
