"""SmoothGrad over any volsal method: average (or square, or variance) of maps of noisy copies."""

from __future__ import annotations

import copy
import math
import warnings
from typing import Any

import torch
from torch import nn

from ..base import Attribution, Explanation
from ..errors import ParameterError, VolsalWarning
from ._multipass import check_batch_size, check_int, chunks, clean_pass
from .gradient import Gradient
from .registry import register

__all__ = ["SmoothGrad", "robust_range", "noise_draws", "NOISE_MODES", "SMOOTH_VARIANTS"]

NOISE_MODES = ("relative", "absolute")
SMOOTH_VARIANTS = ("mean", "squared", "vargrad")


def robust_range(x: torch.Tensor, lo: float = 0.01, hi: float = 0.99) -> torch.Tensor:
    """Per-sample intensity range between two quantiles (default 1st to 99th percentile).

    Quantiles use linear interpolation between order statistics (as ``torch.quantile``) but
    through ``kthvalue``, so volumes of any size work. A few extreme voxels (metal, air in CT)
    barely move it, unlike ``max - min``.

    Args:
        x: ``(B, ...)``.

    Returns:
        ``(B,)`` ranges, in ``x``'s dtype.
    """
    flat = x.detach().reshape(x.shape[0], -1)
    n = flat.shape[1]

    def q(p: float) -> torch.Tensor:
        pos = p * (n - 1)
        i = math.floor(pos)
        frac = pos - i
        v = flat.kthvalue(i + 1, dim=1).values
        if frac > 0 and i + 2 <= n:
            v = v + frac * (flat.kthvalue(i + 2, dim=1).values - v)
        return v

    return q(hi) - q(lo)


def noise_draws(
    shape: tuple[int, ...],
    n_samples: int,
    seed: int,
    *,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str = "cpu",
) -> torch.Tensor:
    """The standard-normal draws :class:`SmoothGrad` uses, ``(n_samples, *shape)``.

    ``shape`` is one sample's shape ``(C, *spatial)``. Draw ``j`` of every sample of a call is
    ``noise_draws(...)[j]`` times that sample's sigma (for reproducing or comparing runs).
    """
    gen = torch.Generator(device=device).manual_seed(seed)
    return torch.stack(
        [torch.randn(shape, generator=gen, dtype=dtype, device=device) for _ in range(n_samples)]
    )


