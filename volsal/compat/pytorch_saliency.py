"""The pytorch-saliency interface (seed 003) as a thin adapter over volsal's methods.

::

    from volsal.compat.pytorch_saliency import saliency

    conv_section = ["conv1", "bn1", "relu", "maxpool", "layer1", "layer2", "layer3", "layer4"]
    cam = saliency(model, method="GradCAM", mode="2D",
                   section_names=[conv_section, ["fc"]], adaptive_layer="avgpool")
    preds, maps = cam(x, target_class=[281])

What differs from the original package, on purpose:

- nothing stays on the model: no hooks are left behind, the model's train/eval flags are
  restored after each call (the original called ``model.eval()`` for good), parameters get no
  ``.grad`` (no ``model.zero_grad()``/``.backward()``), and ``x`` is never modified;
- any device (the original built its one-hot vectors on the CPU);
- the predicted class is reported on the ``"volsal"`` logger, not printed;
- maps are raw (Grad-CAM: rectified, not min-max normalised per sample; normalise for display
  with ``volsal.viz``), and Grad-CAM cells are placed at their receptive-field centres;
- ``predictions`` are the logits ``(B, K)`` of the explained forward pass, detached (the
  original returned ``(B, 1, K)`` with its graph);
- ``section_names`` is optional: without it, ``target_layer`` (or the automatic layer) is found
  by hooks on any model; with it, the conv section runs without an autograd graph.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from ..errors import ParameterError
from ..hooks import forward_hooks
from ..layers import unwrap
from ..methods.cam import GradCAM as _GradCAM
from ..methods.cam import GuidedGradCAM as _GuidedGradCAM
from ..sections import parse_sections

__all__ = ["saliency", "Saliency", "GradCAM", "GuidedBackprop", "GuidedGradCAM"]

log = logging.getLogger("volsal")

_METHODS = {
    "gradcam": "GradCAM",
    "guidedbackprop": "GuidedBackprop",
    "guidedgradcam": "GuidedGradCAM",
}


def _key(name: object) -> str:
    return str(name).lower().replace("-", "").replace("_", "").replace(" ", "")


class Saliency:
    """A configured pytorch-saliency style explainer; call it as ``obj(x, target_class=...)``.

    Args:
        model: the model (never changed).
        method: ``"GradCAM"``, ``"GuidedBackprop"`` or ``"GuidedGradCAM"``.
        section_names: optional ``[[conv modules...], [fc modules...]]`` (or the seed's
            ``["features", "classifier"]``).
        target_layer: the CAM layer, ``"layer4"`` or ``["layer3", "1"]``; default: the last
            module of the conv section, or the automatic layer without sections.
        adaptive_layer: the module between the sections (``"avgpool"``).
        mode: ``"2D"`` or ``"3D"`` (default, as in the seed); only checks the input's rank.
        **options: passed to the volsal method (e.g. ``relu=False``, ``placement=...``).

    Raises:
        ParameterError: unknown method.
        SectionError, LayerNotFoundError: section names that do not describe the model.
    """

    def __init__(
        self,
        model: nn.Module,
        method: str = "GradCAM",
        *,
        section_names: Sequence[Sequence[str] | str] | None = None,
        target_layer: str | Sequence[str] | None = None,
        adaptive_layer: str | None = None,
        mode: str | None = "3D",
        **options: Any,
    ):
        key = _key(method)
        if key not in _METHODS:
            raise ParameterError(
                f"method must be one of {sorted(_METHODS.values())}; got {method!r}. Every volsal "
                "method is available directly (volsal.method_names())."
            )
        self.model = model
        self.method_name = _METHODS[key]
        self.section_names = section_names
        self.adaptive_layer = adaptive_layer
        if section_names is not None:
            parse_sections(model, section_names, adaptive_layer)  # fail early, with names
        layer = "auto" if target_layer is None else target_layer
        if self.method_name == "GradCAM":
            self.method = _GradCAM(
                model,
                layer,
                section_names=section_names,
                adaptive_layer=adaptive_layer,
                mode=mode,
                **options,
            )
        elif self.method_name == "GuidedGradCAM":
            self.method = _GuidedGradCAM(
                model,
                layer,
                section_names=section_names,
                adaptive_layer=adaptive_layer,
                mode=mode,
                **options,
            )
        else:
            from ..methods.gradient import GuidedBackprop as _GuidedBackprop

            # guided backprop needs the whole graph: it runs model(x) (the sections, when
            # given, compute the same logits; see volsal.sections.check_sections)
            self.method = _GuidedBackprop(model, mode=mode, **options)

    def __call__(
        self, x: torch.Tensor, target_class: int | Sequence[int] | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Explain ``x`` for ``target_class``.

        Args:
            x: ``(B, C, H, W)`` or ``(B, C, D, H, W)``.
            target_class: one class for all samples, one per sample (a list of length ``B``),
                or ``None`` for the predicted classes (logged on the ``"volsal"`` logger).

        Returns:
            ``(predictions, maps)``: the logits ``(B, K)`` of the explained forward pass and the
            maps, ``(B, 1, *spatial)`` for Grad-CAM, ``(B, C, *spatial)`` otherwise.
        """
        outputs: list[torch.Tensor] = []

        def keep(_m, _inp, out):
            if isinstance(out, torch.Tensor):
                outputs.append(out.detach())

        watched = [unwrap(self.model)]
        if self.section_names is not None:
            sections = parse_sections(self.model, self.section_names, self.adaptive_layer)
            last = sections.fc[-1] if sections.fc else sections.adaptive or sections.conv[-1]
            watched.append(dict(unwrap(self.model).named_modules())[last])
        with forward_hooks((m, keep) for m in watched):
            exp = self.method.explain(x, target_class)
        if outputs:
            predictions = outputs[-1].flatten(1) if outputs[-1].ndim > 2 else outputs[-1]
        else:  # pragma: no cover - every path above runs a hooked module
            with torch.no_grad():
                predictions = self.model(x)
        if target_class is None:
            log.info(
                "volsal: %s for the predicted classes %s",
                self.method_name,
                None if exp.classes is None else exp.classes.tolist(),
            )
        return predictions, exp.maps

    def __repr__(self) -> str:
        return f"saliency({type(self.model).__name__}, method={self.method_name!r})"


