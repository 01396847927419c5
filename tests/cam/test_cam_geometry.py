"""Receptive-field placement of layer-grid maps (volsal.receptive), against an independent
oracle: the centroid of |d feature / d input| on a twin net with constant positive weights."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import make_input
from torch import nn

import volsal
from volsal.errors import GeometryWarning
from volsal.receptive import GridMapping, to_input_grid, trace_mappings
from volsal.testing import tiny_cnn

CONV = {2: nn.Conv2d, 3: nn.Conv3d}
MAXP = {2: nn.MaxPool2d, 3: nn.MaxPool3d}
AVGP = {2: nn.AvgPool2d, 3: nn.AvgPool3d}


def pooled(k, pool):  # conv3 p1 -> pool2 -> conv3 p1 -> pool2: a half-pixel pyramid
    return [CONV[k](1, 2, 3, padding=1), pool[k](2), CONV[k](2, 2, 3, padding=1), pool[k](2)]


def strided(k, pool):  # two k3 s2 p1 convs: centres at 4 f, half-pixel says 4 f + 1.5
    del pool
    return [CONV[k](1, 2, 3, stride=2, padding=1), nn.ReLU(), CONV[k](2, 2, 3, 2, padding=1)]


def valid(k, pool):  # conv3 -> pool2 -> conv3, unpadded (USER_NEEDS P1): centres 2 f + 3.5
    return [CONV[k](1, 2, 3), pool[k](2), CONV[k](2, 2, 3)]


NETS = {"pooled": pooled, "strided": strided, "valid": valid}
SIZE = {2: 32, 3: 16}


def _net(make, k, pool):
    torch.manual_seed(0)
    return nn.Sequential(*make(k, pool)).double().eval()


def true_centre(make, k, size, f):
    """Centroid of |d feature[f] / d input| on the twin net with constant weights 1, no bias
    and average pooling (max pooling's gradient picks one voxel of each window)."""
    net = _net(make, k, AVGP)
    with torch.no_grad():
        for p in net.parameters():
            p.fill_(1.0 if p.ndim > 1 else 0.0)
    x = torch.ones((1, 1) + (size,) * k, dtype=torch.float64, requires_grad=True)
    out = net(x)
    (g,) = torch.autograd.grad(out[(0, 0) + tuple(f)], x)
    w = g[0, 0].abs()
    grids = torch.meshgrid(*(torch.arange(n, dtype=torch.float64) for n in w.shape), indexing="ij")
    return tuple(float((w * c).sum() / w.sum()) for c in grids), out.shape[2:]


@pytest.mark.parametrize("net", list(NETS))
def test_one_hot_feature_voxel_lands_on_its_receptive_field_centre(net, spatial_dims):
    k, size, make = spatial_dims, SIZE[spatial_dims], NETS[net]
    model = _net(make, k, MAXP)  # the traced model uses max pooling, as real nets do
    x = torch.zeros((1, 1) + (size,) * k, dtype=torch.float64)
    mapping = trace_mappings(model, x, [str(len(model) - 1)])[str(len(model) - 1)]
    assert mapping is not None and mapping.exact
    for f in [(1,) * k, (2, 1, 2)[:k]]:  # interior feature voxels (no zero padding in reach)
        centre, feat = true_centre(make, k, size, f)
        np.testing.assert_allclose(mapping.to_input(f), centre, atol=1e-9)
        onehot = torch.zeros((1, 1) + tuple(feat), dtype=torch.float64)
        onehot[(0, 0) + f] = 1.0
        up = to_input_grid(onehot, mapping, x.shape[2:])
        peak = np.unravel_index(int(up.argmax()), up.shape[2:])
        assert np.all(np.abs(np.array(peak) - np.array(centre)) <= 0.5), (peak, centre)
        # the upsampled cell is a tent symmetric about its centre: same centroid
        w = up[0, 0]
        grids = torch.meshgrid(*(torch.arange(n, dtype=w.dtype) for n in w.shape), indexing="ij")
        np.testing.assert_allclose([float((w * c).sum() / w.sum()) for c in grids], centre)


def test_placement_errors_of_half_pixel_resizing():
    """The numbers docs/methods.md quotes: max |error| of half-pixel resizing (voxels)."""
    k, size = 2, 32
    errs = {}
    for net, make in NETS.items():
        model = _net(make, k, MAXP)
        x = torch.zeros(1, 1, size, size, dtype=torch.float64)
        m = trace_mappings(model, x, [str(len(model) - 1)])[str(len(model) - 1)]
        feat = model(x).shape[2]
        f = torch.arange(feat, dtype=torch.float64)
        half = (f + 0.5) * size / feat - 0.5
        errs[net] = float((half - (m.scale[0] * f + m.offset[0])).abs().max())
    assert errs["pooled"] == pytest.approx(0.0)
    assert errs["strided"] == pytest.approx(1.5)
    assert errs["valid"] == pytest.approx(2.7692, abs=1e-3)  # 32 -> 13 voxels


def test_matches_half_pixel_on_pooling_pyramid():
    model = tiny_cnn(3, dtype=torch.float64)
    x = make_input(3, dtype=torch.float64)
    m = trace_mappings(model, x, ["features"])["features"]
    assert m == GridMapping((2.0,) * 3, (0.5,) * 3, True)
    fmap = torch.randn(2, 3, 4, 4, 4, dtype=torch.float64)
    ref = F.interpolate(fmap, size=(8, 8, 8), mode="trilinear", align_corners=False)
    torch.testing.assert_close(to_input_grid(fmap, m, (8, 8, 8)), ref)


class StridedNet(nn.Module):
    def __init__(self, k):
        super().__init__()
        self.features = nn.Sequential(*strided(k, None), nn.ReLU())
        self.fc = nn.Linear(2, 3)

    def forward(self, x):
        return self.fc(self.features(x).flatten(2).mean(-1))


def test_gradcam_default_differs_from_half_pixel_where_geometry_differs(spatial_dims):
    torch.manual_seed(0)
    model = StridedNet(spatial_dims).double().eval()
    x = make_input(spatial_dims, size=16, dtype=torch.float64)
    exp = volsal.GradCAM(model, layer="features", relu=False).explain(x, 1)
    mapping = exp.extras["grid_mapping"]
    assert mapping.scale == (4.0,) * spatial_dims and mapping.offset == (0.0,) * spatial_dims
    fmap = exp.extras["feature_map"]
    torch.testing.assert_close(exp.maps, to_input_grid(fmap, mapping, x.shape[2:]))
    half = volsal.GradCAM(model, layer="features", relu=False, placement="half_pixel")(x, 1)
    torch.testing.assert_close(half, F.interpolate(fmap, size=x.shape[2:], mode=_mode(x)))
    assert (half - exp.maps).abs().max() > 1e-3
    # voxel (0, ...) is the centre of feature cell 0: the default samples it exactly
    torch.testing.assert_close(
        exp.maps[(..., *([0] * spatial_dims))], fmap[(..., *([0] * spatial_dims))]
    )


def _mode(x):
    return "bilinear" if x.ndim == 4 else "trilinear"


def test_feature_grid_map_with_mapping_for_export():
    torch.manual_seed(0)
    model = StridedNet(3).double().eval()
    x = make_input(3, size=16, dtype=torch.float64)
    exp = volsal.HiResCAM(model, layer="features", upsample=False).explain(x, 0)
    assert exp.maps.shape == (2, 1, 4, 4, 4)
    m = exp.extras["grid_mapping"].matrix()
    np.testing.assert_allclose(m, np.diag([4.0, 4.0, 4.0, 1.0]))
    assert m.shape == (4, 4)


class Cropping(nn.Module):
    """A functional crop between the convs: the grid shift is not traceable -> fallback."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 2, 3, padding=1)
        self.head = nn.Conv2d(2, 2, 3, padding=1, stride=2)
        self.fc = nn.Linear(2, 2)

    def forward(self, x):
        return self.fc(self.head(self.conv(x)[:, :, 1:-1, 1:-1]).flatten(2).mean(-1))


class Misaligned(nn.Module):
    """Residual branches on different grids (k3 s2 p1 conv: offset 0; avg pool 2: offset 0.5)."""

    def __init__(self):
        super().__init__()
        self.a = nn.Conv2d(1, 2, 3, stride=2, padding=1)
        self.b = nn.AvgPool2d(2)
        self.merge = nn.ReLU()
        self.fc = nn.Linear(2, 2)

    def forward(self, x):
        return self.fc(self.merge(self.a(x) + self.b(x)).flatten(2).mean(-1))


@pytest.mark.parametrize("cls, layer", [(Cropping, "head"), (Misaligned, "merge")])
def test_untraceable_grid_falls_back_with_warning(cls, layer):
    torch.manual_seed(0)
    model = cls().eval()
    x = make_input(2, size=10)
    assert trace_mappings(model, x, [layer])[layer] is None
    with pytest.warns(GeometryWarning, match="half-pixel"):
        got = volsal.GradCAM(model, layer=layer, relu=False)(x, 0)
    ref = volsal.GradCAM(model, layer=layer, relu=False, placement="half_pixel")(x, 0)
    torch.testing.assert_close(got, ref)


def test_trace_handles_functional_ops_and_transposed_convs():
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.down = nn.Conv3d(1, 2, 3, stride=2, padding=1)
            self.up = nn.ConvTranspose3d(2, 2, 3, stride=2, padding=1, output_padding=1)

        def forward(self, x):
            h = F.max_pool3d(F.relu(self.down(x)), 2)  # functional pooling is traced too
            h = F.interpolate(h, scale_factor=2, mode="trilinear")
            return self.up(h) + F.pad(x, (0, 0, 0, 0, 0, 0))

    x = torch.zeros(1, 1, 8, 8, 8)
    m = trace_mappings(Net(), x, ["up"])["up"]
    # down: 2f; pool: 2(2f + 0.5) = 4f + 1; upsample x2: 4((f + 0.5)/2 - 0.5) + 1 = 2f;
    # transposed conv k3 s2 p1: f/2 -> 2 * f/2 = f: back on the input grid
    assert m == GridMapping((1.0,) * 3, (0.0,) * 3, True)


def test_grid_mapping_traced_once_per_shape_and_reused(monkeypatch, spatial_dims):
    """The mapping is cached per input shape: same maps as a fresh trace, one trace per shape."""
    import volsal.methods.cam as cam_module

    calls = []
    real = cam_module.trace_grid

    def counting(*args, **kwargs):
        calls.append(tuple(args[1].shape))
        return real(*args, **kwargs)

    monkeypatch.setattr(cam_module, "trace_grid", counting)
    model = tiny_cnn(spatial_dims, dtype=torch.float64)
    method = volsal.GradCAM(model, layer="features.conv2")
    x = make_input(spatial_dims, dtype=torch.float64)
    first = method.explain(x, 1)
    second = method.explain(x + 0.5, 1)
    assert len(calls) == 1
    fresh = volsal.GradCAM(model, layer="features.conv2").explain(x + 0.5, 1)
    torch.testing.assert_close(second.maps, fresh.maps, rtol=0, atol=0)
    assert second.extras["grid_mapping"] == first.extras["grid_mapping"]
    bigger = torch.cat([x, x], -1)  # another shape: traced again
    method(bigger, 1)
    assert len(calls) == 3  # the fresh instance traced once too
