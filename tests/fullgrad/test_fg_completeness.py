"""The full-gradient decomposition: completeness to 1e-10 in float64, keys, oracles, breakers."""

from __future__ import annotations

import warnings

import pytest
import torch
import torch.nn.functional as F
from conftest import make_input
from fg_models import BN, CONV, GAP, ConvNet, LiftNet, Plain, Reused, Shuffled, lift_to_3d, seeded
from monai.networks.nets import DenseNet121, resnet18
from torch import nn

import volsal
from volsal.errors import CompletenessWarning, TargetError
from volsal.hooks import effective_bias
from volsal.methods.fullgrad import completeness_gap, fullgrad_decomposition
from volsal.testing import assert_no_side_effects, tiny_cnn

TOL = 1e-10


def _complete(model, x, target=0, **kw):
    dec = fullgrad_decomposition(model, x, target, **kw)
    gap = completeness_gap(dec)
    assert gap.max_relative < TOL, (gap.relative, dec.breaking)
    assert dec.breaking == []
    with torch.no_grad():
        out = model(x)
    idx = (
        torch.as_tensor(target).expand(len(x)) if isinstance(target, int) else torch.tensor(target)
    )
    torch.testing.assert_close(dec.scores, out[torch.arange(len(x)), idx], rtol=0, atol=0)
    torch.testing.assert_close(dec.total(), dec.scores, rtol=TOL, atol=1e-12)
    return dec


@pytest.mark.parametrize("k", [1, 2, 3], ids=["1d", "2d", "3d"])
def test_conv_bn_relu_maxpool_linear(k):
    model = seeded(ConvNet(k))
    x = torch.randn((3, 1) + (8,) * k, generator=torch.Generator().manual_seed(1)).double()
    dec = _complete(model, x, [0, 1, 2])
    assert list(dec.bias_terms) == ["conv1", "bn1", "conv2", "bn2", "fc1", "bn3", "fc2"]
    assert dec.bias_terms["conv2"].shape == (3, 4) + (4,) * k
    assert dec.bias_terms["fc1"].shape == (3, 6) and dec.bias_terms["bn3"].shape == (3, 6)
    assert dec.layer_types["bn3"] == "BatchNorm1d"


def test_tiny_cnn_2d_3d(spatial_dims):
    _complete(
        tiny_cnn(spatial_dims, dtype=torch.float64),
        make_input(spatial_dims, dtype=torch.float64),
        1,
    )


def _bn_stats(model, seed=0):
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                m.running_mean.copy_(0.2 * torch.randn(m.running_mean.shape, generator=gen))
                m.running_var.copy_(0.5 + torch.rand(m.running_var.shape, generator=gen))
                m.weight.copy_(0.8 + 0.4 * torch.rand(m.weight.shape, generator=gen))
                m.bias.copy_(0.2 * torch.randn(m.bias.shape, generator=gen))
    return model.double().eval()


def test_monai_resnet18_3d():
    """MONAI resnet18 (3D, widths / 4 to keep the test fast), 32^3, float64."""
    torch.manual_seed(0)
    net = resnet18(spatial_dims=3, n_input_channels=1, num_classes=3, widen_factor=0.25)
    dec = _complete(_bn_stats(net), make_input(3, batch=1, size=32, dtype=torch.float64), 2)
    assert {"bn1", "fc", "layer4.1.bn2", "layer2.0.downsample.1"} <= set(dec.bias_terms)


def test_monai_densenet121_3d():
    """MONAI DenseNet121 (pre-activation BN-ReLU-Conv, concatenations), narrow, 32^3, float64."""
    torch.manual_seed(0)
    net = DenseNet121(
        spatial_dims=3, in_channels=1, out_channels=3, init_features=8, growth_rate=4, bn_size=2
    )
    dec = _complete(_bn_stats(net), make_input(3, batch=1, size=32, dtype=torch.float64), 1)
    assert sum(k.endswith(".norm1") for k in dec.bias_terms) == 58  # 6 + 12 + 24 + 16 layers
    assert "class_layers.out" in dec.bias_terms


def test_inplace_relus_same_decomposition(spatial_dims):
    x = make_input(spatial_dims, dtype=torch.float64)
    a = _complete(seeded(ConvNet(spatial_dims)), x, 1)
    b = _complete(seeded(ConvNet(spatial_dims, inplace=True)), x, 1)
    assert a.bias_terms.keys() == b.bias_terms.keys()
    for key in a.bias_terms:
        torch.testing.assert_close(a.bias_terms[key], b.bias_terms[key], rtol=0, atol=0)
    torch.testing.assert_close(a.input_term, b.input_term, rtol=0, atol=0)


def _oracle_terms(model, x, target, order):
    """Independent reference: a hand-written forward keeping every bias-layer output."""
    outs = {}

    def keep(name, t):
        t.retain_grad()
        outs[name] = t
        return t

    xg = x.clone().requires_grad_(True)
    y = order(model, xg, keep)
    score = y[:, target].sum()
    names = list(outs)
    grads = torch.autograd.grad(score, [xg] + [outs[n] for n in names])
    terms = {}
    for n, g in zip(names, grads[1:]):
        mod = model.get_submodule(n.split("#")[0])
        b = effective_bias(mod)
        terms[n] = g * (b if g.ndim == 2 else b.view((1, -1) + (1,) * (g.ndim - 2)))
    return grads[0], terms