def saliency(
    model: nn.Module,
    section_names: Sequence[Sequence[str] | str] | None = None,
    target_layer: str | Sequence[str] | None = None,
    method: str | None = None,
    mode: str | None = "3D",
    adaptive_layer: str | None = None,
    **options: Any,
) -> Saliency:
    """The seed's entry point: ``saliency(model, method="GradCAM", mode="2D", ...)``.

    Returns a :class:`Saliency`; ``obj(x, target_class=...)`` gives ``(predictions, maps)``.
    The argument order is the seed's (``model, section_names, target_layer, method, mode,
    adaptive_layer``); ``method`` is required.

    Example:
        >>> import torch, volsal
        >>> from volsal.compat.pytorch_saliency import saliency
        >>> model = volsal.testing.tiny_cnn(2)
        >>> cam = saliency(model, method="GradCAM", mode="2D", target_layer="features")
        >>> preds, maps = cam(torch.randn(2, 1, 8, 8), target_class=[0, 2])
        >>> preds.shape, maps.shape
        (torch.Size([2, 3]), torch.Size([2, 1, 8, 8]))
    """
    if method is None:
        raise ParameterError(
            f"saliency() needs method=, one of {sorted(_METHODS.values())}; e.g. "
            "saliency(model, method='GradCAM', mode='2D')."
        )
    return Saliency(
        model,
        method,
        section_names=section_names,
        target_layer=target_layer,
        adaptive_layer=adaptive_layer,
        mode=mode,
        **options,
    )


def GradCAM(
    model: nn.Module,
    section_names: Sequence[Sequence[str] | str] | None = None,
    target_layer: str | Sequence[str] | None = None,
    adaptive_layer: str | None = None,
    mode: str | None = "3D",
) -> Saliency:
    """The seed's ``GradCAM(model, section_names, target_layer, adaptive_layer, mode)`` class."""
    return saliency(model, section_names, target_layer, "GradCAM", mode, adaptive_layer)


def GuidedBackprop(
    model: nn.Module, section_names: Sequence[Sequence[str] | str] | None = None
) -> Saliency:
    """The seed's ``GuidedBackprop(model, section_names)`` class (any input rank)."""
    return saliency(model, section_names, None, "GuidedBackprop", None)


def GuidedGradCAM(
    model: nn.Module,
    target_layer: str | Sequence[str] | None = None,
    section_names: Sequence[Sequence[str] | str] | None = None,
    mode: str | None = "3D",
    adaptive_layer: str | None = None,
) -> Saliency:
    """The seed's ``GuidedGradCAM(model, target_layer, section_names, mode, adaptive_layer)``."""
    return saliency(model, section_names, target_layer, "GuidedGradCAM", mode, adaptive_layer)
