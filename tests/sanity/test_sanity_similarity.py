"""Similarity metrics: hand-computed values and scipy agreement, 2D and 3D."""

from __future__ import annotations

import pytest
import torch
from scipy.stats import spearmanr

from volsal.errors import InputShapeError, ParameterError
from volsal.sanity import hog_similarity, spearman, spearman_abs, ssim, topk_intersection


def _pair(spatial_dims: int, size: int = 16):
    gen = torch.Generator().manual_seed(0)
    shape = (3, 1) + (size,) * spatial_dims
    a = torch.randn(shape, generator=gen, dtype=torch.float64)
    return a, a + 0.5 * torch.randn(shape, generator=gen, dtype=torch.float64), gen


@pytest.mark.parametrize("spatial_dims", [2, 3])
def test_spearman_matches_scipy_with_ties(spatial_dims):
    a, b, _ = _pair(spatial_dims, 8)
    a, b = a.round(), b.round()  # many ties
    got = spearman(a, b)
    got_abs = spearman_abs(a, b)
    for i in range(3):
        ref = spearmanr(a[i].flatten(), b[i].flatten()).statistic
        ref_abs = spearmanr(a[i].abs().flatten(), b[i].abs().flatten()).statistic
        assert got[i].item() == pytest.approx(ref, abs=1e-12)
        assert got_abs[i].item() == pytest.approx(ref_abs, abs=1e-12)
    assert spearman(a, -a).tolist() == pytest.approx([-1.0] * 3)
    assert spearman_abs(a, -a).tolist() == pytest.approx([1.0] * 3)


def test_spearman_hand_computed():
    a = torch.tensor([1.0, 2.0, 3.0, 4.0]).reshape(1, 1, 2, 2)
    b = torch.tensor([1.0, 3.0, 2.0, 4.0]).reshape(1, 1, 2, 2)
    # d = (0, 1, -1, 0): rho = 1 - 6 * 2 / (4 * 15) = 0.8
    assert spearman(a, b).item() == pytest.approx(0.8)


@pytest.mark.parametrize("spatial_dims", [2, 3])
def test_ssim_identity_and_known_cases(spatial_dims):
    a, b, _ = _pair(spatial_dims)
    assert ssim(a, a).tolist() == pytest.approx([1.0] * 3)
    s = ssim(a, b)
    assert (s < 1).all() and (s > 0).all()
    torch.testing.assert_close(ssim(b, a), s)
    assert (ssim(a, a + 1.0) < 1).all()
    # two constant images c and d, range L: SSIM = (2cd + C1) / (c^2 + d^2 + C1) (variance 0)
    c = torch.full((1, 1) + (12,) * spatial_dims, 0.2, dtype=torch.float64)
    d = torch.full_like(c, 0.6)
    c1 = (0.01 * 1.0) ** 2
    expected = (2 * 0.2 * 0.6 + c1) / (0.2**2 + 0.6**2 + c1)
    assert ssim(c, d, data_range=1.0).item() == pytest.approx(expected, rel=1e-12)


def test_ssim_matches_written_out_2d_window():
    # 11x11 image, one valid position: SSIM from Gaussian-weighted moments computed directly
    gen = torch.Generator().manual_seed(1)
    a = torch.rand(1, 1, 11, 11, generator=gen, dtype=torch.float64)
    b = torch.rand(1, 1, 11, 11, generator=gen, dtype=torch.float64)
    pos = torch.arange(-5, 6, dtype=torch.float64)
    g1 = torch.exp(-0.5 * (pos / 1.5) ** 2)
    w = torch.outer(g1, g1)
    w = w / w.sum()
    ma, mb = (w * a[0, 0]).sum(), (w * b[0, 0]).sum()
    va = (w * a[0, 0] ** 2).sum() - ma**2
    vb = (w * b[0, 0] ** 2).sum() - mb**2
    cov = (w * a[0, 0] * b[0, 0]).sum() - ma * mb
    c1, c2 = 0.01**2, 0.03**2
    ref = (2 * ma * mb + c1) * (2 * cov + c2) / ((ma**2 + mb**2 + c1) * (va + vb + c2))
    assert ssim(a, b, data_range=1.0).item() == pytest.approx(ref.item(), rel=1e-10)


@pytest.mark.parametrize("spatial_dims", [2, 3])
def test_hog_similarity(spatial_dims):
    size = 48 if spatial_dims == 2 else 24
    a, b, gen = _pair(spatial_dims, size)
    assert hog_similarity(a, a).tolist() == pytest.approx([1.0] * 3)
    # sign and scale do not change gradient orientations and cell-normalised histograms
    assert hog_similarity(a, -3 * a).tolist() == pytest.approx([1.0] * 3)
    noise = torch.randn(a.shape, generator=gen, dtype=torch.float64)
    unrelated = hog_similarity(a, noise)
    related = hog_similarity(a, b)
    assert unrelated.abs().max() < 0.15  # bins of equal solid angle: no bias for noise
    assert (related > unrelated + 0.3).all()
    with pytest.raises(InputShapeError):
        hog_similarity(a, b[..., :4])


def test_hog_orientation_bins_3d():
    # a ramp along axis 0 and a ramp along axis 1 vote into different bins: correlation < 1
    r = torch.arange(12, dtype=torch.float64)
    ramp0 = r[:, None, None].expand(12, 12, 12)[None, None]
    ramp1 = r[None, :, None].expand(12, 12, 12)[None, None]
    assert hog_similarity(ramp0, ramp1).item() < 0.5
    assert hog_similarity(ramp0, 2 * ramp0 + 1).item() == pytest.approx(1.0)


def test_topk_intersection_hand_computed():
    a = torch.tensor([5.0, -4.0, 3.0, 2.0, 1.0, 0.0]).reshape(1, 1, 2, 3)
    b = torch.tensor([0.0, 4.0, -6.0, 2.0, 1.0, 5.0]).reshape(1, 1, 2, 3)
    # |a| top 2: {0, 1}; |b| top 2: {2, 5} -> 0 ; top 3: {0,1,2} vs {2,5,1} -> 2/3
    assert topk_intersection(a, b, 2).item() == 0.0
    assert topk_intersection(a, b, 3).item() == pytest.approx(2 / 3)
    # signed: a top 3 {0, 2, 3}; b top 3 {5, 1, 3} -> 1/3
    assert topk_intersection(a, b, 3, absolute=False).item() == pytest.approx(1 / 3)
    assert topk_intersection(a, b, 0.5).item() == pytest.approx(2 / 3)
    with pytest.raises(ParameterError):
        topk_intersection(a, b, 0)
    with pytest.raises(InputShapeError):
        spearman(a, b[..., :2])