def _shuffled_forward(m, x, keep):
    x = F.relu(keep("bn0", m.bn0(keep("stem", m.stem(x)))))
    a = F.relu(keep("bn_a", m.bn_a(keep("branch_a", m.branch_a(x)))))
    x = a + keep("branch_b", m.branch_b(x))
    return keep("fc", m.fc(m.gap(x).flatten(1)))


def _reused_forward(m, x, keep):
    x = F.relu(keep("stem", m.stem(x)))
    x = F.relu(keep("bn", m.bn(keep("block", m.block(x)))))
    x = F.relu(keep("bn#1", m.bn(keep("block#1", m.block(x)))))
    return keep("fc", m.fc(m.gap(x).flatten(1)))


@pytest.mark.parametrize(
    "net, forward",
    [(Shuffled, _shuffled_forward), (Reused, _reused_forward)],
    ids=["declared-out-of-order", "module-called-twice"],
)
def test_terms_keyed_by_module_and_call(net, forward, spatial_dims):
    model = seeded(net(spatial_dims))
    x = make_input(spatial_dims, dtype=torch.float64)
    dec = _complete(model, x, 2)
    gx, terms = _oracle_terms(model, x, 2, forward)
    assert sorted(dec.bias_terms) == sorted(terms)
    for key, t in terms.items():
        torch.testing.assert_close(dec.bias_terms[key], t, rtol=1e-12, atol=1e-14)
    torch.testing.assert_close(dec.input_term, x * gx, rtol=1e-12, atol=1e-14)
    if net is Reused:
        assert list(dec.bias_terms)[:5] == ["stem", "block", "bn", "block#1", "bn#1"]
    else:  # call order, not declaration order
        assert list(dec.bias_terms) == ["stem", "bn0", "branch_a", "bn_a", "branch_b", "fc"]


def test_batchnorm_affine_false(spatial_dims):
    model = seeded(Plain(spatial_dims, norm="bn", affine=False))
    dec = _complete(model, make_input(spatial_dims, dtype=torch.float64), 0)
    bn = model.norm1
    expected = -bn.running_mean / torch.sqrt(bn.running_var + bn.eps)
    torch.testing.assert_close(effective_bias(bn), expected)
    assert dec.bias_terms["norm1"].abs().sum() > 0


@pytest.mark.parametrize("act", ["prelu", "leaky"])
def test_piecewise_linear_activations_are_complete(act):
    _complete(seeded(Plain(3, act=act)), make_input(3, dtype=torch.float64), 1)


def test_conv_transpose_and_bias_free_convs():
    model = nn.Sequential(
        nn.Conv3d(1, 3, 3, stride=2, padding=1, bias=False),
        nn.ReLU(),
        nn.ConvTranspose3d(3, 2, 2, stride=2),
        nn.ReLU(),
        nn.AdaptiveMaxPool3d(1),
        nn.Flatten(),
        nn.Linear(2, 2),
    )
    dec = _complete(seeded(model), make_input(3, dtype=torch.float64), 1)
    assert list(dec.bias_terms) == ["2", "6"]  # the bias-free conv has no term
    assert dec.bias_terms["2"].shape == (2, 2, 8, 8, 8)


def test_input_term_is_x_times_plain_gradient(spatial_dims):
    model = seeded(ConvNet(spatial_dims))
    x = make_input(spatial_dims, batch=3, dtype=torch.float64)
    dec = fullgrad_decomposition(model, x, [2, 0, 1])
    xg = x.clone().requires_grad_(True)
    (g,) = torch.autograd.grad(model(xg)[torch.arange(3), torch.tensor([2, 0, 1])].sum(), xg)
    torch.testing.assert_close(dec.input_term, x * g, rtol=0, atol=0)
    torch.testing.assert_close(dec.input_gradient, g, rtol=0, atol=0)
    torch.testing.assert_close(dec.input_term, x * volsal.Gradient(model)(x, [2, 0, 1]))


def test_parity_2d_lifted_to_3d():
    m2 = seeded(LiftNet(2))
    m3 = lift_to_3d(m2, LiftNet(3).double().eval())
    x2 = make_input(2, size=8, dtype=torch.float64)
    x3 = x2[:, :, None]
    d2 = fullgrad_decomposition(m2, x2, 1)
    d3 = fullgrad_decomposition(m3, x3, 1)
    assert d2.bias_terms.keys() == d3.bias_terms.keys()
    torch.testing.assert_close(d3.input_term[:, :, 0], d2.input_term)
    for key, t in d2.bias_terms.items():
        t3 = d3.bias_terms[key]
        torch.testing.assert_close(t3[:, :, 0] if t3.ndim == 5 else t3, t)
    for cls in (volsal.FullGrad, volsal.SimpleFullGrad):
        torch.testing.assert_close(cls(m3)(x3, 1)[:, :, 0], cls(m2)(x2, 1))


