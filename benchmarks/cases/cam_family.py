"""The rest of the CAM family: Grad-CAM++, HiResCAM, Grad-CAM through model sections, Guided
Grad-CAM.

Grad-CAM++ and HiResCAM have the floor of Grad-CAM (one no-grad forward): they differ only in
how the channels are weighted. The sections path runs the conv section without an autograd
graph (pytorch-saliency's ``section_names`` + ``adaptive_layer``); its peak memory should stay
within 1.05x of a no-grad forward. Guided Grad-CAM is a guided backprop (one forward and one
backward to the input, the ``Gradient`` floor) plus a Grad-CAM. Captum has no Grad-CAM++ or
HiResCAM; pytorch-grad-cam (optional, needs torchvision) has both.
"""

from __future__ import annotations

from typing import Any

from ..floors import FORWARD_BACKWARD_INPUT, FORWARD_NOGRAD
from ._case import Anchor, Case, Skip, module_at


def _volsal(name: str, **options: Any):
    def factory(model: Any, x: Any, target: int, layer: str) -> Any:
        import volsal

        method = getattr(volsal, name)(model, layer=layer, **options)
        return lambda: method(x, target=target)

    return factory


def _sections_of(model: Any) -> tuple[list[list[str]], str]:
    """``section_names`` and ``adaptive_layer`` of the benchmark's MONAI models."""
    if hasattr(model, "class_layers"):  # DenseNet121: features -> relu -> pool -> flatten -> out
        return [["features", "class_layers.relu"], ["class_layers.out"]], "class_layers.pool"
    conv = ["conv1", "bn1", "act", "maxpool", "layer1", "layer2", "layer3", "layer4"]
    return [conv, ["fc"]], "avgpool"


def _volsal_sections(model: Any, x: Any, target: int, layer: str) -> Any:
    import volsal

    sections, adaptive = _sections_of(model)
    method = volsal.GradCAM(model, layer=layer, section_names=sections, adaptive_layer=adaptive)
    return lambda: method(x, target=target)


def _monai_gradcampp(model: Any, x: Any, target: int, layer: str) -> Any:
    from monai.visualize import GradCAMpp

    cam = GradCAMpp(nn_module=model, target_layers=layer)
    return lambda: cam(x, class_idx=target)


def _pgc(name: str):
    def factory(model: Any, x: Any, target: int, layer: str) -> Any:
        import pytorch_grad_cam
        from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

        try:
            cam = getattr(pytorch_grad_cam, name)(
                model=model, target_layers=[module_at(model, layer)]
            )
        except Exception as exc:  # an API change: say so in the cell
            raise Skip(f"{name}(model, target_layers) failed: {exc}") from exc
        targets = [ClassifierOutputTarget(target)]
        return lambda: cam(input_tensor=x, targets=targets)

    return factory


def _captum_guided_gradcam(model: Any, x: Any, target: int, layer: str) -> Any:
    from captum.attr import GuidedGradCam

    ggc = GuidedGradCam(model, module_at(model, layer))
    return lambda: ggc.attribute(
        x, target=target, interpolate_mode="bilinear" if x.ndim == 4 else "trilinear"
    )


_PGC_REQ = ("pytorch_grad_cam",)

CASES = [
    Case(
        name="GradCAM++",
        family="cam",
        floor=FORWARD_NOGRAD,
        volsal=_volsal("GradCAMPlusPlus"),
        anchors={
            "monai": Anchor(
                _monai_gradcampp,
                requires=("monai.visualize",),
                note="monai.visualize.GradCAMpp (another alpha formula, batch-coupled)",
            ),
            "pytorch-grad-cam": Anchor(
                _pgc("GradCAMPlusPlus"),
                requires=_PGC_REQ,
                note="pytorch_grad_cam.GradCAMPlusPlus + ClassifierOutputTarget",
            ),
        },
        note="volsal.GradCAMPlusPlus(model, layer=L)(x, target=1): Eq. 19, exp(score) dropped",
    ),
    Case(
        name="HiResCAM",
        family="cam",
        floor=FORWARD_NOGRAD,
        volsal=_volsal("HiResCAM"),
        anchors={
            "pytorch-grad-cam": Anchor(
                _pgc("HiResCAM"),
                requires=_PGC_REQ,
                note="pytorch_grad_cam.HiResCAM + ClassifierOutputTarget",
            ),
        },
        note="volsal.HiResCAM(model, layer=L)(x, target=1); MONAI and Captum have none",
    ),
    Case(
        name="GradCAM sections",
        family="cam",
        floor=FORWARD_NOGRAD,
        volsal=_volsal_sections,
        note="volsal.GradCAM(model, layer=L, section_names=[[conv...], [fc]], "
        "adaptive_layer=avgpool): conv section without autograd graph; target <= 1.05x floor memory",
    ),
    Case(
        name="GuidedGradCAM",
        family="cam",
        floor=FORWARD_BACKWARD_INPUT,
        volsal=_volsal("GuidedGradCAM"),
        anchors={
            "captum": Anchor(
                _captum_guided_gradcam,
                requires=("captum.attr",),
                note="captum GuidedGradCam(model, layer), (bi/tri)linear upsampling",
            ),
        },
        note="volsal.GuidedGradCAM(model, layer=L): GuidedBackprop x Grad-CAM (2 passes); "
        "target within 1.2x of Gradient",
    ),
]
