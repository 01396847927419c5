"""Vanilla gradient (Simonyan et al. 2013): floor = one forward plus backward to the input."""

from __future__ import annotations

from typing import Any

from ..floors import FORWARD_BACKWARD_INPUT
from ._case import Anchor, Case


def _volsal(model: Any, x: Any, target: int, layer: str) -> Any:
    import volsal

    method = volsal.Gradient(model)
    return lambda: method(x, target=target)


def _captum(model: Any, x: Any, target: int, layer: str) -> Any:
    from captum.attr import Saliency

    saliency = Saliency(model)
    return lambda: saliency.attribute(x, target=target, abs=False)


def _monai(model: Any, x: Any, target: int, layer: str) -> Any:
    from monai.visualize import VanillaGrad

    vanilla = VanillaGrad(model)
    # VanillaGrad sets requires_grad on the tensor it is given and reads x.grad: give it its
    # own leaf so the shared input stays clean (the copy is made once, outside the timing).
    xi = x.detach().clone()
    return lambda: vanilla(xi, index=target)


CASES = [
    Case(
        name="Gradient",
        family="gradient",
        floor=FORWARD_BACKWARD_INPUT,
        volsal=_volsal,
        anchors={
            "monai": Anchor(
                _monai,
                requires=("monai.visualize",),
                note="VanillaGrad: zero_grad + .backward() (parameter gradients allocated)",
            ),
            "captum": Anchor(
                _captum,
                requires=("captum.attr",),
                note="Saliency(abs=False): torch.autograd.grad w.r.t. the input",
            ),
        },
        note="volsal.Gradient(model)(x, target=1)",
    ),
]
