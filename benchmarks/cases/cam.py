"""Grad-CAM (Selvaraju et al. 2017): floor = one no-grad forward.

Every implementation looks at the same layer (``ModelDef.cam_layer``: ``layer4`` for the
resnets, ``features.norm5`` for DenseNet121) and returns a map on the input grid.
"""

from __future__ import annotations

from typing import Any

from ..floors import FORWARD_NOGRAD
from ._case import Anchor, Case, Skip, module_at, upsample_to


def _volsal(model: Any, x: Any, target: int, layer: str) -> Any:
    import volsal

    method = volsal.GradCAM(model, layer=layer)
    return lambda: method(x, target=target)


def _monai(model: Any, x: Any, target: int, layer: str) -> Any:
    from monai.visualize import GradCAM

    cam = GradCAM(nn_module=model, target_layers=layer)
    return lambda: cam(x, class_idx=target)


def _captum(model: Any, x: Any, target: int, layer: str) -> Any:
    from captum.attr import LayerGradCam

    cam = LayerGradCam(model, module_at(model, layer))

    def run() -> Any:
        layer_map = cam.attribute(x, target=target, relu_attributions=True)
        return upsample_to(layer_map, x)

    return run


def _medcam(model: Any, x: Any, target: int, layer: str) -> Any:
    from medcam import medcam_inject

    # No output_dir and no save_* flags: nothing is written. replace=True makes the injected
    # model return the map (interpolated to the input size) instead of the logits. Its first
    # call also runs medcam's one-off "test run" (one more forward + backward).
    injected = medcam_inject.inject(model, backend="gcam", layer=layer, label=target, replace=True)
    return lambda: injected(x)


def _pytorch_grad_cam(model: Any, x: Any, target: int, layer: str) -> Any:
    from pytorch_grad_cam import GradCAM
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    try:
        cam = GradCAM(model=model, target_layers=[module_at(model, layer)])
    except Exception as exc:  # an API change: say so in the cell
        raise Skip(f"GradCAM(model, target_layers) failed: {exc}") from exc
    targets = [ClassifierOutputTarget(target)]
    return lambda: cam(input_tensor=x, targets=targets)


CASES = [
    Case(
        name="GradCAM",
        family="cam",
        floor=FORWARD_NOGRAD,
        volsal=_volsal,
        anchors={
            "monai": Anchor(
                _monai,
                requires=("monai.visualize",),
                note="monai.visualize.GradCAM: zero_grad + .backward(), default upsampler and normaliser",
            ),
            "captum": Anchor(
                _captum,
                requires=("captum.attr",),
                note="LayerGradCam(relu_attributions=True) + F.interpolate(align_corners=False)",
            ),
            "medcam": Anchor(
                _medcam,
                requires=("medcam.medcam_inject",),
                note="medcam.inject(backend='gcam', layer=..., label=1, replace=True), no files",
            ),
            "pytorch-grad-cam": Anchor(
                _pytorch_grad_cam,
                requires=("pytorch_grad_cam",),
                note="pytorch_grad_cam.GradCAM + ClassifierOutputTarget (needs torchvision)",
            ),
        },
        note="volsal.GradCAM(model, layer=L)(x, target=1), receptive-field placement (default)",
    ),
]
