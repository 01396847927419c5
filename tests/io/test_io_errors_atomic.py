"""Scan helpers, safe writing, bad files, 4D series, MetaTensor metadata, sidecars, feature grids."""

from __future__ import annotations

import gzip
import json
import os
import warnings

import nibabel as nib
import numpy as np
import pytest
import SimpleITK as sitk
import torch
from io_geometry_helpers import GEOMETRIES, random_volume

from volsal import io
from volsal.errors import (
    FileExistsRefusedError,
    GeometryError,
    ImageReadError,
    InputValueError,
    VolsalIOError,
)


# ---------------------------------------------------------------------------- Scan
def test_scan_geometry_helpers():
    a = GEOMETRIES["lia_oblique"]
    scan = io.Scan.from_array(np.zeros((6, 5, 4), np.float32), a, path="x.nii.gz")
    assert scan.spatial_shape == (6, 5, 4) and scan.to_batch().shape == (1, 1, 6, 5, 4)
    assert np.allclose(scan.spacing, (1.5, 0.7, 2.5))
    assert np.allclose(scan.origin, (12.0, -30.0, 18.0))
    assert np.allclose(scan.direction.T @ scan.direction, np.eye(3), atol=1e-12)
    idx = np.array([[1.0, 2.0, 3.0], [5.5, 0.25, 1.0]])
    assert np.allclose(scan.world_to_voxel(scan.voxel_to_world(idx)), idx)
    # hand-computed: voxel (1, 0, 0) is one spacing along the first column
    assert np.allclose(scan.voxel_to_world([1, 0, 0]) - scan.origin, a[:3, 0])
    s2 = io.Scan.from_array(np.zeros((4, 3)), spacing=(2.0, 3.0), origin=(1.0, 1.0))
    assert np.allclose(s2.voxel_to_world([1, 1]), (3.0, 4.0, 0.0))


def test_scan_rejects_singular_affine():
    with pytest.raises(GeometryError):
        io.Scan.from_array(np.zeros((3, 3, 3)), np.zeros((4, 4)))


# ---------------------------------------------------------------------------- atomic writing
def test_atomic_write_refuses_overwrite_and_keeps_suffix(tmp_path):
    dest = tmp_path / "map.nii.gz"
    seen = []

    def write(tmp):
        seen.append(tmp)
        tmp.write_bytes(b"first")

    io.atomic_write(dest, write)
    assert seen[0].parent == tmp_path and seen[0].name.endswith(".nii.gz")
    with pytest.raises(FileExistsRefusedError, match="overwrite=True"):
        io.atomic_write(dest, lambda tmp: tmp.write_bytes(b"second"))
    assert dest.read_bytes() == b"first"
    io.atomic_write(dest, lambda tmp: tmp.write_bytes(b"second"), overwrite=True)
    assert dest.read_bytes() == b"second"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["map.nii.gz"]


def test_failure_mid_write_leaves_no_file(tmp_path):
    dest = tmp_path / "map.nii.gz"

    def broken(tmp):
        tmp.write_bytes(b"half a file")
        raise RuntimeError("disk on fire")

    with pytest.raises(RuntimeError, match="disk on fire"):
        io.atomic_write(dest, broken)
    assert list(tmp_path.iterdir()) == []
    # an existing file survives a failed overwrite untouched
    dest.write_bytes(b"old")
    with pytest.raises(RuntimeError):
        io.atomic_write(dest, broken, overwrite=True)
    assert dest.read_bytes() == b"old" and len(list(tmp_path.iterdir())) == 1


def test_save_like_failure_mid_write_leaves_no_file(tmp_path, monkeypatch):
    ref = io.Scan.from_array(random_volume(), GEOMETRIES["ras_iso"])

    def boom(img, filename):
        with open(filename, "wb") as fh:
            fh.write(b"partial")
        raise OSError("no space left on device")

    monkeypatch.setattr(nib, "save", boom)
    with pytest.raises(OSError, match="no space"):
        io.save_like(torch.rand(12, 14, 10), ref, tmp_path / "heat.nii.gz")
    assert list(tmp_path.iterdir()) == []


def test_save_like_refuses_overwrite_of_map_or_sidecar(tmp_path):
    ref = io.Scan.from_array(random_volume(), GEOMETRIES["ras_iso"])
    m = torch.rand(12, 14, 10)
    io.save_like(m, ref, tmp_path / "heat.nii.gz")
    with pytest.raises(FileExistsRefusedError):
        io.save_like(m, ref, tmp_path / "heat.nii.gz")
    (tmp_path / "other.json").write_text("{}")
    with pytest.raises(FileExistsRefusedError):  # the sidecar would be clobbered
        io.save_like(m, ref, tmp_path / "other.nii.gz")
    assert not (tmp_path / "other.nii.gz").exists()
    io.save_like(2 * m, ref, tmp_path / "heat.nii.gz", overwrite=True)
    assert torch.allclose(io.load(tmp_path / "heat.nii.gz").data[0], 2 * m)


