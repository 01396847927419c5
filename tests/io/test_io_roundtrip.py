"""Round trips through nibabel and SimpleITK: one axis convention, same world positions."""

from __future__ import annotations

import json

import nibabel as nib
import numpy as np
import pytest
import SimpleITK as sitk
import torch
from io_geometry_helpers import GEOMETRIES, make_affine, random_volume, sitk_index_to_ras

from volsal import io

PROBES = [(0, 0, 0), (11, 13, 9), (3, 7, 2), (5, 1, 8)]


def _write_nifti(path, data, affine):
    img = nib.Nifti1Image(data, affine)
    img.set_sform(affine, code=1)
    img.set_qform(affine, code=1)
    nib.save(img, str(path))


@pytest.mark.parametrize("name", list(GEOMETRIES))
def test_nifti_same_tensor_and_affine_with_both_readers(tmp_path, name):
    affine = GEOMETRIES[name]
    data = random_volume()
    path = tmp_path / "scan.nii.gz"
    _write_nifti(path, data, affine)
    a = io.load(path)
    b = io.load(path, reader="sitk")
    assert a.data.shape == b.data.shape == (1, 12, 14, 10)
    assert torch.equal(a.data, b.data)
    assert np.allclose(a.affine, affine, atol=1e-5)
    assert np.allclose(b.affine, affine, atol=1e-4)
    assert np.allclose(a.spacing, np.linalg.norm(affine[:3, :3], axis=0), atol=1e-5)
    # a voxel at world point p is at the same tensor index whichever reader loaded it
    raw = sitk.ReadImage(str(path))
    for idx in PROBES:
        p = a.voxel_to_world(idx)
        assert np.allclose(p, sitk_index_to_ras(raw, idx), atol=1e-3)
        assert np.allclose(b.world_to_voxel(p), idx, atol=1e-4)
        assert float(b.data[(0, *idx)]) == float(data[idx])


@pytest.mark.parametrize("name", list(GEOMETRIES))
@pytest.mark.parametrize("suffix", [".nrrd", ".mha"])
def test_sitk_formats_load_in_nibabel_axis_order(tmp_path, name, suffix):
    """A SimpleITK-written file, whose numpy view is (z, y, x) and LPS, loads as (x, y, z) RAS."""
    affine = GEOMETRIES[name]
    data = random_volume()  # (x, y, z)
    img = sitk.GetImageFromArray(np.transpose(data, (2, 1, 0)))
    lps = np.diag([-1.0, -1.0, 1.0, 1.0]) @ affine
    sp = np.linalg.norm(lps[:3, :3], axis=0)
    img.SetSpacing(sp.tolist())
    img.SetOrigin(lps[:3, 3].tolist())
    img.SetDirection((lps[:3, :3] / sp).ravel().tolist())
    path = tmp_path / f"scan{suffix}"
    sitk.WriteImage(img, str(path))
    scan = io.load(path)
    assert scan.data.shape == (1, 12, 14, 10)
    assert np.array_equal(scan.data[0].numpy(), data)
    assert np.allclose(scan.affine, affine, atol=1e-6)
    for idx in PROBES:
        assert np.allclose(scan.voxel_to_world(idx), sitk_index_to_ras(img, idx), atol=1e-6)


@pytest.mark.parametrize("name", list(GEOMETRIES))
def test_save_like_nifti_reads_back_identically(tmp_path, name):
    affine = GEOMETRIES[name]
    ref = io.Scan.from_array(random_volume(seed=1), affine)
    heat = torch.from_numpy(random_volume(seed=2))
    out = io.save_like(heat, ref, tmp_path / "heat.nii.gz", method="gradcam", target=1)
    back = io.load(out)
    assert torch.equal(back.data[0], heat)
    assert np.allclose(back.affine, affine, atol=1e-5)
    img = nib.load(str(out))
    assert img.get_data_dtype() == np.float32
    assert int(img.header["sform_code"]) == 1 and int(img.header["qform_code"]) == 1
    assert np.allclose(img.get_qform(), affine, atol=1e-4)  # rotations: qform is exact too
    # read back with SimpleITK: every voxel at the same physical position (LPS taken into account)
    raw = sitk.ReadImage(str(out))
    arr = sitk.GetArrayFromImage(raw)
    assert np.array_equal(np.transpose(arr, (2, 1, 0)), heat.numpy())
    for idx in PROBES:
        assert np.allclose(sitk_index_to_ras(raw, idx), ref.voxel_to_world(idx), atol=1e-3)


