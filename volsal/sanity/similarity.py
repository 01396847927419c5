"""Similarity between two saliency maps, per sample, for 2D and 3D maps.

All functions take ``a, b`` of the same shape ``(B, C, *spatial)`` (1 to 3 spatial dims) and
return ``(B,)``. They are pure: no normalisation is applied beyond what each docstring says
(the sanity check in :mod:`volsal.sanity.check` chooses the inputs, following Adebayo et al.).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from ..errors import InputShapeError, ParameterError
from ..metrics.filters import gaussian_filter
from ..metrics.ranks import pearson, rankdata

__all__ = ["spearman", "spearman_abs", "ssim", "hog_similarity", "topk_intersection"]

_AVG_POOL = {1: F.avg_pool1d, 2: F.avg_pool2d, 3: F.avg_pool3d}


def _pair(a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    if not isinstance(a, torch.Tensor) or not isinstance(b, torch.Tensor):
        raise InputShapeError("a and b must be torch tensors of shape (B, C, *spatial).")
    if a.shape != b.shape or not 3 <= a.ndim <= 5:
        raise InputShapeError(
            f"a and b must have the same shape (B, C, *spatial) with 1 to 3 spatial dims; got "
            f"{tuple(a.shape)} and {tuple(b.shape)}."
        )
    dtype = torch.promote_types(a.dtype, b.dtype)
    if not dtype.is_floating_point:
        dtype = torch.float32
    return a.detach().to(dtype), b.detach().to(dtype)


def spearman(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Spearman rank correlation of the signed values (all channels and voxels of a sample).

    Pearson correlation of the midranks (ties share their average rank), as
    ``scipy.stats.spearmanr``. ``NaN`` where a map is constant.

    Returns:
        ``(B,)`` in ``[-1, 1]``.
    """
    a, b = _pair(a, b)
    return pearson(rankdata(a.flatten(1)), rankdata(b.flatten(1)))


