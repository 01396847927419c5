"""IntegratedGradients and SmoothGrad: floor = n x (forward + backward to the input), batch 8."""

from __future__ import annotations

from typing import Any

from ..floors import FORWARD_BACKWARD_INPUT, floor_name
from ._case import Anchor, Case, is_smoke

N = 4 if is_smoke() else 32
BATCH = 8


def _volsal_ig(model: Any, x: Any, target: int, layer: str) -> Any:
    import volsal

    ig = volsal.IntegratedGradients(model, n_steps=N, batch_size=BATCH)
    return lambda: ig(x, target=target)


def _captum_ig(model: Any, x: Any, target: int, layer: str) -> Any:
    from captum.attr import IntegratedGradients

    ig = IntegratedGradients(model)
    return lambda: ig.attribute(x, target=target, n_steps=N, internal_batch_size=BATCH)


def _volsal_sg(model: Any, x: Any, target: int, layer: str) -> Any:
    import volsal

    sg = volsal.SmoothGrad(model, n_samples=N, noise_level=0.15, batch_size=BATCH)
    return lambda: sg(x, target=target)


def _captum_nt(model: Any, x: Any, target: int, layer: str) -> Any:
    from captum.attr import NoiseTunnel, Saliency

    nt = NoiseTunnel(Saliency(model))
    sigma = 0.15 * float(x.max() - x.min())
    return lambda: nt.attribute(
        x, nt_type="smoothgrad", nt_samples=N, nt_samples_batch_size=BATCH, stdevs=sigma,
        target=target, abs=False,
    )  # fmt: skip


def _monai_sg(model: Any, x: Any, target: int, layer: str) -> Any:
    from monai.visualize import SmoothGrad

    sg = SmoothGrad(model, n_samples=N, magnitude=False, verbose=False)
    xi = x.detach().clone()
    return lambda: sg(xi, index=target)


FLOOR = floor_name(FORWARD_BACKWARD_INPUT, N, BATCH)

CASES = [
    Case(
        name=f"IntegratedGradients n_steps={N}",
        family="integrated",
        floor=FLOOR,
        volsal=_volsal_ig,
        anchors={
            "captum": Anchor(
                _captum_ig,
                requires=("captum.attr",),
                note=f"IntegratedGradients(n_steps={N}, internal_batch_size={BATCH}), gausslegendre",
            )
        },
        note=f"gausslegendre, batch_size={BATCH}; +2 no-grad forwards (target, completeness gap)",
    ),
    Case(
        name=f"SmoothGrad n_samples={N}",
        family="integrated",
        floor=FLOOR,
        volsal=_volsal_sg,
        anchors={
            "monai": Anchor(
                _monai_sg,
                requires=("monai.visualize",),
                note="SmoothGrad(magnitude=False): one noisy copy per pass, backward()",
            ),
            "captum": Anchor(
                _captum_nt,
                requires=("captum.attr",),
                note=f"NoiseTunnel(Saliency), nt_samples_batch_size={BATCH}",
            ),
        },
        note=f"over Gradient, relative noise 0.15, batch_size={BATCH}; +1 no-grad forward",
    ),
]
