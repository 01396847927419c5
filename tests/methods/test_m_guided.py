"""GuidedBackprop and Deconvnet: the ReLU rule by hand, Captum, functional/in-place/reused ReLUs."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from _gradfam_models import MixedNet, SiluNet, relu_net, seeded
from captum.attr import Deconvolution
from captum.attr import GuidedBackprop as CaptumGuided
from conftest import make_input
from torch import nn

import volsal
from volsal.errors import UnsupportedModelError, VolsalWarning
from volsal.hooks import relu_gradient_rule
from volsal.testing import assert_no_side_effects, tiny_cnn


@pytest.mark.parametrize("rule", ["guided", "deconvnet"])
def test_rule_by_hand(rule):
    x = torch.tensor([-1.0, 2.0, 3.0, -4.0, 0.5], dtype=torch.float64, requires_grad=True)
    v = torch.tensor([1.0, -2.0, 3.0, -4.0, 0.0], dtype=torch.float64)
    with relu_gradient_rule(rule) as rec:
        (g,) = torch.autograd.grad((F.relu(x) * v).sum(), x)
    expected = {"guided": [0.0, 0.0, 3.0, 0.0, 0.0], "deconvnet": [1.0, 0.0, 3.0, 0.0, 0.0]}
    torch.testing.assert_close(g, torch.tensor(expected[rule], dtype=torch.float64))
    assert rec.count == 1


@pytest.mark.parametrize(
    "ours, theirs", [("GuidedBackprop", CaptumGuided), ("Deconvnet", Deconvolution)]
)
def test_matches_captum(spatial_dims, ours, theirs):
    model = tiny_cnn(spatial_dims, in_channels=2, dtype=torch.float64)
    x = make_input(spatial_dims, channels=2, batch=3, dtype=torch.float64)
    ref = theirs(model).attribute(x.clone().requires_grad_(True), target=[0, 2, 1])
    got = getattr(volsal, ours)(model)(x, [0, 2, 1])
    torch.testing.assert_close(got, ref)
    assert not torch.allclose(got, volsal.Gradient(model)(x, [0, 2, 1]))


@pytest.mark.parametrize("cls", [volsal.GuidedBackprop, volsal.Deconvnet])
@pytest.mark.parametrize("style", ["functional", "inplace_functional", "reused"])
def test_functional_inplace_and_reused_relus(spatial_dims, cls, style):
    x = make_input(spatial_dims, dtype=torch.float64)
    reference = cls(relu_net(spatial_dims, "module"))(x, 1)
    model = relu_net(spatial_dims, style)
    exp = assert_no_side_effects(lambda: cls(model).explain(x, 1), model, x)
    torch.testing.assert_close(exp.maps, reference)
    assert exp.extras["relu_calls"] == 3
    # the plain gradient differs: the rule was really applied to every spelling
    assert not torch.allclose(exp.maps, volsal.Gradient(model)(x, 1))


def test_equals_gradient_when_weights_after_relus_are_nonnegative(spatial_dims):
    # every weight after a ReLU >= 0 and a target with non-negative fc weights: every gradient
    # reaching a ReLU is >= 0, so the guided rule changes nothing
    model = relu_net(spatial_dims, "module", nonneg_after=("c2", "c3", "fc"))
    x = make_input(spatial_dims, dtype=torch.float64)
    torch.testing.assert_close(volsal.GuidedBackprop(model)(x, 0), volsal.Gradient(model)(x, 0))


def test_no_relu_raises_and_leaves_model(spatial_dims):
    model = seeded(SiluNet(spatial_dims))
    x = make_input(spatial_dims, dtype=torch.float64)
    for cls in (volsal.GuidedBackprop, volsal.Deconvnet):
        assert_no_side_effects(lambda c=cls: c(model)(x, 0), model, x, raises=UnsupportedModelError)
        with pytest.raises(UnsupportedModelError, match="SiLU.*GELU|GELU.*SiLU"):
            cls(model)(x, 0)
        with pytest.raises(UnsupportedModelError, match="volsal.Gradient"):
            cls(model)(x, 0)


def test_other_activations_warn_but_relus_are_rewritten():
    model = seeded(MixedNet(2))
    x = make_input(2, dtype=torch.float64)
    with pytest.warns(VolsalWarning, match="SiLU"):
        exp = volsal.GuidedBackprop(model).explain(x, 0)
    assert exp.extras["relu_calls"] == 1 and exp.extras["other_activations"] == {"SiLU": 1}
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        volsal.GuidedBackprop(model, warn_other_activations=False)(x, 0)


def test_rule_is_scoped_to_the_block():
    x = torch.randn(4, dtype=torch.float64, requires_grad=True)
    with relu_gradient_rule("guided"):
        pass
    (g,) = torch.autograd.grad((torch.relu(x) * -1.0).sum(), x)
    torch.testing.assert_close(g, -(x > 0).double())  # plain ReLU gradient after exit


def test_unknown_rule():
    with pytest.raises(volsal.ParameterError, match="guided"):
        with relu_gradient_rule("lrp"):
            pass


def test_module_not_replaced_inplace_flag_kept():
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU(inplace=True), nn.Flatten(), nn.LazyLinear(2))
    model(torch.zeros(1, 1, 6, 6))
    model = model.double().eval()
    x = make_input(2, size=6, dtype=torch.float64)
    assert_no_side_effects(lambda: volsal.GuidedBackprop(model)(x, 1), model, x)
    assert type(model[1]) is nn.ReLU and model[1].inplace
