"""Occlusion: the target score's drop when a window of the input is replaced, N-d, batched."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from ..base import Attribution, Explanation
from ..errors import InputShapeError, ParameterError
from ._multipass import check_batch_size, chunks, clean_pass, make_reference, scores_no_grad
from .registry import register

__all__ = ["Occlusion", "window_starts"]


def window_starts(size: int, window: int, stride: int) -> list[int]:
    """Start indices of the windows along one axis.

    Windows start at ``0, stride, 2*stride, ...`` and never cross the border. When that grid
    does not reach the end of the axis, one more window aligned to the end (start
    ``size - window``) is added, so every voxel is covered whenever ``stride <= window``; on a
    window-aligned grid (``(size - window) % stride == 0``) nothing is added.
    """
    starts = list(range(0, size - window + 1, stride))
    if starts[-1] + window < size:
        starts.append(size - window)
    return starts


def _check_axes(name: str, value: Any) -> None:
    vals = (value,) if isinstance(value, int) else value
    try:
        ok = all(isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in vals)
    except TypeError:
        ok = False
    if not ok:
        raise ParameterError(
            f"{name} must be an int >= 1 or one such int per spatial axis; got {value!r}. "
            f"Fix: e.g. {name}=8 or {name}=(4, 8, 8)."
        )


def _per_axis(name: str, value: Any, k: int) -> tuple[int, ...]:
    vals = (value,) * k if isinstance(value, int) else tuple(value)
    if len(vals) != k:
        raise ParameterError(
            f"{name} has {len(vals)} values for an input with {k} spatial axes. Fix: give one "
            f"int or {k} ints."
        )
    return vals


@register(
    "occlusion",
    kind="cam",
    reference="Zeiler and Fergus 2014, Visualizing and Understanding Convolutional Networks, "
    "ECCV, arXiv:1311.2901",
    aliases=("occlusionsensitivity",),
    test_factory=lambda m: Occlusion(m, window=4, stride=2, batch_size=5),
)
class Occlusion(Attribution):
    """Occlusion sensitivity: how much the target score drops when a window is filled.

    For every window position ``w`` on an N-d grid, ``drop_w = f(x) - f(x with window w
    filled)``; each voxel gets the mean drop over the windows that cover it (overlapping
    windows are averaged). All channels are occluded together, so the map is
    ``(B, 1, *spatial)`` (registered with ``kind="cam"`` for that shape; it is an input-space
    method with no layer). Positive = the window supported the target.

    Windows: start at ``0, stride, 2 stride, ...`` per axis and never cross the border; when
    the grid misses the end of an axis, one extra window aligned to the end is added, so edge
    voxels are covered and every window has the full size (no clipped, smaller edge windows;
    see :func:`window_starts`). With ``stride > window`` some voxels are never covered: they get
    0, and ``explain().extras["coverage"]`` (windows per voxel) says which. Window and stride are
    in voxels: with anisotropic spacing (0.5 x 0.5 x 5 mm) give one value per axis
    (e.g. ``window=(2, 16, 16)``) to occlude a cube in mm.

    Runs under ``torch.no_grad()``; the ``n_windows * B`` occluded copies go through the model
    ``batch_size`` at a time (peak memory grows with ``batch_size``, not the number of windows).
    Each copy is scored with its sample's target fixed on the clean input.

    Cost: ``n_windows`` no-grad forwards per sample, plus one for the clean input.

    Args:
        model: the model.
        window: window size in voxels, an int or one per spatial axis.
        stride: step between windows (default: ``window``, non-overlapping).
        fill: what replaces the window: a number (in the model's input space: 0 after
            z-scoring is mean intensity, not air), ``"mean"`` (each sample's per-channel mean),
            ``"blur"`` (a Gaussian-blurred copy of the input, ``blur_sigma``), or a tensor
            broadcastable to ``x``.
        mask: restrict the windows to those touching a region: boolean ``(*spatial)``,
            ``(B, *spatial)`` or ``(B, 1, *spatial)`` (``B`` may be 1). Voxels covered by no
            evaluated window get 0.
        batch_size: occluded copies per forward pass.
        blur_sigma: sigma in voxels for ``fill="blur"`` (default: a quarter of the window).
        model_mode, mode: see :class:`~volsal.base.Attribution`.

    Raises:
        ParameterError: window/stride not >= 1 (stride 0), a window larger than the image,
            ``batch_size < 1``, unknown fill string.
        InputShapeError: a fill tensor or mask that does not fit ``x``.

    Reference: Zeiler and Fergus, "Visualizing and Understanding Convolutional Networks",
    ECCV 2014, arXiv:1311.2901.

    Example:
        >>> import torch, volsal
        >>> model = volsal.testing.tiny_cnn(3)
        >>> occ = volsal.Occlusion(model, window=4, stride=4, batch_size=8)
        >>> occ(torch.randn(1, 1, 8, 8, 8), target=0).shape
        torch.Size([1, 1, 8, 8, 8])
    """

    def __init__(
        self,
        model: nn.Module,
        *,
        window: int | Sequence[int] = 16,
        stride: int | Sequence[int] | None = None,
        fill: float | str | torch.Tensor = 0.0,
        mask: torch.Tensor | None = None,
        batch_size: int = 16,
        blur_sigma: float | Sequence[float] | None = None,
        model_mode: str = "eval",
        mode: str | None = None,
    ):
        super().__init__(model, model_mode=model_mode, mode=mode)
        _check_axes("window", window)
        if stride is not None:
            _check_axes("stride", stride)
        if isinstance(fill, str) and fill not in ("mean", "blur"):
            raise ParameterError(
                f"fill must be a number, a tensor, 'mean' or 'blur'; got {fill!r}."
            )
        self.window = window
        self.stride = stride
        self.fill = fill
        self.mask = mask
        self.batch_size = check_batch_size(batch_size)
        self.blur_sigma = blur_sigma

    def _mask(self, x: torch.Tensor) -> torch.Tensor | None:
        if self.mask is None:
            return None
        m = torch.as_tensor(self.mask, device=x.device)
        spatial = tuple(x.shape[2:])
        if m.ndim == len(spatial):
            m = m[None]
        elif m.ndim == len(spatial) + 2 and m.shape[1] == 1:
            m = m[:, 0]
        if (
            m.ndim != len(spatial) + 1
            or tuple(m.shape[1:]) != spatial
            or m.shape[0]
            not in (
                1,
                x.shape[0],
            )
        ):
            raise InputShapeError(
                f"mask has shape {tuple(torch.as_tensor(self.mask).shape)}; the input is "
                f"{tuple(x.shape)}. Fix: a mask of shape {spatial}, {(x.shape[0],) + spatial} "
                f"or {(x.shape[0], 1) + spatial} on the input grid (resample it first)."
            )
        return (m != 0).expand((x.shape[0],) + spatial)

    def _attribute(self, x: torch.Tensor, target: Any) -> Explanation:
        x = x.detach()
        b_total, k = x.shape[0], x.ndim - 2
        spatial = tuple(x.shape[2:])
        window = _per_axis("window", self.window, k)
        stride = _per_axis("stride", window if self.stride is None else self.stride, k)
        if any(w > s for w, s in zip(window, spatial)):
            raise ParameterError(
                f"window {window} is larger than the image {spatial}. Fix: a window of at most "
                f"{spatial} voxels (typically 1/4 to 1/8 of each axis)."
            )
        mask = self._mask(x)
        sigma = self.blur_sigma if self.blur_sigma is not None else tuple(w / 4 for w in window)
        fill = make_reference(self.fill, x, name="fill", blur_sigma=sigma)
        fill_full = torch.broadcast_to(fill, x.shape)
        regions = [
            (slice(None),) + tuple(slice(s, s + w) for s, w in zip(starts, window))
            for starts in itertools.product(
                *(window_starts(n, w, st) for n, w, st in zip(spatial, window, stride))
            )
        ]
        pairs = [
            (b, r)
            for b in range(b_total)
            for r in regions
            if mask is None or bool(mask[b][r[1:]].any())
        ]
        rt, fixed = clean_pass(self.model, x, target)
        attr = torch.zeros((b_total, 1) + spatial, dtype=x.dtype, device=x.device)
        coverage = torch.zeros((b_total, 1) + spatial, dtype=torch.int32, device=x.device)
        with torch.no_grad():
            for start, stop in chunks(len(pairs), self.batch_size):
                chunk = pairs[start:stop]
                sample = torch.tensor([b for b, _ in chunk], device=x.device)
                xc = x[sample]
                for i, (b, r) in enumerate(chunk):
                    xc[i][r] = fill_full[b][r]
                drop = rt.scores[sample] - scores_no_grad(self.model, xc, fixed.for_copies(sample))
                del xc
                drop = drop.to(x.dtype)
                for i, (b, r) in enumerate(chunk):
                    attr[b][r] += drop[i]
                    coverage[b][r] += 1
        attr = torch.where(
            coverage > 0,
            attr / coverage.clamp_min(1),
            torch.zeros((), dtype=x.dtype, device=x.device),
        )
        return self._result(attr, rt, coverage=coverage, n_windows=len(regions))
