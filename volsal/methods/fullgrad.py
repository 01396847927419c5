"""FullGrad: the full-gradient decomposition, its completeness check, FullGrad and SimpleFullGrad.

For a network built from convolutions, linear layers, eval-mode BatchNorm and positively
homogeneous non-linearities (ReLU, LeakyReLU, PReLU, max/average pooling), the output is
exactly the sum of an input term and one term per bias (Srinivas and Fleuret 2019, Eq. 2):

    f(x) = sum(x * grad_x f) + sum_l sum(b_l * grad_{b_l} f)

``b_l * grad_{b_l} f`` is a map on layer ``l``'s grid: the layer's (effective) bias times the
gradient of ``f`` with respect to the layer's output, at every output position
(:func:`fullgrad_decomposition`). :func:`completeness_gap` measures how far a decomposition is
from the identity; the gap names the layers that break it (:func:`volsal.hooks.breaking_ops`).

FullGrad's saliency map (Eq. 4 of the paper) post-processes every term with
``psi = rescale(abs(.))`` and brings it to the input grid:

    FullGrad(x) = psi(x * grad_x f) + sum_l sum_c resize(psi(b_l * grad_{b_l} f))_c

where ``rescale`` maps each term of each sample to ``[0, 1]`` (min-max over channels and
positions, as the reference implementation does). :class:`SimpleFullGrad` uses
``psi(grad_{b_l} f)`` (the gradients at the layer outputs, without the biases).

Cost: one forward pass and one backward pass to the input. The layer terms are computed and
reduced to ``(B, 1, *feat)`` inside the backward pass as each layer's gradient arrives (a tensor
hook), so FullGrad never holds all the layer gradients at once.

Where volsal differs from the reference implementation (``saliency/fullgrad.py``):

- every ``Conv1d/2d/3d``, ``ConvTranspose*``, ``Linear`` and ``BatchNorm1d/2d/3d`` is found by
  name and call (reused modules and branches run in another order than declared are right);
  the reference hooks ``Conv2d``, ``Linear`` and ``BatchNorm2d`` and pairs biases with
  gradients by list position;
- layer maps are placed on the input grid at their receptive-field centres
  (:func:`volsal.receptive.to_input_grid`; bilinear in 2D, trilinear in 3D), or with
  ``placement="half_pixel"`` by ``F.interpolate(align_corners=False)``; the reference uses
  ``F.interpolate(..., mode="bilinear", align_corners=True)``, which stretches the corners of
  the layer grid onto the corners of the image (off by up to half a layer cell);
- the rescale is an exact min-max, ``(t - min) / (max - min)`` (a constant map becomes 0);
  the reference divides by ``max - min + 1e-6``, an absolute epsilon that flattens maps whose
  values are below about 1e-6 (float64, small logits);
- completeness is checked on the real input when asked (``check_completeness="input"``, at no
  extra cost) or also on one random input (``"random"``), and a gap above ``tolerance`` gives a
  :class:`~volsal.errors.CompletenessWarning` that names the breaking layers; the reference
  asserts on a random input in the constructor;
- the target score is the raw logit (the reference's ``-nll_loss(out, c)`` is the same number).

Reference: Srinivas and Fleuret, "Full-Gradient Representation for Neural Network
Visualization", NeurIPS 2019, arXiv:1905.00780.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from ..base import Attribution, Explanation
from ..errors import (
    CompletenessWarning,
    GeometryWarning,
    ParameterError,
    UnsupportedModelError,
    VolsalWarning,
)
from ..hooks import (
    BiasSite,
    bias_layers,
    breaking_ops,
    capture_biases,
    eval_mode,
    keep_running_stats,
)
from ..hooks.bias import NORM_LAYER_TYPES
from ..layers import LayerSpec, check_model_rank, resolve_layer, unwrap
from ..receptive import GridMapping, to_input_grid, trace_grid
from ..spatial import check_input, resize
from ..targets import ResolvedTarget, resolve_target
from .registry import register

__all__ = [
    "FullGradDecomposition",
    "CompletenessGap",
    "fullgrad_decomposition",
    "completeness_gap",
    "FullGrad",
    "SimpleFullGrad",
    "DEFAULT_TOLERANCE",
]

#: default relative completeness tolerance, ``|gap| / |f(x)|`` (the reference's ``rel_tol``).
DEFAULT_TOLERANCE = 1e-4

_CHECKS = (False, "input", "random")
_PLACEMENTS = ("receptive_field", "half_pixel")


# -- the decomposition ----------------------------------------------------------------------
@dataclass
class FullGradDecomposition:
    """The full-gradient decomposition of the target scores of a batch.

    Attributes:
        input_term: ``x * grad_x f``, ``(B, C, *spatial)``.
        bias_terms: layer key -> ``b * grad_b f`` on the layer's grid, ``(B, C_l, *feat)``
            (``(B, C_l)`` for ``Linear`` layers); keys are dotted module names, ``"name#1"``
            for a module's second call, and so on. In call order.
        scores: ``f(x)``, the target scores ``(B,)``.
        classes: ``(B,)`` class indices, or ``None`` for callable / region targets.
        target: description of the target.
        layer_types: layer key -> module class name.
        breaking: what in the forward pass breaks completeness (``"where (what)"``),
            see :func:`volsal.hooks.breaking_ops`; empty for a complete network.
        input_gradient: the plain gradient ``grad_x f`` ``(B, C, *spatial)``.
    """

    input_term: torch.Tensor
    bias_terms: dict[str, torch.Tensor]
    scores: torch.Tensor
    classes: torch.Tensor | None
    target: str
    layer_types: dict[str, str] = field(default_factory=dict)
    breaking: list[str] = field(default_factory=list)
    input_gradient: torch.Tensor | None = None

    def total(self) -> torch.Tensor:
        """``sum(x * grad_x f) + sum_l sum(b_l * grad_b_l f)`` per sample, ``(B,)``."""
        tot = self.input_term.flatten(1).sum(1)
        for t in self.bias_terms.values():
            tot = tot + t.flatten(1).sum(1)
        return tot


@dataclass
class CompletenessGap:
    """How far ``sum(x*grad_x f) + sum_l sum(b_l*grad_b_l f)`` is from ``f(x)``, per sample.

    Attributes:
        absolute: ``total - f(x)``, signed, ``(B,)``.
        relative: ``|total - f(x)| / |f(x)|``, ``(B,)`` (``0`` when both are zero, ``inf``
            when only ``f(x)`` is).
        total: the sum of all terms ``(B,)``.
        scores: ``f(x)`` ``(B,)``.
        breaking: what breaks completeness in the forward pass (see
            :attr:`FullGradDecomposition.breaking`).
    """

    absolute: torch.Tensor
    relative: torch.Tensor
    total: torch.Tensor
    scores: torch.Tensor
    breaking: list[str] = field(default_factory=list)

    @property
    def max_relative(self) -> float:
        """The largest relative gap of the batch."""
        return float(self.relative.max())

    def holds(self, tolerance: float = DEFAULT_TOLERANCE) -> bool:
        """``True`` when every sample's relative gap is at most ``tolerance``."""
        return bool((self.relative <= tolerance).all())


