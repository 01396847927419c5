"""FullGrad and SimpleFullGrad (Srinivas and Fleuret 2019): floor = one forward plus backward to
the input (the bias terms are read from the same backward pass)."""

from __future__ import annotations

from typing import Any

from ..floors import FORWARD_BACKWARD_INPUT
from ._case import Anchor, Case, Skip


def _volsal_fullgrad(model: Any, x: Any, target: int, layer: str) -> Any:
    import volsal

    method = volsal.FullGrad(model)
    return lambda: method(x, target=target)


def _volsal_simple(model: Any, x: Any, target: int, layer: str) -> Any:
    import volsal

    method = volsal.SimpleFullGrad(model)
    return lambda: method(x, target=target)


def _volsal_decomposition(model: Any, x: Any, target: int, layer: str) -> Any:
    import volsal

    return lambda: volsal.fullgrad_decomposition(model, x, target)


def _pytorch_grad_cam(model: Any, x: Any, target: int, layer: str) -> Any:
    if x.ndim != 4:
        raise Skip("pytorch-grad-cam's FullGrad is 2D only (cv2 resizing of the bias maps)")
    from pytorch_grad_cam import FullGrad
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    try:
        cam = FullGrad(model=model, target_layers=[])
    except Exception as exc:  # an API change: say so in the cell
        raise Skip(f"FullGrad(model, target_layers=[]) failed: {exc}") from exc
    targets = [ClassifierOutputTarget(target)]
    return lambda: cam(input_tensor=x, targets=targets)


_PGC = Anchor(
    _pytorch_grad_cam,
    requires=("pytorch_grad_cam",),
    note="pytorch_grad_cam.FullGrad + ClassifierOutputTarget (2D only; omits Linear biases)",
)

CASES = [
    Case(
        name="FullGrad",
        family="fullgrad",
        floor=FORWARD_BACKWARD_INPUT,
        volsal=_volsal_fullgrad,
        anchors={"pytorch-grad-cam": _PGC},
        note="volsal.FullGrad(model)(x, target=1): receptive-field placement, completeness gap "
        "measured (free)",
    ),
    Case(
        name="SimpleFullGrad",
        family="fullgrad",
        floor=FORWARD_BACKWARD_INPUT,
        volsal=_volsal_simple,
        note="volsal.SimpleFullGrad(model)(x, target=1)",
    ),
    Case(
        name="fullgrad_decomposition",
        family="fullgrad",
        floor=FORWARD_BACKWARD_INPUT,
        volsal=_volsal_decomposition,
        note="volsal.fullgrad_decomposition(model, x, 1): every bias term kept at full size "
        "(not a map; memory grows with the sum of the layer outputs)",
    ),
]