@pytest.mark.parametrize("suffix", [".nrrd", ".mha"])
@pytest.mark.parametrize("name", ["lps_aniso", "lia_oblique"])
def test_save_like_sitk_formats_round_trip(tmp_path, suffix, name):
    affine = GEOMETRIES[name]
    ref = io.Scan.from_array(random_volume(seed=1), affine)
    heat = torch.from_numpy(random_volume(seed=3))
    out = io.save_like(heat, ref, tmp_path / f"heat{suffix}", method="gradient")
    back = io.load(out)
    assert torch.equal(back.data[0], heat)
    assert np.allclose(back.affine, affine, atol=1e-6)
    raw = sitk.ReadImage(str(out))
    assert raw.GetPixelID() == sitk.sitkFloat32
    for idx in PROBES:
        assert np.allclose(sitk_index_to_ras(raw, idx), ref.voxel_to_world(idx), atol=1e-6)
    assert json.loads((tmp_path / "heat.json").read_text())["method"] == "gradient"


def test_multichannel_and_2d_round_trip(tmp_path):
    affine = GEOMETRIES["lia_oblique"]
    ref = io.Scan.from_array(random_volume(), affine)
    maps = torch.randn(3, 12, 14, 10)
    out = io.save_like(maps[None], ref, tmp_path / "m.nii.gz", sidecar=False)
    assert nib.load(str(out)).shape == (12, 14, 10, 3)
    back = io.load(out, channels=True)
    assert torch.equal(back.data, maps)
    out = io.save_like(maps, ref, tmp_path / "m.mha", sidecar=False)  # vector image
    assert torch.equal(io.load(out).data, maps)
    # 2D: a slice with an in-plane affine
    a2 = make_affine("LPS", (0.5, 0.75, 1.0), 0.0, (3.0, 4.0, 0.0))
    ref2 = io.Scan.from_array(np.zeros((9, 7), np.float32), a2)
    m2 = torch.randn(9, 7)
    for suffix in (".nii.gz", ".mha"):
        back = io.load(io.save_like(m2, ref2, tmp_path / f"s{suffix}", sidecar=False))
        assert back.spatial_shape == (9, 7)
        assert torch.equal(back.data[0], m2)
        assert np.allclose(back.voxel_to_world([[2, 5]]), ref2.voxel_to_world([[2, 5]]), atol=1e-6)


def test_nifti_reference_codes_are_copied(tmp_path):
    affine = GEOMETRIES["lps_aniso"]
    img = nib.Nifti1Image(random_volume(), affine)
    img.set_sform(affine, code=2)  # aligned
    img.set_qform(affine, code=0)
    nib.save(img, str(tmp_path / "ref.nii.gz"))
    out = io.save_like(torch.rand(12, 14, 10), tmp_path / "ref.nii.gz", tmp_path / "h.nii")
    hdr = nib.load(str(out)).header
    assert (int(hdr["sform_code"]), int(hdr["qform_code"])) == (2, 0)


def test_dicom_series_folder(tmp_path):
    """A DICOM series written slice by slice loads with the same geometry as its source."""
    affine = make_affine("LPS", (0.8, 0.6, 2.0), 0.0, (-50.0, 30.0, 10.0))  # axial slices
    data = (np.random.default_rng(0).random((10, 12, 6)) * 1000).astype(np.int16)
    vol = sitk.GetImageFromArray(np.transpose(data, (2, 1, 0)))
    lps = np.diag([-1.0, -1.0, 1.0, 1.0]) @ affine
    vol.SetSpacing([0.8, 0.6, 2.0])
    vol.SetOrigin(lps[:3, 3].tolist())
    vol.SetDirection((lps[:3, :3] / [0.8, 0.6, 2.0]).ravel().tolist())
    folder = tmp_path / "dicom"
    folder.mkdir()
    writer = sitk.ImageFileWriter()
    writer.KeepOriginalImageUIDOn()
    uid = "1.2.826.0.1.3680043.2.1125.1"
    for z in range(data.shape[2]):
        sl = vol[:, :, z]
        for tag, val in (
            ("0020|000e", uid),  # series instance UID
            ("0020|000d", uid + ".0"),
            ("0008|0060", "CT"),
            ("0020|0013", str(z + 1)),
            (
                "0020|0032",
                "\\".join(f"{v:.6f}" for v in vol.TransformIndexToPhysicalPoint((0, 0, z))),
            ),
            (
                "0020|0037",
                "\\".join(
                    f"{v:.6f}"
                    for v in list(vol.GetDirection()[0:7:3]) + list(vol.GetDirection()[1:8:3])
                ),
            ),
            ("0028|0030", "0.6\\0.8"),
            ("0018|0050", "2.0"),
        ):
            sl.SetMetaData(tag, val)
        writer.SetFileName(str(folder / f"s{z:03d}.dcm"))
        writer.Execute(sl)
    scan = io.load(folder)
    assert scan.spatial_shape == (10, 12, 6)
    assert np.array_equal(scan.data[0].numpy(), data.astype(np.float32))
    assert np.allclose(scan.affine, affine, atol=1e-3)
