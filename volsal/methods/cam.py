"""Class activation maps: a shared base and Grad-CAM.

A CAM combines a layer's activations ``A (B, K, *feat)`` with weights derived from the
gradient of the target score, ``cam = sum_k w_k * A_k`` (optionally rectified), and brings the
result from the layer's grid to the input grid. A new CAM overrides only
:meth:`CAM.channel_weights`.
"""

from __future__ import annotations

import warnings
from typing import Any

import torch
from torch import nn

from ..base import Attribution, Explanation
from ..errors import DegenerateMapWarning
from ..hooks import layer_gradient
from ..layers import LayerSpec, auto_layer, resolve_layer
from ..spatial import broadcast_to_spatial, resize
from .registry import register

__all__ = ["CAM", "GradCAM"]


class CAM(Attribution):
    """Base class of gradient-weighted class activation maps.

    Args:
        model: the model.
        layer: where to look: a dotted name (``"layer4"``, ``"features.block4"``), a sequence of
            name parts, a module of the model, a callable ``model -> module``, or ``"auto"``
            (the last module whose output keeps the input's spatial rank, found by one probing
            forward on the real input and logged on the ``"volsal"`` logger).
        relu: rectify the combined map (the methods' definition); ``False`` keeps signed maps.
        upsample: bring the map to the input grid (default). ``False`` returns the map on the
            layer's grid ``(B, 1, *feat)``.
        model_mode, mode: see :class:`~volsal.base.Attribution`.

    Returns (on call):
        ``(B, 1, *spatial)`` maps on the input grid (or ``(B, 1, *feat)`` with
        ``upsample=False``). ``explain()`` also returns the layer-grid map as
        ``extras["feature_map"]``.
    """

    kind = "cam"

    def __init__(
        self,
        model: nn.Module,
        layer: LayerSpec = "auto",
        *,
        relu: bool = True,
        upsample: bool = True,
        model_mode: str = "eval",
        mode: str | None = None,
    ):
        super().__init__(model, model_mode=model_mode, mode=mode)
        self.layer = layer
        self.relu = relu
        self.upsample = upsample

    # -- the one hook point ------------------------------------------------------------------
    def channel_weights(self, acts: torch.Tensor, grads: torch.Tensor) -> torch.Tensor:
        """Weights for the activations: ``(B, K)`` per channel, or ``(B, K, *feat)`` per element.

        Args:
            acts: layer activations ``(B, K, *feat)``.
            grads: gradient of the target scores w.r.t. ``acts``, same shape.
        """
        raise NotImplementedError

    # -- shared machinery --------------------------------------------------------------------
    def _resolve(self, x: torch.Tensor) -> tuple[str, nn.Module]:
        spec = self.layer
        if isinstance(spec, str) and spec == "auto":
            spec = auto_layer(self.model, x)
        return resolve_layer(self.model, spec)

    def _combine(self, acts: torch.Tensor, grads: torch.Tensor) -> torch.Tensor:
        w = self.channel_weights(acts, grads)
        if w.ndim == 2:
            w = broadcast_to_spatial(w, acts.ndim - 2)
        return (w * acts).sum(1, keepdim=True)

    def _to_input_grid(self, cam: torch.Tensor, x: torch.Tensor, name: str) -> torch.Tensor:
        """Resample a layer-grid map ``(B, 1, *feat)`` to the input grid ``x.shape[2:]``."""
        del name
        return resize(cam, x.shape[2:])

    def _attribute(self, x: torch.Tensor, target: Any) -> Explanation:
        name, module = self._resolve(x)
        acts, grads, rt = layer_gradient(self.model, x, target, name, module)
        if acts[0, 0].numel() == 1:
            warnings.warn(
                f"layer {name!r} has a single-voxel output {tuple(acts.shape)}: the map is "
                "constant. Pick an earlier layer that still has spatial extent.",
                DegenerateMapWarning,
                stacklevel=4,
            )
        cam = self._combine(acts, grads)
        if self.relu:
            cam = cam.clamp_min(0)
            empty = cam.flatten(1).amax(1) <= 0
            if bool(empty.any()):
                warnings.warn(
                    f"{type(self).__name__}: the map of sample(s) {empty.nonzero().flatten().tolist()} "
                    f"is all zero: nothing at layer {name!r} supports the target (it is "
                    "information, not an error). Use relu=False to see the negative evidence, or "
                    "an earlier layer.",
                    DegenerateMapWarning,
                    stacklevel=4,
                )
        maps = self._to_input_grid(cam, x, name) if self.upsample else cam
        return self._result(maps, rt, layer=name, feature_map=cam)


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
    input grid (bilinear in 2D, trilinear in 3D). The forward pass builds an autograd graph only
    from the layer's output onward, so a Grad-CAM costs about one inference pass.

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
