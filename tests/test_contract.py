"""Contract tests generated from the method registry: every method, 2D and 3D."""

from __future__ import annotations

import re

import pytest
import torch
from conftest import make_input
from torch import nn

import volsal
from volsal.errors import InputShapeError, InputValueError, TargetError
from volsal.methods import REGISTRY
from volsal.testing import assert_no_side_effects, tiny_cnn

NAMES = list(REGISTRY)


def _expected_shape(info, x):
    c = 1 if info.kind == "cam" else x.shape[1]
    return (x.shape[0], c) + tuple(x.shape[2:])


@pytest.fixture(params=NAMES)
def info(request):
    return REGISTRY[request.param]


def test_registry_is_populated():
    assert {"gradient", "gradcam"} <= set(NAMES)
    for info in REGISTRY.values():
        assert info.kind in ("input", "cam")
        assert info.reference, f"{info.name} has no paper reference"


def test_shape_dtype_device(info, spatial_dims):
    model = tiny_cnn(spatial_dims, in_channels=2)
    x = make_input(spatial_dims, channels=2)
    method = info.make_for_test(model)
    maps = method(x, target=1)
    assert maps.shape == _expected_shape(info, x)
    assert maps.dtype == x.dtype and maps.device == x.device
    assert torch.isfinite(maps).all()
    assert not maps.requires_grad


def test_float64(info, spatial_dims):
    model = tiny_cnn(spatial_dims, dtype=torch.float64)
    x = make_input(spatial_dims, dtype=torch.float64)
    assert info.make_for_test(model)(x, 0).dtype == torch.float64


def test_batch_independence(info, spatial_dims):
    if not info.batch_independent:
        pytest.skip(f"{info.name} declares itself batch-dependent (documented)")
    model = tiny_cnn(spatial_dims, dtype=torch.float64)
    x = make_input(spatial_dims, batch=3, dtype=torch.float64)
    method = info.make_for_test(model)
    targets = [0, 2, 1]
    full = method(x, target=targets)
    for i in range(3):
        one = method(x[i : i + 1], target=targets[i])
        torch.testing.assert_close(full[i : i + 1], one, rtol=1e-6, atol=1e-9)


def test_deterministic(info, spatial_dims):
    model = tiny_cnn(spatial_dims)
    x = make_input(spatial_dims)
    method = info.make_for_test(model)
    torch.testing.assert_close(method(x, 1), method(x, 1), rtol=0, atol=0)


def test_explain_metadata(info, spatial_dims):
    model = tiny_cnn(spatial_dims)
    x = make_input(spatial_dims)
    exp = info.make_for_test(model).explain(x, target=None)
    assert exp.method == info.name
    assert exp.scores.shape == (2,)
    expected = model(x).argmax(1)
    assert exp.classes is not None and torch.equal(exp.classes, expected)
    meta = exp.metadata()
    assert meta["method"] == info.name and len(meta["scores"]) == 2


@pytest.mark.parametrize("inplace", [False, True])
def test_no_side_effects_success(info, spatial_dims, inplace):
    model = tiny_cnn(spatial_dims, inplace=inplace)
    model.train()  # a model left in train mode must come back in train mode
    model.features.bn1.eval()  # mixed flags are restored per module
    handle = model.features.conv1.register_forward_hook(lambda m, i, o: None)
    model.fc.weight.grad = torch.ones_like(model.fc.weight)
    x = make_input(spatial_dims).requires_grad_(True)
    method = info.make_for_test(model)
    assert_no_side_effects(lambda: method(x, 1), model, x)
    handle.remove()


def test_no_side_effects_on_error(info, spatial_dims):
    model = tiny_cnn(spatial_dims, inplace=True).train()
    x = make_input(spatial_dims)
    method = info.make_for_test(model)
    assert_no_side_effects(lambda: method(x, 7), model, x, raises=TargetError)


class _Exploding(nn.Module):
    """Raises inside the forward pass after the CAM layer has run."""

    def __init__(self, inner):
        super().__init__()
        self.inner = inner

    def forward(self, x):
        self.inner.features(x)
        raise RuntimeError("boom")


def test_no_side_effects_model_raises(info, spatial_dims):
    inner = tiny_cnn(spatial_dims, inplace=True)
    model = _Exploding(inner).train()
    x = make_input(spatial_dims)
    method = info.make_for_test(inner).with_model(model)
    if info.kind == "cam" and hasattr(method, "layer"):  # occlusion: (B, 1) maps, no layer
        method = info.cls(model, layer="inner.features")
    assert_no_side_effects(lambda: method(x, 1), model, x, raises=RuntimeError)


def test_inplace_relu_same_map(info, spatial_dims):
    x = make_input(spatial_dims, dtype=torch.float64)
    a = info.make_for_test(tiny_cnn(spatial_dims, dtype=torch.float64))(x, 1)
    b = info.make_for_test(tiny_cnn(spatial_dims, dtype=torch.float64, inplace=True))(x, 1)
    torch.testing.assert_close(a, b)


@pytest.mark.parametrize(
    "bad, error, fragment",
    [
        (lambda x: x[0, 0], InputShapeError, "[None, None]"),
        (lambda x: x[0], InputShapeError, "batch"),
        (lambda x: x.long(), InputValueError, "floating"),
        (lambda x: x.masked_fill(x > 1, float("nan")), InputValueError, "NaN"),
    ],
    ids=["no-batch-no-channel", "no-batch", "integer", "nan"],
)
def test_bad_input(info, bad, error, fragment):
    spatial_dims = 3
    model = tiny_cnn(spatial_dims)
    x = bad(make_input(spatial_dims))
    method = info.make_for_test(model)
    assert_no_side_effects(lambda: method(x, 0), model, raises=error)
    with pytest.raises(error, match=re.escape(fragment)):
        method(x, 0)


@pytest.mark.parametrize(
    "target, fragment",
    [(3, "out of range"), ([0, 1, 2], "one per sample"), (-1, "out of range"), (0.5, "integers")],
)
def test_bad_target(info, target, fragment):
    model = tiny_cnn(2)
    x = make_input(2)
    with pytest.raises(TargetError, match=fragment):
        info.make_for_test(model)(x, target)


def test_with_model_rebinds(info):
    a, b = tiny_cnn(2, seed=0), tiny_cnn(2, seed=1)
    x = make_input(2)
    m = info.make_for_test(a)
    m2 = m.with_model(b)
    assert m2.model is b and m.model is a
    torch.testing.assert_close(m2(x, 0), info.make_for_test(b)(x, 0))


def test_top_level_exports(info):
    assert getattr(volsal, info.cls.__name__) is info.cls


def _set_model_mode(method, mode: str) -> None:
    """Set model_mode on a method and on the methods it wraps (SmoothGrad, GuidedGradCAM)."""
    method.model_mode = mode
    for value in vars(method).values():
        if isinstance(value, volsal.Attribution) and value is not method:
            _set_model_mode(value, mode)


@pytest.mark.parametrize("mode", ["train", "keep"])
def test_no_side_effects_train_mode_forward(info, spatial_dims, mode):
    """A train-mode forward pass updates BatchNorm running statistics: they must come back."""
    model = tiny_cnn(spatial_dims).train()
    x = make_input(spatial_dims)
    method = info.make_for_test(model)
    _set_model_mode(method, mode)
    assert_no_side_effects(lambda: method(x, 1), model, x)
