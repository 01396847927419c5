"""Oracles for Gradient and GradCAM: plain autograd, CAM (Zhou et al. 2016), Captum, MONAI nets."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from captum.attr import LayerGradCam, Saliency
from conftest import make_input
from torch import nn

import volsal
from volsal.receptive import to_input_grid, trace_mappings
from volsal.testing import assert_no_side_effects, tiny_cnn


def test_gradient_equals_plain_autograd(spatial_dims):
    model = tiny_cnn(spatial_dims, dtype=torch.float64)
    x = make_input(spatial_dims, dtype=torch.float64)
    xr = x.clone().requires_grad_(True)
    (ref,) = torch.autograd.grad(model(xr)[[0, 1], [2, 0]].sum(), xr)
    torch.testing.assert_close(volsal.Gradient(model)(x, [2, 0]), ref)


def test_gradient_matches_captum_saliency(spatial_dims):
    model = tiny_cnn(spatial_dims, dtype=torch.float64, in_channels=2)
    x = make_input(spatial_dims, channels=2, dtype=torch.float64)
    ref = Saliency(model).attribute(x, target=1, abs=False)
    torch.testing.assert_close(volsal.Gradient(model)(x, 1), ref)


def test_gradient_never_accumulates_and_leaves_no_grad():
    model = tiny_cnn(3, dtype=torch.float64)
    x = make_input(3, dtype=torch.float64).requires_grad_(True)
    g = volsal.Gradient(model)
    a = g(x, 0)
    b = g(x, 0)  # MONAI's VanillaGrad doubles here (USER_NEEDS P11)
    torch.testing.assert_close(a, b)
    assert x.grad is None
    assert all(p.grad is None for p in model.parameters())


class GapNet(nn.Module):
    """conv -> ReLU -> global average pool -> linear: the CAM architecture of Zhou et al."""

    def __init__(self, k: int):
        super().__init__()
        conv = {2: nn.Conv2d, 3: nn.Conv3d}[k]
        self.body = nn.Sequential(conv(1, 6, 3, padding=1), nn.ReLU())
        self.fc = nn.Linear(6, 3)

    def forward(self, x):
        return self.fc(self.body(x).flatten(2).mean(-1))


def test_gradcam_equals_class_activation_map(spatial_dims):
    torch.manual_seed(0)
    model = GapNet(spatial_dims).double().eval()
    x = make_input(spatial_dims, dtype=torch.float64)
    cls = 1
    acts = model.body(x)
    # CAM (Zhou et al. 2016): sum_k w_ck A_k. Grad-CAM weights are w_ck / N (N voxels).
    cam = torch.einsum("k,bk...->b...", model.fc.weight[cls], acts)[:, None]
    n = acts[0, 0].numel()
    got = volsal.GradCAM(model, layer="body", relu=False, upsample=False)(x, cls)
    torch.testing.assert_close(got * n, cam)
    got_relu = volsal.GradCAM(model, layer="body")(x, cls)
    torch.testing.assert_close(got_relu * n, cam.clamp_min(0))  # same grid: no resize


def test_gradcam_matches_captum_layergradcam(spatial_dims):
    model = tiny_cnn(spatial_dims, dtype=torch.float64)
    x = make_input(spatial_dims, dtype=torch.float64)
    layer = model.features
    mode = "bilinear" if spatial_dims == 2 else "trilinear"
    for relu in (False, True):
        ref = LayerGradCam(model, layer).attribute(x, target=2, relu_attributions=relu)
        ref = F.interpolate(ref, size=x.shape[2:], mode=mode, align_corners=False)
        got = volsal.GradCAM(model, layer="features", relu=relu)(x, 2)
        torch.testing.assert_close(got, ref)
        assert relu or got.abs().max() > 0


def test_gradcam_layer_forms_agree():
    model = tiny_cnn(3)
    x = make_input(3)
    by_name = volsal.GradCAM(model, layer="features")(x, 1)
    by_module = volsal.GradCAM(model, layer=model.features)(x, 1)
    by_parts = volsal.GradCAM(model, layer=["features"])(x, 1)
    by_callable = volsal.GradCAM(model, layer=lambda m: m.features)(x, 1)
    auto = volsal.GradCAM(model)(x, 1)  # auto: last module keeping the rank = features
    for other in (by_module, by_parts, by_callable, auto):
        torch.testing.assert_close(by_name, other)


def test_gradcam_through_dataparallel_wrapper():
    model = tiny_cnn(2)
    x = make_input(2)
    wrapped = nn.DataParallel(model)
    torch.testing.assert_close(
        volsal.GradCAM(wrapped, layer="module.features")(x, 1),
        volsal.GradCAM(model, layer="features")(x, 1),
    )


def test_gradcam_builds_no_graph_before_the_layer():
    """The prefix runs without autograd: a hook on conv1 sees outputs that require no grad."""
    model = tiny_cnn(3)
    seen = []
    h = model.features.conv1.register_forward_hook(lambda m, i, o: seen.append(o.requires_grad))
    volsal.GradCAM(model, layer="features.relu2")(make_input(3), 0)
    h.remove()
    assert seen == [False]
    assert torch.is_grad_enabled()


def test_gradcam_single_voxel_layer_warns():
    model = tiny_cnn(3)
    with pytest.warns(volsal.errors.DegenerateMapWarning, match="single-voxel"):
        volsal.GradCAM(model, layer="gap", relu=False)(make_input(3, size=4), 0)


monai_nets = pytest.importorskip("monai.networks.nets")


@pytest.mark.parametrize(
    "factory, layer",
    [
        (lambda: monai_nets.resnet18(spatial_dims=3, n_input_channels=1, num_classes=2), "layer4"),
        (
            lambda: monai_nets.DenseNet121(spatial_dims=3, in_channels=1, out_channels=2),
            "features.denseblock4",
        ),
        (
            lambda: monai_nets.SEResNet50(spatial_dims=3, in_channels=1, num_classes=2),
            "layer4",
        ),
    ],
    ids=["resnet18", "densenet121", "seresnet50"],
)
def test_monai_3d_networks(factory, layer):
    torch.manual_seed(0)
    model = factory().eval()
    x = torch.randn(2, 1, 32, 32, 32)
    for method in (volsal.Gradient(model), volsal.GradCAM(model, layer=layer)):
        maps = assert_no_side_effects(lambda m=method: m(x, [0, 1]), model, x)
        assert maps.shape[0] == 2 and maps.shape[2:] == x.shape[2:]
        assert torch.isfinite(maps).all()
    # the grad-from-the-layer-on path equals the full-graph Grad-CAM
    name, mod = volsal.resolve_layer(model, layer)
    store = {}
    h = mod.register_forward_hook(lambda m, i, o: store.setdefault("a", o))
    out = model(x)
    acts = store["a"]
    h.remove()
    (grads,) = torch.autograd.grad(out[:, 1].sum(), acts)
    ref = (
        (grads.flatten(2).mean(-1)[..., None, None, None] * acts).sum(1, keepdim=True).clamp_min(0)
    )
    ref = ref.detach()
    half = F.interpolate(ref, size=x.shape[2:], mode="trilinear", align_corners=False)
    torch.testing.assert_close(
        volsal.GradCAM(model, layer=layer, placement="half_pixel")(x, 1), half, rtol=1e-4, atol=1e-6
    )
    # default placement: layer cells at their receptive-field centres (volsal.receptive);
    # these stride-2 nets are not half-pixel pyramids (resnet18 layer4: offset 0, not 7.5)
    mapping = trace_mappings(model, x[:1], [name])[name]
    assert mapping is not None and mapping.exact
    placed = to_input_grid(ref, mapping, x.shape[2:])
    torch.testing.assert_close(
        volsal.GradCAM(model, layer=layer)(x, 1), placed, rtol=1e-4, atol=1e-6
    )