@register(
    "smoothgrad",
    kind="input",
    reference="Smilkov et al. 2017, SmoothGrad: removing noise by adding noise, "
    "arXiv:1706.03825; VarGrad: Adebayo et al. 2018, arXiv:1810.03307",
    aliases=("smooth_grad", "noisetunnel"),
    test_factory=lambda m: SmoothGrad(Gradient(m), n_samples=3, batch_size=2),
)
class SmoothGrad(Attribution):
    """SmoothGrad: the wrapped method's maps averaged over noisy copies of the input.

    ``attr(x) = 1/n sum_j M(x + sigma * eps_j)`` (``variant="mean"``), ``1/n sum_j M(...)^2``
    (``"squared"``, SmoothGrad^2: another scale, always >= 0) or the variance over ``j``
    (``"vargrad"``, population variance as Captum), for any volsal method ``M``: gradients,
    guided backprop, integrated gradients, CAMs (``(B, 1, *spatial)`` maps)...

    Noise: ``sigma = noise_level * (p99 - p1)`` of each sample's intensities
    (``noise="relative"``; the 1st-99th percentile range, so an outlier voxel does not inflate
    it, unlike MONAI's ``max - min``), or ``sigma = noise_level`` in input units
    (``noise="absolute"``). The draws ``eps_j`` come from a local ``torch.Generator`` seeded with
    ``seed`` on ``x``'s device (the global RNG is untouched; CPU and CUDA draws differ). Every
    sample of a call receives the same draws ``eps_1..eps_n``, scaled by its own sigma: a
    sample's map therefore does not depend on the other samples of the batch, nor on
    ``batch_size`` (batch results equal per-sample results). ``explain().extras["sigma"]`` holds
    the sigma used per sample (a constant sample gets sigma 0 and a warning).

    The ``n_samples * B`` copies go to the wrapped method ``batch_size`` at a time, with each
    sample's target fixed on the clean input (``target=None``: the class predicted for ``x``,
    not for each noisy copy). Peak memory grows with ``batch_size``, not ``n_samples``.

    Cost: ``n_samples`` x the wrapped method's cost (Gradient: forward + backward to the input)
    per sample, plus one no-grad forward of the clean input (target and reported scores).

    Args:
        method: any :class:`~volsal.base.Attribution` instance, or a model (then
            ``Gradient(model)`` is wrapped).
        n_samples: number of noisy copies per sample (>= 1).
        noise_level: relative (fraction of the robust range) or absolute sigma, >= 0.
        noise: ``"relative"`` or ``"absolute"``.
        variant: ``"mean"``, ``"squared"`` or ``"vargrad"``.
        seed: seed of the local generator.
        batch_size: noisy copies per call of the wrapped method.
        mode: optional ``"2D"``/``"3D"`` check of ``x``.

    Raises:
        ParameterError: ``n_samples < 1``, ``noise_level < 0``, unknown noise/variant,
            ``batch_size < 1``, or ``method`` is a class rather than an instance.

    Reference: Smilkov, Thorat, Kim, Viegas and Wattenberg, "SmoothGrad: removing noise by
    adding noise", arXiv:1706.03825, 2017. VarGrad: Adebayo et al., "Local Explanation Methods
    for Deep Neural Networks Lack Sensitivity to Parameter Values", arXiv:1810.03307, 2018.

    Example:
        >>> import torch, volsal
        >>> model = volsal.testing.tiny_cnn(3)
        >>> sg = volsal.SmoothGrad(volsal.GuidedBackprop(model), n_samples=8, batch_size=4)
        >>> sg(torch.randn(2, 1, 8, 8, 8), target=0).shape
        torch.Size([2, 1, 8, 8, 8])
    """

    def __init__(
        self,
        method: Attribution | nn.Module,
        *,
        n_samples: int = 25,
        noise_level: float = 0.15,
        noise: str = "relative",
        variant: str = "mean",
        seed: int = 0,
        batch_size: int = 8,
        mode: str | None = None,
    ):
        if isinstance(method, type):
            raise ParameterError(
                f"SmoothGrad wraps a method instance; got the class {method.__name__}. "
                f"Fix: SmoothGrad({method.__name__}(model), ...)."
            )
        if isinstance(method, nn.Module):
            method = Gradient(method)
        if not isinstance(method, Attribution):
            raise ParameterError(
                f"SmoothGrad wraps a volsal method (e.g. volsal.Gradient(model)) or a model; "
                f"got {type(method).__name__}."
            )
        super().__init__(method.model, model_mode=method.model_mode, mode=mode)
        self.method = method
        self.kind = method.kind  # (B, 1, *spatial) when wrapping a CAM
        self.n_samples = check_int("n_samples", n_samples, 1, "use n_samples >= 1 (25-50 typical).")
        if (
            isinstance(noise_level, bool)
            or not isinstance(noise_level, (int, float))
            or not math.isfinite(noise_level)
            or noise_level < 0
        ):
            raise ParameterError(
                f"noise_level must be a finite number >= 0; got {noise_level!r}. Fix: e.g. "
                "noise_level=0.15 (15% of the robust intensity range with noise='relative')."
            )
        self.noise_level = float(noise_level)
        if noise not in NOISE_MODES:
            raise ParameterError(f"noise must be one of {NOISE_MODES}; got {noise!r}.")
        self.noise = noise
        if variant not in SMOOTH_VARIANTS:
            raise ParameterError(f"variant must be one of {SMOOTH_VARIANTS}; got {variant!r}.")
        self.variant = variant
        self.seed = check_int("seed", seed, 0, "use a non-negative int seed.")
        self.batch_size = check_batch_size(batch_size)

    def with_model(self, model: nn.Module) -> SmoothGrad:
        """The same SmoothGrad, with the wrapped method re-bound to ``model`` too."""
        new = copy.copy(self)
        new.method = self.method.with_model(model)
        new.model = model
        return new

    def options(self) -> dict[str, Any]:
        opts = {
            k: v
            for k, v in vars(self).items()
            if k not in ("model", "method", "kind") and not k.startswith("_")
        }
        opts["method"] = self.method.name
        opts["method_options"] = self.method.options()
        return opts

    def _sigma(self, x: torch.Tensor) -> torch.Tensor:
        b = x.shape[0]
        if self.noise == "absolute" or self.noise_level == 0:
            return torch.full((b,), self.noise_level, dtype=x.dtype, device=x.device)
        rng = robust_range(x)
        flat = x.detach().reshape(b, -1)
        full = flat.amax(1) - flat.amin(1)
        rng = torch.where(rng > 0, rng, full)
        if bool((rng <= 0).any()):
            warnings.warn(
                f"SmoothGrad: sample(s) {(rng <= 0).nonzero().flatten().tolist()} are constant: "
                "a relative noise level gives sigma 0 (no noise). Use noise='absolute'.",
                VolsalWarning,
                stacklevel=5,
            )
        return self.noise_level * rng

    def _attribute(self, x: torch.Tensor, target: Any) -> Explanation:
        x = x.detach()
        b_total, k = x.shape[0], x.ndim - 2
        rt, fixed = clean_pass(self.model, x, target)
        sigma = self._sigma(x)
        gen = torch.Generator(device=x.device).manual_seed(self.seed)
        draws: dict[int, torch.Tensor] = {}
        next_draw = 0
        s1 = s2 = shift = layer = None
        n = self.n_samples
        for start, stop in chunks(n * b_total, self.batch_size):
            idx = torch.arange(start, stop, device=x.device)
            j, sample = idx // b_total, idx % b_total
            j_list = j.tolist()
            while next_draw <= j_list[-1]:  # draws in order: independent of batch_size
                draws[next_draw] = torch.randn(
                    x.shape[1:], generator=gen, dtype=x.dtype, device=x.device
                )
                next_draw += 1
            for old in [d for d in draws if d < j_list[0]]:
                del draws[old]
            eps = torch.stack([draws[i] for i in j_list])
            noisy = x[sample] + sigma[sample].reshape((-1,) + (1,) * (k + 1)) * eps
            del eps
            exp = self.method.explain(noisy, fixed.for_copies(sample))
            maps, layer = exp.maps.detach(), exp.layer
            del noisy, exp
            if s1 is None:
                s1 = maps.new_zeros((b_total,) + tuple(maps.shape[1:]))
                if self.variant == "vargrad":
                    s2 = torch.zeros_like(s1)
                    shift = torch.zeros_like(s1)
            if self.variant == "mean":
                s1.index_add_(0, sample, maps)
            elif self.variant == "squared":
                s1.index_add_(0, sample, maps * maps)
            else:  # shifted sums (shift = the first draw's map): no cancellation in E[a^2]-E[a]^2
                first = j == 0
                if bool(first.any()):
                    shift[sample[first]] = maps[first]
                d = maps - shift[sample]
                s1.index_add_(0, sample, d)
                s2.index_add_(0, sample, d * d)
        if self.variant == "vargrad":
            mean_d = s1 / n
            attr = (s2 / n - mean_d * mean_d).clamp_min(0)
        else:
            attr = s1 / n
        return self._result(attr, rt, layer=layer, sigma=sigma)
