"""section_names + adaptive_layer (pytorch-saliency style): same maps as the hook path."""

from __future__ import annotations

import pytest
import torch
from _models import RESNET_SECTIONS, VGG, ResNet, seeded
from torch import nn

import volsal
from volsal.errors import LayerNotFoundError, SectionError
from volsal.sections import check_sections, parse_sections, sectioned_forward
from volsal.testing import assert_no_side_effects

CAMS = [volsal.GradCAM, volsal.GradCAMPlusPlus, volsal.HiResCAM]


@pytest.mark.parametrize("cls", CAMS)
@pytest.mark.parametrize("layer", ["auto", ["layer3", "1"], "layer2.0.conv2"])
def test_resnet_sections_equal_hook_path(cls, layer):
    model = seeded(ResNet(2, num_classes=5), dtype=torch.float64)
    x = torch.randn(2, 3, 64, 64, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    check_sections(model, x, RESNET_SECTIONS, "avgpool")
    sect = cls(model, layer, section_names=RESNET_SECTIONS, adaptive_layer="avgpool", check=True)
    hook = cls(model, "layer4" if layer == "auto" else layer)
    exp = sect.explain(x, [1, 3])
    assert exp.layer == (
        "layer4" if layer == "auto" else ".".join(layer) if isinstance(layer, list) else layer
    )
    torch.testing.assert_close(exp.maps, hook.with_model(model)(x, [1, 3]))


def test_vgg_sections_and_3d_variant():
    for k, size in ((2, 16), (3, 8)):
        model = seeded(VGG(k, in_channels=1), dtype=torch.float64)
        x = torch.randn((2, 1) + (size,) * k, dtype=torch.float64)
        sections = [["features"], ["classifier"]]
        check_sections(model, x, sections, "avgpool")
        got = volsal.GradCAM(model, section_names=sections, adaptive_layer="avgpool")(x, 2)
        ref = volsal.GradCAM(model, layer="features")(x, 2)
        torch.testing.assert_close(got, ref)
        assert got.shape == (2, 1) + x.shape[2:]


monai_nets = pytest.importorskip("monai.networks.nets")


@pytest.mark.parametrize(
    "factory, sections, adaptive, layer",
    [
        (
            lambda: monai_nets.resnet18(spatial_dims=3, n_input_channels=1, num_classes=2),
            [["conv1", "bn1", "act", "maxpool", "layer1", "layer2", "layer3", "layer4"], ["fc"]],
            "avgpool",
            "layer4",
        ),
        (
            lambda: monai_nets.DenseNet121(spatial_dims=3, in_channels=1, out_channels=2),
            [["features", "class_layers.relu"], ["class_layers.out"]],
            "class_layers.pool",
            "features.denseblock3",
        ),
    ],
    ids=["resnet18", "densenet121"],
)
def test_monai_3d_sections(factory, sections, adaptive, layer):
    torch.manual_seed(0)
    model = factory().eval()
    x = torch.randn(1, 1, 32, 32, 32)
    check_sections(model, x, sections, adaptive)
    sect = volsal.GradCAM(model, layer, section_names=sections, adaptive_layer=adaptive)
    got = assert_no_side_effects(lambda: sect(x, 1), model, x)
    ref = volsal.GradCAM(model, layer=layer)(x, 1)
    torch.testing.assert_close(got, ref, rtol=1e-4, atol=1e-6)


def test_conv_section_builds_no_graph_and_no_side_effects():
    model = seeded(ResNet(2, num_classes=4)).train()
    model.bn1.eval()
    x = torch.randn(2, 3, 64, 64).requires_grad_(True)
    seen = []
    h = model.conv1.register_forward_hook(lambda m, i, o: seen.append(o.requires_grad))
    cam = volsal.GradCAM(model, section_names=RESNET_SECTIONS, adaptive_layer="avgpool")
    assert_no_side_effects(lambda: cam(x, 1), model, x)
    h.remove()
    assert seen == [False]
    assert model.training and not model.bn1.training


class NotSequential(nn.Module):
    """forward is not the composition of its modules (a functional scaling in between)."""

    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU())
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(4, 2)

    def forward(self, x):
        return self.fc(self.pool(2 * self.features(x)).flatten(1))


def test_sections_that_do_not_reproduce_the_model_are_refused():
    model = NotSequential().eval()
    x = torch.randn(1, 1, 8, 8)
    with pytest.raises(SectionError, match="differs from model"):
        check_sections(model, x, [["features"], ["fc"]], "pool")
    cam = volsal.GradCAM(
        model, section_names=[["features"], ["fc"]], adaptive_layer="pool", check=True
    )
    assert_no_side_effects(lambda: cam(x, 0), model, x, raises=SectionError)
    with pytest.raises(SectionError, match="shape"):
        check_sections(model, x, [["features"], []], None)  # flattened features, no fc


def test_section_name_errors():
    model = seeded(ResNet(2, num_classes=4))
    with pytest.raises(LayerNotFoundError, match=r"\['layr4', 'fcc'\].*'layer4'.*top-level"):
        parse_sections(model, [["conv1", "layr4"], ["fcc"]], "avgpool")
    with pytest.raises(SectionError, match="exactly two"):
        parse_sections(model, [["conv1"]])
    with pytest.raises(SectionError, match="more than once"):
        parse_sections(model, [["conv1", "conv1"], ["fc"]])
    with pytest.raises(SectionError, match="not in the conv section"):
        volsal.GradCAM(model, "fc", section_names=RESNET_SECTIONS, adaptive_layer="avgpool")(
            torch.randn(1, 3, 32, 32), 0
        )
    s = parse_sections(model, ["layer4", "fc"])  # the seed's bare-string sections
    assert s.conv == ("layer4",) and s.fc == ("fc",)
    x = torch.randn(1, 3, 32, 32)
    assert sectioned_forward(model, parse_sections(model, RESNET_SECTIONS, "avgpool"), x).shape == (
        1,
        4,
    )


def test_sections_batch_independence():
    model = seeded(VGG(3, in_channels=1), dtype=torch.float64)
    x = torch.randn(3, 1, 8, 8, 8, dtype=torch.float64)
    cam = volsal.HiResCAM(
        model, section_names=[["features"], ["classifier"]], adaptive_layer="avgpool"
    )
    full = cam(x, [0, 2, 1])
    for i, t in enumerate([0, 2, 1]):
        torch.testing.assert_close(full[i : i + 1], cam(x[i : i + 1], t), rtol=1e-6, atol=1e-9)
