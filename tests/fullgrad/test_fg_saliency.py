"""FullGrad and SimpleFullGrad maps: written-out oracles, placement, options, side effects."""

from __future__ import annotations

import warnings

import pytest
import torch
import torch.nn.functional as F
from conftest import make_input
from fg_models import ConvNet, Plain, seeded
from torch import nn

import volsal
from volsal.errors import CompletenessWarning, LayerNotFoundError, ParameterError, TargetError
from volsal.methods.fullgrad import fullgrad_decomposition
from volsal.receptive import to_input_grid, trace_mappings
from volsal.testing import assert_no_side_effects, tiny_cnn


def _psi(t):
    """abs, then min-max per sample over channels and positions, then sum over channels."""
    t = t.abs()
    flat = t.flatten(1)
    lo = flat.min(1).values.view((-1,) + (1,) * (t.ndim - 1))
    hi = flat.max(1).values.view((-1,) + (1,) * (t.ndim - 1))
    return ((t - lo) / (hi - lo)).sum(1, keepdim=True)


def _oracle_fullgrad(model, x, target, placement_fn):
    """FullGrad written out from the decomposition: psi(input) + sum_l resize(psi(term_l))."""
    dec = fullgrad_decomposition(model, x, target)
    cam = _psi(dec.input_term)
    for key, t in dec.bias_terms.items():
        if t.ndim == x.ndim:
            cam = cam + placement_fn(_psi(t), key)
    return cam


def test_fullgrad_half_pixel_equals_written_out(spatial_dims):
    model = seeded(ConvNet(spatial_dims))
    x = make_input(spatial_dims, batch=3, dtype=torch.float64)
    mode = "bilinear" if spatial_dims == 2 else "trilinear"

    def interp(m, _key):
        return F.interpolate(m, size=x.shape[2:], mode=mode, align_corners=False)

    expected = _oracle_fullgrad(model, x, [0, 1, 2], interp)
    got = volsal.FullGrad(model, placement="half_pixel")(x, [0, 1, 2])
    torch.testing.assert_close(got, expected, rtol=1e-12, atol=1e-12)
    assert got.shape == (3, 1) + x.shape[2:] and bool((got >= 0).all())


class _Strided(nn.Module):
    """A stride-2 conv (kernel 3, padding 1): its cells sit at 2f, not at 2f + 0.5."""

    def __init__(self, k):
        super().__init__()
        conv = {2: nn.Conv2d, 3: nn.Conv3d}[k]
        self.conv1 = conv(1, 3, 3, stride=2, padding=1)
        self.conv2 = conv(3, 4, 3, stride=2, padding=1)
        self.fc = nn.Linear(4, 2)

    def forward(self, x):
        x = F.relu(self.conv2(F.relu(self.conv1(x))))
        return self.fc(x.flatten(2).amax(-1))


def test_receptive_field_placement(spatial_dims):
    model = seeded(_Strided(spatial_dims))
    x = make_input(spatial_dims, size=16, dtype=torch.float64)
    maps = trace_mappings(model, x, ["conv1", "conv2"])
    assert maps["conv2"].scale == (4.0,) * spatial_dims and maps["conv2"].offset[0] == 0.0

    def place(m, key):
        return to_input_grid(m, maps[key], x.shape[2:])

    got = volsal.FullGrad(model)(x, 1)
    torch.testing.assert_close(got, _oracle_fullgrad(model, x, 1, place), rtol=1e-12, atol=1e-12)
    half = volsal.FullGrad(model, placement="half_pixel")(x, 1)
    assert not torch.allclose(got, half)  # the two placements differ by 1.5 voxels here


def test_simple_fullgrad_equals_written_out(spatial_dims):
    model = seeded(Plain(spatial_dims, norm="in", act="silu"))  # no completeness: still fine
    x = make_input(spatial_dims, dtype=torch.float64)
    keep = {}
    hooks = [
        getattr(model, n).register_forward_hook(lambda m, i, o, n=n: keep.setdefault(n, o))
        for n in ("conv1", "norm1", "conv2", "norm2")
    ]
    xg = x.clone().requires_grad_(True)
    score = model(xg)[:, 1].sum()
    for h in hooks:
        h.remove()
    names = list(keep)
    grads = torch.autograd.grad(score, [xg] + [keep[n] for n in names])
    expected = _psi(x * grads[0])
    for g in grads[1:]:
        expected = expected + F.interpolate(
            _psi(g), size=x.shape[2:], mode="bilinear" if spatial_dims == 2 else "trilinear"
        )
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        exp = volsal.SimpleFullGrad(model, placement="half_pixel").explain(x, 1)
    torch.testing.assert_close(exp.maps, expected, rtol=1e-12, atol=1e-12)
    assert sorted(exp.extras["layers"]) == sorted(names)


