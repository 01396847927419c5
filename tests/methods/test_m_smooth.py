"""SmoothGrad over any method: identities, Captum NoiseTunnel with the same noise, robust noise."""

from __future__ import annotations

import pytest
import torch
from _gradfam_models import Recorder
from captum.attr import NoiseTunnel, Saliency
from conftest import make_input

import volsal
from volsal.errors import ParameterError
from volsal.methods.smooth import noise_draws, robust_range
from volsal.testing import assert_no_side_effects, tiny_cnn


@pytest.mark.parametrize(
    "make",
    [
        lambda m: volsal.Gradient(m),
        lambda m: volsal.GuidedBackprop(m),
        lambda m: volsal.IntegratedGradients(m, n_steps=3),
        lambda m: volsal.GradCAM(m, layer="features", relu=False),
    ],
    ids=["gradient", "guided", "ig", "gradcam"],
)
def test_one_sample_no_noise_equals_wrapped(spatial_dims, make):
    model = tiny_cnn(spatial_dims, dtype=torch.float64)
    x = make_input(spatial_dims, dtype=torch.float64)
    inner = make(model)
    sg = volsal.SmoothGrad(inner, n_samples=1, noise_level=0.0)
    got = sg(x, [1, 2])
    torch.testing.assert_close(got, inner(x, [1, 2]), rtol=0, atol=0)
    assert sg.kind == inner.kind


def test_same_seed_same_result_other_seed_differs_global_rng_untouched():
    model = tiny_cnn(3)
    x = make_input(3)
    a = assert_no_side_effects(
        lambda: volsal.SmoothGrad(model, n_samples=4, seed=7)(x, 0), model, x
    )
    b = volsal.SmoothGrad(model, n_samples=4, seed=7)(x, 0)
    c = volsal.SmoothGrad(model, n_samples=4, seed=8)(x, 0)
    torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert not torch.allclose(a, c)


@pytest.mark.parametrize(
    "variant, nt_type",
    [("mean", "smoothgrad"), ("squared", "smoothgrad_sq"), ("vargrad", "vargrad")],
)
def test_matches_captum_noise_tunnel_with_the_same_noise(
    spatial_dims, variant, nt_type, monkeypatch
):
    model = tiny_cnn(spatial_dims, in_channels=2, dtype=torch.float64)
    x = make_input(spatial_dims, channels=2, batch=2, dtype=torch.float64)
    n, sigma, seed = 5, 0.3, 11
    got = volsal.SmoothGrad(
        volsal.Gradient(model),
        n_samples=n,
        noise_level=sigma,
        noise="absolute",
        variant=variant,
        seed=seed,
        batch_size=3,
    )(x, [2, 0])
    eps = noise_draws(tuple(x.shape[1:]), n, seed, dtype=torch.float64)
    # Captum's copies are x.repeat_interleave(n): copy b*n + j gets our draw j of sample b
    fed = (sigma * eps).repeat(x.shape[0], *([1] * (x.ndim - 1)))

    def same_noise(mean, std, *args, **kwargs):
        assert std.shape == fed.shape and torch.all(std == sigma)
        return fed.clone()

    monkeypatch.setattr(torch, "normal", same_noise)
    ref = NoiseTunnel(Saliency(model)).attribute(
        x, nt_type=nt_type, nt_samples=n, stdevs=sigma, target=[2, 0], abs=False
    )
    torch.testing.assert_close(got, ref)


def test_relative_noise_uses_the_robust_range_and_ignores_outliers():
    x = make_input(3, batch=2, size=8, dtype=torch.float64)
    spiked = x.clone()
    spiked[0, 0, 1, 2, 3] = 1e6  # metal in CT
    rr, rs = robust_range(x), robust_range(spiked)
    assert abs(rs[0] - rr[0]) < 0.05 * rr[0] and rs[1] == rr[1]
    full = spiked.flatten(1).amax(1) - spiked.flatten(1).amin(1)
    assert full[0] > 1e5 * rs[0]
    q = torch.quantile(x.flatten(1), torch.tensor([0.01, 0.99], dtype=x.dtype), dim=1)
    torch.testing.assert_close(rr, q[1] - q[0])
    model = tiny_cnn(3, dtype=torch.float64)
    exp = volsal.SmoothGrad(model, n_samples=2, noise_level=0.2).explain(spiked, 0)
    torch.testing.assert_close(exp.extras["sigma"], 0.2 * rs)


