"""`volsal demo` end to end: files on the scan's grid, maps on the lesion, PNGs with content,
nothing overwritten without --overwrite."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest
from matplotlib import image as mpimg

from volsal import demo
from volsal.cli import main


@pytest.fixture(scope="module")
def demo_out(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo") / "out"
    assert main(["demo", "--out", str(out), "--method", "gradcam", "--method", "gradient"]) == 0
    return out


def test_demo_writes_maps_on_the_scan_grid(demo_out):
    _, affine, _ = demo.load_demo_case("example_lesion")
    source = nib.load(demo.case_path("example_lesion"))
    for name in ("input", "gradcam", "gradient"):
        img = nib.load(demo_out / f"{name}.nii.gz")
        assert img.shape == source.shape[:3]
        np.testing.assert_allclose(img.affine, np.asarray(affine, dtype=float), atol=1e-5)
        np.testing.assert_allclose(img.affine, source.affine, atol=1e-5)
        assert np.isfinite(np.asarray(img.dataobj)).all()
    assert (demo_out / "gradcam.json").is_file()


def test_demo_gradcam_lands_on_the_lesion(demo_out):
    heat = np.asarray(nib.load(demo_out / "gradcam.nii.gz").dataobj)
    mask = np.asarray(nib.load(demo.case_path("example_lesion", mask=True)).dataobj) > 0
    peak = np.unravel_index(np.argmax(heat), heat.shape)
    lesion = np.argwhere(mask)
    # peak within 4 voxels of the lesion (a 4^3-voxel Grad-CAM cell of the 64^3 input)
    assert np.min(np.linalg.norm(lesion - np.asarray(peak), axis=1)) <= 4.0
    # most of the positive attribution is near the lesion: far more than its volume share
    share = heat[mask].sum() / heat.sum()
    assert share > 5 * mask.mean()


def test_demo_pngs_have_content(demo_out):
    for name in ("gradcam_axial", "gradcam_orthogonal", "gradient_axial"):
        img = mpimg.imread(demo_out / f"{name}.png")
        assert img.ndim == 3 and img.shape[0] > 200 and img.shape[1] > 200
        rgb = img[..., :3]
        assert rgb.std() > 0.05  # not blank
        # coloured map pixels exist (anatomy alone is grey: r == g == b)
        assert (np.ptp(rgb, axis=-1) > 0.2).mean() > 0.001


def test_demo_refuses_to_overwrite_before_any_work(demo_out, capsys):
    before = {p.name: p.read_bytes() for p in demo_out.iterdir()}
    assert main(["demo", "--out", str(demo_out), "--method", "gradcam"]) == 2  # usage error
    assert "overwrite" in capsys.readouterr().err.lower()
    assert {p.name: p.read_bytes() for p in demo_out.iterdir()} == before