# -- models where completeness does not hold: the gap and the culprits are reported -----------
def _bn_train(k):
    model = seeded(Plain(k, norm="bn"))
    return model, {"model_mode": "train"}, ["norm1 (BatchNorm using batch statistics"]


BREAKERS = {
    "instancenorm": (
        lambda k: (seeded(Plain(k, norm="in", affine=True)), {}, ["norm1 (InstanceNorm)"])
    ),
    "groupnorm": (
        lambda k: (seeded(Plain(k, norm="gn")), {}, ["norm1 (GroupNorm)", "norm2 (GroupNorm)"])
    ),
    "silu": (lambda k: (seeded(Plain(k, act="silu")), {}, ["act1 (SiLU)", "act2 (SiLU)"])),
    "functional-silu": (
        lambda k: (seeded(Plain(k, act="functional_silu")), {}, ["forward of Plain (SiLU)"])
    ),
    "train-batchnorm": _bn_train,
}

MEASURED: dict[str, float] = {}


@pytest.mark.parametrize("name", list(BREAKERS))
def test_gap_reported_with_offending_layers(name):
    model, kw, culprits = BREAKERS[name](3)
    x = make_input(3, batch=2, dtype=torch.float64)
    dec = assert_no_side_effects(lambda: fullgrad_decomposition(model, x, 0, **kw), model, x)
    gap = completeness_gap(dec)
    MEASURED[name] = gap.max_relative
    assert gap.max_relative > 1e-3, gap.relative
    for c in culprits:
        assert any(b.startswith(c) for b in dec.breaking), dec.breaking
    # FullGrad names them in its warning and points to SimpleFullGrad
    method = volsal.FullGrad(model, check_completeness="input", **kw)
    with pytest.warns(CompletenessWarning, match="SimpleFullGrad") as rec:
        exp = method.explain(x, 0)
    assert culprits[0].split(" (")[0] in str(rec[0].message)
    torch.testing.assert_close(exp.extras["completeness_gap"], gap.relative)


def test_complete_model_gives_no_warning(spatial_dims):
    model = tiny_cnn(spatial_dims, dtype=torch.float64)
    x = make_input(spatial_dims, dtype=torch.float64)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        exp = volsal.FullGrad(model, check_completeness="random").explain(x, None)
    assert exp.extras["completeness_gap"].max() < TOL
    assert exp.extras["breaking_layers"] is None  # only looked for when a check fails


def test_train_mode_dropout_and_target_nonlinearity_are_named():
    model = nn.Sequential(
        nn.Conv2d(1, 2, 3), nn.ReLU(), nn.Dropout(0.5), nn.Flatten(), nn.Linear(72, 2)
    ).double()
    x = make_input(2, dtype=torch.float64)
    dec = fullgrad_decomposition(model, x, lambda out: out.sigmoid()[:, 0], model_mode="train")
    assert dec.breaking == ["2 (Dropout in train mode)", "target (Sigmoid)"]
    assert fullgrad_decomposition(model, x, 0).breaking == []  # eval: complete


def test_no_side_effects_and_typed_errors(spatial_dims):
    model = seeded(ConvNet(spatial_dims, inplace=True)).train()
    model.bn1.eval()
    x = make_input(spatial_dims, dtype=torch.float64).requires_grad_(True)
    assert_no_side_effects(lambda: fullgrad_decomposition(model, x, 1), model, x)
    assert_no_side_effects(
        lambda: fullgrad_decomposition(model, x, 9), model, x, raises=TargetError
    )
    with pytest.raises(volsal.InputShapeError):
        fullgrad_decomposition(model, x[0, 0], 0)


def test_float32_gap_is_small():
    model = seeded(ConvNet(3), dtype=torch.float32)
    gap = completeness_gap(fullgrad_decomposition(model, make_input(3), 0))
    assert gap.max_relative < 1e-4


def test_unused_branch_gives_zero_term():
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(1, 2, 3, padding=1)
            self.side = nn.Conv2d(1, 2, 3, padding=1)
            self.fc = nn.Linear(2, 2)

        def forward(self, x):
            self.side(x)  # computed, not used
            return self.fc(F.relu(self.conv(x)).mean((2, 3)))

    dec = _complete(seeded(Net()), make_input(2, dtype=torch.float64), 0)
    assert dec.bias_terms["side"].abs().sum() == 0


def test_conv_bn_blocks_registry_names():
    # layers are keyed by the same dotted names users see in volsal.layer_names
    model = seeded(
        nn.Sequential(
            CONV[2](1, 2, 3), BN[2](2), nn.ReLU(), GAP[2](1), nn.Flatten(), nn.Linear(2, 2)
        )
    )
    dec = _complete(model, make_input(2, dtype=torch.float64), 0)
    assert set(dec.bias_terms) <= set(volsal.layer_names(model))
