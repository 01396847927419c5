"""Shared pieces of the multi-pass methods (IntegratedGradients, SmoothGrad, Occlusion).

- option checks with messages that name the fix;
- :func:`clean_pass`: one no-grad forward on the clean input that resolves the target once and
  returns a :class:`FixedTarget`, so that every perturbed copy of sample ``b`` is scored with
  sample ``b``'s target (the class predicted on the *clean* input for ``target=None``, the
  clean prediction's region for ``RegionTarget(cls)`` without a mask), whatever the copies'
  own predictions are;
- :func:`chunks`: ``batch_size``-sized ranges over ``n_copies``, so peak memory grows with
  ``batch_size`` and never with ``n_steps`` / ``n_samples`` / the number of windows;
- :func:`make_reference`: scalar / tensor / ``"mean"`` / ``"blur"`` baselines and fills;
- :func:`gaussian_blur`: separable N-d Gaussian blur (one code path for 2D and 3D).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterator, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import InputShapeError, ParameterError
from ..targets import RegionTarget, ResolvedTarget, resolve_target

__all__ = [
    "check_int",
    "check_batch_size",
    "chunks",
    "FixedTarget",
    "clean_pass",
    "make_reference",
    "gaussian_blur",
    "per_axis",
    "scores_no_grad",
    "expand_rows",
]


def check_int(name: str, value: Any, minimum: int, fix: str) -> int:
    """``value`` as an int ``>= minimum``, or a :class:`ParameterError` naming the fix."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ParameterError(f"{name} must be an int >= {minimum}; got {value!r}. Fix: {fix}")
    return value


def check_batch_size(batch_size: Any) -> int:
    return check_int(
        "batch_size",
        batch_size,
        1,
        "batch_size is how many perturbed copies go through the model at once; use 1 or more "
        "(lower it when memory runs out).",
    )


def chunks(total: int, batch_size: int) -> Iterator[tuple[int, int]]:
    """``[start, stop)`` ranges of at most ``batch_size`` over ``range(total)``."""
    for start in range(0, total, batch_size):
        yield start, min(start + batch_size, total)


def per_axis(name: str, value: Any, spatial_dims: int, minimum: int) -> tuple[int, ...]:
    """An int or one int per spatial axis, as a tuple of ``spatial_dims`` ints ``>= minimum``."""
    vals = (value,) * spatial_dims if isinstance(value, int) else tuple(value)
    if len(vals) != spatial_dims or any(
        isinstance(v, bool) or not isinstance(v, int) or v < minimum for v in vals
    ):
        raise ParameterError(
            f"{name} must be an int >= {minimum} or {spatial_dims} such ints (one per spatial "
            f"axis); got {value!r}. Fix: e.g. {name}={max(minimum, 1) * 8} or "
            f"{name}={(max(minimum, 1) * 8,) * spatial_dims}."
        )
    return vals


# -- targets ----------------------------------------------------------------------------------
class _SignedLogit:
    """Score of a single-logit model with a fixed sign per copy (``target=None`` on binary)."""

    __name__ = "predicted (binary, signed logit)"

    def __init__(self, sign: torch.Tensor):
        self.sign = sign

    def __call__(self, out: torch.Tensor) -> torch.Tensor:
        logit = out.reshape(out.shape[0], -1)[:, 0]
        return logit * self.sign.to(logit.dtype)


@dataclasses.dataclass(frozen=True)
class FixedTarget:
    """A target resolved on the clean input, re-usable on copies of any of its samples.

    ``for_copies(idx)`` gives the target spec for a batch of copies whose ``i``-th copy comes
    from sample ``idx[i]``.
    """

    spec: Any
    kind: str  # "classes", "sign", "region", "as_is"

    def for_copies(self, idx: torch.Tensor) -> Any:
        if self.kind == "classes":
            return self.spec[idx.to(self.spec.device)]
        if self.kind == "sign":
            return _SignedLogit(self.spec[idx.to(self.spec.device)])
        if self.kind == "region":
            mask = self.spec.mask
            return dataclasses.replace(self.spec, mask=mask[idx.to(mask.device)])
        return self.spec


def _fix(target: Any, out: Any, rt: ResolvedTarget) -> FixedTarget:
    if isinstance(target, RegionTarget):
        logits = out[:, int(target.cls)]
        if target.mask is None:
            k = out.shape[1]
            region = (out[:, 0] > 0) if k == 1 else (out.argmax(1) == int(target.cls))
            return FixedTarget(dataclasses.replace(target, mask=region.to(out.dtype)), "region")
        mask = torch.as_tensor(target.mask, device=out.device)
        if mask.ndim == logits.ndim + 1 and mask.shape[1] == 1:
            mask = mask[:, 0]
        if mask.ndim == logits.ndim:  # one mask per sample
            return FixedTarget(dataclasses.replace(target, mask=mask), "region")
        return FixedTarget(target, "as_is")
    if rt.classes is not None:
        if target is None and isinstance(out, torch.Tensor) and out.shape[1] == 1:
            return FixedTarget(rt.classes.to(out.dtype) * 2 - 1, "sign")
        return FixedTarget(rt.classes, "classes")
    return FixedTarget(target, "as_is")


