from __future__ import annotations

import pytest
import torch
from conftest import make_input
from torch import nn

import volsal
from volsal.errors import LayerNotCalledError, LayerNotFoundError, OutputShapeError, TargetError
from volsal.targets import BinaryTarget, RegionTarget, resolve_target
from volsal.testing import assert_no_side_effects, tiny_cnn


def test_int_sequence_tensor_none_callable():
    out = torch.tensor([[0.0, 2.0, 1.0], [3.0, -1.0, 0.5]])
    assert resolve_target(1, out).scores.tolist() == [2.0, -1.0]
    assert resolve_target([2, 0], out).scores.tolist() == [1.0, 3.0]
    assert resolve_target(torch.tensor([0, 1]), out).scores.tolist() == [0.0, -1.0]
    rt = resolve_target(None, out)
    assert rt.classes.tolist() == [1, 0] and rt.scores.tolist() == [2.0, 3.0]
    assert resolve_target(lambda o: o[:, 2] * 2, out).scores.tolist() == [2.0, 1.0]


@pytest.mark.parametrize(
    "target, fragment",
    [
        (3, "out of range"),
        ([0], "one per sample"),
        ([0, 1, 2], "one per sample"),
        (torch.tensor([0.0, 1.0]), "integers"),
        (True, "bool"),
        (lambda o: o, "one score per sample"),
        (lambda o: o[:, 0] * float("nan"), "not finite"),
    ],
)
def test_target_errors(target, fragment):
    out = torch.randn(2, 3)
    with pytest.raises(TargetError, match=fragment):
        resolve_target(target, out)


def test_binary_single_logit():
    out = torch.tensor([[1.5], [-2.0]])
    assert resolve_target(0, out).scores.tolist() == [1.5, -2.0]
    assert resolve_target(BinaryTarget(negative=True), out).scores.tolist() == [-1.5, 2.0]
    rt = resolve_target(None, out)  # predicted class, made positive
    assert rt.scores.tolist() == [1.5, 2.0] and rt.classes.tolist() == [1, 0]


def test_dense_output_needs_explicit_target():
    out = torch.randn(2, 3, 4, 4, 4)
    with pytest.raises(TargetError, match="RegionTarget"):
        resolve_target(None, out)
    with pytest.raises(TargetError, match="RegionTarget"):
        resolve_target(1, out)
    mask = torch.zeros(4, 4, 4, dtype=torch.bool)
    mask[1:3, 1:3, 1:3] = True
    got = resolve_target(RegionTarget(1, mask), out).scores
    torch.testing.assert_close(got, (out[:, 1] * mask).flatten(1).sum(1))
    pred = resolve_target(RegionTarget(2), out).scores
    torch.testing.assert_close(pred, (out[:, 2] * (out.argmax(1) == 2)).flatten(1).sum(1))


def test_output_without_class_axis():
    with pytest.raises(OutputShapeError, match="no class axis"):
        resolve_target(0, torch.randn(2))
    with pytest.raises(OutputShapeError, match="callable"):
        resolve_target(0, {"logits": torch.randn(2, 3)})


def test_unknown_layer_suggests_close_names():
    model = tiny_cnn(2)
    with pytest.raises(LayerNotFoundError, match="features.conv2") as exc:
        volsal.resolve_layer(model, "features.cnv2")
    assert isinstance(exc.value, LookupError)
    method = volsal.GradCAM(model, layer="feature")
    assert_no_side_effects(lambda: method(make_input(2), 0), model, raises=LayerNotFoundError)


class _Unused(nn.Module):
    def __init__(self):
        super().__init__()
        self.net = tiny_cnn(2)
        self.spare = nn.Conv2d(1, 1, 1)

    def forward(self, x):
        return self.net(x)


def test_layer_never_called():
    model = _Unused()
    with pytest.raises(LayerNotCalledError, match="never called"):
        volsal.GradCAM(model, layer="spare")(make_input(2), 0)


def test_auto_layer_probe():
    model = tiny_cnn(3)
    assert volsal.auto_layer(model, make_input(3)) == "features"


def test_layer_names_lists_modules():
    names = volsal.layer_names(tiny_cnn(2))
    assert "features.conv1" in names and "fc" in names and "" not in names


def test_model_rank_mismatch_says_add_batch_axis():
    model = tiny_cnn(3)
    with pytest.raises(volsal.InputShapeError, match=r"x\[None\]"):
        volsal.Gradient(model)(torch.randn(1, 8, 8, 8), 0)