def test_written_out_average_over_our_noisy_copies(spatial_dims):
    model = tiny_cnn(spatial_dims, dtype=torch.float64)
    x = make_input(spatial_dims, batch=2, dtype=torch.float64)
    n = 4
    cam = volsal.GradCAM(model, layer="features")
    exp = volsal.SmoothGrad(cam, n_samples=n, noise_level=0.1, seed=3, batch_size=3).explain(
        x, None
    )
    sigma = exp.extras["sigma"]
    eps = noise_draws(tuple(x.shape[1:]), n, 3, dtype=torch.float64)
    classes = model(x).argmax(1)  # the target is fixed on the clean input
    shape = (-1,) + (1,) * (x.ndim - 1)
    ref = sum(cam(x + sigma.reshape(shape) * eps[j], classes) for j in range(n)) / n
    torch.testing.assert_close(exp.maps, ref)
    assert exp.maps.shape == (2, 1) + tuple(x.shape[2:]) and exp.layer == "features"


def test_batch_size_and_batch_composition_do_not_change_results():
    inner = tiny_cnn(2, dtype=torch.float64)
    x = make_input(2, batch=3, dtype=torch.float64) * torch.tensor([1.0, 5.0, 0.2]).view(3, 1, 1, 1)
    results = []
    for bs in (1, 4, 50):
        model = Recorder(inner)
        sg = volsal.SmoothGrad(
            volsal.Gradient(model), n_samples=5, batch_size=bs, variant="vargrad"
        )
        results.append(sg(x, [0, 1, 2]))
        grad_passes = [b for b, grad in model.calls if grad]
        assert max(grad_passes) <= bs and sum(grad_passes) == 15
    for r in results[1:]:
        torch.testing.assert_close(r, results[0], rtol=1e-10, atol=1e-14)
    sg = volsal.SmoothGrad(inner, n_samples=5, variant="vargrad")
    for i in range(3):
        torch.testing.assert_close(sg(x[i : i + 1], i), results[0][i : i + 1])


def test_with_model_rebinds_the_wrapped_method():
    a, b = tiny_cnn(2, seed=0), tiny_cnn(2, seed=1)
    x = make_input(2)
    sg = volsal.SmoothGrad(volsal.GuidedBackprop(a), n_samples=2)
    sg2 = sg.with_model(b)
    assert sg2.model is b and sg2.method.model is b and sg.method.model is a
    torch.testing.assert_close(
        sg2(x, 0), volsal.SmoothGrad(volsal.GuidedBackprop(b), n_samples=2)(x, 0)
    )
    meta = sg.explain(x, 0).metadata()
    assert meta["options"]["method"] == "guided_backprop" and meta["options"]["n_samples"] == 2


def test_exception_inside_a_chunk_leaves_no_trace():
    inner = tiny_cnn(3, inplace=True)
    for fail_at in (2, 3):
        model = Recorder(inner, fail_at=fail_at).train()
        x = make_input(3)
        sg = volsal.SmoothGrad(volsal.GuidedBackprop(model), n_samples=3, batch_size=2)
        assert_no_side_effects(lambda sg=sg, x=x: sg(x, 1), model, x, raises=RuntimeError)


@pytest.mark.parametrize(
    "kwargs, fragment",
    [
        (dict(n_samples=0), "n_samples >= 1"),
        (dict(noise_level=-0.1), "noise_level=0.15"),
        (dict(noise_level=float("nan")), "finite"),
        (dict(noise="gaussian"), "relative"),
        (dict(variant="median"), "vargrad"),
        (dict(batch_size=0), "batch_size"),
    ],
)
def test_bad_options(kwargs, fragment):
    with pytest.raises(ParameterError, match=fragment):
        volsal.SmoothGrad(tiny_cnn(2), **kwargs)


def test_class_instead_of_instance():
    with pytest.raises(ParameterError, match=r"SmoothGrad\(Gradient\(model\)"):
        volsal.SmoothGrad(volsal.Gradient)
