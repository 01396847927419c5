"""InputXGradient: x * plain autograd gradient, Captum agreement, batch semantics."""

from __future__ import annotations

import torch
from captum.attr import InputXGradient as CaptumIXG
from conftest import make_input

import volsal
from volsal.testing import assert_no_side_effects, tiny_cnn


def test_equals_input_times_autograd(spatial_dims):
    model = tiny_cnn(spatial_dims, dtype=torch.float64)
    x = make_input(spatial_dims, dtype=torch.float64)
    xr = x.clone().requires_grad_(True)
    (g,) = torch.autograd.grad(model(xr)[[0, 1], [1, 2]].sum(), xr)
    torch.testing.assert_close(volsal.InputXGradient(model)(x, [1, 2]), x * g)


def test_matches_captum(spatial_dims):
    model = tiny_cnn(spatial_dims, in_channels=2, dtype=torch.float64)
    x = make_input(spatial_dims, channels=2, batch=3, dtype=torch.float64)
    ref = CaptumIXG(model).attribute(x.clone().requires_grad_(True), target=[2, 0, 1])
    torch.testing.assert_close(volsal.InputXGradient(model)(x, [2, 0, 1]), ref)


def test_no_side_effects_and_no_accumulation():
    model = tiny_cnn(3, inplace=True)
    x = make_input(3).requires_grad_(True)
    m = volsal.InputXGradient(model)
    a = assert_no_side_effects(lambda: m(x, 0), model, x)
    torch.testing.assert_close(a, m(x, 0))
    assert x.grad is None