def spearman_abs(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Spearman rank correlation of the absolute values (Adebayo et al.'s "absolute" variant)."""
    a, b = _pair(a, b)
    return spearman(a.abs(), b.abs())


def ssim(
    a: torch.Tensor,
    b: torch.Tensor,
    *,
    data_range: float | None = None,
    sigma: float = 1.5,
    truncate: float = 3.5,
    k1: float = 0.01,
    k2: float = 0.03,
) -> torch.Tensor:
    """Structural similarity (Wang et al. 2004) with a Gaussian window, in any number of dims.

    Local means, variances and covariance are Gaussian-weighted averages (``sigma`` = 1.5
    voxels, radius ``int(truncate * sigma + 0.5)`` = 5, an 11-voxel window on every axis);
    ``C1 = (k1 L)^2`` and ``C2 = (k2 L)^2`` with ``k1 = 0.01``, ``k2 = 0.03`` and ``L`` the
    data range; the SSIM map is averaged over the voxels whose window lies inside the image
    ("valid" positions; the same as scikit-image's ``structural_similarity(...,
    gaussian_weights=True, use_sample_covariance=False)``, which pads and then crops the
    border) and over channels. On images smaller than the window, the radius shrinks to fit.

    Args:
        a, b: ``(B, C, *spatial)``.
        data_range: ``L``; default: per sample, ``max(a, b) - min(a, b)`` over both maps
            (1 for a constant pair).
        sigma, truncate, k1, k2: window and constants, see above.

    Returns:
        ``(B,)``, 1 for identical maps.

    Reference: Wang, Bovik, Sheikh and Simoncelli, "Image quality assessment: from error
    visibility to structural similarity", IEEE TIP 2004.
    """
    a, b = _pair(a, b)
    a, b = a.double(), b.double()
    bsz = a.shape[0]
    radius = min(int(truncate * sigma + 0.5), (min(a.shape[2:]) - 1) // 2)
    if data_range is None:
        both = torch.cat([a.flatten(1), b.flatten(1)], 1)
        rng = both.amax(1) - both.amin(1)
        rng = torch.where(rng > 0, rng, torch.ones_like(rng))
    else:
        if not data_range > 0:
            raise ParameterError(f"data_range must be > 0; got {data_range}.")
        rng = torch.full((bsz,), float(data_range), dtype=a.dtype, device=a.device)
    shape = (bsz,) + (1,) * (a.ndim - 1)
    c1 = (k1 * rng).square().reshape(shape)
    c2 = (k2 * rng).square().reshape(shape)

    def filt(t: torch.Tensor) -> torch.Tensor:
        return gaussian_filter(t, sigma, padding="valid", radius=radius)

    mu_a, mu_b = filt(a), filt(b)
    var_a = filt(a * a) - mu_a.square()
    var_b = filt(b * b) - mu_b.square()
    cov = filt(a * b) - mu_a * mu_b
    num = (2 * mu_a * mu_b + c1) * (2 * cov + c2)
    den = (mu_a.square() + mu_b.square() + c1) * (var_a + var_b + c2)
    return (num / den).flatten(1).mean(1)


def _directions(k: int, n_bins: int) -> torch.Tensor:
    """Unit reference directions of the orientation bins, ``(n_dirs, k)`` (unsigned)."""
    if k == 1:
        return torch.ones(1, 1, dtype=torch.float64)
    if k == 2:
        ang = torch.arange(n_bins, dtype=torch.float64) * math.pi / n_bins
        return torch.stack([ang.cos(), ang.sin()], 1)
    # 3D: the 20 vertices of a regular dodecahedron up to sign = 10 directions whose bins
    # (Voronoi cells on the sphere) have equal solid angles, so isotropic noise fills them evenly.
    phi = (1 + math.sqrt(5)) / 2
    dirs = [(1.0, 1.0, 1.0), (1.0, 1.0, -1.0), (1.0, -1.0, 1.0), (1.0, -1.0, -1.0)]
    for s1 in (1.0, -1.0):
        dirs += [(0.0, 1 / phi, s1 * phi), (1 / phi, s1 * phi, 0.0), (phi, 0.0, s1 / phi)]
    t = torch.tensor(dirs, dtype=torch.float64)
    return t / t.norm(dim=1, keepdim=True)


def _hog(t: torch.Tensor, cell: int, n_bins: int) -> torch.Tensor:
    """Per-cell, L2-normalised histograms of gradient orientation, ``(B, features)``."""
    k = t.ndim - 2
    inner = (slice(None), slice(None)) + (slice(1, -1),) * k
    diffs = []
    for axis in range(k):
        hi = list(inner)
        lo = list(inner)
        hi[2 + axis] = slice(2, None)
        lo[2 + axis] = slice(None, -2)
        diffs.append((t[tuple(hi)] - t[tuple(lo)]) / 2)
    grads = torch.stack(diffs, -1)  # (B, C, *(spatial - 2), k): interior central differences
    mag = grads.norm(dim=-1)
    dirs = _directions(k, n_bins).to(t)
    proj = (grads @ dirs.T).abs()  # |cos| * magnitude to each reference direction
    idx = proj.argmax(-1)  # nearest unsigned orientation
    onehot = F.one_hot(idx, dirs.shape[0]).to(t.dtype) * mag[..., None]
    hist = onehot.sum(1).movedim(-1, 1)  # (B, n_dirs, *spatial), channels pooled
    kernel = [min(cell, s) for s in hist.shape[2:]]
    cells = _AVG_POOL[k](hist, kernel, stride=kernel, ceil_mode=True)  # scale does not matter
    cells = cells / (cells.norm(dim=1, keepdim=True) + 1e-12)
    return cells.flatten(1)


def hog_similarity(
    a: torch.Tensor, b: torch.Tensor, *, cell: int = 8, n_bins: int = 9
) -> torch.Tensor:
    """Pearson correlation of histogram-of-oriented-gradients features of two maps.

    Gradients by central differences on every channel, at interior voxels only (one-sided
    differences at the border would favour the axis directions); each voxel votes
    its gradient magnitude into the bin of its nearest *unsigned* orientation; votes are summed
    over channels and over cubic cells of ``cell`` voxels per side (partial border cells
    kept), and each cell's histogram is L2-normalised (no block normalisation, a simplification
    of Dalal and Triggs). Orientation bins:

    - 2D: ``n_bins`` directions evenly spaced on ``[0, pi)`` (the usual 9 bins of 20 degrees);
    - 3D (our generalisation): 10 directions, the vertices of a regular dodecahedron up to
      sign, whose bins cover the hemisphere in equal solid angles (so an isotropic gradient
      field fills all bins evenly, as the 2D bins do); ``n_bins`` is not used;
    - 1D: one bin (the magnitude).

    The similarity is the Pearson correlation of the concatenated features (``NaN`` if one
    is constant). Adebayo et al. compared HOG features this way for 2D maps.

    Args:
        a, b: ``(B, C, *spatial)``.
        cell: cell size in voxels.
        n_bins: orientation bins (2D).

    Returns:
        ``(B,)`` in ``[-1, 1]``.

    Reference: Dalal and Triggs, "Histograms of Oriented Gradients for Human Detection",
    CVPR 2005.
    """
    a, b = _pair(a, b)
    if min(a.shape[2:]) < 3:
        raise InputShapeError(f"hog_similarity needs >= 3 voxels per axis; got {tuple(a.shape)}.")
    if cell < 1 or n_bins < 1:
        raise ParameterError(f"cell and n_bins must be >= 1; got {cell}, {n_bins}.")
    return pearson(_hog(a.double(), cell, n_bins), _hog(b.double(), cell, n_bins))


def topk_intersection(
    a: torch.Tensor, b: torch.Tensor, k: int | float = 0.1, *, absolute: bool = True
) -> torch.Tensor:
    """Share of the top-``k`` voxels of ``a`` that are also in the top-``k`` of ``b``.

    Args:
        a, b: ``(B, C, *spatial)``; all channels and voxels of a sample are ranked together.
        k: a count (int ``>= 1``) or a fraction of the elements (float in ``(0, 1]``).
        absolute: rank by absolute value (default) or by signed value.

    Returns:
        ``(B,)`` in ``[0, 1]``. Ties at the k-th value are broken arbitrarily by ``topk``.
    """
    a, b = _pair(a, b)
    fa, fb = a.flatten(1), b.flatten(1)
    if absolute:
        fa, fb = fa.abs(), fb.abs()
    n = fa.shape[1]
    if isinstance(k, float):
        if not 0 < k <= 1:
            raise ParameterError(f"a fractional k must be in (0, 1]; got {k}.")
        k = max(1, round(k * n))
    if isinstance(k, bool) or not 1 <= int(k) <= n:
        raise ParameterError(f"k must be between 1 and {n}; got {k!r}.")
    k = int(k)
    in_a = torch.zeros_like(fa, dtype=torch.bool).scatter_(1, fa.topk(k, dim=1).indices, True)
    in_b = torch.zeros_like(fb, dtype=torch.bool).scatter_(1, fb.topk(k, dim=1).indices, True)
    return (in_a & in_b).sum(1).to(a.dtype) / k