def test_simple_fullgrad_layers_option():
    model = tiny_cnn(3, dtype=torch.float64)
    x = make_input(3, dtype=torch.float64)
    exp = volsal.SimpleFullGrad(model, layers=["features.bn2"]).explain(x, 0)
    assert exp.extras["layers"] == ["features.bn2"]
    exp = volsal.SimpleFullGrad(model, layer="features").explain(x, 0)
    assert sorted(exp.extras["layers"]) == sorted(
        ["features.conv1", "features.bn1", "features.conv2", "features.bn2"]
    )
    with pytest.raises(LayerNotFoundError, match="features.bn2"):
        volsal.SimpleFullGrad(model, layers=["features.bn3"])(x, 0)


def test_fullgrad_layers_restrict_the_map_not_the_check():
    model = tiny_cnn(2, dtype=torch.float64)
    x = make_input(2, dtype=torch.float64)
    full = volsal.FullGrad(model).explain(x, 0)
    part = volsal.FullGrad(model, layer="features.bn2").explain(x, 0)
    assert part.extras["layers"] == ["features.bn2"]
    torch.testing.assert_close(part.extras["completeness_gap"], full.extras["completeness_gap"])
    assert not torch.allclose(part.maps, full.maps)
    with pytest.raises(ParameterError, match="holds none"):
        volsal.FullGrad(model, layers="gap")(x, 0)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"check_completeness": "yes"},
        {"tolerance": -1.0},
        {"placement": "nearest"},
        {"layers": "features", "layer": "features"},
    ],
)
def test_bad_options(kwargs):
    with pytest.raises(ParameterError):
        volsal.FullGrad(tiny_cnn(2), **kwargs)


def test_constructor_runs_nothing():
    class Boom(nn.Module):
        def forward(self, x):
            raise RuntimeError("a forward pass ran")

    model = Boom()
    for m in (volsal.FullGrad(model, check_completeness="random"), volsal.SimpleFullGrad(model)):
        assert m.model is model
    with pytest.raises(RuntimeError, match="forward pass ran"):
        volsal.FullGrad(model)(make_input(2), 0)


def test_check_completeness_warns_on_input_and_random():
    model = seeded(Plain(2, act="silu"))
    x = make_input(2, dtype=torch.float64)
    with pytest.warns(CompletenessWarning) as rec:
        volsal.FullGrad(model, check_completeness="random").explain(x, 0)
    text = [str(w.message) for w in rec if w.category is CompletenessWarning]
    assert len(text) == 2 and "the input" in text[0] and "a random input" in text[1]
    assert "act1 (SiLU)" in text[0] and "SimpleFullGrad" in text[0]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        exp = volsal.FullGrad(model).explain(x, 0)  # default: measured, not warned
        assert exp.extras["completeness_gap"].min() > 1e-3
        volsal.FullGrad(model, check_completeness=True, tolerance=10.0)(x, 0)


def test_streamed_gap_equals_decomposition_gap(spatial_dims):
    model = seeded(ConvNet(spatial_dims))
    x = make_input(spatial_dims, dtype=torch.float64)
    exp = volsal.FullGrad(model).explain(x, [1, 2])
    dec = fullgrad_decomposition(model, x, [1, 2])
    torch.testing.assert_close(exp.extras["completeness_gap_abs"], dec.total() - dec.scores)
    assert exp.extras["completeness_gap"].max() < 1e-10


def test_side_effects_on_success_and_error(spatial_dims):
    model = seeded(ConvNet(spatial_dims, inplace=True)).train()
    x = make_input(spatial_dims, dtype=torch.float64).requires_grad_(True)
    for method in (
        volsal.FullGrad(model, check_completeness="random"),
        volsal.SimpleFullGrad(model),
        volsal.FullGrad(model, model_mode="train"),
    ):
        assert_no_side_effects(lambda m=method: m(x, 1), model, x)
        assert_no_side_effects(lambda m=method: m(x, 5), model, x, raises=TargetError)


def test_float32_and_batch_of_one_are_finite():
    model = tiny_cnn(3)
    x = make_input(3, batch=1)
    for cls in (volsal.FullGrad, volsal.SimpleFullGrad):
        out = cls(model)(x, None)
        assert out.dtype == torch.float32 and bool(torch.isfinite(out).all())


def test_registry_entries():
    for name, cls in (("fullgrad", volsal.FullGrad), ("simple_fullgrad", volsal.SimpleFullGrad)):
        info = volsal.get_method(name)
        assert info.cls is cls and info.kind == "cam" and "1905.00780" in info.reference
