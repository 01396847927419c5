"""Occlusion: linear-model oracle, Captum agreement, fills, masks, edges, chunking, bad input."""

from __future__ import annotations

import pytest
import torch
from _gradfam_models import LinearNet, Recorder, seeded
from captum.attr import Occlusion as CaptumOcclusion
from conftest import make_input

import volsal
from volsal.errors import InputShapeError, ParameterError
from volsal.methods._multipass import gaussian_blur
from volsal.methods.occlusion import window_starts
from volsal.testing import assert_no_side_effects, tiny_cnn


def test_linear_model_zero_fill_nonoverlapping_windows(spatial_dims):
    x = make_input(spatial_dims, channels=2, size=6, dtype=torch.float64)
    model = seeded(LinearNet(tuple(x.shape[1:]), bias=True))
    got = volsal.Occlusion(model, window=3, fill=0.0)(x, [1, 2])
    contrib = (model.fc.weight[[1, 2]].reshape(x.shape) * x).sum(1, keepdim=True)  # (B,1,...)
    # each voxel: the sum of w*x over its 3^k window (sum-pool then repeat)
    pool = torch.nn.functional.avg_pool2d if spatial_dims == 2 else torch.nn.functional.avg_pool3d
    win_sum = pool(contrib, 3) * 3**spatial_dims
    expected = win_sum
    for axis in range(2, 2 + spatial_dims):
        expected = expected.repeat_interleave(3, dim=axis)
    torch.testing.assert_close(got, expected)


def test_matches_captum_on_a_window_aligned_grid(spatial_dims):
    model = tiny_cnn(spatial_dims, in_channels=2, dtype=torch.float64)
    x = make_input(spatial_dims, channels=2, batch=2, dtype=torch.float64)
    k = spatial_dims
    ref = CaptumOcclusion(model).attribute(
        x,
        sliding_window_shapes=(2,) + (4,) * k,
        strides=(1,) + (2,) * k,
        baselines=0.0,
        target=[2, 1],
        perturbations_per_eval=3,
    )
    got = volsal.Occlusion(model, window=4, stride=2, batch_size=5)(x, [2, 1])
    assert got.shape == (2, 1) + tuple(x.shape[2:])
    # Captum divides by the window counts in float32 (`.float()`): compare in float32
    torch.testing.assert_close(got.expand_as(ref).float(), ref)


def test_window_starts_cover_edges():
    assert window_starts(8, 4, 2) == [0, 2, 4]  # aligned: nothing added
    assert window_starts(10, 4, 4) == [0, 4, 6]  # end-aligned extra window
    assert window_starts(5, 5, 1) == [0]


def test_unaligned_grid_covers_every_voxel_with_full_windows():
    model = tiny_cnn(3, dtype=torch.float64)
    x = make_input(3, size=10, dtype=torch.float64)
    exp = volsal.Occlusion(model, window=4, stride=4).explain(x, 0)
    assert bool((exp.extras["coverage"] > 0).all()) and exp.extras["n_windows"] == 27


@pytest.mark.parametrize("fill", ["mean", "blur", "tensor"])
def test_fills_equal_explicit_tensor_fill(fill):
    model = tiny_cnn(2, in_channels=2, dtype=torch.float64)
    x = make_input(2, channels=2, dtype=torch.float64)
    if fill == "mean":
        explicit = x.mean(dim=(2, 3), keepdim=True)
    elif fill == "blur":
        explicit = gaussian_blur(x, 1.0)
    else:
        explicit = torch.tensor([0.5, -1.0], dtype=torch.float64).view(2, 1, 1)
    spec = explicit if fill == "tensor" else fill
    got = volsal.Occlusion(model, window=4, stride=2, fill=spec, blur_sigma=1.0)(x, 1)
    ref = volsal.Occlusion(model, window=4, stride=2, fill=explicit)(x, 1)
    torch.testing.assert_close(got, ref)
    assert not torch.allclose(got, volsal.Occlusion(model, window=4, stride=2)(x, 1))


def test_mask_restricts_windows():
    inner = tiny_cnn(3, dtype=torch.float64)
    x = make_input(3, dtype=torch.float64)
    mask = torch.zeros(8, 8, 8, dtype=torch.bool)
    mask[:3, :3, :3] = True  # touches only the corner window of a 4^3 grid
    model = Recorder(inner)
    exp = volsal.Occlusion(model, window=4, mask=mask, batch_size=100).explain(x, 0)
    assert model.calls == [(2, False), (2, False)]  # clean pass + 1 window x 2 samples
    full = volsal.Occlusion(inner, window=4)(x, 0)
    torch.testing.assert_close(exp.maps[..., :4, :4, :4], full[..., :4, :4, :4])
    assert exp.maps[..., 4:, :, :].abs().sum() == 0 and exp.extras["coverage"].sum() == 2 * 64


def test_no_grad_batched_and_batch_size_invariant():
    inner = tiny_cnn(2, dtype=torch.float64)
    x = make_input(2, batch=3, dtype=torch.float64)
    results = []
    for bs in (1, 7, 1000):
        model = Recorder(inner)
        results.append(volsal.Occlusion(model, window=4, stride=2, batch_size=bs)(x, [0, 1, 2]))
        assert not any(grad for _, grad in model.calls)
        assert max(b for b, _ in model.calls[1:]) <= bs
        assert sum(b for b, _ in model.calls[1:]) == 3 * 9
    for r in results[1:]:
        torch.testing.assert_close(r, results[0], rtol=1e-12, atol=1e-15)
    occ = volsal.Occlusion(inner, window=4, stride=2)
    for i in range(3):
        torch.testing.assert_close(occ(x[i : i + 1], i), results[0][i : i + 1])


def test_exception_inside_a_chunk_leaves_no_trace():
    inner = tiny_cnn(3, inplace=True)
    for fail_at in (2, 3):
        model = Recorder(inner, fail_at=fail_at).train()
        x = make_input(3)
        occ = volsal.Occlusion(model, window=4, batch_size=3)
        assert_no_side_effects(lambda occ=occ, x=x: occ(x, 1), model, x, raises=RuntimeError)


@pytest.mark.parametrize(
    "kwargs, error, fragment",
    [
        (dict(window=16), ParameterError, "at most (8, 8, 8)"),
        (dict(window=4, stride=0), ParameterError, "stride=8"),
        (dict(window=0), ParameterError, "window=8"),
        (dict(window=(4, 4)), ParameterError, "3 spatial axes"),
        (dict(window=4, mask=torch.ones(7, 8, 8)), InputShapeError, "resample"),
        (dict(window=4, fill=torch.zeros(3, 8, 8, 8)), InputShapeError, "Fix"),
        (dict(window=4, fill="noise"), ParameterError, "'mean' or 'blur'"),
        (dict(window=4, batch_size=0), ParameterError, "batch_size"),
    ],
)
def test_bad_input(kwargs, error, fragment):
    model = tiny_cnn(3)
    x = make_input(3)
    with pytest.raises(error, match=fragment.replace("(", r"\(").replace(")", r"\)")):
        volsal.Occlusion(model, **kwargs)(x, 0)
