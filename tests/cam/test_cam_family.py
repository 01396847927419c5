"""Oracles for the CAM family: Grad-CAM++ (Eq. 19 written out per voxel), HiResCAM, MultiTarget."""

from __future__ import annotations

import itertools

import pytest
import torch
from conftest import make_input
from torch import nn

import volsal
from volsal.errors import TargetError
from volsal.testing import assert_no_side_effects, tiny_cnn


def _acts_and_grads(model, x, layer, cls):
    """Independent reference: full-graph forward with a plain hook, torch.autograd.grad."""
    store = {}
    h = layer.register_forward_hook(lambda m, i, o: store.setdefault("a", o))
    try:
        out = model(x)
    finally:
        h.remove()
    (grads,) = torch.autograd.grad(out[:, cls].sum(), store["a"])
    return store["a"].detach(), grads


def _gradcampp_loop(acts, grads):
    """Eq. 19 of Chattopadhyay et al. 2018 (exponential score), one voxel at a time."""
    b, k = acts.shape[:2]
    feat = acts.shape[2:]
    cam = torch.zeros((b, 1) + tuple(feat), dtype=acts.dtype)
    for i in range(b):
        for c in range(k):
            total = float(acts[i, c].sum())  # sum_ab A_ab^k
            w = 0.0
            for idx in itertools.product(*(range(n) for n in feat)):
                g = float(grads[(i, c) + idx])
                num = g**2
                den = 2 * g**2 + total * g**3
                alpha = num / den if den != 0 else 0.0
                w += alpha * max(g, 0.0)
            cam[i, 0] += w * acts[i, c]
    return cam


@pytest.mark.parametrize("relu", [True, False])
def test_gradcampp_equals_eq19_loop(spatial_dims, relu):
    model = tiny_cnn(spatial_dims, dtype=torch.float64)
    x = make_input(spatial_dims, dtype=torch.float64, size=6)
    acts, grads = _acts_and_grads(model, x, model.features, 2)
    ref = _gradcampp_loop(acts, grads)
    if relu:
        ref = ref.clamp_min(0)
    got = volsal.GradCAMPlusPlus(model, layer="features", relu=relu, upsample=False)(x, 2)
    torch.testing.assert_close(got, ref)
    assert got.abs().max() > 0


def test_gradcampp_zero_denominator_gives_zero_alpha():
    acts = torch.tensor([[[[1.0, -1.0]]]], dtype=torch.float64)  # sum A = 0
    grads = torch.tensor([[[[0.0, 2.0]]]], dtype=torch.float64)
    w = volsal.GradCAMPlusPlus(nn.Identity()).channel_weights(acts, grads)
    # voxel 0: g = 0 -> alpha 0; voxel 1: alpha = 4 / (8 + 0) = 0.5, times ReLU(2) = 1
    torch.testing.assert_close(w, torch.tensor([[1.0]], dtype=torch.float64))


def test_hirescam_equals_grad_times_act_summed(spatial_dims):
    model = tiny_cnn(spatial_dims, dtype=torch.float64)
    x = make_input(spatial_dims, dtype=torch.float64)
    acts, grads = _acts_and_grads(model, x, model.features.conv2, 1)
    ref = (grads * acts).sum(1, keepdim=True)
    got = volsal.HiResCAM(model, layer="features.conv2", relu=False, upsample=False)(x, 1)
    torch.testing.assert_close(got, ref)
    got_relu = volsal.HiResCAM(model, layer="features.conv2", upsample=False)(x, 1)
    torch.testing.assert_close(got_relu, ref.clamp_min(0))


class GapNet(nn.Module):
    """conv -> ReLU -> global average pool -> linear (a CAM-style head)."""

    def __init__(self, k: int):
        super().__init__()
        conv = {2: nn.Conv2d, 3: nn.Conv3d}[k]
        self.body = nn.Sequential(conv(1, 5, 3, padding=1), nn.ReLU())
        self.fc = nn.Linear(5, 3)

    def forward(self, x):
        return self.fc(self.body(x).flatten(2).mean(-1))


