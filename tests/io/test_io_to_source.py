"""Maps back through the preprocessing: affine resampling, MONAI inverse replay, end to end."""

from __future__ import annotations

import warnings

import nibabel as nib
import numpy as np
import pytest
import torch
from io_geometry_helpers import make_affine

from volsal import io
from volsal.errors import GeometryError, GeometryWarning

mt_ = pytest.importorskip("monai.transforms")  # monai is a core dependency; always present
from monai.transforms import (  # noqa: E402
    CenterSpatialCrop,
    Compose,
    CropForeground,
    DivisiblePad,
    Flip,
    NormalizeIntensity,
    Orientation,
    Resize,
    ScaleIntensity,
    Spacing,
    SpatialPad,
)

OBLIQUE = make_affine("LIA", (1.5, 0.9, 2.2), 0.3, (10.0, -5.0, 3.0))


@pytest.fixture(autouse=True)
def _quiet_monai():
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=FutureWarning)
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        yield


def _scan(shape=(24, 28, 20), affine=OBLIQUE, seed=0):
    rng = np.random.default_rng(seed)
    data = np.zeros((1, *shape), np.float32)
    data[0, 4:19, 5:23, 3:16] = 1.0 + rng.random((15, 18, 13))
    return io.Scan.from_array(data, affine)


# ---------------------------------------------------------------------------- resample_to
def test_resample_to_hand_computed_values():
    m = torch.arange(4.0 * 5 * 6).reshape(4, 5, 6)
    a = np.diag([2.0, 2.0, 2.0, 1.0])
    # identity grid: exact copy
    assert torch.equal(io.resample_to(m, a, (4, 5, 6), a), m)
    # target shifted by +1 voxel along axis 0: value of voxel i + 1, zero past the end
    b = a.copy()
    b[0, 3] = 2.0
    out = io.resample_to(m, a, (4, 5, 6), b)
    assert torch.equal(out[:3], m[1:]) and torch.all(out[3] == 0)
    # half-voxel shift along the last axis: mean of neighbours (linear interpolation)
    c = a.copy()
    c[2, 3] = 1.0
    out = io.resample_to(m, a, (4, 5, 5), c)
    assert torch.allclose(out, 0.5 * (m[..., :-1] + m[..., 1:]))
    # 2x finer target on axis 1: centres at source 0, 0.5, 1, ... (voxel-centre exact)
    d = np.diag([2.0, 1.0, 2.0, 1.0])
    out = io.resample_to(m[None], a, (4, 9, 6), d)
    assert out.shape == (1, 4, 9, 6)
    assert torch.allclose(out[0, :, ::2], m) and torch.allclose(
        out[0, :, 1], 0.5 * (m[:, 0] + m[:, 1])
    )


def test_resample_to_matches_world_positions_oblique():
    """Sampling a linear function of world position is exact under any affine."""
    src = io.Scan.from_array(np.zeros((20, 22, 18), np.float32), OBLIQUE)
    ijk = np.stack(np.meshgrid(*[np.arange(n) for n in src.spatial_shape], indexing="ij"), -1)
    world = src.voxel_to_world(ijk)
    f = torch.from_numpy(world @ np.array([0.3, -0.2, 0.5]) + 1.0)  # float64 map
    tgt = make_affine("RAS", (1.3, 1.3, 1.3), 0.0, tuple(src.voxel_to_world([6, 7, 5])))
    out = io.resample_to(f, OBLIQUE, (6, 6, 6), tgt)
    tw = io.Scan.from_array(np.zeros((6, 6, 6)), tgt)
    tijk = np.stack(np.meshgrid(*[np.arange(6)] * 3, indexing="ij"), -1)
    expected = tw.voxel_to_world(tijk) @ np.array([0.3, -0.2, 0.5]) + 1.0
    inside = np.all(
        (src.world_to_voxel(tw.voxel_to_world(tijk)) >= 0)
        & (src.world_to_voxel(tw.voxel_to_world(tijk)) <= np.array(src.spatial_shape) - 1),
        -1,
    )
    assert inside.sum() > 100
    assert np.allclose(out.numpy()[inside], expected[inside], atol=1e-9)


