"""Localisation metrics against hand-computed values (2D and 3D)."""

from __future__ import annotations

import pytest
import torch
from scipy.stats import mannwhitneyu

from volsal.errors import DegenerateMapWarning, InputShapeError
from volsal.metrics import auprc, auroc, energy_in_mask, pointing_game, sparseness


def _mask(spatial_dims: int, size: int = 8) -> torch.Tensor:
    m = torch.zeros((2, 1) + (size,) * spatial_dims, dtype=torch.bool)
    m[(0, 0) + (slice(1, 4),) * spatial_dims] = True
    m[(1, 0) + (slice(4, 7),) * spatial_dims] = True
    return m


@pytest.mark.parametrize("spatial_dims", [2, 3])
def test_map_equal_to_mask_scores_one(spatial_dims):
    m = _mask(spatial_dims)
    attr = m.float()
    assert pointing_game(attr, m).tolist() == [True, True]
    torch.testing.assert_close(energy_in_mask(attr, m), torch.ones(2))
    torch.testing.assert_close(auroc(attr, m), torch.ones(2, dtype=torch.float64))
    torch.testing.assert_close(auprc(attr, m), torch.ones(2, dtype=torch.float64))


@pytest.mark.parametrize("spatial_dims", [2, 3])
def test_pointing_game_tolerance_is_euclidean(spatial_dims):
    size = 9
    m = torch.zeros((1,) + (size,) * spatial_dims, dtype=torch.bool)
    m[(0,) + (4,) * spatial_dims] = True
    attr = torch.zeros((1, 1) + (size,) * spatial_dims)
    # peak at distance 2 along the first axis
    attr[(0, 0, 6) + (4,) * (spatial_dims - 1)] = 1.0
    assert pointing_game(attr, m, tolerance=0).tolist() == [False]
    assert pointing_game(attr, m, tolerance=1).tolist() == [False]
    assert pointing_game(attr, m, tolerance=2).tolist() == [True]
    # diagonal neighbour: distance sqrt(k) > 1
    attr.zero_()
    attr[(0, 0) + (5,) * spatial_dims] = 1.0
    assert pointing_game(attr, m, tolerance=1).tolist() == [False]
    assert pointing_game(attr, m, tolerance=spatial_dims**0.5 + 1e-6).tolist() == [True]


def test_pointing_game_ties_must_all_be_inside():
    m = torch.zeros(1, 1, 4, 4, dtype=torch.bool)
    m[0, 0, 0, 0] = True
    flat = torch.ones(1, 1, 4, 4)
    assert pointing_game(flat, m).tolist() == [False]
    assert pointing_game(flat, torch.ones(4, 4)).tolist() == [True]


def test_energy_hand_computed():
    attr = torch.tensor([[[[3.0, 1.0], [-5.0, 0.0]]]])  # positive part: 3, 1
    m = torch.tensor([[True, False], [True, True]])
    torch.testing.assert_close(energy_in_mask(attr, m), torch.tensor([0.75]))
    # channel-summed before the positive part: 2 + (-1) = 1 inside, 2 outside
    attr2 = torch.tensor([[[[2.0, 2.0]]], [[[-1.0, 0.0]]]]).permute(1, 0, 2, 3)
    torch.testing.assert_close(
        energy_in_mask(attr2, torch.tensor([[True, False]])), torch.tensor([1 / 3])
    )
    with pytest.warns(DegenerateMapWarning):
        assert torch.isnan(energy_in_mask(-torch.ones(1, 1, 2, 2), m)).all()


def test_auroc_auprc_hand_computed_with_ties():
    # scores 4, 3, 3, 1 ; labels 1, 0, 1, 0
    attr = torch.tensor([4.0, 3.0, 3.0, 1.0]).reshape(1, 1, 2, 2)
    m = torch.tensor([1, 0, 1, 0]).reshape(2, 2)
    # pairs (pos, neg): (4,3)=1 (4,1)=1 (3,3)=0.5 (3,1)=1 -> 3.5 / 4
    torch.testing.assert_close(auroc(attr, m), torch.tensor([0.875], dtype=torch.float64))
    # thresholds 4: P=1, R=.5 ; 3: P=2/3, R=1 ; 1: R unchanged -> AP = .5 * 1 + .5 * 2/3
    torch.testing.assert_close(auprc(attr, m), torch.tensor([0.5 + 1 / 3], dtype=torch.float64))
    # no ties: scores 4, 3, 2, 1 ; labels 0, 1, 0, 1 -> AP = .5 * 1/2 + .5 * 2/4
    attr = torch.tensor([4.0, 3.0, 2.0, 1.0]).reshape(1, 1, 1, 4)
    m = torch.tensor([0, 1, 0, 1]).reshape(1, 4)
    torch.testing.assert_close(auprc(attr, m), torch.tensor([0.5], dtype=torch.float64))
    torch.testing.assert_close(auroc(attr, m), torch.tensor([0.25], dtype=torch.float64))


@pytest.mark.parametrize("spatial_dims", [2, 3])
def test_auroc_matches_mann_whitney_and_random_is_half(spatial_dims):
    gen = torch.Generator().manual_seed(0)
    size = 48 if spatial_dims == 2 else 16
    shape = (2, 1) + (size,) * spatial_dims
    attr = torch.randint(0, 7, shape, generator=gen).float()  # many ties
    m = torch.rand(shape, generator=gen) < 0.3
    got = auroc(attr, m)
    for i in range(2):
        s, lab = attr[i].flatten().numpy(), m[i].flatten().numpy()
        u = mannwhitneyu(s[lab], s[~lab]).statistic
        assert got[i].item() == pytest.approx(u / (lab.sum() * (~lab).sum()), abs=1e-12)
        assert got[i].item() == pytest.approx(0.5, abs=0.03)
    assert auprc(attr, m).sub(m.flatten(1).double().mean(1)).abs().max() < 0.03


def test_undefined_auroc_is_nan_with_warning():
    with pytest.warns(DegenerateMapWarning):
        assert torch.isnan(auroc(torch.rand(1, 1, 4, 4), torch.zeros(4, 4))).all()


def test_sparseness_gini():
    one_hot = torch.zeros(1, 1, 10, 10)
    one_hot[0, 0, 3, 4] = -2.0
    assert sparseness(one_hot).item() == pytest.approx(1 - 1 / 100)
    assert sparseness(torch.full((1, 1, 4, 4, 4), 3.0)).item() == pytest.approx(0.0, abs=1e-12)
    # (1, 2, 3, 4): 1 - 2 * (1*3.5 + 2*2.5 + 3*1.5 + 4*0.5) / (10 * 4) = 0.25
    assert sparseness(torch.tensor([4.0, 1.0, 3.0, 2.0]).reshape(1, 1, 2, 2)).item() == (
        pytest.approx(0.25)
    )


def test_mask_shape_error():
    with pytest.raises(InputShapeError, match="resample"):
        pointing_game(torch.rand(1, 1, 4, 4), torch.ones(5, 5))