def _gap(total: torch.Tensor, scores: torch.Tensor, breaking: list[str]) -> CompletenessGap:
    absolute = total - scores
    mag = scores.abs()
    rel = absolute.abs() / torch.where(mag > 0, mag, torch.ones_like(mag))
    rel = torch.where((mag == 0) & (absolute != 0), torch.full_like(rel, float("inf")), rel)
    return CompletenessGap(absolute, rel, total, scores, list(breaking))


def completeness_gap(decomposition: FullGradDecomposition) -> CompletenessGap:
    """The completeness gap of a decomposition, per sample (absolute and relative).

    ``gap = sum(x * grad_x f) + sum_l sum(b_l * grad_b_l f) - f(x)``. It is zero up to
    rounding (about 1e-15 relative in float64, 1e-6 in float32) for networks made of
    convolutions, linear layers, eval-mode BatchNorm, ReLU-like activations and pooling.

    Example:
        >>> import torch, volsal
        >>> from volsal.methods.fullgrad import fullgrad_decomposition, completeness_gap
        >>> model = volsal.testing.tiny_cnn(3, dtype=torch.float64)
        >>> dec = fullgrad_decomposition(model, torch.randn(2, 1, 8, 8, 8, dtype=torch.float64), 0)
        >>> bool(completeness_gap(dec).relative.max() < 1e-10)
        True
    """
    return _gap(decomposition.total(), decomposition.scores, decomposition.breaking)