# ---------------------------------------------------------------------------- to_source
CHAINS = {
    "orient_spacing_crop_resize": lambda: Compose(
        [
            Orientation("RAS"),
            Spacing(pixdim=(2.0, 2.0, 2.0)),
            CropForeground(),
            Resize((16, 16, 16)),
            ScaleIntensity(),
        ]
    ),
    "orient_pad_crop_divisible": lambda: Compose(
        [
            Orientation("RAS"),
            SpatialPad((32, 32, 32)),
            CenterSpatialCrop((30, 30, 30)),
            DivisiblePad(8),
            NormalizeIntensity(),
        ]
    ),
    "spacing_resize": lambda: Compose([Spacing(pixdim=(1.2, 1.7, 2.0)), Resize((20, 16, 18))]),
}


def _grid_world(affine, shape):
    ijk = np.stack(np.meshgrid(*[np.arange(n) for n in shape], indexing="ij"), -1)
    return ijk, ijk @ np.asarray(affine)[:3, :3].T + np.asarray(affine)[:3, 3]


@pytest.mark.parametrize("name", list(CHAINS))
def test_to_source_both_routes_reproduce_a_linear_world_field(name):
    """Oracle: a map that is a linear function of world position on the preprocessed grid must
    come back as the same function of world position on the source grid (linear
    interpolation is exact for it), wherever the source voxel lies inside the preprocessed
    field of view (one voxel of margin for edge effects)."""
    scan = _scan()
    pre = CHAINS[name]()(io.to_metatensor(scan))
    coef = np.array([0.3, -0.2, 0.5])
    pre_affine = pre.affine.numpy()
    _, pre_world = _grid_world(pre_affine, pre.shape[1:])
    m = torch.from_numpy(pre_world @ coef + 7.0).float()[None]
    with warnings.catch_warnings():
        warnings.simplefilter("error", GeometryWarning)  # no fallback needed
        a = io.to_source(m, pre, via="monai")
        b = io.to_source(m, pre, via="affine")
        c = io.to_source(m[0], pre, source=scan)  # leading axes kept; auto = MONAI route
    assert a.shape == b.shape == (1, *scan.spatial_shape) and c.shape == scan.spatial_shape
    assert torch.equal(a[0], c)
    _, src_world = _grid_world(scan.affine, scan.spatial_shape)
    expected = src_world @ coef + 7.0
    in_pre = src_world @ np.linalg.inv(pre_affine)[:3, :3].T + np.linalg.inv(pre_affine)[:3, 3]
    inner = np.all((in_pre >= 1.0) & (in_pre <= np.array(pre.shape[1:]) - 2.0), -1)
    assert inner.sum() > 500
    assert np.allclose(a[0].numpy()[inner], expected[inner], atol=1e-3)  # MONAI #7392: no zeros
    assert np.allclose(b[0].numpy()[inner], expected[inner], atol=1e-3)
    assert np.all(
        b[0].numpy()[~np.all((in_pre >= -1.0) & (in_pre <= np.array(pre.shape[1:])), -1)] == 0
    )


def test_to_source_is_exact_for_reorientation_and_crop_pad():
    scan = _scan()
    pre = CHAINS["orient_pad_crop_divisible"]()(io.to_metatensor(scan))
    # the map is the preprocessed image before intensity scaling: back, it is the scan again
    raw = Compose(
        [
            Orientation("RAS"),
            SpatialPad((32, 32, 32)),
            CenterSpatialCrop((30, 30, 30)),
            DivisiblePad(8),
        ]
    )
    m = torch.as_tensor(raw(io.to_metatensor(scan))).as_subclass(torch.Tensor)
    assert torch.allclose(io.to_source(m, pre), scan.data, atol=1e-6)


def test_to_source_falls_back_when_monai_inverse_zero_fills(monkeypatch):
    """MONAI #7392: a Spacing inverse returning zeros is caught and replaced."""
    import volsal.io.inverse as inv

    scan = _scan()
    pre = CHAINS["spacing_resize"]()(io.to_metatensor(scan))
    m = torch.as_tensor(pre).as_subclass(torch.Tensor).clone()
    good = io.to_source(m, pre, via="affine")

    def zero_fill(mt_map, k):
        from monai.data import MetaTensor

        orig = pre.meta["original_affine"]
        return MetaTensor(torch.zeros(1, *scan.spatial_shape), affine=torch.as_tensor(orig))

    monkeypatch.setattr(inv, "_replay", zero_fill)
    with pytest.warns(GeometryWarning, match="7392"):
        out = io.to_source(m, pre)
    assert torch.equal(out, good)
    with pytest.raises(GeometryError, match="7392"):
        io.to_source(m, pre, via="monai")


