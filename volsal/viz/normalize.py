"""Display normalisation: the SmoothGrad paper's grayscale and diverging maps, rank-generic.

``grayscale`` shows magnitude only (absolute value summed over channels, to ``[0, 1]``);
``diverging`` keeps the sign (signed sum over channels, to ``[-1, 1]`` with zero kept at zero).
Both divide by a percentile of the magnitudes instead of the maximum, so a few outlier voxels
cannot wash out the map (Smilkov et al., "SmoothGrad: removing noise by adding noise", 2017,
arXiv:1706.03825). Neither subtracts the minimum: zero stays zero, so a weak map stays weak
on a shared ``scale`` (USER_NEEDS P3). Use these for display only; methods return raw maps.
"""

from __future__ import annotations

import logging
import math
import warnings
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import torch

from ..errors import DegenerateMapWarning, InputShapeError, InputValueError, ParameterError

__all__ = ["grayscale", "diverging", "shared_scale", "percentile_scale"]

logger = logging.getLogger("volsal")


def _to_numpy(x: Any) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        return x.detach().cpu().to(torch.float64).numpy()
    return np.asarray(x, dtype=np.float64)


def _like(out: np.ndarray, ref: Any) -> Any:
    """``out`` as the same kind (tensor on the same device / array) and float dtype as ``ref``."""
    if isinstance(ref, torch.Tensor):
        dtype = ref.dtype if ref.is_floating_point() else torch.float32
        return torch.from_numpy(out).to(device=ref.device, dtype=dtype)
    ref_dtype = np.asarray(ref).dtype
    return out.astype(ref_dtype if np.issubdtype(ref_dtype, np.floating) else np.float64)


def _check_percentile(percentile: float) -> float:
    p = float(percentile)
    if not (0.0 < p <= 100.0):
        raise ParameterError(f"percentile must be in (0, 100]; got {percentile!r}.")
    return p


def _reduce(attr: Any, channel_axis: int | None, batched: bool, signed: bool) -> np.ndarray:
    """``(B, *spatial)`` float64: channels summed (signed or of absolute values)."""
    arr = _to_numpy(attr)
    if not np.all(np.isfinite(arr)):
        raise InputValueError(
            "the map holds NaN or inf values; fix the method's output (e.g. a division by "
            "zero upstream) before normalising it for display."
        )
    if arr.ndim == 0:
        raise InputShapeError("expected a map with at least one axis; got a scalar.")
    vals = arr if signed else np.abs(arr)
    if channel_axis is not None:
        ax = channel_axis % arr.ndim if -arr.ndim <= channel_axis < arr.ndim else None
        if ax is None or (batched and ax == 0):
            raise InputShapeError(
                f"channel_axis={channel_axis} is not a channel axis of a map of shape "
                f"{arr.shape}{' (axis 0 is the batch)' if batched else ''}."
            )
        vals = vals.sum(axis=ax)
    return vals if batched else vals[None]


def percentile_scale(values: np.ndarray, percentile: float) -> float:
    """The ``percentile`` of ``|values|``; the maximum when that percentile is 0 (sparse maps).

    Returns 0.0 only for an all-zero input.
    """
    mag = np.abs(np.asarray(values, dtype=np.float64)).ravel()
    if mag.size == 0:
        return 0.0
    s = float(np.percentile(mag, _check_percentile(percentile)))
    if s <= 0.0:
        top = float(mag.max())
        if top > 0.0:
            logger.info(
                "the %gth percentile of the map's magnitude is 0 (a sparse map); scaling by "
                "its maximum %.4g instead.",
                percentile,
                top,
            )
        s = top
    return s


def _normalise(
    attr: Any,
    percentile: float,
    scale: float | None,
    channel_axis: int | None,
    batched: bool,
    signed: bool,
    name: str,
) -> Any:
    _check_percentile(percentile)
    if scale is not None and not (math.isfinite(float(scale)) and float(scale) >= 0.0):
        raise ParameterError(f"scale must be a finite number >= 0; got {scale!r}.")
    maps = _reduce(attr, channel_axis, batched, signed)
    out = np.zeros_like(maps)
    lo = -1.0 if signed else 0.0
    constant = []
    for b, m in enumerate(maps):
        if m.size == 0 or m.max() == m.min():
            constant.append(b)
            continue
        s = percentile_scale(m, percentile) if scale is None else float(scale)
        if s == 0.0:
            raise ParameterError(
                f"scale=0 cannot normalise a non-constant map; pass the value returned by "
                f"shared_scale(...) or leave scale=None. ({name})"
            )
        out[b] = np.clip(m / s, lo, 1.0)
    if constant:
        warnings.warn(
            f"{name}: {len(constant)} of {len(maps)} map(s) are constant (e.g. all zero); "
            "they are shown as zeros. A constant map carries no spatial information.",
            DegenerateMapWarning,
            stacklevel=3,
        )
    return _like(out if batched else out[0], attr)