def fullgrad_decomposition(
    model: nn.Module, x: torch.Tensor, target: Any = None, *, model_mode: str = "eval"
) -> FullGradDecomposition:
    """The full-gradient decomposition of the target scores: one forward, one backward.

    The gradients with respect to the input and to the output of every bias-carrying layer
    (:func:`volsal.hooks.bias_layers`) are taken by one ``torch.autograd.grad`` call; no
    parameter gradient is computed and the model is not changed.

    Args:
        model: the model.
        x: ``(B, C, H, W)`` or ``(B, C, D, H, W)`` input (``(B, C, L)`` works too).
        target: any target spec (see :mod:`volsal.targets`).
        model_mode: ``"eval"`` (default; needed for BatchNorm's effective bias), ``"keep"``
            or ``"train"`` (see :func:`volsal.hooks.eval_mode`).

    Returns:
        :class:`FullGradDecomposition`.

    Raises:
        InputShapeError, InputValueError: bad input.
        TargetError: bad target.
        UnsupportedModelError: the score does not depend on the input, or a bias layer does
            not return a tensor.

    Example:
        >>> import torch, volsal
        >>> from volsal.methods.fullgrad import fullgrad_decomposition
        >>> dec = fullgrad_decomposition(volsal.testing.tiny_cnn(2), torch.randn(1, 1, 8, 8), 1)
        >>> sorted(dec.bias_terms)[:2], dec.bias_terms["features.conv1"].shape
        (['fc', 'features.bn1'], torch.Size([1, 4, 8, 8]))
    """
    check_input(x, allow_1d=True)
    check_model_rank(model, x)
    with eval_mode(model, model_mode), keep_running_stats(model):
        return _decompose(model, x, target)


def _decompose(model: nn.Module, x: torch.Tensor, target: Any) -> FullGradDecomposition:
    xg = x.detach().clone().requires_grad_(True)
    with torch.enable_grad():
        root = unwrap(model)
        with capture_biases(root, keep_outputs=True) as cap, breaking_ops(model) as brk:
            out = model(xg)
            rt = resolve_target(target, out, x.shape[0])
        _require_grad(rt)
        sites = [s for s in cap.sites if s.output is not None]
        grads = torch.autograd.grad(
            rt.scores.sum(), [xg] + [s.output for s in sites], allow_unused=True
        )
    terms: dict[str, torch.Tensor] = {}
    types: dict[str, str] = {}
    for site, g in zip(sites, grads[1:]):
        if g is None:  # a layer whose output does not reach the score
            g = torch.zeros_like(site.output)
        terms[site.key] = site.term(g).detach()
        types[site.key] = site.module_type
        site.output = None
    gx = grads[0] if grads[0] is not None else torch.zeros_like(xg)
    return FullGradDecomposition(
        input_term=x.detach() * gx,
        bias_terms=terms,
        scores=rt.scores.detach(),
        classes=rt.classes,
        target=rt.description,
        layer_types=types,
        breaking=brk.names(),
        input_gradient=gx.detach(),
    )


