"""Geometry of maps computed on a layer's grid: where each feature voxel sits on the input grid.

A layer output ``(B, K, *feat)`` is a grid of feature voxels; feature voxel ``f`` (per spatial
axis) summarises a receptive field of the input whose centre is at input voxel coordinate

    u = scale * f + offset                      (one scale and offset per spatial axis)

for every network built from convolutions, transposed convolutions, pooling, padding and
resizing (the index maps compose exactly: an affine map of an affine map is affine).
:func:`trace_mappings` derives ``(scale, offset)`` per layer from one forward pass, and
:func:`to_input_grid` resamples a layer-grid map at every input voxel with it.

Why not ``F.interpolate(..., align_corners=False)``? Half-pixel resizing assumes
``offset = (scale - 1) / 2``, which is what an even pooling (kernel = stride) gives. A
stride-2 convolution with kernel 3 and padding 1 centres output ``f`` on input ``2 f``
(offset 0, not 0.5): half-pixel resizing is off by half a voxel per such stage, and unpadded
("valid") convolutions shift the grid further (conv3 -> pool2 -> conv3 on 32 voxels: true
centres ``2 f + 3.5``; half-pixel resizing puts them at ``2.46 f + 0.73``, up to 2.8 voxels
away). See USER_NEEDS P1.

How the trace works: a :class:`~torch.overrides.TorchFunctionMode` sees every torch operation
of the forward pass, functional calls (``F.relu``, ``F.max_pool3d``, ``torch.cat``, ``+``)
included, and carries a mapping along with each tensor that has the input's rank:

- ``conv{1,2,3}d`` / ``max_pool`` / ``avg_pool``: ``i = stride * f - padding + dilation * (kernel - 1) / 2``;
- ``conv_transpose``: ``i = (f + padding - dilation * (kernel - 1) / 2) / stride``;
- ``pad``: ``i = f - pad_before``; ``interpolate``: its sampling formula;
- any other op whose output keeps the spatial shape of its inputs (ReLU, BatchNorm, ``+``,
  ``cat`` over channels, ...) keeps the mapping; inputs that broadcast (``(B, C, 1, 1, 1)``
  gates) are ignored;
- an op that changes the spatial shape in an unknown way, or merges inputs whose mappings
  disagree (residual branches that are not aligned), makes the mapping unknown: ``None``,
  and :func:`to_input_grid` falls back to half-pixel resizing with a :class:`GeometryWarning`.

The mode never changes the model and registers no hook on it (the layer outputs are read
through ``volsal.hooks.forward_hooks``, removed on exit); the forward pass computes exactly
what it would compute without it.
"""

from __future__ import annotations

import contextlib
import warnings
import weakref
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.overrides import TorchFunctionMode
from torch.utils._pytree import tree_flatten

from .errors import GeometryWarning, InputShapeError
from .hooks import forward_hooks
from .layers import resolve_layer
from .spatial import resize

__all__ = [
    "GridMapping",
    "GridTrace",
    "trace_grid",
    "trace_mappings",
    "to_input_grid",
    "half_pixel_mapping",
]