def grayscale(
    attr: Any,
    percentile: float = 99,
    *,
    scale: float | None = None,
    channel_axis: int | None = None,
    batched: bool = False,
) -> Any:
    """Magnitude map for display: ``|attr|`` summed over channels, divided by a percentile, in [0, 1].

    ``out = clip(sum_c |attr_c| / s, 0, 1)`` with ``s`` the ``percentile``-th percentile of
    ``sum_c |attr_c|`` over the whole map (its maximum if that percentile is 0), or ``scale``.
    Zero stays zero (no minimum is subtracted). Works on any rank (2D, 3D).

    Args:
        attr: tensor or array. ``(*spatial)`` by default; ``(C, *spatial)`` (or any layout) with
            ``channel_axis`` naming the axis to sum over; ``(B, C, *spatial)`` with
            ``batched=True, channel_axis=1`` (each sample normalised by its own percentile).
        percentile: in (0, 100]; 100 divides by the maximum.
        scale: divide by this instead of a per-map percentile, e.g. ``shared_scale(...)`` to
            put several maps on one scale.
        channel_axis: axis summed over (after taking absolute values); ``None``: no channels.
        batched: axis 0 is a batch axis; each sample is normalised on its own.

    Returns:
        Same kind as ``attr`` (tensor on its device, or numpy array), float, the channel axis
        removed: ``(*spatial)`` or ``(B, *spatial)``. A constant map gives zeros and a
        :class:`~volsal.errors.DegenerateMapWarning`, never NaN.

    Raises:
        ParameterError: ``percentile`` outside (0, 100], negative / non-finite ``scale``.
        InputShapeError: ``channel_axis`` is not an axis of ``attr``.
        InputValueError: ``attr`` holds NaN or inf.

    Example:
        >>> import numpy as np
        >>> grayscale(np.array([[0.0, -1.0], [2.0, 4.0]]), percentile=100)
        array([[0.  , 0.25],
               [0.5 , 1.  ]])
    """
    return _normalise(attr, percentile, scale, channel_axis, batched, False, "grayscale")


def diverging(
    attr: Any,
    percentile: float = 99,
    *,
    scale: float | None = None,
    channel_axis: int | None = None,
    batched: bool = False,
) -> Any:
    """Signed map for display: channels summed, divided by a percentile of ``|sum|``, in [-1, 1].

    ``out = clip(sum_c attr_c / s, -1, 1)`` with ``s`` the ``percentile``-th percentile of
    ``|sum_c attr_c|`` (its maximum if that is 0), or ``scale``. Zero stays zero and the sign
    is kept: show it with a diverging colormap and limits ``(-1, 1)``.

    Args:
        attr: as in :func:`grayscale`.
        percentile: in (0, 100].
        scale: shared divisor (see :func:`shared_scale` with ``signed=True``).
        channel_axis: axis summed over (signed sum); ``None``: no channels.
        batched: axis 0 is a batch axis; each sample is normalised on its own.

    Returns:
        Same kind as ``attr``, ``(*spatial)`` or ``(B, *spatial)``; a constant map gives zeros
        and a :class:`~volsal.errors.DegenerateMapWarning`.

    Raises:
        ParameterError, InputShapeError, InputValueError: as in :func:`grayscale`.

    Example:
        >>> import numpy as np
        >>> diverging(np.array([-2.0, 0.0, 1.0, 4.0]), percentile=100)
        array([-0.5 ,  0.  ,  0.25,  1.  ])
    """
    return _normalise(attr, percentile, scale, channel_axis, batched, True, "diverging")


def shared_scale(
    maps: Mapping[str, Any] | Iterable[Any],
    percentile: float = 99,
    *,
    signed: bool = False,
    channel_axis: int | None = None,
    batched: bool = False,
) -> float:
    """One divisor for several maps (methods, randomised models), to pass as ``scale=``.

    The ``percentile`` is taken over the pooled values of all maps (reduced the way
    :func:`grayscale` (``signed=False``) or :func:`diverging` (``signed=True``) reduces them),
    so a map that is weak relative to the others stays visibly weak.

    Args:
        maps: a mapping (its values are used) or an iterable of tensors / arrays.
        percentile: in (0, 100].
        signed: pool ``|sum_c attr_c|`` (for ``diverging``) instead of ``sum_c |attr_c|``.
        channel_axis, batched: as in :func:`grayscale`, applied to every map.

    Returns:
        The scale (>= 0; 0.0 only if every map is all zero).

    Raises:
        ParameterError: no maps given, or ``percentile`` outside (0, 100].

    Example:
        >>> import numpy as np
        >>> s = shared_scale([np.array([0.0, 1.0]), np.array([0.0, 4.0])], percentile=100)
        >>> s, grayscale(np.array([0.0, 1.0]), scale=s).tolist()
        (4.0, [0.0, 0.25])
    """
    items = list(maps.values()) if isinstance(maps, Mapping) else list(maps)
    if not items:
        raise ParameterError("shared_scale needs at least one map; got none.")
    pooled = np.concatenate(
        [np.abs(_reduce(m, channel_axis, batched, signed)).ravel() for m in items]
    )
    return percentile_scale(pooled, percentile)