def _require_grad(rt: ResolvedTarget) -> None:
    if not rt.scores.requires_grad:
        raise UnsupportedModelError(
            "the target score does not depend on the input through autograd (a model that "
            "detaches its input, or runs under torch.no_grad()?)."
        )


def _find_breaking(model: nn.Module, x: torch.Tensor, target: Any) -> list[str]:
    """One no-grad forward under :func:`volsal.hooks.breaking_ops` (only when a gap is found)."""
    with breaking_ops(model) as brk, torch.no_grad():
        resolve_target(target, model(x), x.shape[0])
    return brk.names()


def _warn_gap(gap: CompletenessGap, tolerance: float, what: str, stacklevel: int) -> None:
    if gap.holds(tolerance):
        return
    worst = int(gap.relative.argmax())
    culprits = (
        "Layers that break it: " + "; ".join(gap.breaking) + "."
        if gap.breaking
        else "No layer known to break it was found (products of activations, clamp(max=...), "
        "functional layers with biases or custom autograd functions are not recognised)."
    )
    warnings.warn(
        f"FullGrad completeness does not hold on {what}: sum(x*grad_x f) + sum of the bias "
        f"terms - f(x) = {float(gap.absolute[worst]):.4g} for sample {worst} (f(x) = "
        f"{float(gap.scores[worst]):.4g}, relative gap {gap.max_relative:.3g} > tolerance "
        f"{tolerance:g}). {culprits} Completeness needs every operation besides the biases to "
        "be piecewise-linear through the origin (ReLU, pooling, eval-mode BatchNorm). The map "
        "is still computed, but its bias terms do not account for the output: use "
        "volsal.SimpleFullGrad for this model.",
        CompletenessWarning,
        stacklevel=stacklevel,
    )


# -- post-processing and streaming ----------------------------------------------------------
def _rescale(t: torch.Tensor) -> torch.Tensor:
    """Min-max rescale of each sample to ``[0, 1]`` (over all non-batch axes)."""
    flat = t.flatten(1)
    lo = flat.amin(1)
    span = flat.amax(1) - lo
    span = torch.where(span > 0, span, torch.ones_like(span))
    shape = (-1,) + (1,) * (t.ndim - 1)
    return (t - lo.view(shape)) / span.view(shape)


def _psi_sum(t: torch.Tensor) -> torch.Tensor:
    """``sum_c rescale(abs(t))_c``: ``(B, C, *s) -> (B, 1, *s)``."""
    return _rescale(t.abs()).sum(1, keepdim=True)