@dataclass(frozen=True)
class GridMapping:
    """Feature-grid to input-grid mapping of one layer, per spatial axis.

    Feature voxel ``f`` (an index on the layer's grid) has its receptive-field centre at input
    voxel coordinate ``u = scale * f + offset`` (continuous; voxel centres are integers).

    Attributes:
        scale: input voxels per feature voxel, one per spatial axis (``2.0`` after one
            stride-2 stage).
        offset: input coordinate of feature voxel 0, one per spatial axis.
        exact: ``True`` when composed exactly from the layer chain; ``False`` for
            approximations (nearest-neighbour resizing in the chain, half-pixel fallback).
    """

    scale: tuple[float, ...]
    offset: tuple[float, ...]
    exact: bool = True

    @property
    def spatial_dims(self) -> int:
        return len(self.scale)

    def matrix(self) -> np.ndarray:
        """The ``(k+1, k+1)`` homogeneous voxel-to-voxel matrix (feature index -> input index).

        Compose it with an input affine (``input_affine @ mapping.matrix()``) to place a
        feature-grid map in world space (3D: a 4x4 matrix).
        """
        k = self.spatial_dims
        m = np.eye(k + 1, dtype=np.float64)
        m[:k, :k] = np.diag(self.scale)
        m[:k, k] = self.offset
        return m

    def to_input(self, f: Sequence[float]) -> tuple[float, ...]:
        """Input coordinate of feature coordinate ``f`` (one value per spatial axis)."""
        return tuple(s * v + o for s, v, o in zip(self.scale, f, self.offset))

    def to_feature(self, u: Sequence[float]) -> tuple[float, ...]:
        """Feature coordinate of input coordinate ``u`` (the inverse map)."""
        return tuple((v - o) / s for s, v, o in zip(self.scale, u, self.offset))

    def compose(self, scale: Sequence[float], offset: Sequence[float]) -> GridMapping:
        """This mapping after an op whose output index ``f`` reads input index ``s f + o``."""
        return GridMapping(
            tuple(a * s for a, s in zip(self.scale, scale)),
            tuple(a * o + b for a, o, b in zip(self.scale, offset, self.offset)),
            self.exact,
        )

    def close_to(self, other: GridMapping, tol: float = 1e-6) -> bool:
        return all(
            abs(a - b) <= tol * max(1.0, abs(a), abs(b))
            for a, b in zip(self.scale + self.offset, other.scale + other.offset)
        )


def identity_mapping(spatial_dims: int) -> GridMapping:
    return GridMapping((1.0,) * spatial_dims, (0.0,) * spatial_dims, True)


def half_pixel_mapping(feat: Sequence[int], size: Sequence[int]) -> GridMapping:
    """The mapping that ``F.interpolate(align_corners=False)`` assumes (flagged inexact).

    ``scale = size / feat`` and ``offset = (scale - 1) / 2``.
    """
    scale = tuple(int(s) / int(n) for n, s in zip(feat, size))
    return GridMapping(scale, tuple((s - 1) / 2 for s in scale), False)


class _Unknown:
    """Marks a tensor whose grid can no longer be related to the input's."""

    def __repr__(self) -> str:
        return "UNKNOWN"


_UNKNOWN = _Unknown()


def _tuple(v: Any, k: int) -> tuple:
    if isinstance(v, (list, tuple)):
        if len(v) == 1:
            return tuple(v) * k
        return tuple(v)
    return (v,) * k


def _arg(args: tuple, kwargs: dict, i: int, name: str, default: Any) -> Any:
    if len(args) > i:
        return args[i]
    return kwargs.get(name, default)


