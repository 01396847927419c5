"""Deletion / insertion curves: exact values on a linear model, batching, side effects."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from volsal.errors import InputShapeError, ParameterError
from volsal.metrics import deletion_auc, deletion_curve, insertion_auc, insertion_curve
from volsal.testing import assert_no_side_effects, tiny_cnn


class Linear(nn.Module):
    """f(x) = [sum(w * x), -sum(w * x)] (two logits), float64."""

    def __init__(self, w: torch.Tensor):
        super().__init__()
        self.w = nn.Parameter(w)

    def forward(self, x):
        s = (self.w * x).flatten(1).sum(1)
        return torch.stack([s, -s], 1)


def _linear_case(spatial_dims: int):
    # contributions w * x = 1..N in a shuffled layout, N = 4 (2D, 2x2) or 8 (3D, 2x2x2)
    n = 2**spatial_dims
    contrib = torch.randperm(n, generator=torch.Generator().manual_seed(1)).double() + 1
    shape = (1, 1) + (2,) * spatial_dims
    x = torch.full(shape, 2.0, dtype=torch.float64)
    w = (contrib / 2).reshape(shape[1:])
    return Linear(w), x, (w * x), contrib


@pytest.mark.parametrize("spatial_dims", [2, 3])
def test_deletion_auc_exact_on_linear_model(spatial_dims):
    model, x, attr, contrib = _linear_case(spatial_dims)
    n = contrib.numel()
    total = float(contrib.sum())
    # perfect order: remove n, n-1, ... ; steps = 4 fractions
    desc = sorted(contrib.tolist(), reverse=True)
    per_step = n // 4
    expected_scores = [total - sum(desc[: k * per_step]) for k in range(5)]
    fractions, scores = deletion_curve(model, x, attr, 0, steps=4, batch_size=3)
    torch.testing.assert_close(
        fractions, torch.tensor([0, 0.25, 0.5, 0.75, 1], dtype=torch.float64)
    )
    torch.testing.assert_close(scores[0], torch.tensor(expected_scores, dtype=torch.float64))
    # trapezoid by hand
    auc = 0.25 * (expected_scores[0] / 2 + sum(expected_scores[1:4]) + expected_scores[4] / 2)
    if spatial_dims == 2:  # contributions 4, 3, 2, 1: scores 10, 6, 3, 1, 0 -> 3.75
        assert auc == 3.75
    else:  # 8 voxels, 2 per step: scores 36, 21, 10, 3, 0 -> 13.0
        assert auc == 13.0
    assert deletion_auc(model, x, attr, 0, steps=4).item() == pytest.approx(auc, abs=1e-12)
    # the reversed map is the worst order: larger AUC
    assert deletion_auc(model, x, -attr, 0, steps=4).item() > auc
    # insertion of the perfect order: scores 0, 7, 18, 26 (... ) -> by hand from the top
    ins = [sum(desc[: k * per_step]) for k in range(5)]
    _, iscores = insertion_curve(model, x, attr, 0, steps=4)
    torch.testing.assert_close(iscores[0], torch.tensor(ins, dtype=torch.float64))
    auc_i = 0.25 * (ins[0] / 2 + sum(ins[1:4]) + ins[4] / 2)
    assert insertion_auc(model, x, attr, 0, steps=4).item() == pytest.approx(auc_i, abs=1e-12)


def test_baselines_tensor_and_blur():
    model, x, attr, contrib = _linear_case(2)
    base = torch.full_like(x, 1.0)  # halves every contribution when a voxel is removed
    _, s = deletion_curve(model, x, attr, 0, steps=4, baseline=base)
    desc = sorted(contrib.tolist(), reverse=True)
    expected = [10 - sum(desc[:k]) / 2 for k in range(5)]
    torch.testing.assert_close(s[0], torch.tensor(expected, dtype=torch.float64))
    _, s_float = deletion_curve(model, x, attr, 0, steps=4, baseline=1.0)
    torch.testing.assert_close(s_float, s)
    # a constant image is its own blur: the blur baseline changes nothing
    _, s_blur = deletion_curve(model, x, attr, 0, steps=4, baseline="blur")
    torch.testing.assert_close(s_blur[0], torch.full((5,), 10.0, dtype=torch.float64))
    with pytest.raises(ParameterError):
        deletion_curve(model, x, attr, 0, baseline="mean")
    with pytest.raises(InputShapeError):
        deletion_curve(model, x, attr, 0, baseline=torch.zeros(3, 3))


@pytest.mark.parametrize("spatial_dims", [2, 3])
def test_batching_target_forms_and_no_side_effects(spatial_dims):
    model = tiny_cnn(spatial_dims, dtype=torch.float64).train()  # flags must be restored
    x = torch.randn((3, 1) + (8,) * spatial_dims, dtype=torch.float64)
    attr = torch.randn_like(x)
    target = [0, 2, 1]
    ref = assert_no_side_effects(
        lambda: deletion_curve(model, x, attr, target, steps=5, batch_size=1), model, x
    )[1]
    for bs in (4, 64):
        torch.testing.assert_close(
            deletion_curve(model, x, attr, target, steps=5, batch_size=bs)[1], ref
        )
    # one sample at a time gives the same rows (samples do not mix in eval mode)
    for i in range(3):
        row = deletion_curve(model, x[i : i + 1], attr[i : i + 1], target[i], steps=5)[1]
        torch.testing.assert_close(row[0], ref[i])
    # a callable target and a tensor target agree with the class list
    tt = torch.tensor(target)
    torch.testing.assert_close(
        deletion_curve(model, x, attr, lambda out: out[:, 1], steps=5, batch_size=4)[1],
        deletion_curve(model, x, attr, 1, steps=5)[1],
    )
    torch.testing.assert_close(deletion_curve(model, x, attr, tt, steps=5)[1], ref)
    # target=None fixes the class predicted for x at every step
    pred = model.eval()(x).argmax(1)
    torch.testing.assert_close(
        deletion_curve(model, x, attr, None, steps=5)[1],
        deletion_curve(model, x, attr, pred, steps=5)[1],
    )
    # first deletion step and last insertion step are the unperturbed scores
    logits = model(x).detach()
    torch.testing.assert_close(ref[:, 0], logits.gather(1, tt[:, None])[:, 0])
    _, ins = insertion_curve(model, x, attr, target, steps=5, softmax=True)
    torch.testing.assert_close(ins[:, -1], logits.softmax(1).gather(1, tt[:, None])[:, 0])


def test_bad_arguments():
    model, x, attr, _ = _linear_case(2)
    with pytest.raises(ParameterError):
        deletion_curve(model, x, attr, 0, steps=0)
    with pytest.raises(ParameterError):
        deletion_curve(model, x, attr, 0, batch_size=0)
    with pytest.raises(InputShapeError, match="resize"):
        deletion_curve(model, x, attr[..., :1], 0)