class _Accumulator:
    """Called with each layer's gradient during the backward pass; sums the layer maps.

    Each layer's term is reduced at once to ``sum_c psi(term)_c`` on its own grid
    ``(B, 1, *feat)``; maps that share a grid (same size and same placement) are summed there
    and brought to the input grid once per grid in :meth:`finish` (resizing is linear).
    """

    def __init__(self, x: torch.Tensor, use_bias: bool, in_map: set[str] | None, placement: str):
        self.size = tuple(x.shape[2:])
        self.k = x.ndim - 2
        self.use_bias = use_bias
        self.in_map = in_map
        self.placement = placement
        self.dtype = x.dtype
        self.bias_sum = torch.zeros(x.shape[0], dtype=x.dtype, device=x.device)
        self.mappings: dict[str, GridMapping | None] = {}
        self.groups: dict[tuple, torch.Tensor] = {}
        self.used: list[str] = []
        self.unplaced: list[str] = []

    def prepare(self, sites: list[BiasSite], geo) -> None:
        """After the forward: each site's grid mapping (a module's last call was traced)."""
        if geo is None:
            return
        last = {s.module_name: s.shape for s in sites}
        for s in sites:
            m = geo.mappings.get(s.module_name)
            self.mappings[s.key] = m if s.shape == last[s.module_name] else None

    def in_layer_map(self, site: BiasSite) -> bool:
        if site.channel_last or len(site.shape) != self.k + 2:
            return False  # Linear and other non-spatial layers: not in the map (as the paper)
        return self.in_map is None or site.module_name in self.in_map

    def __call__(self, site: BiasSite, grad: torch.Tensor) -> None:
        if self.use_bias:
            if site.bias is None:
                return
            term = site.term(grad)
            self.bias_sum += term.flatten(1).sum(1).to(self.bias_sum.dtype)
            if not self.in_layer_map(site):
                return
            term = term.abs_()
        else:
            if not self.in_layer_map(site):
                return
            term = grad.abs()
        m = _abs_psi_sum(term).to(self.dtype)
        feat = tuple(m.shape[2:])
        mapping = None
        if self.placement != "half_pixel" and any(n > 1 for n in feat):
            mapping = self.mappings.get(site.key)
            if mapping is None:
                self.unplaced.append(site.key)
        key = (feat, mapping)
        self.groups[key] = m if key not in self.groups else self.groups[key] + m
        self.used.append(site.key)

    def finish(self, cam: torch.Tensor) -> torch.Tensor:
        """Add every grid's summed map, brought to the input grid, to ``cam`` ``(B, 1, *size)``."""
        for (feat, mapping), m in self.groups.items():
            if mapping is None:
                cam = cam + resize(m, self.size)
            elif (
                feat == self.size and all(s == 1 for s in mapping.scale) and not any(mapping.offset)
            ):
                cam = cam + m
            else:
                cam = cam + to_input_grid(m, mapping, self.size)
        return cam


def _abs_psi_sum(a: torch.Tensor) -> torch.Tensor:
    """``sum_c rescale(a)_c`` for a non-negative ``a`` ``(B, C, *s)``, without a rescaled copy.

    ``sum_c (a_c - lo) / span = (sum_c a_c - C lo) / span`` with ``lo, hi`` the sample's
    min and max over channels and positions.
    """
    lo, hi = torch.aminmax(a.flatten(1), dim=1)
    span = hi - lo
    span = torch.where(span > 0, span, torch.ones_like(span))
    shape = (-1,) + (1,) * (a.ndim - 1)
    return (a.sum(1, keepdim=True) - a.shape[1] * lo.view(shape)) / span.view(shape)


def _select(model: nn.Module, candidates: dict[str, nn.Module], layers) -> set[str] | None:
    """Names of ``candidates`` at or under the modules named in ``layers`` (None: all)."""
    if layers is None:
        return None
    specs = [layers] if isinstance(layers, (str, nn.Module)) or callable(layers) else layers
    chosen: set[str] = set()
    for spec in specs:
        name, _ = resolve_layer(model, spec)
        inside = {n for n in candidates if n == name or n.startswith(name + ".")}
        if not inside:
            raise ParameterError(
                f"layer {name!r} holds none of the layers this method reads "
                f"({len(candidates)} in the model, e.g. {', '.join(list(candidates)[:3])})."
            )
        chosen |= inside
    return chosen