def clean_pass(
    model: nn.Module, x: torch.Tensor, target: Any
) -> tuple[ResolvedTarget, FixedTarget]:
    """One no-grad forward on ``x``: its target scores ``(B,)`` and the target fixed per sample.

    Callables and :class:`~volsal.targets.Target` objects other than class and region
    targets are used as they are on the copies (they must accept any batch size).
    """
    with torch.no_grad():
        out = model(x)
        rt = resolve_target(target, out, x.shape[0])
        fixed = _fix(target, out, rt)
    return ResolvedTarget(rt.scores.detach(), rt.classes, rt.description), fixed


def scores_no_grad(model: nn.Module, x: torch.Tensor, target: Any) -> torch.Tensor:
    """Target scores ``(N,)`` of a batch of copies, without building a graph."""
    with torch.no_grad():
        return resolve_target(target, model(x), x.shape[0]).scores.detach()


# -- references (IG baselines, occlusion fills) ------------------------------------------------
def gaussian_blur(x: torch.Tensor, sigma: float | Sequence[float]) -> torch.Tensor:
    """Separable Gaussian blur of ``(B, C, *spatial)`` along each spatial axis.

    Args:
        x: input, 1 to 3 spatial dims.
        sigma: standard deviation in voxels, one value or one per spatial axis (use per-axis
            values for anisotropic voxels, e.g. ``(1.0, 4.0, 4.0)`` for 5 mm slices of
            1.25 mm pixels). The kernel is truncated at 3 sigma; borders are replicated.
    """
    k = x.ndim - 2
    sig = (float(sigma),) * k if isinstance(sigma, (int, float)) else tuple(map(float, sigma))
    if len(sig) != k or any(s < 0 or not math.isfinite(s) for s in sig):
        raise ParameterError(
            f"blur_sigma must be a non-negative number or {k} of them (voxels per spatial "
            f"axis); got {sigma!r}."
        )
    conv = (F.conv1d, F.conv2d, F.conv3d)[k - 1]
    c = x.shape[1]
    out = x
    for axis, s in enumerate(sig):
        if s == 0:
            continue
        r = max(1, math.ceil(3 * s))
        t = torch.arange(-r, r + 1, dtype=x.dtype, device=x.device)
        w = torch.exp(-0.5 * (t / s) ** 2)
        w = w / w.sum()
        shape = [1, 1] + [1] * k
        shape[2 + axis] = 2 * r + 1
        weight = w.reshape(shape).expand([c] + shape[1:])
        pad = [0, 0] * k
        pad[2 * (k - 1 - axis)] = pad[2 * (k - 1 - axis) + 1] = r
        out = conv(F.pad(out, pad, mode="replicate"), weight, groups=c)
    return out


def make_reference(
    spec: Any, x: torch.Tensor, *, name: str, blur_sigma: float | Sequence[float]
) -> torch.Tensor:
    """Turn a baseline/fill spec into a tensor broadcastable to ``x``.

    Args:
        spec: a number; a tensor broadcastable to ``x`` without changing its shape (``x``'s
            shape, ``(C, *spatial)``, ``(C, 1, ..., 1)``, a 0-d tensor...); ``"mean"`` (each
            sample's mean per channel); ``"blur"`` (a Gaussian-blurred copy of ``x``).
        x: the input ``(B, C, *spatial)``.
        name: the option's name, for messages.
        blur_sigma: sigma in voxels for ``"blur"``.

    Raises:
        ParameterError: unknown string.
        InputShapeError: a tensor that does not broadcast to ``x``.
    """
    if isinstance(spec, str):
        if spec == "mean":
            return x.mean(dim=tuple(range(2, x.ndim)), keepdim=True)
        if spec == "blur":
            return gaussian_blur(x, blur_sigma)
        raise ParameterError(f"{name} must be a number, a tensor, 'mean' or 'blur'; got {spec!r}.")
    if isinstance(spec, bool):
        raise ParameterError(f"{name} must be a number, a tensor, 'mean' or 'blur'; got {spec!r}.")
    if isinstance(spec, (int, float)):
        return torch.full((), float(spec), dtype=x.dtype, device=x.device)
    ref = torch.as_tensor(spec, dtype=x.dtype, device=x.device)
    try:
        ok = torch.broadcast_shapes(ref.shape, x.shape) == x.shape
    except RuntimeError:
        ok = False
    if not ok:
        raise InputShapeError(
            f"{name} has shape {tuple(ref.shape)}, which does not broadcast to the input "
            f"{tuple(x.shape)}. Fix: pass a tensor of shape {tuple(x.shape)} (one per sample), "
            f"{tuple(x.shape[1:])} (shared), {(x.shape[1],) + (1,) * (x.ndim - 2)} (one value "
            "per channel) or a number."
        )
    if not bool(torch.isfinite(ref).all()):
        raise ParameterError(f"{name} holds NaN/Inf values.")
    return ref.detach()


def expand_rows(ref: torch.Tensor, x: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """Rows ``idx`` of ``ref`` broadcast to ``x``'s shape (without materialising all of it)."""
    if ref.ndim == x.ndim and ref.shape[0] == x.shape[0] and x.shape[0] > 1:
        return ref[idx]
    if ref.ndim == x.ndim:
        return ref.expand((len(idx),) + tuple(ref.shape[1:]))
    return ref.expand((len(idx),) + tuple(x.shape[1:]))