def test_to_source_needs_transform_for_instance_dependent_inverse():
    scan = _scan()
    tf = Compose([Flip(0), Resize((12, 14, 10))])
    pre = tf(io.to_metatensor(scan))
    m = torch.as_tensor(pre).as_subclass(torch.Tensor).clone()
    with pytest.raises(GeometryError, match="'Flip'"):
        io.to_source(m, pre, via="monai")
    a = io.to_source(m, pre)  # Flip is affine: exact affine resampling
    b = io.to_source(m, pre, transform=tf)  # MONAI's own inverse with the instance
    assert torch.allclose(a, b, atol=1e-5)


def test_non_invertible_transform_is_named():
    scan = _scan()
    pre = Spacing(pixdim=(2.0, 2.0, 2.0))(io.to_metatensor(scan))
    ops = list(pre.applied_operations)
    ops.append(
        {"class": "Rand3DElastic", "id": 0, "orig_size": tuple(pre.shape[1:]), "extra_info": {}}
    )
    pre.applied_operations = ops
    with pytest.raises(GeometryError, match="Rand3DElastic"):
        io.to_source(torch.rand(pre.shape[1:]), pre)


def test_to_source_errors_and_affine_only_route():
    scan = _scan()
    pre = Resize((12, 14, 10))(io.to_metatensor(scan))
    with pytest.raises(GeometryError, match=r"\(5, 5, 5\).*\(12, 14, 10\)"):
        io.to_source(torch.rand(5, 5, 5), pre)
    with pytest.raises(ValueError, match="map_affine"):
        io.to_source(torch.rand(12, 14, 10))
    # only the two affines known: same result as the recorded route
    m = torch.rand(12, 14, 10, dtype=torch.float64)
    a = io.to_source(m, source=scan, map_affine=pre.affine.numpy())
    b = io.to_source(m, pre)
    assert torch.allclose(a, b, atol=1e-6)


# ---------------------------------------------------------------------------- end to end
def test_lesion_map_lands_on_the_lesion_after_preprocessing(tmp_path):
    """Scan with an oblique anisotropic affine -> MONAI preprocessing -> model + method ->
    to_source -> save_like -> reload: the map's peak is within one source voxel of the lesion."""
    from volsal import Gradient

    affine = make_affine("LIA", (1.4, 0.8, 2.3), 0.4, (20.0, -12.0, 5.0))
    shape = (28, 32, 20)
    ijk = np.stack(np.meshgrid(*[np.arange(n) for n in shape], indexing="ij"), -1)
    src = io.Scan.from_array(np.zeros(shape, np.float32), affine)
    world = src.voxel_to_world(ijk)
    lesion_vox = np.array([9, 21, 12])
    lesion = src.voxel_to_world(lesion_vox)
    body = np.zeros(shape, np.float32)
    body[3:25, 4:29, 2:18] = 0.2  # the "body": CropForeground keeps this box
    blob = np.exp(-np.sum((world - lesion) ** 2, -1) / (2 * 3.0**2))  # 3 mm Gaussian lesion
    data = body + 2.0 * blob.astype(np.float32)
    path = tmp_path / "scan.nii.gz"
    img = nib.Nifti1Image(data, affine)
    img.set_sform(affine, 1)
    img.set_qform(affine, 1)
    nib.save(img, str(path))

    scan = io.load(path)
    tf = Compose(
        [
            Orientation("RAS"),
            Spacing(pixdim=(1.5, 1.5, 1.5)),
            CropForeground(),
            Resize((24, 24, 24)),
            ScaleIntensity(),
        ]
    )
    pre = tf(io.to_metatensor(scan))

    class Energy(torch.nn.Module):  # score = sum x^2: its gradient 2x peaks on the lesion
        def forward(self, x):
            e = (x**2).flatten(1).sum(1, keepdim=True)
            return torch.cat([e, -e], 1)

    x = torch.as_tensor(pre).as_subclass(torch.Tensor)[None].float()
    maps = Gradient(Energy())(x, target=0)  # (1, 1, 24, 24, 24)
    assert maps.shape == x.shape
    on_source = io.to_source(maps[0], pre, source=scan)
    out = io.save_like(on_source, scan, tmp_path / "heat.nii.gz", method="gradient", target=0)

    back = nib.load(str(out))
    heat = np.asarray(back.dataobj)
    peak = np.array(np.unravel_index(np.argmax(heat), heat.shape))
    peak_world = back.affine[:3, :3] @ peak + back.affine[:3, 3]
    # within one source voxel of the lesion, per axis in source voxel units
    assert np.all(np.abs(src.world_to_voxel(peak_world) - lesion_vox) <= 1.0)
    assert np.allclose(back.affine, affine, atol=1e-5)
