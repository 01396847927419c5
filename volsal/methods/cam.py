"""Class activation maps: a shared base, Grad-CAM, Grad-CAM++ and HiResCAM.

A CAM combines a layer's activations ``A (B, K, *feat)`` with weights derived from the
gradient of the target score, ``cam = sum_k w_k * A_k`` (optionally rectified), and brings the
result from the layer's grid to the input grid, each layer voxel placed at the centre of its
receptive field (:mod:`volsal.receptive`). A new CAM overrides only
:meth:`CAM.channel_weights`.

Cost: the forward pass builds no autograd graph before the layer (grad is switched on from the
layer's output, :func:`volsal.hooks.capture`), and the backward runs from the score to the
layer only, so every CAM costs about one inference pass. With :class:`~volsal.MultiTarget`,
``T`` targets cost one forward and ``T`` backward passes through the layers after the CAM
layer.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from ..base import Attribution, Explanation
from ..errors import (
    DegenerateMapWarning,
    GeometryWarning,
    ParameterError,
    UnsupportedModelError,
)
from ..hooks import capture
from ..layers import LayerSpec, auto_layer, resolve_layer
from ..receptive import GridMapping, half_pixel_mapping, to_input_grid, trace_grid
from ..sections import Sections, check_sections, parse_sections, section_layer, sectioned_forward
from ..spatial import broadcast_to_spatial, resize
from ..targets import MultiTarget, ResolvedTarget, resolve_target
from .registry import register

__all__ = ["CAM", "GradCAM", "GradCAMPlusPlus", "GuidedGradCAM", "HiResCAM"]

_PLACEMENTS = ("receptive_field", "half_pixel")


class CAM(Attribution):
    """Base class of gradient-weighted class activation maps.

    Args:
        model: the model.
        layer: where to look: a dotted name (``"layer4"``, ``"features.block4"``), a sequence of
            name parts (``["layer3", "1"]``), a module of the model, a callable
            ``model -> module``, or ``"auto"`` (the last module whose output keeps the input's
            spatial rank, found by one probing forward on the real input and logged on the
            ``"volsal"`` logger; with sections: the last module of the conv section).
        relu: rectify the combined map (the methods' definition); ``False`` keeps signed maps.
        upsample: bring the map to the input grid (default). ``False`` returns the map on the
            layer's grid ``(B, 1, *feat)``; ``explain().extras["grid_mapping"]`` then says where
            its voxels sit on the input grid (for export with a matching affine).
        placement: ``"receptive_field"`` (default): each layer voxel is placed at the centre
            of its receptive field, traced from the convolutions and pools before the layer in
            the same forward pass (:mod:`volsal.receptive`); falls back to half-pixel resizing
            with a :class:`~volsal.errors.GeometryWarning` where the chain cannot be traced.
            The mapping is traced once per model, layer and input shape and kept on the
            method object (it depends on the architecture, not on the values): later calls
            cost an untraced forward pass. ``"half_pixel"``: ``F.interpolate(align_corners=False)``, what other libraries do.
        section_names: optional ``[[conv modules...], [fc modules...]]`` (pytorch-saliency
            style): the model is run as conv section -> ``adaptive_layer`` -> flatten -> fc
            section, and ``layer`` must lie in the conv section (see :mod:`volsal.sections`).
        adaptive_layer: the module between the sections (``"avgpool"``), with sections only.
        check: with sections, compare the sectioned forward with ``model(x)`` on every call
            (two extra no-grad forward passes) and raise :class:`~volsal.errors.SectionError`
            when they differ. Off by default; :func:`volsal.sections.check_sections` runs the
            check once.
        model_mode, mode: see :class:`~volsal.base.Attribution`.

    Returns (on call):
        ``(B, 1, *spatial)`` maps on the input grid (``(B, T, *spatial)`` for a
        :class:`~volsal.targets.MultiTarget` of ``T`` targets; ``(B, 1, *feat)`` with
        ``upsample=False``). ``explain()`` also returns the layer-grid map as
        ``extras["feature_map"]`` and the layer's :class:`~volsal.receptive.GridMapping` (or
        ``None``) as ``extras["grid_mapping"]``.

    Raises:
        LayerNotFoundError: unknown layer or section name.
        LayerNotCalledError: the layer does not run in the forward pass.
        SectionError: a layer outside the conv section, or (``check=True``) sections that do
            not reproduce ``model(x)``.
        TargetError: bad target.
    """

    kind = "cam"

    def __init__(
        self,
        model: nn.Module,
        layer: LayerSpec = "auto",
        *,
        relu: bool = True,
        upsample: bool = True,
        placement: str = "receptive_field",
        section_names: Sequence[Sequence[str] | str] | None = None,
        adaptive_layer: str | None = None,
        check: bool = False,
        model_mode: str = "eval",
        mode: str | None = None,
    ):
        super().__init__(model, model_mode=model_mode, mode=mode)
        if placement not in _PLACEMENTS:
            raise ParameterError(f"placement must be one of {_PLACEMENTS}; got {placement!r}.")
        if adaptive_layer is not None and section_names is None:
            raise ParameterError(
                "adaptive_layer is only used with section_names=[[conv...], [fc...]]."
            )
        self.layer = layer
        self.relu = relu
        self.upsample = upsample
        self.placement = placement
        self.section_names = section_names
        self.adaptive_layer = adaptive_layer
        self.check = check

    # -- the one hook point ------------------------------------------------------------------
    def channel_weights(self, acts: torch.Tensor, grads: torch.Tensor) -> torch.Tensor:
        """Weights for the activations: ``(B, K)`` per channel, or ``(B, K, *feat)`` per element.

        Args:
            acts: layer activations ``(B, K, *feat)``.
            grads: gradient of the target scores w.r.t. ``acts``, same shape.
        """
        raise NotImplementedError

    # -- shared machinery --------------------------------------------------------------------
    def _sections(self) -> Sections | None:
        if self.section_names is None:
            return None
        return parse_sections(self.model, self.section_names, self.adaptive_layer)

    def _resolve(self, x: torch.Tensor, sections: Sections | None = None) -> tuple[str, nn.Module]:
        if sections is not None:
            return section_layer(self.model, sections, self.layer)
        spec = self.layer
        if isinstance(spec, str) and spec == "auto":
            spec = auto_layer(self.model, x)
        return resolve_layer(self.model, spec)

    def _combine(self, acts: torch.Tensor, grads: torch.Tensor) -> torch.Tensor:
        w = self.channel_weights(acts, grads)
        if w.ndim == 2:
            w = broadcast_to_spatial(w, acts.ndim - 2)
        return (w * acts).sum(1, keepdim=True)

    def _to_input_grid(
        self, cam: torch.Tensor, x: torch.Tensor, mapping: GridMapping | None
    ) -> torch.Tensor:
        """Resample a layer-grid map ``(B, T, *feat)`` to the input grid ``x.shape[2:]``."""
        if self.placement == "half_pixel":
            return resize(cam, x.shape[2:])
        return to_input_grid(cam, mapping, x.shape[2:], stacklevel=6)

    def _layer_pass(
        self, x: torch.Tensor, targets: list[Any], name: str, module: nn.Module, sections
    ) -> tuple[torch.Tensor, list[torch.Tensor], list[ResolvedTarget], GridMapping | None]:
        """One forward (no graph before the layer), one backward per target from the score to
        the layer. Returns ``(acts, grads per target, resolved targets, grid mapping)``."""
        # The grid mapping depends on the architecture and the input's shape, not on its values:
        # trace it on the first call for a shape (inside the same forward pass) and reuse it.
        key = (id(self.model), name, id(module), sections is None, tuple(x.shape[1:]))
        cache = self.__dict__.setdefault("_grid_cache", {})
        trace = self.placement == "receptive_field" and key not in cache
        with capture(self.model, {name: module}, grad_from_here=True) as caps, torch.no_grad():
            geo_cm = trace_grid(self.model, x, [name]) if trace else contextlib.nullcontext()
            with geo_cm as geo:
                if sections is None:
                    out = self.model(x)
                else:
                    out = sectioned_forward(self.model, sections, x)
            acts = caps[name].output
            grads, resolved = [], []
            for i, t in enumerate(targets):
                rt = resolve_target(t, out, x.shape[0])
                g = None
                if rt.scores.requires_grad:
                    (g,) = torch.autograd.grad(
                        rt.scores.sum(), acts, retain_graph=i < len(targets) - 1, allow_unused=True
                    )
                if g is None:
                    raise UnsupportedModelError(
                        f"the target score does not depend on the output of layer {name!r} (a "
                        "layer in a branch that does not reach the output?). Pick a layer on "
                        "the path to the output."
                    )
                grads.append(g)
                resolved.append(ResolvedTarget(rt.scores.detach(), rt.classes, rt.description))
        if trace:
            cache[key] = geo[name]
        mapping = cache.get(key) if self.placement == "receptive_field" else None
        return acts.detach(), grads, resolved, mapping

    def _attribute(self, x: torch.Tensor, target: Any) -> Explanation:
        sections = self._sections()
        if sections is not None and self.check:
            check_sections(self.model, x, sections)
        name, module = self._resolve(x, sections)
        multi = isinstance(target, MultiTarget)
        targets = list(target) if multi else [target]
        acts, grads, resolved, mapping = self._layer_pass(x, targets, name, module, sections)
        if acts[0, 0].numel() == 1:
            warnings.warn(
                f"layer {name!r} has a single-voxel output {tuple(acts.shape)}: the map is "
                "constant. Pick an earlier layer that still has spatial extent.",
                DegenerateMapWarning,
                stacklevel=4,
            )
        cams = []
        for g, rt in zip(grads, resolved):
            cam = self._combine(acts, g)
            if self.relu:
                cam = cam.clamp_min(0)
                empty = cam.flatten(1).amax(1) <= 0
                if bool(empty.any()):
                    warnings.warn(
                        f"{type(self).__name__}: the map of sample(s) "
                        f"{empty.nonzero().flatten().tolist()} for target {rt.description!r} is "
                        f"all zero: nothing at layer {name!r} supports the target (it is "
                        "information, not an error). Use relu=False to see the negative "
                        "evidence, or an earlier layer.",
                        DegenerateMapWarning,
                        stacklevel=4,
                    )
            cams.append(cam)
        cam = torch.cat(cams, 1)
        if self.placement == "half_pixel":
            mapping = half_pixel_mapping(cam.shape[2:], x.shape[2:])
        elif mapping is None and not self.upsample:
            warnings.warn(
                f"the grid mapping of layer {name!r} could not be derived; "
                "extras['grid_mapping'] is the half-pixel guess (exact=False).",
                GeometryWarning,
                stacklevel=4,
            )
            mapping = half_pixel_mapping(cam.shape[2:], x.shape[2:])
        maps = self._to_input_grid(cam, x, mapping) if self.upsample else cam
        rt = resolved[0] if not multi else _stack(resolved, target)
        return self._result(maps, rt, layer=name, feature_map=cam, grid_mapping=mapping)


def _stack(resolved: list[ResolvedTarget], target: MultiTarget) -> ResolvedTarget:
    """Scores ``(B, T)`` (and classes ``(B, T)`` when every target is a class)."""
    scores = torch.stack([r.scores for r in resolved], 1)
    classes = None
    if all(r.classes is not None for r in resolved):
        classes = torch.stack([r.classes for r in resolved], 1)
    return ResolvedTarget(scores, classes, target.describe())


@register(
    "gradcam",
    kind="cam",
    reference="Selvaraju et al. 2017, Grad-CAM, ICCV, arXiv:1610.02391",
    aliases=("grad-cam",),
    test_factory=lambda m: GradCAM(m, layer="features"),
)
class GradCAM(CAM):
    """Grad-CAM: channels weighted by their spatially averaged gradient.

    ``w_k = mean_{voxels} d score / d A_k``, ``cam = ReLU(sum_k w_k A_k)``, resized to the
    input grid (bilinear in 2D, trilinear in 3D, cells at their receptive-field centres). The
    forward pass builds an autograd graph only from the layer's output onward, so a Grad-CAM
    costs about one inference pass.

    Reference: Selvaraju et al., "Grad-CAM: Visual Explanations from Deep Networks via
    Gradient-based Localization", ICCV 2017.

    Example:
        >>> import torch, volsal
        >>> model = volsal.testing.tiny_cnn(3)
        >>> volsal.GradCAM(model, layer="features")(torch.randn(1, 1, 8, 8, 8), target=0).shape
        torch.Size([1, 1, 8, 8, 8])
    """

    def channel_weights(self, acts: torch.Tensor, grads: torch.Tensor) -> torch.Tensor:
        return grads.flatten(2).mean(-1)


@register(
    "gradcam++",
    kind="cam",
    reference="Chattopadhyay et al. 2018, Grad-CAM++, WACV, arXiv:1710.11063",
    aliases=("gradcamplusplus", "grad-cam++", "gradcampp"),
    test_factory=lambda m: GradCAMPlusPlus(m, layer="features"),
)
class GradCAMPlusPlus(CAM):
    """Grad-CAM++: channel weights from pixel-wise weighted positive gradients.

    With ``g = d Y / d A_k`` at voxel ``ij`` (``Y`` the target score) and the paper's
    exponential score ``S = exp(Y)``, the higher derivatives of ``S`` are powers of ``g`` for
    piecewise-linear networks, and Eq. 19 of the paper gives

        alpha_ij^k = g_ij^2 / (2 g_ij^2 + sum_ab A_ab^k g_ij^3)      (0 where the denominator is 0)
        w_k = sum_ij alpha_ij^k ReLU(g_ij)
        cam = ReLU(sum_k w_k A_k)

    The weights of the paper also carry the factor ``exp(Y)``, a positive constant per sample;
    it is dropped (as in pytorch-grad-cam) so that maps do not overflow and stay on Grad-CAM's
    scale. MONAI's ``GradCAMpp`` computes ``alpha`` with sums over the whole batch and a
    different denominator, and torchcam does not divide: their maps differ from Eq. 19.

    Reference: Chattopadhyay, Sarkar, Howlader and Balasubramanian, "Grad-CAM++: Generalized
    Gradient-based Visual Explanations for Deep Convolutional Networks", WACV 2018.

    Example:
        >>> import torch, volsal
        >>> model = volsal.testing.tiny_cnn(3)
        >>> volsal.GradCAMPlusPlus(model, layer="features")(torch.randn(1, 1, 8, 8, 8), 0).shape
        torch.Size([1, 1, 8, 8, 8])
    """

    def channel_weights(self, acts: torch.Tensor, grads: torch.Tensor) -> torch.Tensor:
        g2 = grads.pow(2)
        act_sum = broadcast_to_spatial(acts.flatten(2).sum(-1), acts.ndim - 2)
        denom = 2 * g2 + act_sum * grads.pow(3)
        alpha = g2 / torch.where(denom != 0, denom, torch.ones_like(denom))
        return (alpha * grads.clamp_min(0)).flatten(2).sum(-1)


@register(
    "hirescam",
    kind="cam",
    reference="Draelos and Carin 2020, Use HiResCAM instead of Grad-CAM, arXiv:2011.08891",
    aliases=("hires-cam",),
    test_factory=lambda m: HiResCAM(m, layer="features"),
)
class HiResCAM(CAM):
    """HiResCAM: element-wise gradient times activation, summed over channels.

    ``cam = ReLU(sum_k dY/dA_k * A_k)`` (element-wise). Unlike Grad-CAM it does not average
    the gradient over space, so for a CAM-style head (conv -> global average pool -> linear)
    the map is exactly the class's contribution per location: it is provably faithful to the
    model there, which Grad-CAM is not (Grad-CAM can highlight locations the model did not
    use). Recommended for CT and other cases where the exact location matters.

    Reference: Draelos and Carin, "Use HiResCAM instead of Grad-CAM for faithful explanations
    of convolutional neural networks", arXiv:2011.08891, 2020.

    Example:
        >>> import torch, volsal
        >>> model = volsal.testing.tiny_cnn(2)
        >>> volsal.HiResCAM(model, layer="features")(torch.randn(1, 1, 8, 8), 0).shape
        torch.Size([1, 1, 8, 8])
    """

    def channel_weights(self, acts: torch.Tensor, grads: torch.Tensor) -> torch.Tensor:
        return grads


@register(
    "guided_gradcam",
    kind="input",
    reference="Selvaraju et al. 2017, Grad-CAM (Guided Grad-CAM, Sec. 3.2), ICCV, arXiv:1610.02391",
    aliases=("guidedgradcam", "guided-grad-cam"),
    test_factory=lambda m: GuidedGradCAM(m),
)
class GuidedGradCAM(Attribution):
    """Guided Grad-CAM: guided backpropagation times the Grad-CAM map on the input grid.

    ``attr = GuidedBackprop(x)[b, c] * GradCAM(x)[b, 0]`` element-wise, ``(B, C, *spatial)``.
    Composed from :class:`~volsal.methods.gradient.GuidedBackprop` and :class:`GradCAM`
    (no hook code of its own): two passes, a Grad-CAM (about one inference pass) and a guided
    backprop (one forward and one backward to the input). The Grad-CAM cells are placed at
    their receptive-field centres as for every CAM.

    Args:
        model: the model.
        layer, relu, placement, section_names, adaptive_layer, check: the Grad-CAM's options
            (see :class:`CAM`).
        warn_other_activations: the guided backprop's option.
        model_mode, mode: see :class:`~volsal.base.Attribution`.

    Returns (on call):
        ``(B, C, *spatial)``; ``explain().extras`` holds ``"gradcam"`` ``(B, 1, *spatial)`` and
        ``"guided_backprop"`` ``(B, C, *spatial)``.

    Raises:
        UnsupportedModelError: no ReLU in the forward pass (guided backprop would be the plain
            gradient).
        TargetError: a :class:`~volsal.targets.MultiTarget` (call once per target).

    Reference: Selvaraju et al., "Grad-CAM: Visual Explanations from Deep Networks via
    Gradient-based Localization", ICCV 2017 (Guided Grad-CAM); Springenberg et al., "Striving
    for Simplicity: The All Convolutional Net", 2015 (guided backpropagation).

    Example:
        >>> import torch, volsal
        >>> model = volsal.testing.tiny_cnn(3)
        >>> volsal.GuidedGradCAM(model, layer="features")(torch.randn(1, 1, 8, 8, 8), 0).shape
        torch.Size([1, 1, 8, 8, 8])
    """

    def __init__(
        self,
        model: nn.Module,
        layer: LayerSpec = "auto",
        *,
        relu: bool = True,
        placement: str = "receptive_field",
        section_names: Sequence[Sequence[str] | str] | None = None,
        adaptive_layer: str | None = None,
        check: bool = False,
        warn_other_activations: bool = True,
        model_mode: str = "eval",
        mode: str | None = None,
    ):
        super().__init__(model, model_mode=model_mode, mode=mode)
        self.layer = layer
        self.relu = relu
        self.placement = placement
        self.section_names = section_names
        self.adaptive_layer = adaptive_layer
        self.check = check
        self.warn_other_activations = warn_other_activations
        self._parts()  # validate the options now (cheap: no forward, no hook)

    def _parts(self) -> tuple[GradCAM, Attribution]:
        from .gradient import GuidedBackprop

        cam = GradCAM(
            self.model,
            self.layer,
            relu=self.relu,
            placement=self.placement,
            section_names=self.section_names,
            adaptive_layer=self.adaptive_layer,
            check=self.check,
            model_mode="keep",  # the outer call already set the mode
        )
        cam._grid_cache = self.__dict__.setdefault("_grid_cache", {})  # traced once, reused
        gbp = GuidedBackprop(
            self.model, warn_other_activations=self.warn_other_activations, model_mode="keep"
        )
        return cam, gbp

    def _attribute(self, x: torch.Tensor, target: Any) -> Explanation:
        cam, gbp = self._parts()
        if isinstance(target, MultiTarget):
            target(x)  # raises the TargetError that says how to loop over targets
        cam_exp = cam.explain(x, target)
        gbp_exp = gbp.explain(x, target)
        maps = gbp_exp.maps * cam_exp.maps
        rt = ResolvedTarget(gbp_exp.scores, gbp_exp.classes, gbp_exp.target)
        return self._result(
            maps,
            rt,
            layer=cam_exp.layer,
            gradcam=cam_exp.maps,
            guided_backprop=gbp_exp.maps,
            grid_mapping=cam_exp.extras["grid_mapping"],
        )
