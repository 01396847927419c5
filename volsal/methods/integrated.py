"""Integrated gradients, memory-bounded: the path copies go through the model in chunks."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from ..base import Attribution, Explanation
from ..errors import CompletenessWarning, ParameterError
from ..hooks import input_gradient
from ._multipass import (
    check_batch_size,
    check_int,
    chunks,
    clean_pass,
    expand_rows,
    make_reference,
    scores_no_grad,
)
from .registry import register

__all__ = ["IntegratedGradients", "INTEGRATION_RULES", "quadrature"]

#: Integration rules (Captum's names; ``"trapezoid"`` is accepted for ``"riemann_trapezoid"``).
INTEGRATION_RULES = (
    "riemann_left",
    "riemann_right",
    "riemann_middle",
    "riemann_trapezoid",
    "gausslegendre",
)
_ALIASES = {"trapezoid": "riemann_trapezoid", "left": "riemann_left", "right": "riemann_right",
            "middle": "riemann_middle", "gauss_legendre": "gausslegendre"}  # fmt: skip


def _rule_name(method: Any) -> str:
    name = _ALIASES.get(method, method)
    if name not in INTEGRATION_RULES:
        raise ParameterError(
            f"method must be one of {INTEGRATION_RULES} (or 'trapezoid'); got {method!r}."
        )
    return name


def quadrature(method: str, n_steps: int) -> tuple[list[float], list[float]]:
    """Path positions ``alphas`` in [0, 1] and their weights (summing to 1), float64.

    - ``riemann_left`` / ``riemann_right`` / ``riemann_middle``: ``n`` equal cells of width
      ``1/n``, evaluated at their left end, right end or centre;
    - ``riemann_trapezoid``: ``n`` points ``linspace(0, 1, n)`` (so ``n >= 2``), weights
      ``1/(n-1)`` with the two ends halved. Captum's ``riemann_trapezoid`` uses weights ``1/n``
      (ends halved), which sum to ``(n-1)/n``: its attributions are ``(n-1)/n`` times these;
    - ``gausslegendre``: Gauss-Legendre nodes and weights mapped to [0, 1] (exact for
      polynomial integrands up to degree ``2n - 1``; Captum's default).

    Raises:
        ParameterError: unknown rule, ``n_steps < 1``, or trapezoid with ``n_steps < 2``.
    """
    method = _rule_name(method)
    n = check_int("n_steps", n_steps, 1, "use n_steps >= 1 (typically 20-300).")
    if method == "riemann_trapezoid":
        if n < 2:
            raise ParameterError(
                "the trapezoid rule needs n_steps >= 2 (both path ends). Fix: n_steps=2 or more, "
                "or method='riemann_middle'."
            )
        alphas = [i / (n - 1) for i in range(n)]
        weights = [1 / (n - 1)] * n
        weights[0] /= 2
        weights[-1] /= 2
    elif method == "gausslegendre":
        nodes, w = np.polynomial.legendre.leggauss(n)
        alphas = (0.5 * (nodes + 1)).tolist()
        weights = (0.5 * w).tolist()
    else:
        offset = {"riemann_left": 0.0, "riemann_right": 1.0, "riemann_middle": 0.5}[method]
        alphas = [(i + offset) / n for i in range(n)]
        weights = [1 / n] * n
    return alphas, weights


@register(
    "integrated_gradients",
    kind="input",
    reference="Sundararajan et al. 2017, Axiomatic Attribution for Deep Networks, ICML, "
    "arXiv:1703.01365",
    aliases=("integratedgradients", "ig"),
    test_factory=lambda m: IntegratedGradients(m, n_steps=4, batch_size=3),
)
class IntegratedGradients(Attribution):
    """Integrated gradients: ``attr = (x - x0) * integral_0^1 grad f(x0 + a (x - x0)) da``.

    The integral is a quadrature over ``n_steps`` points of the straight path from the
    baseline ``x0`` to ``x`` (see :func:`quadrature`). The ``n_steps * B`` path copies go through
    the model ``batch_size`` at a time, so peak memory grows with ``batch_size``, not with
    ``n_steps`` (each chunk's graph is freed before the next one). Every copy of sample ``b`` is
    scored with ``b``'s target resolved on the clean input (``target=None`` explains the class
    predicted for ``x``, not the classes predicted along the path).

    Completeness: ``sum(attr) = f(x) - f(x0)`` holds for the exact integral; the gap of the
    quadrature, ``sum(attr) - (f(x) - f(x0))`` per sample, is in
    ``explain(x).extras["completeness_gap"]`` (``"baseline_scores"`` holds ``f(x0)``). It shrinks
    as ``n_steps`` grows. With ``check_completeness=True`` a
    :class:`~volsal.errors.CompletenessWarning` is raised for samples where
    ``|gap| > completeness_tol * |f(x) - f(x0)|``.

    Cost: ``n_steps`` x (forward + backward to the input) per sample, plus two no-grad
    forwards (the clean input, to fix the target and report ``f(x)``; the baseline, for the
    gap).

    Args:
        model: the model.
        baseline: the reference ``x0``, *in the input space the model sees* (after your
            intensity normalisation: a zero after z-scoring is mean tissue, not air; USER_NEEDS
            P14/25). A number; a tensor broadcastable to ``x`` (``x``'s shape, ``(C, *spatial)``,
            one value per channel ``(C, 1, ..., 1)``); or ``"blur"``: a Gaussian-blurred copy
            of ``x`` with ``blur_sigma`` (Xu et al. 2020, blur IG uses a path of blurs; this is
            the straight path to one blurred image).
        n_steps: number of quadrature points (>= 1; >= 2 for the trapezoid rule).
        method: ``"gausslegendre"`` (default, as Captum), ``"riemann_left"``,
            ``"riemann_right"``, ``"riemann_middle"`` or ``"riemann_trapezoid"`` (``"trapezoid"``).
        batch_size: path copies per forward/backward pass.
        blur_sigma: Gaussian sigma in voxels for ``baseline="blur"`` (one value or one per axis).
        check_completeness: warn when the completeness gap exceeds the tolerance.
        completeness_tol: relative tolerance of that check.
        model_mode, mode: see :class:`~volsal.base.Attribution`.

    Raises:
        ParameterError: ``n_steps < 1``, unknown rule, ``batch_size < 1``, bad baseline string.
        InputShapeError: a baseline tensor that does not broadcast to ``x``.

    Reference: Sundararajan, Taly and Yan, "Axiomatic Attribution for Deep Networks", ICML 2017,
    arXiv:1703.01365.

    Example:
        >>> import torch, volsal
        >>> model = volsal.testing.tiny_cnn(3)
        >>> ig = volsal.IntegratedGradients(model, n_steps=16, batch_size=8)
        >>> exp = ig.explain(torch.randn(1, 1, 8, 8, 8), target=0)
        >>> exp.maps.shape, exp.extras["completeness_gap"].shape
        (torch.Size([1, 1, 8, 8, 8]), torch.Size([1]))
    """

    def __init__(
        self,
        model: nn.Module,
        *,
        baseline: float | torch.Tensor | str = 0.0,
        n_steps: int = 50,
        method: str = "gausslegendre",
        batch_size: int = 8,
        blur_sigma: float | Sequence[float] = 4.0,
        check_completeness: bool = False,
        completeness_tol: float = 0.05,
        model_mode: str = "eval",
        mode: str | None = None,
    ):
        super().__init__(model, model_mode=model_mode, mode=mode)
        self.method = _rule_name(method)
        quadrature(self.method, n_steps)  # validates n_steps for this rule
        if isinstance(baseline, str) and baseline != "blur":
            raise ParameterError(
                f"baseline must be a number, a tensor or 'blur'; got {baseline!r}. Fix: e.g. "
                "baseline=0.0, or the intensity of air/background after your normalisation."
            )
        if not (isinstance(completeness_tol, (int, float)) and completeness_tol >= 0):
            raise ParameterError(f"completeness_tol must be >= 0; got {completeness_tol!r}.")
        self.baseline = baseline
        self.n_steps = n_steps
        self.batch_size = check_batch_size(batch_size)
        self.blur_sigma = blur_sigma
        self.check_completeness = check_completeness
        self.completeness_tol = float(completeness_tol)

    def _attribute(self, x: torch.Tensor, target: Any) -> Explanation:
        b_total = x.shape[0]
        k = x.ndim - 2
        ref = make_reference(self.baseline, x, name="baseline", blur_sigma=self.blur_sigma)
        x = x.detach()
        alphas, weights = quadrature(self.method, self.n_steps)
        alphas_t = torch.tensor(alphas, dtype=x.dtype, device=x.device)
        weights_t = torch.tensor(weights, dtype=x.dtype, device=x.device)
        rt, fixed = clean_pass(self.model, x, target)
        diff = x - ref
        acc = torch.zeros_like(x)
        for start, stop in chunks(self.n_steps * b_total, self.batch_size):
            idx = torch.arange(start, stop, device=x.device)
            step, sample = idx // b_total, idx % b_total
            a = alphas_t[step].reshape((-1,) + (1,) * (k + 1))
            xs = expand_rows(ref, x, sample) + a * diff[sample]
            grads, _ = input_gradient(self.model, xs, fixed.for_copies(sample))
            w = weights_t[step].reshape((-1,) + (1,) * (k + 1))
            acc.index_add_(0, sample, grads * w)
            del grads, xs
        attr = diff * acc
        x0 = torch.broadcast_to(ref, x.shape).contiguous()
        base_scores = scores_no_grad(
            self.model, x0, fixed.for_copies(torch.arange(b_total, device=x.device))
        )
        delta = rt.scores - base_scores
        gap = attr.flatten(1).sum(1).to(delta.dtype) - delta
        if self.check_completeness:
            bad = gap.abs() > self.completeness_tol * delta.abs()
            if bool(bad.any()):
                rel = (gap.abs() / delta.abs().clamp_min(torch.finfo(delta.dtype).tiny))[bad]
                warnings.warn(
                    f"IntegratedGradients: completeness gap above {self.completeness_tol:g} of "
                    f"f(x) - f(baseline) for sample(s) {bad.nonzero().flatten().tolist()} "
                    f"(relative gap {[round(float(r), 4) for r in rel]}). Fix: more n_steps, "
                    "method='gausslegendre', or check that the baseline is a meaningful "
                    "reference for the model.",
                    CompletenessWarning,
                    stacklevel=4,
                )
        return self._result(attr, rt, completeness_gap=gap, baseline_scores=base_scores)