class _FullGradBase(Attribution):
    """Shared machinery: one forward, one backward to the input, layer maps streamed."""

    kind = "cam"
    _use_bias = True

    def __init__(
        self,
        model: nn.Module,
        layers: LayerSpec | Sequence[LayerSpec] | None = None,
        *,
        layer: LayerSpec | None = None,
        placement: str = "receptive_field",
        model_mode: str = "eval",
        mode: str | None = None,
    ):
        super().__init__(model, model_mode=model_mode, mode=mode)
        if layers is not None and layer is not None:
            raise ParameterError("pass either layers=... or layer=..., not both.")
        if placement not in _PLACEMENTS:
            raise ParameterError(f"placement must be one of {_PLACEMENTS}; got {placement!r}.")
        self.layers = layer if layers is None else layers
        self.placement = placement

    def _candidates(self) -> dict[str, nn.Module]:
        raise NotImplementedError

    def _in_map(self, candidates: dict[str, nn.Module]) -> set[str] | None:
        return None

    def _stream(self, x: torch.Tensor, target: Any, *, detect: bool):
        """Run the pass. Returns ``(accumulator, input_term, resolved, breaking names)``."""
        model = self.model
        candidates = self._candidates()
        in_map = self._in_map(candidates)
        acc = _Accumulator(x, self._use_bias, in_map, self.placement)
        spatial = [
            n
            for n, m in candidates.items()
            if not isinstance(m, nn.Linear) and (in_map is None or n in in_map)
        ]
        trace = self.placement == "receptive_field" and bool(spatial)
        xg = x.detach().clone().requires_grad_(True)
        layers = None if self._use_bias else candidates
        root = unwrap(model)
        brk_cm = breaking_ops(model) if detect else contextlib.nullcontext()
        geo_cm = trace_grid(model, xg, spatial) if trace else contextlib.nullcontext()
        with torch.enable_grad(), keep_running_stats(model):
            with capture_biases(root, layers, keep_outputs=False, on_grad=acc) as cap:
                with brk_cm as brk, geo_cm as geo:
                    out = model(xg)
                    rt = resolve_target(target, out, x.shape[0])
            _require_grad(rt)
            acc.prepare(cap.sites, geo)
            (gx,) = torch.autograd.grad(rt.scores.sum(), xg)
        input_term = x.detach() * gx
        rt = ResolvedTarget(rt.scores.detach(), rt.classes, rt.description)
        return acc, input_term, rt, (brk.names() if brk is not None else [])

    def _finish(self, acc: _Accumulator, input_term: torch.Tensor) -> torch.Tensor:
        if acc.unplaced:
            names = sorted(set(k.split("#")[0] for k in acc.unplaced))
            warnings.warn(
                f"{type(self).__name__}: the receptive-field placement of {len(names)} layer(s) "
                f"({', '.join(names[:5])}{'...' if len(names) > 5 else ''}) could not be "
                "derived; their maps were resized with half-pixel centres. Pass "
                "placement='half_pixel' to use that for every layer without this warning.",
                GeometryWarning,
                stacklevel=5,
            )
        return acc.finish(_psi_sum(input_term).to(acc.dtype))


