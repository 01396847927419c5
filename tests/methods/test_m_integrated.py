"""IntegratedGradients: linear-model oracle, Captum agreement per rule, completeness, chunking."""

from __future__ import annotations

import math

import pytest
import torch
from _gradfam_models import LinearNet, Recorder, relu_net, seeded
from captum.attr import IntegratedGradients as CaptumIG
from conftest import make_input

import volsal
from volsal.errors import CompletenessWarning, InputShapeError, ParameterError
from volsal.methods._multipass import gaussian_blur
from volsal.methods.integrated import INTEGRATION_RULES, quadrature
from volsal.testing import assert_no_side_effects, tiny_cnn

RULES = list(INTEGRATION_RULES)


@pytest.mark.parametrize("rule", RULES)
@pytest.mark.parametrize("n_steps", [2, 5])
def test_linear_model_is_w_times_x_minus_baseline(spatial_dims, rule, n_steps):
    x = make_input(spatial_dims, channels=2, size=4, dtype=torch.float64)
    model = seeded(LinearNet(tuple(x.shape[1:])))
    baseline = make_input(spatial_dims, channels=2, size=4, seed=5, dtype=torch.float64)[0]
    w = model.fc.weight[[2, 0]].reshape(x.shape)
    got = volsal.IntegratedGradients(model, baseline=baseline, n_steps=n_steps, method=rule)
    torch.testing.assert_close(got(x, [2, 0]), w * (x - baseline))


@pytest.mark.parametrize("rule", RULES)
def test_quadrature_weights_sum_to_one(rule):
    for n in (2, 3, 10):
        alphas, weights = quadrature(rule, n)
        assert math.isclose(sum(weights), 1.0, rel_tol=1e-12)
        assert all(0 <= a <= 1 for a in alphas) and len(alphas) == n


@pytest.mark.parametrize("rule", RULES)
def test_matches_captum(spatial_dims, rule):
    model = tiny_cnn(spatial_dims, in_channels=2, dtype=torch.float64)
    x = make_input(spatial_dims, channels=2, batch=3, dtype=torch.float64)
    baseline = 0.25 * make_input(spatial_dims, channels=2, batch=3, seed=4, dtype=torch.float64)
    n = 7
    ref = CaptumIG(model).attribute(
        x, baselines=baseline, target=[0, 2, 1], n_steps=n, method=rule, internal_batch_size=5
    )
    if rule == "riemann_trapezoid":
        ref = ref * n / (n - 1)  # Captum's trapezoid weights are 1/n (sum (n-1)/n): documented
    got = volsal.IntegratedGradients(model, baseline=baseline, n_steps=n, method=rule)
    # Captum rounds alphas and step sizes to float32: agreement to ~1e-7 relative
    torch.testing.assert_close(got(x, [0, 2, 1]), ref, rtol=1e-6, atol=1e-9)


def test_completeness_gap_is_reported_and_shrinks():
    model = relu_net(3, "module")
    x = make_input(3, dtype=torch.float64)
    gaps = []
    for n in (4, 16, 128):
        exp = volsal.IntegratedGradients(model, n_steps=n, method="riemann_trapezoid").explain(x, 1)
        f_x = model(x)[:, 1]
        f_0 = model(torch.zeros_like(x))[:, 1]
        by_hand = exp.maps.flatten(1).sum(1) - (f_x - f_0)
        torch.testing.assert_close(exp.extras["completeness_gap"], by_hand.detach())
        torch.testing.assert_close(exp.extras["baseline_scores"], f_0.detach())
        gaps.append(exp.extras["completeness_gap"].abs().max().item())
    assert gaps[0] > gaps[1] > gaps[2] and gaps[2] < 0.05 * gaps[0]