def test_hirescam_is_faithful_on_cam_head(spatial_dims):
    """On conv -> GAP -> linear, HiResCAM summed over voxels is the logit minus the bias, and
    each voxel's value is its exact contribution (Draelos and Carin 2020, Sec. 3)."""
    torch.manual_seed(0)
    model = GapNet(spatial_dims).double().eval()
    x = make_input(spatial_dims, dtype=torch.float64)
    cls = 2
    acts = model.body(x)
    n = acts[0, 0].numel()
    contrib = torch.einsum("k,bk...->b...", model.fc.weight[cls], acts)[:, None] / n
    got = volsal.HiResCAM(model, layer="body", relu=False)(x, cls)
    torch.testing.assert_close(got, contrib)
    logits = model(x)[:, cls] - model.fc.bias[cls]
    torch.testing.assert_close(got.flatten(1).sum(1), logits)


def test_cam_family_registered():
    for name, cls in [("gradcam++", volsal.GradCAMPlusPlus), ("hirescam", volsal.HiResCAM)]:
        info = volsal.get_method(name)
        assert info.cls is cls and info.kind == "cam" and "20" in info.reference
    assert volsal.get_method("Grad-CAM++").cls is volsal.GradCAMPlusPlus


@pytest.mark.parametrize("cls", [volsal.GradCAM, volsal.GradCAMPlusPlus, volsal.HiResCAM])
def test_multitarget_one_forward_equals_single_calls(spatial_dims, cls):
    model = tiny_cnn(spatial_dims, dtype=torch.float64)
    x = make_input(spatial_dims, batch=3, dtype=torch.float64)
    calls = []
    h = model.features.conv1.register_forward_hook(lambda m, i, o: calls.append(1))
    method = cls(model, layer="features", relu=False)
    exp = method.explain(x, volsal.MultiTarget([0, 2, [1, 0, 2]]))
    h.remove()
    assert len(calls) == 1  # one forward pass for three targets
    assert exp.maps.shape == (3, 3) + x.shape[2:]
    assert exp.scores.shape == (3, 3) and exp.classes[:, 2].tolist() == [1, 0, 2]
    for t, spec in enumerate([0, 2, [1, 0, 2]]):
        torch.testing.assert_close(exp.maps[:, t : t + 1], method(x, spec))


def test_multitarget_no_side_effects_and_rules():
    model = tiny_cnn(3, inplace=True).train()
    x = make_input(3)
    method = volsal.HiResCAM(model, layer="features")
    maps = assert_no_side_effects(lambda: method(x, volsal.MultiTarget([0, 1])), model, x)
    assert maps.shape == (2, 2) + x.shape[2:]
    with pytest.raises(TargetError, match="one per sample"):
        method(x, [0, 1, 2])  # a plain list is per-sample, never several targets
    with pytest.raises(TargetError, match="does not support MultiTarget"):
        volsal.Gradient(model)(x, volsal.MultiTarget([0, 1]))
    with pytest.raises(TargetError, match="non-empty"):
        volsal.MultiTarget([])


def test_guided_gradcam_is_the_product_of_its_parts(spatial_dims):
    model = tiny_cnn(spatial_dims, dtype=torch.float64, in_channels=2)
    x = make_input(spatial_dims, channels=2, dtype=torch.float64)
    exp = volsal.GuidedGradCAM(model, layer="features", relu=False).explain(x, [1, 2])
    gbp = volsal.GuidedBackprop(model)(x, [1, 2])
    cam = volsal.GradCAM(model, layer="features", relu=False)(x, [1, 2])
    torch.testing.assert_close(exp.maps, gbp * cam)
    assert exp.maps.shape == x.shape and exp.layer == "features"
    torch.testing.assert_close(exp.extras["gradcam"], cam)
    with pytest.raises(TargetError, match="MultiTarget"):
        volsal.GuidedGradCAM(model, layer="features")(x, volsal.MultiTarget([0, 1]))
