"""volsal.compat.pytorch_saliency: the seed's own example and its models, without its bugs."""

from __future__ import annotations

import logging

import pytest
import torch
from _models import RESNET_SECTIONS, VGG, ResNet, seeded

import volsal
from volsal.compat.pytorch_saliency import GradCAM, GuidedBackprop, GuidedGradCAM, saliency
from volsal.errors import InputShapeError, LayerNotFoundError, ParameterError
from volsal.testing import assert_no_side_effects


def test_seed_example_2d_resnet(caplog, capsys):
    """The README example: ResNet-18 layout, 224x224 input, class 281 of 1000."""
    model = seeded(ResNet(2, in_channels=3, num_classes=1000))
    input_batch = torch.rand((1, 3, 224, 224), generator=torch.Generator().manual_seed(0))
    conv_section = ["conv1", "bn1", "relu", "maxpool", "layer1", "layer2", "layer3", "layer4"]
    fc_section = ["fc"]
    adaptive_layer = "avgpool"
    model.train()  # the seed forced eval() and left it; volsal restores the flags
    cam = saliency(
        model=model,
        method="GradCAM",
        mode="2D",
        section_names=[conv_section, fc_section],
        adaptive_layer=adaptive_layer,
    )
    preds, maps = assert_no_side_effects(
        lambda: cam(input_batch, target_class=[281]), model, input_batch
    )
    assert model.training
    model.eval()
    assert preds.shape == (1, 1000) and not preds.requires_grad
    torch.testing.assert_close(preds, model(input_batch))
    assert maps.shape == (1, 1, 224, 224)
    torch.testing.assert_close(maps, volsal.GradCAM(model, layer="layer4")(input_batch, 281))
    with caplog.at_level(logging.INFO, logger="volsal"):
        cam(input_batch)  # predicted class: logged, not printed
    assert "predicted classes" in caplog.text
    assert capsys.readouterr().out == ""


def test_vgg_like_and_3d_variant():
    for k, size in ((2, 16), (3, 16)):
        model = seeded(VGG(k, in_channels=1), dtype=torch.float64)
        x = torch.randn((2, 1) + (size,) * k, dtype=torch.float64)
        cam = saliency(
            model,
            [["features"], ["classifier"]],
            method="GradCAM",
            mode=f"{k}D",
            adaptive_layer="avgpool",
        )
        preds, maps = cam(x, target_class=[1, 3])
        torch.testing.assert_close(preds, model(x))
        torch.testing.assert_close(maps, volsal.GradCAM(model, layer="features")(x, [1, 3]))
    model3 = seeded(ResNet(3, in_channels=1, num_classes=4), dtype=torch.float64)
    x3 = torch.randn(1, 1, 64, 64, 64, dtype=torch.float64)
    sect = GradCAM(model3, RESNET_SECTIONS, ["layer3", "1"], "avgpool", "3D")(x3, 2)[1]
    hook = saliency(model3, target_layer=["layer3", "1"], method="GradCAM")(x3, 2)[1]
    torch.testing.assert_close(sect, hook)
    assert sect.shape == (1, 1, 64, 64, 64)


def test_guided_methods_compose():
    model = seeded(VGG(2, in_channels=1), dtype=torch.float64)
    x = torch.randn(2, 1, 16, 16, dtype=torch.float64)
    sections = [["features"], ["classifier"]]
    _, gbp = GuidedBackprop(model, sections)(x, [0, 1])
    torch.testing.assert_close(gbp, volsal.GuidedBackprop(model)(x, [0, 1]))
    preds, ggc = GuidedGradCAM(model, None, sections, "2D", "avgpool")(x, [0, 1])
    cam = volsal.GradCAM(model, layer="features")(x, [0, 1])
    torch.testing.assert_close(ggc, gbp * cam)
    torch.testing.assert_close(preds, model(x))


monai_nets = pytest.importorskip("monai.networks.nets")


@pytest.mark.parametrize(
    "factory, sections, adaptive, layer",
    [
        (
            lambda: monai_nets.resnet18(spatial_dims=3, n_input_channels=1, num_classes=2),
            [["conv1", "bn1", "act", "maxpool", "layer1", "layer2", "layer3", "layer4"], ["fc"]],
            "avgpool",
            ["layer4", "1"],
        ),
        (
            lambda: monai_nets.DenseNet121(spatial_dims=3, in_channels=1, out_channels=2),
            [["features", "class_layers.relu"], ["class_layers.out"]],
            "class_layers.pool",
            ["features", "denseblock3"],
        ),
    ],
    ids=["resnet18", "densenet121"],
)
def test_monai_3d_models_with_their_names(factory, sections, adaptive, layer):
    torch.manual_seed(0)
    model = factory().eval()
    x = torch.randn(1, 1, 32, 32, 32)
    cam = saliency(model, sections, layer, "GradCAM", "3D", adaptive)
    preds, maps = assert_no_side_effects(lambda: cam(x, target_class=1), model, x)
    torch.testing.assert_close(preds, model(x), rtol=1e-4, atol=1e-5)
    ref = volsal.GradCAM(model, layer=layer)(x, 1)
    torch.testing.assert_close(maps, ref, rtol=1e-4, atol=1e-6)


def test_errors_are_typed():
    model = seeded(ResNet(2, num_classes=4))
    with pytest.raises(ParameterError, match="GradCAM"):
        saliency(model, method="LRP")
    with pytest.raises(ParameterError, match="needs method"):
        saliency(model)
    with pytest.raises(LayerNotFoundError, match="layr4"):
        saliency(model, [["conv1", "layr4"], ["fc"]], method="GradCAM")
    cam = saliency(model, RESNET_SECTIONS, method="GradCAM", adaptive_layer="avgpool")
    with pytest.raises(InputShapeError, match="3D"):
        cam(torch.randn(1, 3, 64, 64))  # mode defaults to "3D", as in the seed
