"""Targets beyond classifiers: region targets on 3D segmentation networks, binary models."""

from __future__ import annotations

import pytest
import torch
from conftest import make_input
from torch import nn
from torch.overrides import TorchFunctionMode

import volsal
from volsal.errors import TargetError
from volsal.testing import assert_no_side_effects

monai_nets = pytest.importorskip("monai.networks.nets")

SEG = {
    "unet": (
        lambda: monai_nets.UNet(3, 1, 3, channels=(4, 8, 16), strides=(2, 2)),
        "model.1.submodule",
        16,
    ),
    "basicunet": (
        lambda: monai_nets.BasicUNet(3, 1, 3, features=(4, 4, 8, 8, 16, 4)),
        "upcat_3",
        32,
    ),
    "segresnet": (
        lambda: monai_nets.SegResNet(3, init_filters=8, in_channels=1, out_channels=3),
        "down_layers.2",
        16,
    ),
}
METHODS = [volsal.GradCAM, volsal.GradCAMPlusPlus, volsal.HiResCAM, volsal.Gradient]


class _MaxNumel(TorchFunctionMode):
    """Records the largest tensor any torch op produces during a call."""

    def __init__(self):
        super().__init__()
        self.max = 0

    def __torch_function__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in out if isinstance(out, (tuple, list)) else [out]:
            if isinstance(t, torch.Tensor):
                self.max = max(self.max, t.numel())
        return out


def _make(name):
    factory, layer, size = SEG[name]
    torch.manual_seed(0)
    model = factory().eval()
    x = torch.randn(2, 1, size, size, size, generator=torch.Generator().manual_seed(1))
    return model, layer, x


@pytest.mark.parametrize("net", list(SEG))
@pytest.mark.parametrize("cls", METHODS, ids=lambda c: c.__name__)
def test_region_target_on_3d_segmentation(net, cls):
    model, layer, x = _make(net)
    method = cls(model, layer=layer) if cls is not volsal.Gradient else cls(model)
    voxels = x[0, 0].numel()
    with _MaxNumel() as mem:
        maps = assert_no_side_effects(lambda: method(x, volsal.RegionTarget(1)), model, x)
    assert maps.shape[0] == 2 and maps.shape[2:] == x.shape[2:]
    assert torch.isfinite(maps).all() and maps.abs().max() > 0
    # nothing near voxels x voxels (MONAI's implicit argmax builds 16.7M elements at 16^3)
    assert mem.max <= 64 * 2 * voxels, mem.max


def test_region_target_oracles():
    model, layer, x = _make("unet")
    mask = torch.zeros(x.shape[2:], dtype=torch.bool)
    mask[4:10, 5:12, 3:9] = True
    target = volsal.RegionTarget(2, mask)
    # Gradient: plain autograd of the masked sum of class-2 logits
    xr = x.clone().requires_grad_(True)
    (ref,) = torch.autograd.grad((model(xr)[:, 2] * mask).sum(), xr)
    torch.testing.assert_close(volsal.Gradient(model)(x, target), ref)
    # HiResCAM on the layer's grid: grad * act from a full-graph forward
    mod = dict(model.named_modules())[layer]
    store = {}
    h = mod.register_forward_hook(lambda m, i, o: store.setdefault("a", o))
    out = model(x)
    h.remove()
    (g,) = torch.autograd.grad((out[:, 2] * mask).sum(), store["a"])
    ref_cam = (g * store["a"]).sum(1, keepdim=True).detach()
    got = volsal.HiResCAM(model, layer=layer, relu=False, upsample=False)(x, target)
    torch.testing.assert_close(got, ref_cam, rtol=1e-4, atol=1e-6)
    # the mean over the region is the sum divided by its size
    mean = volsal.RegionTarget(2, mask, reduce="mean")
    torch.testing.assert_close(
        volsal.Gradient(model)(x, mean), ref / mask.sum(), rtol=1e-5, atol=1e-8
    )


def test_region_target_multi_and_errors():
    model, layer, x = _make("unet")
    cam = volsal.GradCAM(model, layer=layer)
    multi = cam(x, volsal.MultiTarget([volsal.RegionTarget(0), volsal.RegionTarget(2)]))
    assert multi.shape == (2, 2) + x.shape[2:]
    torch.testing.assert_close(multi[:, 1:], cam(x, volsal.RegionTarget(2)))
    with pytest.raises(TargetError, match="RegionTarget"):
        cam(x, 1)  # a class index does not say which voxels
    with pytest.raises(TargetError, match="output grid"):
        cam(x, volsal.RegionTarget(1, torch.ones(4, 4, 4)))
    with pytest.raises(TargetError, match="batch"):
        cam(x, volsal.RegionTarget(1, torch.ones((3,) + x.shape[2:])))


class OneLogit(nn.Module):
    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(nn.Conv3d(1, 4, 3, padding=1), nn.ReLU())
        self.fc = nn.Linear(4, 1)

    def forward(self, x):
        return self.fc(self.features(x).flatten(2).mean(-1))


def test_binary_single_logit_model():
    torch.manual_seed(0)
    model = OneLogit().double().eval()
    x = make_input(3, dtype=torch.float64)
    cam = volsal.HiResCAM(model, layer="features", relu=False)
    pos = cam(x, 0)
    torch.testing.assert_close(cam(x, volsal.BinaryTarget()), pos)
    torch.testing.assert_close(cam(x, volsal.BinaryTarget(negative=True)), -pos)
    exp = cam.explain(x, None)  # predicted class, explained with the sign that makes it positive
    sign = torch.where(model(x)[:, 0] >= 0, 1.0, -1.0).double()
    torch.testing.assert_close(exp.maps, pos * sign.view(-1, 1, 1, 1, 1))
    assert (exp.scores >= 0).all()