# ---------------------------------------------------------------------------- bad files
def test_missing_and_unknown_extension(tmp_path):
    with pytest.raises(ImageReadError, match="no such file"):
        io.load(tmp_path / "nope.nii.gz")
    (tmp_path / "scan.xyz").write_bytes(b"abc")
    with pytest.raises(ImageReadError, match="unknown image extension"):
        io.load(tmp_path / "scan.xyz")
    with pytest.raises(ImageReadError, match="without a DICOM series"):
        io.load(tmp_path)
    with pytest.raises(VolsalIOError, match="use .mha or .nrrd"):
        io.save_like(
            np.zeros((3, 3, 3)), io.Scan.from_array(np.zeros((3, 3, 3))), tmp_path / "a.mhd"
        )


@pytest.mark.parametrize("reader", ["nibabel", "sitk"])
def test_truncated_nifti_is_a_typed_error(tmp_path, reader):
    path = tmp_path / "scan.nii.gz"
    nib.save(nib.Nifti1Image(random_volume((20, 20, 20)), np.eye(4)), str(path))
    raw = path.read_bytes()
    path.write_bytes(raw[: len(raw) // 2])  # cut the file in half
    with pytest.raises(ImageReadError, match="scan.nii.gz") as err:
        io.load(path, reader=reader)
    assert "truncated" in str(err.value)


def test_corrupt_files_are_typed_errors(tmp_path):
    (tmp_path / "junk.nii").write_bytes(b"\x00" * 10)
    (tmp_path / "junk.mha").write_text("this is not an image\n")
    (tmp_path / "junk.nii.gz").write_bytes(gzip.compress(b"not a nifti header" * 3))
    for name in ("junk.nii", "junk.mha", "junk.nii.gz"):
        with pytest.raises(ImageReadError, match=name):
            io.load(tmp_path / name)


def test_nonfinite_values(tmp_path):
    data = random_volume()
    data[1, 2, 3] = np.nan
    data[4, 5, 6] = np.inf
    path = tmp_path / "nan.nii.gz"
    nib.save(nib.Nifti1Image(data, np.eye(4)), str(path))
    with pytest.raises(ImageReadError, match="2 non-finite.*allow_nonfinite=True"):
        io.load(path)
    with pytest.warns(UserWarning, match="non-finite"):
        scan = io.load(path, allow_nonfinite=True)
    assert torch.isnan(scan.data[0, 1, 2, 3])
    with pytest.raises(InputValueError, match="nan_to_num"):
        io.save_like(scan.data, scan, tmp_path / "out.nii.gz")
    assert not (tmp_path / "out.nii.gz").exists()


@pytest.mark.parametrize("suffix", [".nii.gz", ".nrrd"])
def test_4d_series_needs_an_explicit_choice(tmp_path, suffix):
    series = np.stack([random_volume(seed=i) for i in range(3)])  # (T, x, y, z)
    path = tmp_path / f"series{suffix}"
    if suffix == ".nii.gz":
        nib.save(nib.Nifti1Image(np.moveaxis(series, 0, -1), GEOMETRIES["lps_aniso"]), str(path))
    else:  # SimpleITK 4D image: numpy view (t, z, y, x)
        vols = [sitk.GetImageFromArray(np.transpose(v, (2, 1, 0))) for v in series]
        sitk.WriteImage(sitk.JoinSeries(vols), str(path))  # 4D image
    with pytest.raises(ImageReadError, match="4D series of 3 volumes.*volume=N.*channels=True"):
        io.load(path)
    one = io.load(path, volume=1)
    assert one.data.shape == (1, 12, 14, 10)
    assert np.array_equal(one.data[0].numpy(), series[1])
    allc = io.load(path, channels=True)
    assert np.array_equal(allc.data.numpy(), series)
    with pytest.raises(ImageReadError, match="out of range"):
        io.load(path, volume=3)


# ---------------------------------------------------------------------------- MetaTensor
def test_metatensor_round_trip_keeps_affine_and_meta(tmp_path):
    from monai.data import MetaTensor
    from monai.transforms import Orientation

    a = GEOMETRIES["lia_oblique"]
    scan = io.Scan.from_array(random_volume(), a, path=tmp_path / "s.nii.gz")
    mt = io.to_metatensor(scan)
    assert isinstance(mt, MetaTensor)
    assert np.allclose(mt.affine.numpy(), a) and mt.meta["space"] == "RAS"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ras = Orientation("RAS")(mt)
    ras.meta["patient"] = "p1"
    back = io.from_metatensor(ras)
    assert back.meta["patient"] == "p1"
    assert back.meta["applied_operations"][0]["class"] == "Orientation"
    assert str(back.path) == str(tmp_path / "s.nii.gz")
    # same world position of the same voxel value after reorientation
    v = np.unravel_index(int(torch.argmax(scan.data)), scan.spatial_shape)
    w = np.unravel_index(int(torch.argmax(back.data)), back.spatial_shape)
    assert np.allclose(scan.voxel_to_world(v), back.voxel_to_world(w), atol=1e-6)
    # an LPS MetaTensor (e.g. MONAI ITKReader with affine_lps_to_ras=False) converts to RAS
    lps = MetaTensor(torch.zeros(1, 4, 4, 4), affine=torch.eye(4), meta={"space": "LPS"})
    assert np.allclose(io.from_metatensor(lps).affine, np.diag([-1.0, -1.0, 1.0, 1.0]))
    # save_like accepts a MetaTensor as reference and uses its affine
    out = io.save_like(torch.rand(back.spatial_shape), ras, tmp_path / "h.nii.gz", sidecar=False)
    assert np.allclose(io.load(out).affine, back.affine, atol=1e-5)


# ---------------------------------------------------------------------------- sidecar, header
def test_header_window_descrip_and_sidecar(tmp_path):
    ref = io.Scan.from_array(random_volume(), GEOMETRIES["lps_aniso"], path="scan.nii.gz")
    m = torch.zeros(12, 14, 10)
    m[2:6, 3:8, 1:4] = torch.linspace(0.1, 5.0, 60).reshape(4, 5, 3)
    out = io.save_like(
        m,
        ref,
        tmp_path / "heat.nii.gz",
        method="gradcam",
        layer="features.3.conv",
        target=1,
        scores=[2.5],
        options={"relu": True},
    )
    hdr = nib.load(str(out)).header
    assert float(hdr["cal_min"]) == 0.0
    assert float(hdr["cal_max"]) == pytest.approx(np.percentile(m.numpy(), 99.9), rel=1e-5)
    assert hdr["descrip"].item() == b"volsal gradcam layer=features.3.conv target=1"
    side = json.loads((tmp_path / "heat.json").read_text())
    assert side["method"] == "gradcam" and side["layer"] == "features.3.conv"
    assert side["target"] == 1 and side["scores"] == [2.5] and side["options"] == {"relu": True}
    assert side["reference"] == "scan.nii.gz" and side["grid"] == "reference"
    assert {"volsal", "torch", "nibabel"} <= set(side["versions"])
    # signed maps get a symmetric window; descrip is cut to 80 bytes
    out = io.save_like(m - 2.0, ref, tmp_path / "s.nii", method="x" * 200, sidecar=False)
    hdr = nib.load(str(out)).header
    assert float(hdr["cal_min"]) == -float(hdr["cal_max"]) < 0
    assert len(hdr["descrip"].item()) == 80


def test_save_like_takes_an_explanation(tmp_path):
    from volsal import Explanation

    ref = io.Scan.from_array(random_volume(), GEOMETRIES["ras_iso"])
    exp = Explanation(
        maps=torch.rand(1, 1, 12, 14, 10),
        scores=torch.tensor([1.5]),
        classes=torch.tensor([0]),
        target="class 0",
        method="gradient",
        options={"abs": False},
    )
    io.save_like(exp.maps, ref, tmp_path / "e.nii.gz", explanation=exp)
    side = json.loads((tmp_path / "e.json").read_text())
    assert side["method"] == "gradient" and side["scores"] == [1.5] and side["classes"] == [0]


def test_shape_mismatch_is_a_geometry_error(tmp_path):
    ref = io.Scan.from_array(random_volume(), GEOMETRIES["ras_iso"])
    with pytest.raises(GeometryError, match=r"\(6, 7, 5\).*\(12, 14, 10\).*to_source"):
        io.save_like(torch.rand(6, 7, 5), ref, tmp_path / "h.nii.gz")
    assert not os.listdir(tmp_path)


# ---------------------------------------------------------------------------- feature grid
def test_feature_grid_affine_puts_cells_at_receptive_field_centres(tmp_path):
    a = GEOMETRIES["lia_oblique"]
    ref = io.Scan.from_array(np.zeros((16, 16, 8), np.float32), a)
    fmap = torch.rand(4, 4, 2)
    out = io.save_feature_map(fmap, ref, tmp_path / "f.nii.gz", method="gradcam")
    back = io.load(out)
    assert torch.equal(back.data[0], fmap)
    # cell (i, j, k) of a stride-4 grid is centred on input voxel 4 * i + 1.5 (P1/P17)
    for cell in [(0, 0, 0), (3, 2, 1)]:
        centre = 4 * np.asarray(cell) + 1.5
        assert np.allclose(back.voxel_to_world(cell), ref.voxel_to_world(centre), atol=1e-4)
    assert json.loads((tmp_path / "f.json").read_text())["grid"] == "feature"
    # an explicit feature -> input voxel matrix (unpadded convs: 2 c + 3.5)
    mat = np.diag([2.0, 2.0, 2.0, 1.0])
    mat[:3, 3] = 3.5
    out = io.save_feature_map(torch.rand(5, 5, 1), ref, tmp_path / "g.nii.gz", matrix=mat)
    assert np.allclose(io.load(out).affine, ref.affine @ mat, atol=1e-4)
    with pytest.raises(GeometryError, match=r"\(5, 5, 3\).*\(16, 16, 8\)"):
        io.save_feature_map(torch.rand(5, 5, 3), ref, tmp_path / "h.nii.gz")
    with pytest.raises(GeometryError, match="matches neither"):
        io.save_feature_map(torch.rand(9, 4, 2), ref, tmp_path / "h.nii.gz", stride=4)
