"""InputXGradient, GuidedBackprop, Deconvnet: floor = one forward plus backward to the input."""

from __future__ import annotations

from typing import Any

from ..floors import FORWARD_BACKWARD_INPUT
from ._case import Anchor, Case


def _volsal(name: str):
    def factory(model: Any, x: Any, target: int, layer: str) -> Any:
        import volsal

        method = getattr(volsal, name)(model)
        return lambda: method(x, target=target)

    return factory


def _captum(name: str):
    def factory(model: Any, x: Any, target: int, layer: str) -> Any:
        import captum.attr

        explainer = getattr(captum.attr, name)(model)
        return lambda: explainer.attribute(x, target=target)

    return factory


def _monai_guided(model: Any, x: Any, target: int, layer: str) -> Any:
    import copy

    from monai.visualize import GuidedBackpropGrad

    # MONAI swaps ReLU modules and flips inplace flags: give it its own copy (made untimed)
    guided = GuidedBackpropGrad(copy.deepcopy(model))
    xi = x.detach().clone()
    return lambda: guided(xi, index=target)


def _anchor(name: str, note: str) -> Anchor:
    return Anchor(_captum(name), requires=("captum.attr",), note=note)


CASES = [
    Case(
        name="InputXGradient",
        family="gradient_family",
        floor=FORWARD_BACKWARD_INPUT,
        volsal=_volsal("InputXGradient"),
        anchors={"captum": _anchor("InputXGradient", "InputXGradient")},
        note="volsal.InputXGradient(model)(x, target=1)",
    ),
    Case(
        name="GuidedBackprop",
        family="gradient_family",
        floor=FORWARD_BACKWARD_INPUT,
        volsal=_volsal("GuidedBackprop"),
        anchors={
            "monai": Anchor(
                _monai_guided,
                requires=("monai.visualize",),
                note="GuidedBackpropGrad on a deep copy (it replaces modules by name)",
            ),
            "captum": _anchor("GuidedBackprop", "backward hooks on nn.ReLU modules"),
        },
        note="volsal.GuidedBackprop(model)(x, target=1): TorchFunctionMode ReLU rule",
    ),
    Case(
        name="Deconvnet",
        family="gradient_family",
        floor=FORWARD_BACKWARD_INPUT,
        volsal=_volsal("Deconvnet"),
        anchors={"captum": _anchor("Deconvolution", "Deconvolution: hooks on nn.ReLU modules")},
        note="volsal.Deconvnet(model)(x, target=1)",
    ),
]
