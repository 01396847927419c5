"""The PAIR saliency interface (``GetMask`` / ``GetSmoothedMask``) over volsal's methods.

Users of PAIR's saliency library (pair-code/saliency) know one pattern: a class per method,
bound to a model, with ``GetMask(x_value, ...)`` returning a mask of the shape of the
*non-batched* input and ``GetSmoothedMask(x_value, stdev_spread=0.15, nsamples=25,
magnitude=True, ...)`` returning its SmoothGrad. These are thin PyTorch adapters:

- ``x_value``: ONE input ``(C, *spatial)`` (numpy array or tensor; 2D or 3D), not a batch;
- ``target_class``: the class to explain (``None``: the predicted class);
- returns a numpy array of ``x_value``'s shape (:class:`GradCam`: ``spatial`` only, like
  PAIR's 2D Grad-CAM mask).

Differences from PAIR, on purpose: ``GetSmoothedMask`` draws noise through
:class:`volsal.SmoothGrad`, whose relative noise is ``stdev_spread`` times the 1st-99th
percentile range of ``x_value`` (PAIR: ``max - min``, which one outlier voxel inflates), from a
seeded local generator (``seed=0``); ``magnitude=True`` averages squared maps (SmoothGrad^2)
as PAIR does. :class:`IntegratedGradients` uses volsal's quadrature rules (PAIR averages
``x_steps`` gradients at ``linspace(0, 1, x_steps)``). :class:`Occlusion` uses ``stride =
size`` by default and averages overlapping windows (PAIR slides by one pixel and sums).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from ..base import Attribution
from ..errors import InputShapeError
from ..methods.cam import GradCAM
from ..methods.gradient import Gradient
from ..methods.gradient import GuidedBackprop as _GuidedBackprop
from ..methods.integrated import IntegratedGradients as _IntegratedGradients
from ..methods.occlusion import Occlusion as _Occlusion
from ..methods.smooth import SmoothGrad

__all__ = [
    "SaliencyMask",
    "GradientSaliency",
    "GuidedBackprop",
    "IntegratedGradients",
    "Occlusion",
    "GradCam",
]


class SaliencyMask:
    """Base class: a model plus ``GetMask`` / ``GetSmoothedMask`` (PAIR's ``SaliencyMask``).

    Args:
        model: a PyTorch model taking ``(B, C, *spatial)``.
        model_mode: see :class:`volsal.Attribution` (``"eval"`` by default).
    """

    def __init__(self, model: nn.Module, *, model_mode: str = "eval"):
        self.model = model
        self.model_mode = model_mode

    # -- for subclasses ----------------------------------------------------------------------
    def _method(self, **kwargs: Any) -> Attribution:  # pragma: no cover - abstract
        raise NotImplementedError

    def _shape_out(self, maps: torch.Tensor, x: torch.Tensor) -> np.ndarray:
        """``(1, C', *spatial)`` maps to ``x``'s shape (``C'`` = 1 broadcasts over channels)."""
        return maps[0].expand(x.shape[1:]).detach().cpu().numpy().copy()

    # -- PAIR API ----------------------------------------------------------------------------
    def _batch(self, x_value: Any) -> torch.Tensor:
        x = torch.as_tensor(x_value)
        if not torch.is_floating_point(x):
            x = x.float()
        if x.ndim not in (3, 4):
            raise InputShapeError(
                f"x_value must be ONE input (C, H, W) or (C, D, H, W), without a batch axis; got "
                f"shape {tuple(x.shape)}. Fix: x_value[None] for a single-channel image (H, W) "
                "or volume (D, H, W); use volsal's methods directly for batches."
            )
        param = next(self.model.parameters(), None)
        if param is not None:
            x = x.to(param.device)
        return x[None]

    def GetMask(self, x_value: Any, target_class: Any = None, **kwargs: Any) -> np.ndarray:  # noqa: N802
        """The method's mask for one input.

        Args:
            x_value: ``(C, *spatial)`` input, numpy or tensor.
            target_class: class index to explain (``None``: predicted class), or any volsal
                target.
            **kwargs: method options (see each class).

        Returns:
            numpy array shaped like ``x_value`` (``GradCam``: like its spatial axes).
        """
        x = self._batch(x_value)
        return self._shape_out(self._method(**kwargs)(x, target_class), x)

    def GetSmoothedMask(  # noqa: N802
        self,
        x_value: Any,
        target_class: Any = None,
        stdev_spread: float = 0.15,
        nsamples: int = 25,
        magnitude: bool = True,
        *,
        seed: int = 0,
        batch_size: int = 8,
        **kwargs: Any,
    ) -> np.ndarray:
        """SmoothGrad of the mask (through :class:`volsal.SmoothGrad`).

        Args:
            x_value: ``(C, *spatial)`` input.
            target_class: class to explain.
            stdev_spread: noise sigma as a fraction of the input's 1st-99th percentile range.
            nsamples: number of noisy copies.
            magnitude: average squared masks (SmoothGrad^2) instead of masks.
            seed: seed of the noise generator.
            batch_size: noisy copies per pass.
            **kwargs: method options.
        """
        x = self._batch(x_value)
        sg = SmoothGrad(
            self._method(**kwargs),
            n_samples=nsamples,
            noise_level=stdev_spread,
            variant="squared" if magnitude else "mean",
            seed=seed,
            batch_size=batch_size,
        )
        return self._shape_out(sg(x, target_class), x)


class GradientSaliency(SaliencyMask):
    """Vanilla gradient (:class:`volsal.Gradient`)."""

    def _method(self, **kwargs: Any) -> Attribution:
        return Gradient(self.model, model_mode=self.model_mode, **kwargs)


class GuidedBackprop(SaliencyMask):
    """Guided backpropagation (:class:`volsal.GuidedBackprop`): raises
    :class:`~volsal.errors.UnsupportedModelError` on a model without ReLUs."""

    def _method(self, **kwargs: Any) -> Attribution:
        return _GuidedBackprop(self.model, model_mode=self.model_mode, **kwargs)


class IntegratedGradients(SaliencyMask):
    """Integrated gradients (:class:`volsal.IntegratedGradients`).

    ``GetMask(x_value, target_class, x_steps=25, x_baseline=None, **options)``: ``x_baseline``
    is ``(C, *spatial)``, a number or ``"blur"`` (``None``: zeros); ``options`` go to
    :class:`volsal.IntegratedGradients` (``method=``, ``batch_size=``...).
    """

    def _method(self, x_steps: int = 25, x_baseline: Any = None, **kwargs: Any) -> Attribution:
        baseline = 0.0 if x_baseline is None else x_baseline
        return _IntegratedGradients(
            self.model, baseline=baseline, n_steps=x_steps, model_mode=self.model_mode, **kwargs
        )


class Occlusion(SaliencyMask):
    """Occlusion (:class:`volsal.Occlusion`): ``GetMask(x_value, target_class, size=15,
    value=0.0, stride=None)``; ``size`` is the window (an int or one per axis), ``value`` the
    fill, ``stride`` defaults to ``size``. The mask is the same on every channel."""

    def _method(
        self, size: Any = 15, value: Any = 0.0, stride: Any = None, **kwargs: Any
    ) -> Attribution:
        return _Occlusion(
            self.model, window=size, stride=stride, fill=value, model_mode=self.model_mode,
            **kwargs,
        )  # fmt: skip


class GradCam(SaliencyMask):
    """Grad-CAM (:class:`volsal.GradCAM`); the mask has the input's spatial shape.

    Args:
        model: the model.
        conv_layer: the layer to look at (dotted name, module, or ``"auto"``).
    """

    def __init__(self, model: nn.Module, conv_layer: Any = "auto", *, model_mode: str = "eval"):
        super().__init__(model, model_mode=model_mode)
        self.conv_layer = conv_layer

    def _method(self, **kwargs: Any) -> Attribution:
        return GradCAM(self.model, layer=self.conv_layer, model_mode=self.model_mode, **kwargs)

    def _shape_out(self, maps: torch.Tensor, x: torch.Tensor) -> np.ndarray:
        return maps[0, 0].detach().cpu().numpy().copy()
