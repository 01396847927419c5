"""Agreement with Captum on a real MONAI network: 3D ResNet-18 (reused in-place ReLUs), 16^3."""

from __future__ import annotations

import pytest
import torch
from _gradfam_models import monai_resnet18
from captum.attr import (
    Deconvolution,
    GuidedBackprop,
    InputXGradient,
    IntegratedGradients,
    NoiseTunnel,
    Occlusion,
    Saliency,
)

import volsal
from volsal.methods.smooth import noise_draws


@pytest.fixture(scope="module")
def model_x():
    gen = torch.Generator().manual_seed(1)
    return monai_resnet18(), torch.randn(1, 1, 16, 16, 16, generator=gen, dtype=torch.float64)


def _leaf(x):
    return x.clone().requires_grad_(True)


def test_single_pass_methods(model_x):
    model, x = model_x
    pairs = [
        (volsal.Gradient(model), lambda: Saliency(model).attribute(_leaf(x), target=1, abs=False)),
        (volsal.InputXGradient(model), lambda: InputXGradient(model).attribute(_leaf(x), target=1)),
        (volsal.GuidedBackprop(model), lambda: GuidedBackprop(model).attribute(_leaf(x), target=1)),
        (volsal.Deconvnet(model), lambda: Deconvolution(model).attribute(_leaf(x), target=1)),
    ]
    for ours, theirs in pairs:
        got = ours(x, 1)
        torch.testing.assert_close(got, theirs())
        assert got.abs().max() > 0
    assert volsal.GuidedBackprop(model).explain(x, 1).extras["relu_calls"] == 17


def test_integrated_gradients(model_x):
    model, x = model_x
    ref = IntegratedGradients(model).attribute(
        x, target=0, n_steps=4, method="riemann_middle", internal_batch_size=2
    )
    got = volsal.IntegratedGradients(model, n_steps=4, method="riemann_middle", batch_size=2)
    torch.testing.assert_close(got(x, 0), ref, rtol=1e-6, atol=1e-10)


def test_noise_tunnel_same_noise(model_x, monkeypatch):
    model, x = model_x
    n, sigma = 3, 0.2
    got = volsal.SmoothGrad(model, n_samples=n, noise_level=sigma, noise="absolute", seed=5)(x, 1)
    fed = sigma * noise_draws(tuple(x.shape[1:]), n, 5, dtype=torch.float64)
    monkeypatch.setattr(torch, "normal", lambda mean, std, *a, **k: fed.clone())
    ref = NoiseTunnel(Saliency(model)).attribute(
        x, nt_type="smoothgrad", nt_samples=n, stdevs=sigma, target=1, abs=False
    )
    torch.testing.assert_close(got, ref)


def test_occlusion(model_x):
    model, x = model_x
    ref = Occlusion(model).attribute(
        x,
        sliding_window_shapes=(1, 8, 8, 8),
        strides=(1, 8, 8, 8),
        target=1,
        perturbations_per_eval=4,
    )
    got = volsal.Occlusion(model, window=8, batch_size=4)(x, 1)
    torch.testing.assert_close(got.float(), ref)
