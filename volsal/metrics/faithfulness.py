"""Deletion and insertion curves (Petsiuk et al. 2018, RISE): is the map's ranking faithful?

Voxels are ranked by the **channel-summed signed** attribution (``attr.sum(1)``: negative
evidence ranks last; pass ``attr.abs()`` to rank by magnitude). At step ``k`` of ``steps`` the
top ``floor(k * N / steps)`` voxels (all channels of a voxel together) are

- *deletion*: replaced by the baseline in ``x``; a faithful map makes the score drop fast
  (low area under the curve is good);
- *insertion*: revealed on top of the baseline; a faithful map makes the score rise fast
  (high area is good).

The score is the target's **logit** by default (``softmax=True`` scores probabilities, as in
RISE). The class is fixed once from the unperturbed input, so ``target=None`` explains the class
predicted for ``x`` at every step. The perturbed copies are built lazily and go through the model
``batch_size`` at a time under ``torch.no_grad()`` in eval mode (each module's flag restored).
The unperturbed input's forward is reused for the step that equals ``x``, so a curve costs
``B * (steps + 1)`` sample-forwards in all, with no backward pass.

Reference: Petsiuk, Das and Saenko, "RISE: Randomized Input Sampling for Explanation of
Black-box Models", BMVC 2018.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import nn

from ..errors import InputShapeError, ParameterError
from ..hooks import eval_mode
from ..spatial import check_input
from ..targets import resolve_target
from ._common import check_map, voxel_scores
from .filters import gaussian_filter

__all__ = ["deletion_curve", "deletion_auc", "insertion_curve", "insertion_auc"]

Baseline = float | str | torch.Tensor
TargetSpec = int | Sequence[int] | torch.Tensor | Callable | None


def deletion_curve(
    model: nn.Module,
    x: torch.Tensor,
    attr: torch.Tensor,
    target: TargetSpec = None,
    *,
    steps: int = 20,
    baseline: Baseline = 0.0,
    batch_size: int = 16,
    softmax: bool = False,
    blur_sigma: float = 5.0,
    model_mode: str = "eval",
) -> tuple[torch.Tensor, torch.Tensor]:
    """Target score as the top-ranked voxels are replaced by the baseline.

    Args:
        model: the classifier; never changed (run in eval mode unless ``model_mode`` says so).
        x: input ``(B, C, *spatial)``.
        attr: map ``(B, C', *spatial)`` on ``x``'s grid (``C'`` is ``C`` or 1); channel-summed
            for ranking. Ties are broken by voxel index (stable sort).
        target: int, per-sample ints, ``None`` (class predicted for ``x``), or a callable
            ``output -> (B,)`` (must act row by row: the perturbed copies of several samples
            may share a batch).
        steps: number of equal fractions (``>= 1``).
        baseline: ``0.0`` (any float: constant fill), ``"blur"`` (``x`` Gaussian-blurred with
            ``blur_sigma`` voxels, border replicated), or a tensor broadcastable to ``x``.
        batch_size: perturbed copies per forward pass.
        softmax: score probabilities (softmax over classes, sigmoid for one logit) instead of
            logits.
        blur_sigma: standard deviation of the ``"blur"`` baseline, in voxels.
        model_mode: ``"eval"`` (default), ``"keep"`` or ``"train"``.

    Returns:
        ``(fractions, scores)``: ``fractions (steps + 1,)`` the share of voxels removed
        (``floor(k N / steps) / N``, exactly ``k / steps`` when ``steps`` divides ``N``) and
        ``scores (B, steps + 1)`` detached.

    Raises:
        InputShapeError: ``attr`` or ``baseline`` not on ``x``'s grid.
        ParameterError: bad ``steps``, ``batch_size`` or ``baseline``.
        TargetError: bad target.

    Example:
        >>> import torch, volsal
        >>> from volsal.metrics import deletion_auc
        >>> model = volsal.testing.tiny_cnn(3)
        >>> x = torch.randn(1, 1, 8, 8, 8)
        >>> attr = volsal.Gradient(model)(x, target=0)
        >>> deletion_auc(model, x, attr, 0, steps=4).shape
        torch.Size([1])
    """
    return _curve(
        model, x, attr, target, steps, baseline, batch_size, softmax, blur_sigma, model_mode, True
    )


def insertion_curve(
    model: nn.Module,
    x: torch.Tensor,
    attr: torch.Tensor,
    target: TargetSpec = None,
    *,
    steps: int = 20,
    baseline: Baseline = 0.0,
    batch_size: int = 16,
    softmax: bool = False,
    blur_sigma: float = 5.0,
    model_mode: str = "eval",
) -> tuple[torch.Tensor, torch.Tensor]:
    """Target score as the top-ranked voxels of ``x`` are revealed on the baseline.

    Step 0 is the baseline alone, step ``steps`` is ``x``. Arguments and returns as
    :func:`deletion_curve` (``fractions`` is the share of voxels inserted).
    """
    return _curve(
        model, x, attr, target, steps, baseline, batch_size, softmax, blur_sigma, model_mode, False
    )


def deletion_auc(
    model: nn.Module, x: torch.Tensor, attr: torch.Tensor, target: TargetSpec = None, **kwargs: Any
) -> torch.Tensor:
    """Area under :func:`deletion_curve` over the fraction axis ``[0, 1]`` (trapezoid rule).

    Lower is better. Returns ``(B,)``. Keyword arguments as :func:`deletion_curve`.
    """
    fractions, scores = deletion_curve(model, x, attr, target, **kwargs)
    return torch.trapezoid(scores, fractions.to(scores.dtype), dim=-1)


def insertion_auc(
    model: nn.Module, x: torch.Tensor, attr: torch.Tensor, target: TargetSpec = None, **kwargs: Any
) -> torch.Tensor:
    """Area under :func:`insertion_curve` over ``[0, 1]`` (trapezoid rule). Higher is better.

    Returns ``(B,)``. Keyword arguments as :func:`deletion_curve`.
    """
    fractions, scores = insertion_curve(model, x, attr, target, **kwargs)
    return torch.trapezoid(scores, fractions.to(scores.dtype), dim=-1)


# -- implementation ------------------------------------------------------------------------------
def _baseline_tensor(baseline: Baseline, x: torch.Tensor, blur_sigma: float) -> torch.Tensor:
    if isinstance(baseline, str):
        if baseline != "blur":
            raise ParameterError(
                f"baseline must be a number, 'blur' or a tensor; got the string {baseline!r}."
            )
        return gaussian_filter(x, blur_sigma, truncate=2.0)
    if isinstance(baseline, bool):
        raise ParameterError("baseline must be a number, 'blur' or a tensor; got a bool.")
    if isinstance(baseline, (int, float)):
        return torch.full_like(x, float(baseline))
    if isinstance(baseline, torch.Tensor):
        base = baseline.to(device=x.device, dtype=x.dtype)
        try:
            return torch.broadcast_to(base, x.shape)
        except RuntimeError:
            raise InputShapeError(
                f"baseline has shape {tuple(baseline.shape)}, which does not broadcast to x "
                f"{tuple(x.shape)}. Fix: give (C, *spatial), (B, C, *spatial) or a scalar."
            ) from None
    raise ParameterError(
        f"baseline must be a number, 'blur' or a tensor; got {type(baseline).__name__}."
    )


class _Scorer:
    """Scores perturbed copies for the class fixed on the unperturbed input."""

    def __init__(self, target: TargetSpec, output: object, softmax: bool, batch: int):
        self.softmax = softmax
        self.target = target
        self.sign: torch.Tensor | None = None
        self.classes: torch.Tensor | None = None
        out = self._prep(output)
        resolved = resolve_target(target, out, batch)
        self.first = resolved.scores.detach()
        if isinstance(out, torch.Tensor) and out.ndim == 2:
            if out.shape[1] == 1 and target is None:
                self.sign = torch.where(out[:, 0] >= 0, 1.0, -1.0).to(out.dtype)
            elif resolved.classes is not None:
                self.classes = resolved.classes

    def _prep(self, out: object) -> object:
        if not self.softmax or not isinstance(out, torch.Tensor) or out.ndim < 2:
            return out
        return out.sigmoid() if out.shape[1] == 1 else out.softmax(1)

    def __call__(self, output: object, rows: torch.Tensor) -> torch.Tensor:
        out = self._prep(output)
        if self.sign is not None:
            return self.sign[rows] * out[:, 0]
        if self.classes is not None:
            return out.gather(1, self.classes[rows][:, None]).squeeze(1)
        return resolve_target(self.target, out, int(rows.numel())).scores


def _curve(
    model: nn.Module,
    x: torch.Tensor,
    attr: torch.Tensor,
    target: TargetSpec,
    steps: int,
    baseline: Baseline,
    batch_size: int,
    softmax: bool,
    blur_sigma: float,
    model_mode: str,
    deletion: bool,
) -> tuple[torch.Tensor, torch.Tensor]:
    check_input(x)
    attr = check_map(attr)
    if attr.shape[0] != x.shape[0] or attr.shape[2:] != x.shape[2:]:
        raise InputShapeError(
            f"attr {tuple(attr.shape)} is not on x's grid {tuple(x.shape)}: expected "
            f"({x.shape[0]}, C, *{tuple(x.shape[2:])}). Fix: resize the map with "
            "volsal.spatial.resize(attr, x.shape[2:])."
        )
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ParameterError(f"steps must be an int >= 1; got {steps!r}.")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ParameterError(f"batch_size must be an int >= 1; got {batch_size!r}.")
    b = x.shape[0]
    spatial = tuple(x.shape[2:])
    n_vox = attr[0, 0].numel()
    x = x.detach()
    base = _baseline_tensor(baseline, x, blur_sigma)
    # rank[b, v] = position of voxel v in the descending order of sample b (0 = top).
    order = voxel_scores(attr.detach()).argsort(dim=1, descending=True, stable=True)
    rank = torch.empty_like(order)
    rank.scatter_(1, order, torch.arange(n_vox, device=order.device).expand(b, n_vox))
    counts = torch.tensor([k * n_vox // steps for k in range(steps + 1)], device=x.device)
    fractions = counts.to(torch.float64) / n_vox
    full_step = 0 if deletion else steps  # the step whose copy is x itself

    scores = torch.empty((b, steps + 1), dtype=x.dtype, device=x.device)
    jobs = [(i, k) for i in range(b) for k in range(steps + 1) if k != full_step]
    with eval_mode(model, model_mode), torch.no_grad():
        scorer = _Scorer(target, model(x), softmax, b)
        scores[:, full_step] = scorer.first.to(x.dtype)
        for start in range(0, len(jobs), batch_size):
            chunk = jobs[start : start + batch_size]
            rows = torch.tensor([i for i, _ in chunk], device=x.device)
            ks = torch.tensor([k for _, k in chunk], device=x.device)
            top = (rank[rows] < counts[ks][:, None]).reshape((len(chunk), 1) + spatial)
            if deletion:
                xs = torch.where(top, base[rows], x[rows])
            else:
                xs = torch.where(top, x[rows], base[rows])
            scores[rows, ks] = scorer(model(xs), rows).to(x.dtype)
    return fractions.to(x.device), scores