def test_completeness_warning_only_when_asked():
    model = relu_net(2, "module")
    x = make_input(2, dtype=torch.float64)
    with pytest.warns(CompletenessWarning, match="n_steps"):
        volsal.IntegratedGradients(
            model, n_steps=2, method="riemann_left", check_completeness=True, completeness_tol=1e-6
        )(x, 0)
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        volsal.IntegratedGradients(model, n_steps=2, method="riemann_left")(x, 0)
        lin = seeded(LinearNet((1, 8, 8)))
        volsal.IntegratedGradients(lin, n_steps=3, check_completeness=True)(x, 0)


def test_batch_size_does_not_change_result_and_bounds_the_passes():
    inner = tiny_cnn(3, dtype=torch.float64)
    x = make_input(3, batch=3, dtype=torch.float64)
    results = []
    for bs in (1, 4, 100):
        model = Recorder(inner)
        results.append(volsal.IntegratedGradients(model, n_steps=5, batch_size=bs)(x, [0, 1, 2]))
        grad_passes = [b for b, grad in model.calls if grad]
        assert max(grad_passes) <= bs and sum(grad_passes) == 5 * 3
    for r in results[1:]:
        torch.testing.assert_close(r, results[0], rtol=1e-12, atol=1e-14)


def test_batch_equals_per_sample_with_blur_baseline(spatial_dims):
    model = tiny_cnn(spatial_dims, dtype=torch.float64)
    x = make_input(spatial_dims, batch=3, dtype=torch.float64)
    ig = volsal.IntegratedGradients(model, baseline="blur", blur_sigma=1.5, n_steps=6, batch_size=4)
    full = ig(x, None)
    for i in range(3):
        torch.testing.assert_close(full[i : i + 1], ig(x[i : i + 1], None))
    explicit = volsal.IntegratedGradients(model, baseline=gaussian_blur(x, 1.5), n_steps=6)
    torch.testing.assert_close(full, explicit(x, None))


def test_gaussian_blur_properties():
    x = torch.full((1, 2, 6, 7, 5), 3.0, dtype=torch.float64)
    torch.testing.assert_close(gaussian_blur(x, 2.0), x)  # constant stays constant
    d = torch.zeros(1, 1, 15, 15, dtype=torch.float64)
    d[0, 0, 7, 7] = 1
    b = gaussian_blur(d, (1.0, 2.0))
    assert math.isclose(b.sum().item(), 1.0, rel_tol=1e-9)
    torch.testing.assert_close(b, b.flip(-1).flip(-2))
    assert b[0, 0, 7, 9] > b[0, 0, 9, 7]  # wider along the second axis


def test_exception_inside_a_chunk_leaves_no_trace():
    inner = tiny_cnn(3, inplace=True)
    for fail_at in (2, 3):  # the first path chunk, a later path chunk
        model = Recorder(inner, fail_at=fail_at).train()
        x = make_input(3)
        ig = volsal.IntegratedGradients(model, n_steps=4, batch_size=3)
        assert_no_side_effects(lambda ig=ig, x=x: ig(x, 1), model, x, raises=RuntimeError)


@pytest.mark.parametrize(
    "kwargs, error, fragment",
    [
        (dict(n_steps=0), ParameterError, "n_steps >= 1"),
        (dict(n_steps=1, method="trapezoid"), ParameterError, "n_steps=2"),
        (dict(method="simpson"), ParameterError, "gausslegendre"),
        (dict(batch_size=0), ParameterError, "batch_size"),
        (dict(baseline="black"), ParameterError, "baseline=0.0"),
    ],
)
def test_bad_options(kwargs, error, fragment):
    with pytest.raises(error, match=fragment):
        volsal.IntegratedGradients(tiny_cnn(2), **kwargs)


def test_wrong_baseline_shape_names_the_fix():
    model = tiny_cnn(3)
    x = make_input(3)
    ig = volsal.IntegratedGradients(model, baseline=torch.zeros(3, 1, 8, 8, 8), n_steps=2)
    assert_no_side_effects(lambda: ig(x, 0), model, x, raises=InputShapeError)
    with pytest.raises(InputShapeError, match=r"Fix: pass a tensor of shape \(2, 1, 8, 8, 8\)"):
        ig(x, 0)