@register(
    "fullgrad",
    kind="cam",
    reference="Srinivas and Fleuret 2019, Full-Gradient Representation for Neural Network "
    "Visualization, NeurIPS, arXiv:1905.00780",
    aliases=("full-grad", "fullgradient"),
    test_factory=lambda m: FullGrad(m),
)
class FullGrad(_FullGradBase):
    """FullGrad saliency: the input term and every bias term, post-processed and summed.

    ``map = psi(x * grad_x f) + sum_l sum_c resize(psi(b_l * grad_{b_l} f))_c`` with
    ``psi = rescale(abs(.))`` (min-max per sample and term); every convolution's and
    BatchNorm's term is resized to the input grid (bilinear in 2D, trilinear in 3D, cells at
    their receptive-field centres). Linear layers' terms enter the completeness sum but not the
    map (they have no grid), as in the paper. Output ``(B, 1, *spatial)``, non-negative.

    Cost: one forward and one backward pass to the input; each layer's term is reduced to
    ``(B, 1, *feat)`` as its gradient arrives, so memory stays close to a plain gradient's.
    The completeness gap of the real input comes for free and is returned in
    ``explain().extras["completeness_gap"]`` (relative, ``(B,)``). When a check is asked for
    and fails, one more no-grad forward pass finds what breaks completeness
    (``extras["breaking_layers"]``, else ``None``; :func:`volsal.hooks.breaking_ops`).

    Completeness holds only for networks whose operations besides the biases are
    piecewise-linear through the origin (ReLU, LeakyReLU, PReLU, pooling, eval-mode
    BatchNorm). With InstanceNorm / GroupNorm / LayerNorm (MONAI UNet, DynUNet, SegResNet),
    SiLU / GELU / ELU, attention or train-mode BatchNorm the bias terms do not account for the
    output: use :class:`SimpleFullGrad` there. See :mod:`volsal.methods.fullgrad` for where
    volsal differs from the reference implementation.

    Args:
        model: the model.
        layers: restrict the layer terms *of the map* to the bias layers at or under these
            modules (names, modules or callables; a single one or a sequence); default all.
            The completeness sum always uses every layer.
        layer: the same, spelled like the CAMs' option (one layer).
        check_completeness: ``False`` (default: measured, never warned), ``"input"``
            (``True`` means the same): warn with a :class:`~volsal.errors.CompletenessWarning`
            when the gap on the real input exceeds ``tolerance``; ``"random"``: also check
            once on a standard-normal input of ``x``'s shape (one extra forward and backward
            pass, as the reference's check).
        tolerance: relative gap ``|gap| / |f(x)|`` allowed (default ``1e-4``, the reference's
            ``rel_tol``; float64 networks reach about 1e-13).
        placement: ``"receptive_field"`` (default) or ``"half_pixel"`` (see
            :class:`~volsal.methods.cam.CAM`).
        model_mode, mode: see :class:`~volsal.base.Attribution`.

    Raises:
        ParameterError: bad option, or a ``layers`` entry that holds no bias layer.
        LayerNotFoundError: unknown layer name.
        TargetError: bad target.

    Reference: Srinivas and Fleuret, "Full-Gradient Representation for Neural Network
    Visualization", NeurIPS 2019, arXiv:1905.00780.

    Example:
        >>> import torch, volsal
        >>> model = volsal.testing.tiny_cnn(3)
        >>> volsal.FullGrad(model)(torch.randn(2, 1, 8, 8, 8), target=0).shape
        torch.Size([2, 1, 8, 8, 8])
    """

    def __init__(
        self,
        model: nn.Module,
        layers: LayerSpec | Sequence[LayerSpec] | None = None,
        *,
        layer: LayerSpec | None = None,
        check_completeness: bool | str = False,
        tolerance: float = DEFAULT_TOLERANCE,
        placement: str = "receptive_field",
        model_mode: str = "eval",
        mode: str | None = None,
    ):
        super().__init__(
            model, layers, layer=layer, placement=placement, model_mode=model_mode, mode=mode
        )
        if check_completeness is True:
            check_completeness = "input"
        if check_completeness not in _CHECKS:
            raise ParameterError(
                f"check_completeness must be False, True, 'input' or 'random'; got "
                f"{check_completeness!r}."
            )
        if not (isinstance(tolerance, (int, float)) and tolerance >= 0):
            raise ParameterError(f"tolerance must be a number >= 0; got {tolerance!r}.")
        self.check_completeness = check_completeness
        self.tolerance = float(tolerance)

    def _candidates(self) -> dict[str, nn.Module]:
        return bias_layers(unwrap(self.model))

    def _in_map(self, candidates: dict[str, nn.Module]) -> set[str] | None:
        return _select(self.model, candidates, self.layers)

    def _attribute(self, x: torch.Tensor, target: Any) -> Explanation:
        acc, input_term, rt, _ = self._stream(x, target, detect=False)
        total = input_term.flatten(1).sum(1) + acc.bias_sum
        gap = _gap(total, rt.scores, [])
        breaking = None
        if self.check_completeness and not gap.holds(self.tolerance):
            breaking = _find_breaking(self.model, x, target)
            gap.breaking = breaking
            _warn_gap(gap, self.tolerance, "the input", stacklevel=5)
        if self.check_completeness == "random":
            gen = torch.Generator(device=x.device).manual_seed(0)
            xr = torch.randn(x.shape, generator=gen, dtype=x.dtype, device=x.device)
            with keep_running_stats(self.model):
                dec = _decompose(self.model, xr, target)
            _warn_gap(completeness_gap(dec), self.tolerance, "a random input", stacklevel=5)
        maps = self._finish(acc, input_term)
        return self._result(
            maps,
            rt,
            completeness_gap=gap.relative,
            completeness_gap_abs=gap.absolute,
            breaking_layers=breaking,
            layers=acc.used,
        )


