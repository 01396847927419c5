"""Parameter randomisation on deep copies: order, cumulative cascade, seeds, BatchNorm, RNG."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from volsal.errors import LayerNotFoundError, ParameterError
from volsal.sanity import parameter_layers, randomized_copies, select_layers
from volsal.testing import compare_snapshots, snapshot, tiny_cnn

LAYERS = ["features.conv1", "features.bn1", "features.conv2", "features.bn2", "fc"]


def _x(spatial_dims: int) -> torch.Tensor:
    gen = torch.Generator().manual_seed(0)
    return torch.randn((2, 1) + (8,) * spatial_dims, generator=gen)


def _changed(model: nn.Module, other: nn.Module) -> set[str]:
    a, b = model.state_dict(), other.state_dict()
    return {k.rsplit(".", 1)[0] for k in a if not torch.equal(a[k], b[k])}


class Reordered(nn.Module):
    """Modules defined in an order different from the order they run in; one unused."""

    def __init__(self):
        super().__init__()
        self.head = nn.Linear(4, 2)
        self.unused = nn.Linear(3, 3)
        self.body = nn.Conv2d(1, 4, 3, padding=1)

    def forward(self, x):
        return self.head(torch.relu(self.body(x)).mean((2, 3)))


def test_layers_in_execution_order():
    x = _x(2)
    assert parameter_layers(tiny_cnn(2), x) == LAYERS
    model = Reordered()
    before = snapshot(model, x)
    assert parameter_layers(model, x) == ["body", "head"]
    assert compare_snapshots(before, snapshot(model, x)) == []


@pytest.mark.parametrize("spatial_dims", [2, 3])
def test_cascading_is_top_down_and_cumulative(spatial_dims):
    model, x = tiny_cnn(spatial_dims), _x(spatial_dims)
    before = snapshot(model, x)
    out = list(randomized_copies(model, x, mode="cascading"))
    assert [label for label, _ in out] == LAYERS[::-1]
    for k, (_, copy_) in enumerate(out, start=1):
        assert _changed(model, copy_) == set(LAYERS[-k:])
        # buffers (BatchNorm running stats) are never re-drawn, and outputs stay finite
        for name, buf in model.named_buffers():
            assert torch.equal(buf, dict(copy_.named_buffers())[name])
        assert torch.isfinite(copy_(x)).all()
    # earlier copies are not changed by later ones
    assert _changed(model, out[0][1]) == {"fc"}
    assert compare_snapshots(before, snapshot(model, x)) == []


@pytest.mark.parametrize("init", ["gaussian", "reset"])
def test_independent_changes_one_layer_and_matches_cascade(init):
    model, x = tiny_cnn(2), _x(2)
    indep = dict(randomized_copies(model, x, mode="independent", init=init, seed=3))
    casc = dict(randomized_copies(model, x, mode="cascading", init=init, seed=3))
    for name in LAYERS:
        assert _changed(model, indep[name]) == {name}
        # a layer gets the same random values in both modes
        for pname, p in dict(indep[name].named_modules())[name].named_parameters():
            q = dict(casc[name].named_modules())[name].get_parameter(pname)
            assert torch.equal(p, q)


def test_seed_reproducible_and_global_rng_untouched():
    model, x = tiny_cnn(3), _x(3)
    for init in ("gaussian", "reset"):
        state = torch.get_rng_state()
        a = [m.state_dict() for _, m in randomized_copies(model, x, init=init, seed=5)]
        b = [m.state_dict() for _, m in randomized_copies(model, x, init=init, seed=5)]
        c = [m.state_dict() for _, m in randomized_copies(model, x, init=init, seed=6)]
        assert torch.equal(torch.get_rng_state(), state)
        for sa, sb, sc in zip(a, b, c):
            assert all(torch.equal(sa[k], sb[k]) for k in sa)
            assert not all(torch.equal(sa[k], sc[k]) for k in sa)


def test_gaussian_matches_std_and_bn_reset():
    model = tiny_cnn(2, width=32)
    x = _x(2)
    (_, conv2_copy), *_ = randomized_copies(model, x, mode="independent", layers=["features.conv2"])
    w0, w1 = model.features.conv2.weight, conv2_copy.features.conv2.weight
    assert w1.std().item() == pytest.approx(w0.std().item(), rel=0.1)
    assert abs(w1.mean().item()) < 0.1 * w0.std().item()
    (_, bn), *_ = randomized_copies(
        model, x, mode="independent", layers=["features.bn1"], init="reset"
    )
    assert torch.equal(bn.features.bn1.weight, torch.ones(32))
    assert torch.equal(bn.features.bn1.bias, torch.zeros(32))
    assert torch.equal(bn.features.bn1.running_var, model.features.bn1.running_var)


def test_select_layers():
    assert select_layers(LAYERS, None) == LAYERS
    assert select_layers(LAYERS, slice(-2, None)) == LAYERS[-2:]
    assert select_layers(LAYERS, range(1, 3)) == LAYERS[1:3]
    assert select_layers(LAYERS, ["fc", "features.conv1"]) == ["features.conv1", "fc"]
    assert select_layers(LAYERS, [0, -1]) == ["features.conv1", "fc"]
    with pytest.raises(LayerNotFoundError):
        select_layers(LAYERS, ["features.relu1"])
    with pytest.raises(LayerNotFoundError):
        select_layers(LAYERS, [9])
    with pytest.raises(ParameterError):
        next(randomized_copies(tiny_cnn(2), _x(2), mode="sideways"))