def _conv_like(args, kwargs, k, transposed: bool):
    """(scale, offset) per axis of a (transposed) convolution, from its functional arguments."""
    weight = _arg(args, kwargs, 1, "weight", None)
    kernel = tuple(weight.shape[2:])
    stride = _tuple(_arg(args, kwargs, 3, "stride", 1), k)
    padding = _arg(args, kwargs, 4, "padding", 0)
    if transposed:
        dilation = _tuple(_arg(args, kwargs, 7, "dilation", 1), k)
    else:
        dilation = _tuple(_arg(args, kwargs, 5, "dilation", 1), k)
    if isinstance(padding, str):
        if padding == "valid":
            padding = (0,) * k
        else:  # "same": torch pads total // 2 before, the rest after
            padding = tuple((d * (n - 1)) // 2 for d, n in zip(dilation, kernel))
    padding = _tuple(padding, k)
    centre = [d * (n - 1) / 2 for d, n in zip(dilation, kernel)]
    if transposed:
        return (
            tuple(1.0 / s for s in stride),
            tuple((p - c) / s for p, c, s in zip(padding, centre, stride)),
        )
    return tuple(float(s) for s in stride), tuple(c - p for c, p in zip(centre, padding))


def _pool(args, kwargs, k, with_dilation: bool):
    kernel = _tuple(_arg(args, kwargs, 1, "kernel_size", 1), k)
    stride = _arg(args, kwargs, 2, "stride", None)
    stride = kernel if stride is None or stride == [] or stride == () else _tuple(stride, k)
    padding = _tuple(_arg(args, kwargs, 3, "padding", 0), k)
    dilation = _tuple(_arg(args, kwargs, 4, "dilation", 1), k) if with_dilation else (1,) * k
    centre = [d * (n - 1) / 2 for d, n in zip(dilation, kernel)]
    return tuple(float(s) for s in stride), tuple(c - p for c, p in zip(centre, padding))


def _pad(args, kwargs, k):
    pad = list(_arg(args, kwargs, 1, "pad", ()))
    before = [0] * k
    for j in range(min(len(pad) // 2, k)):  # pad lists the last axis first
        before[k - 1 - j] = pad[2 * j]
    return (1.0,) * k, tuple(-float(b) for b in before)


def _interpolate(args, kwargs, k, in_shape, out_shape):
    mode = _arg(args, kwargs, 3, "mode", "nearest")
    align = _arg(args, kwargs, 4, "align_corners", None)
    factor = _arg(args, kwargs, 2, "scale_factor", None)
    recompute = _arg(args, kwargs, 5, "recompute_scale_factor", None)
    scale, offset = [], []
    factors = _tuple(factor, k) if factor is not None else (None,) * k
    for n_in, n_out, sf in zip(in_shape, out_shape, factors):
        if align:
            r = (n_in - 1) / (n_out - 1) if n_out > 1 else 0.0
            scale.append(r)
            offset.append(0.0)
            continue
        r = 1.0 / float(sf) if sf is not None and not recompute else n_in / n_out
        scale.append(r)
        offset.append(0.5 * r - 0.5)
    exact = mode not in ("nearest", "nearest-exact", "area")
    return tuple(scale), tuple(offset), exact


_CONV = {f"conv{k}d" for k in (1, 2, 3)}
_CONVT = {f"conv_transpose{k}d" for k in (1, 2, 3)}
_MAXPOOL = {f"max_pool{k}d" for k in (1, 2, 3)} | {f"max_pool{k}d_with_indices" for k in (1, 2, 3)}
_AVGPOOL = {f"avg_pool{k}d" for k in (1, 2, 3)}
_SPATIAL_REORDER = {
    "flip",
    "fliplr",
    "flipud",
    "roll",
    "rot90",
    "transpose",
    "permute",
    "movedim",
    "moveaxis",
    "swapaxes",
    "swapdims",
}


class _Tracer(TorchFunctionMode):
    """Carries a :class:`GridMapping` along with every tensor of the input's rank."""

    def __init__(self, spatial_dims: int):
        super().__init__()
        self.k = spatial_dims
        self._maps: dict[int, tuple[weakref.ref, GridMapping | _Unknown]] = {}
        self.failed: str | None = None

    def set(self, t: torch.Tensor, m: GridMapping | _Unknown) -> None:
        self._maps[id(t)] = (weakref.ref(t), m)

    def get(self, t: Any) -> GridMapping | _Unknown | None:
        if not isinstance(t, torch.Tensor) or t.ndim != self.k + 2:
            return None
        entry = self._maps.get(id(t))
        if entry is None or entry[0]() is not t:
            return None
        return entry[1]

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        try:
            self._propagate(func, args, kwargs, out)
        except Exception as err:  # noqa: BLE001 - bookkeeping must never break the forward
            self.failed = f"{getattr(func, '__name__', func)}: {err}"
        return out

    def _propagate(self, func, args, kwargs, out) -> None:
        k = self.k
        outs = [t for t in tree_flatten(out)[0] if isinstance(t, torch.Tensor) and t.ndim == k + 2]
        if not outs:
            return
        name = getattr(func, "__name__", "")
        first = args[0] if args else kwargs.get("input")
        if name in _CONV | _CONVT | _MAXPOOL | _AVGPOOL | {"pad", "interpolate"}:
            src = self.get(first)
            if src is None:
                return
            if isinstance(src, _Unknown):
                new: GridMapping | _Unknown = _UNKNOWN
            else:
                exact = True
                if name in _CONV:
                    scale, offset = _conv_like(args, kwargs, k, transposed=False)
                elif name in _CONVT:
                    scale, offset = _conv_like(args, kwargs, k, transposed=True)
                elif name in _MAXPOOL:
                    scale, offset = _pool(args, kwargs, k, with_dilation=True)
                elif name in _AVGPOOL:
                    scale, offset = _pool(args, kwargs, k, with_dilation=False)
                elif name == "pad":
                    scale, offset = _pad(args, kwargs, k)
                else:
                    scale, offset, exact = _interpolate(
                        args, kwargs, k, first.shape[2:], outs[0].shape[2:]
                    )
                new = src.compose(scale, offset)
                if not exact:
                    new = GridMapping(new.scale, new.offset, False)
            for t in outs:
                self.set(t, new)
            return
        ins = [t for t in tree_flatten((args, kwargs))[0] if isinstance(t, torch.Tensor)]
        for t in outs:
            shape = tuple(t.shape[2:])
            found: list[GridMapping | _Unknown] = []
            for s in ins:
                m = self.get(s)
                if m is None:
                    continue
                s_shape = tuple(s.shape[2:])
                if s_shape == shape:
                    found.append(m)
                elif all(n == 1 for n in s_shape):
                    continue  # a broadcast gate (squeeze-and-excitation): no geometry
                else:
                    found.append(_UNKNOWN)
            if not found:
                continue
            if name in _SPATIAL_REORDER or any(isinstance(m, _Unknown) for m in found):
                self.set(t, _UNKNOWN)
                continue
            ref = found[0]
            if all(ref.close_to(m) for m in found[1:]):
                self.set(t, GridMapping(ref.scale, ref.offset, all(m.exact for m in found)))
            else:
                self.set(t, _UNKNOWN)


class GridTrace:
    """Result of :func:`trace_grid`: the mapping of each traced layer, filled by the forward.

    Attributes:
        mappings: layer name -> :class:`GridMapping`, or ``None`` when the layer's grid could
            not be related to the input's (or the layer did not run).
        reasons: layer name -> why its mapping is ``None``.
    """

    def __init__(self, names: Sequence[str]):
        self.mappings: dict[str, GridMapping | None] = {n: None for n in names}
        self.reasons: dict[str, str] = {n: "the layer did not run" for n in names}

    def __getitem__(self, name: str) -> GridMapping | None:
        return self.mappings[name]


@contextlib.contextmanager
def trace_grid(model: nn.Module, x: torch.Tensor, names: Sequence[str]) -> Iterator[GridTrace]:
    """Trace the grid mappings of ``names`` during the forward passes run inside the block.

    Combine it with a method's own forward pass (no extra pass)::

        with trace_grid(model, x, ["layer4"]) as geo:
            model(x)            # x must be this very tensor object
        geo["layer4"]           # GridMapping or None

    Args:
        model: the model (layers are resolved by name; only forward hooks are added, and
            removed on exit).
        x: the input tensor object that the forward pass receives ``(B, C, *spatial)``.
        names: dotted layer names (or anything :func:`~volsal.layers.resolve_layer` takes).

    Yields:
        :class:`GridTrace`, filled when the layers run (the last call of a layer wins).
    """
    k = x.ndim - 2
    resolved = [resolve_layer(model, n) for n in names]
    result = GridTrace([n for n, _ in resolved])
    tracer = _Tracer(k)
    tracer.set(x, identity_mapping(k))

    def make(name: str):
        def hook(_m, _inp, out):
            m = tracer.get(out)
            if isinstance(m, GridMapping) and tracer.failed is None:
                result.mappings[name] = m
                result.reasons.pop(name, None)
            else:
                result.mappings[name] = None
                if tracer.failed is not None:
                    result.reasons[name] = f"tracing failed at {tracer.failed}"
                elif not isinstance(out, torch.Tensor) or out.ndim != k + 2:
                    result.reasons[name] = "the layer output does not keep the input's rank"
                elif m is None:
                    result.reasons[name] = "the layer output is not derived from the input"
                else:
                    result.reasons[name] = (
                        "an op between input and layer changes the grid in an unknown way, or "
                        "branches with different grids are merged"
                    )

        return hook

    with forward_hooks((mod, make(n)) for n, mod in resolved), tracer:
        yield result


def trace_mappings(
    model: nn.Module, x: torch.Tensor, names: Sequence[str]
) -> dict[str, GridMapping | None]:
    """Grid mappings of several layers, from one no-grad forward pass.

    The model is run as it is (wrap the call in :func:`volsal.hooks.eval_mode` for eval mode).

    Args:
        model: the model.
        x: an input ``(B, C, *spatial)`` of the size the maps will be resized to (the mapping
            does not depend on the values; a batch of one is enough).
        names: dotted layer names.

    Returns:
        dict name -> :class:`GridMapping` or ``None`` (not derivable: see :func:`trace_grid`).

    Example:
        >>> import torch, volsal
        >>> from volsal.receptive import trace_mappings
        >>> trace_mappings(volsal.testing.tiny_cnn(2), torch.zeros(1, 1, 8, 8), ["features"])
        {'features': GridMapping(scale=(2.0, 2.0), offset=(0.5, 0.5), exact=True)}
    """
    with trace_grid(model, x, names) as geo, torch.no_grad():
        model(x)
    return dict(geo.mappings)


def to_input_grid(
    fmap: torch.Tensor,
    mapping: GridMapping | None,
    size: Sequence[int],
    *,
    stacklevel: int = 2,
) -> torch.Tensor:
    """Resample a layer-grid map onto the input grid with its receptive-field mapping.

    Every input voxel ``u`` reads the map at ``f = (u - offset) / scale`` with linear
    interpolation along each axis (bilinear in 2D, trilinear in 3D, separable), clamped at the
    edges of the feature grid. With ``offset = (scale - 1) / 2`` this is exactly
    ``F.interpolate(..., align_corners=False)``.

    Args:
        fmap: ``(B, C, *feat)`` map on the layer's grid.
        mapping: the layer's :class:`GridMapping`; ``None`` falls back to half-pixel resizing
            (:func:`volsal.spatial.resize`) with a :class:`GeometryWarning`.
        size: the input's spatial size.

    Returns:
        ``(B, C, *size)``, same dtype and device as ``fmap``.

    Raises:
        InputShapeError: ``size`` or ``mapping`` do not have the map's number of spatial dims.
    """
    size = tuple(int(s) for s in size)
    k = fmap.ndim - 2
    if len(size) != k:
        raise InputShapeError(f"to_input_grid: size {size} has {len(size)} dims, map has {k}.")
    if mapping is None and all(n == 1 for n in fmap.shape[2:]):
        return resize(fmap, size)  # a single cell: constant map, nothing to place
    if mapping is None:
        warnings.warn(
            "the feature-to-input grid mapping of this layer could not be derived; the map "
            "was resized with half-pixel centres (F.interpolate align_corners=False), which "
            "can be off by up to a few voxels. Pick a layer reached only through "
            "convolutions, pooling and element-wise ops to get exact placement.",
            GeometryWarning,
            stacklevel=stacklevel,
        )
        return resize(fmap, size)
    if mapping.spatial_dims != k:
        raise InputShapeError(
            f"to_input_grid: the mapping has {mapping.spatial_dims} spatial dims, the map {k}."
        )
    out = fmap
    for axis, (n_out, s, o) in enumerate(zip(size, mapping.scale, mapping.offset)):
        dim = axis + 2
        n_in = out.shape[dim]
        if n_in == 1:
            out = out.expand(*out.shape[:dim], n_out, *out.shape[dim + 1 :])
            continue
        u = torch.arange(n_out, dtype=torch.float64, device=out.device)
        f = ((u - o) / s).clamp(0, n_in - 1)
        i0 = f.floor().clamp(max=n_in - 2).long()
        w = (f - i0).to(out.dtype)
        shape = [1] * out.ndim
        shape[dim] = n_out
        w = w.view(shape)
        lo = out.index_select(dim, i0)
        hi = out.index_select(dim, i0 + 1)
        out = lo + (hi - lo) * w
    return out.contiguous()