@register(
    "simple_fullgrad",
    kind="cam",
    reference="Srinivas and Fleuret 2019, Full-Gradient Representation for Neural Network "
    "Visualization, NeurIPS, arXiv:1905.00780 (Simple FullGrad, reference code)",
    aliases=("simplefullgrad", "simple-fullgrad"),
    test_factory=lambda m: SimpleFullGrad(m),
)
class SimpleFullGrad(_FullGradBase):
    """Simple FullGrad: FullGrad's map without the bias parameters.

    ``map = psi(x * grad_x f) + sum_l sum_c resize(psi(grad_{z_l} f))_c``: the gradients at the
    outputs ``z_l`` of the layers, post-processed like :class:`FullGrad` (``psi`` =
    abs, min-max rescale per sample and layer; resized to the input grid at receptive-field
    centres, bilinear in 2D, trilinear in 3D), as the reference ``SimpleFullGrad`` does. No
    completeness property, so it applies where FullGrad's does not hold (InstanceNorm,
    GroupNorm, SiLU, ...). Output ``(B, 1, *spatial)``. Cost: one forward and one backward.

    Args:
        model: the model.
        layers: the layers whose output gradients enter the map: names (or modules /
            callables), a container standing for the default layers under it. Default: every
            convolution with a bias and every normalisation layer (BatchNorm, InstanceNorm,
            GroupNorm, LayerNorm) whose output has the input's rank.
        layer: the same, spelled like the CAMs' option (one layer).
        placement: ``"receptive_field"`` (default) or ``"half_pixel"``.
        model_mode, mode: see :class:`~volsal.base.Attribution`.

    Raises:
        ParameterError: bad option, or a ``layers`` entry that holds none of the layers.
        LayerNotFoundError: unknown layer name.
        TargetError: bad target.

    Reference: Srinivas and Fleuret, "Full-Gradient Representation for Neural Network
    Visualization", NeurIPS 2019 (the ``SimpleFullGrad`` class of the reference code).

    Example:
        >>> import torch, volsal
        >>> model = volsal.testing.tiny_cnn(2)
        >>> volsal.SimpleFullGrad(model)(torch.randn(1, 1, 8, 8), target=0).shape
        torch.Size([1, 1, 8, 8])
    """

    _use_bias = False

    def _candidates(self) -> dict[str, nn.Module]:
        out = {}
        for name, mod in unwrap(self.model).named_modules():
            conv = isinstance(mod, nn.modules.conv._ConvNd) and mod.bias is not None
            if name and (conv or isinstance(mod, NORM_LAYER_TYPES)):
                out[name] = mod
        if self.layers is None:
            return out
        # explicit layers: the default ones under them, or the named leaf itself
        chosen = {}
        specs = (
            [self.layers]
            if isinstance(self.layers, (str, nn.Module)) or callable(self.layers)
            else self.layers
        )
        for spec in specs:
            name, mod = resolve_layer(self.model, spec)
            inside = {n: m for n, m in out.items() if n == name or n.startswith(name + ".")}
            chosen.update(inside or {name: mod})
        return chosen

    def _attribute(self, x: torch.Tensor, target: Any) -> Explanation:
        acc, input_term, rt, _ = self._stream(x, target, detect=False)
        if not acc.used and self.layers is None:
            warnings.warn(
                "SimpleFullGrad: no convolution with a bias or normalisation layer with the "
                "input's rank ran; the map is the input term only. Name layers with layers=.",
                VolsalWarning,
                stacklevel=4,
            )
        maps = self._finish(acc, input_term)
        return self._result(maps, rt, layers=acc.used)
