"""The FullGrad reference interface (seeds 000 and 002): the seed's usage lines run unchanged."""

from __future__ import annotations

import pytest
import torch
from conftest import make_input
from fg_models import BN, CONV, GAP, POOL, Plain, seeded
from torch import nn

import volsal
from volsal.compat.fullgrad import FullGrad, SimpleFullGrad
from volsal.errors import UnsupportedModelError
from volsal.testing import assert_no_side_effects, tiny_cnn


def test_seed_usage_lines(spatial_dims):
    model = tiny_cnn(spatial_dims, dtype=torch.float64)
    input_image = make_input(spatial_dims, dtype=torch.float64)
    target_class = torch.tensor([[2], [0]])  # the reference's out.max(1, keepdim=True)[1] shape

    # Initialize FullGrad object
    fullgrad = FullGrad(model)
    # Check completeness property
    fullgrad.checkCompleteness()
    # Obtain fullgradient decomposition
    input_gradient, bias_gradients = fullgrad.fullGradientDecompose(input_image, target_class)
    # Obtain saliency maps
    saliency_map = fullgrad.saliency(input_image, target_class)

    # the reference's own completeness sum, written as in its checkCompleteness
    fullgradient_sum = (input_gradient * input_image).flatten(1).sum(1)
    for b in bias_gradients:
        fullgradient_sum += b.flatten(1).sum(1)
    raw = model(input_image)[torch.arange(2), target_class.flatten()]
    torch.testing.assert_close(fullgradient_sum, raw, rtol=1e-10, atol=1e-12)
    assert len(bias_gradients) == 5  # conv1, bn1, conv2, bn2, fc
    assert saliency_map.shape == (2, 1) + input_image.shape[2:]
    torch.testing.assert_close(saliency_map, volsal.FullGrad(model)(input_image, [2, 0]))

    # Initialize Simple FullGrad object
    simple_fullgrad = SimpleFullGrad(model)
    # Obtain saliency maps
    saliency_map = simple_fullgrad.saliency(input_image, target_class)
    torch.testing.assert_close(saliency_map, volsal.SimpleFullGrad(model)(input_image, [2, 0]))


def test_check_completeness_fails_loudly_with_culprits():
    model = seeded(Plain(3, act="silu"))
    fullgrad = FullGrad(model, im_size=(1, 8, 8, 8))  # no check in the constructor
    with pytest.raises(UnsupportedModelError, match=r"act1 \(SiLU\).*SimpleFullGrad"):
        assert_no_side_effects(fullgrad.checkCompleteness, model)
    gap = FullGrad(tiny_cnn(3, dtype=torch.float64)).checkCompleteness()  # default 1x1x64^3
    assert gap.max_relative < 1e-10
    assert SimpleFullGrad(model).saliency(make_input(3, dtype=torch.float64), 0).shape[1] == 1


class SeedStyleNet(nn.Module):
    """The older reference model interface (seed 002): getBiases() and getFeatures(x).

    Features are taken after every conv+BN block (before the ReLU) and after the classifier;
    the biases are each block's combined bias ``beta + gamma * (b_conv - mu) / sigma``; both
    lists start with the input (bias placeholder ``0``), as in the reference's VGG.
    """

    def __init__(self, k):
        super().__init__()
        self.conv1, self.bn1 = CONV[k](1, 3, 3, padding=1), BN[k](3)
        self.conv2, self.bn2 = CONV[k](3, 4, 3, padding=1), BN[k](4)
        self.pool, self.gap, self.fc = POOL[k](2), GAP[k](1), nn.Linear(4, 3)
        self.feature_calls = 0

    def _run(self, x, feats=None):
        keep = feats.append if feats is not None else (lambda t: None)
        x = self.bn1(self.conv1(x))
        keep(x)
        x = self.pool(torch.relu(x))
        x = self.bn2(self.conv2(x))
        keep(x)
        x = self.fc(self.gap(torch.relu(x)).flatten(1))
        keep(x)
        return x

    def forward(self, x):
        return self._run(x)

    def getFeatures(self, x):  # noqa: N802 - the seed's interface
        self.feature_calls += 1
        feats = [x]
        return self._run(x, feats), feats

    def getBiases(self):  # noqa: N802
        out = [0]
        for conv, bn in ((self.conv1, self.bn1), (self.conv2, self.bn2)):
            s = bn.weight / torch.sqrt(bn.running_var + bn.eps)
            out.append((bn.bias + s * (conv.bias - bn.running_mean)).detach())
        out.append(self.fc.bias.detach())
        return out


def test_seed_002_feature_interface_is_used(spatial_dims):
    model = seeded(SeedStyleNet(spatial_dims))
    x = make_input(spatial_dims, dtype=torch.float64)
    fullgrad = FullGrad(model)
    input_gradient, bias_gradients = fullgrad.fullGradientDecompose(x, None)
    assert model.feature_calls == 1 and len(bias_gradients) == 3
    assert bias_gradients[0].shape == (2, 3) + x.shape[2:]
    cls = model(x).argmax(1)
    total = (input_gradient * x).flatten(1).sum(1) + sum(
        b.flatten(1).sum(1) for b in bias_gradients
    )
    torch.testing.assert_close(total, model(x)[torch.arange(2), cls], rtol=1e-10, atol=1e-12)
    # same input gradient as the automatic extraction; same total bias contribution
    auto_in, auto_terms = FullGrad(_without_interface(model)).fullGradientDecompose(x, cls)
    torch.testing.assert_close(input_gradient, auto_in)
    torch.testing.assert_close(
        sum(b.flatten(1).sum(1) for b in bias_gradients),
        sum(b.flatten(1).sum(1) for b in auto_terms),
    )
    assert fullgrad.checkCompleteness(x).max_relative < 1e-10
    sal = fullgrad.saliency(x, cls)
    assert sal.shape == (2, 1) + x.shape[2:] and model.feature_calls == 3
    assert SimpleFullGrad(model).saliency(x, cls).shape == sal.shape
    assert model.feature_calls == 4


def _without_interface(model):
    class Plain(nn.Module):
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, x):
            return self.inner(x)

    return Plain(model)


def test_compat_leaves_model_and_image_untouched():
    model = seeded(SeedStyleNet(2)).train()
    x = make_input(2, dtype=torch.float64)
    assert_no_side_effects(lambda: FullGrad(model).fullGradientDecompose(x, 1), model, x)
    assert_no_side_effects(lambda: FullGrad(model).saliency(x, 1), model, x)
    auto = tiny_cnn(2).train()
    xf = make_input(2)
    assert_no_side_effects(lambda: FullGrad(auto).saliency(xf, 1), auto, xf)
    assert_no_side_effects(
        lambda: SimpleFullGrad(auto).saliency(xf, 9), auto, xf, raises=ValueError
    )
    assert not x.requires_grad
