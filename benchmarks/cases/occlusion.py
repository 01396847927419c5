"""Occlusion: floor = n_windows x no-grad forward (64 windows: window = size/4), batch 8."""

from __future__ import annotations

from typing import Any

from ..floors import FORWARD_NOGRAD, floor_name
from ._case import Anchor, Case, is_smoke

GRID = 2 if is_smoke() else 4  # windows per axis: 64 windows in 3D (8 in smoke mode)
BATCH = 8


def _window(x: Any) -> int:
    return max(1, min(x.shape[2:]) // GRID)


def _volsal(model: Any, x: Any, target: int, layer: str) -> Any:
    import volsal

    occ = volsal.Occlusion(model, window=_window(x), batch_size=BATCH)
    return lambda: occ(x, target=target)


def _captum(model: Any, x: Any, target: int, layer: str) -> Any:
    from captum.attr import Occlusion

    w = (x.shape[1],) + (_window(x),) * (x.ndim - 2)
    occ = Occlusion(model)
    return lambda: occ.attribute(
        x, sliding_window_shapes=w, strides=w, target=target, perturbations_per_eval=BATCH
    )


def _monai(model: Any, x: Any, target: int, layer: str) -> Any:
    from monai.visualize import OcclusionSensitivity

    occ = OcclusionSensitivity(
        model, mask_size=_window(x), n_batch=BATCH, overlap=0.0, mode=0.0, verbose=False
    )
    return lambda: occ(x)


CASES = [
    Case(
        name=f"Occlusion {GRID**3} windows",
        family="occlusion",
        floor=floor_name(FORWARD_NOGRAD, GRID**3, BATCH),
        volsal=_volsal,
        anchors={
            "monai": Anchor(
                _monai,
                requires=("monai.visualize",),
                note="OcclusionSensitivity(overlap=0, mode=0.0, n_batch=8): all classes",
            ),
            "captum": Anchor(
                _captum, requires=("captum.attr",), note="Occlusion, perturbations_per_eval=8"
            ),
        },
        models=("resnet18_3d", "densenet121_3d"),  # 3D: 4^3 = 64 windows
        note="window = size/4 (64 windows in 3D), stride = window, fill 0, batch_size=8",
    ),
]
