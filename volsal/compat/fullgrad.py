"""The FullGrad reference interface (Srinivas and Fleuret), as a thin adapter over volsal.

Code written for the reference implementation (``saliency/fullgrad.py``,
``saliency/simple_fullgrad.py``) runs unchanged, in 2D and 3D::

    from volsal.compat.fullgrad import FullGrad, SimpleFullGrad

    fullgrad = FullGrad(model)
    fullgrad.checkCompleteness()
    input_gradient, bias_gradients = fullgrad.fullGradientDecompose(input_image, target_class)
    saliency_map = fullgrad.saliency(input_image, target_class)

    simple_fullgrad = SimpleFullGrad(model)
    saliency_map = simple_fullgrad.saliency(input_image, target_class)

As in the reference, ``fullGradientDecompose`` returns the *raw* input gradient ``grad_x f``
(multiply by the image for the input term, as the reference's own ``checkCompleteness`` and
``saliency`` do) and the list of bias-gradient terms ``b * grad_b f``, one per bias-layer call in
call order. A model that defines the older interface of the reference, ``getBiases()`` and
``getFeatures(x) -> (output, features)`` (features starting with the input, biases with a
placeholder for it), is used through it; any other model is decomposed automatically
(:func:`volsal.methods.fullgrad.fullgrad_decomposition`).

Differences from the reference: nothing runs in the constructor (the reference checks
completeness there, with an ``assert``, on a CUDA random input when CUDA exists); the model's
``training`` flags are restored after every call (the reference leaves the model in eval mode)
and the image's ``requires_grad`` is not set; ``checkCompleteness`` raises
:class:`~volsal.errors.UnsupportedModelError` naming the layers that break completeness (the
reference: a bare ``AssertionError``) and returns the measured gap; ``saliency`` is volsal's
:class:`~volsal.FullGrad` map (see :mod:`volsal.methods.fullgrad` for the post-processing
differences: receptive-field placement instead of ``align_corners=True``, exact min-max).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from ..errors import ParameterError, UnsupportedModelError
from ..hooks import eval_mode
from ..methods.fullgrad import (
    DEFAULT_TOLERANCE,
    CompletenessGap,
    FullGradDecomposition,
    _psi_sum,
    completeness_gap,
    fullgrad_decomposition,
)
from ..methods.fullgrad import FullGrad as _FullGrad
from ..methods.fullgrad import SimpleFullGrad as _SimpleFullGrad
from ..spatial import check_input, resize
from ..targets import resolve_target

__all__ = ["FullGrad", "SimpleFullGrad"]


def _target(target_class: Any) -> Any:
    """The reference's ``target_class`` (None, int, ``(B,)`` or ``(B, 1)`` tensor) as a target."""
    if isinstance(target_class, torch.Tensor):
        return target_class.flatten().long()
    return target_class


def _has_feature_interface(model: nn.Module) -> bool:
    return callable(getattr(model, "getFeatures", None))


def _default_im_size(model: nn.Module) -> tuple[int, ...]:
    for m in model.modules():
        if isinstance(m, nn.modules.conv._ConvNd):
            k = len(m.kernel_size)
            return (m.in_channels,) + ((224,) * 2 if k == 2 else (64,) * k)
    raise ParameterError(
        "cannot guess the input size of a model without convolutions: pass im_size=(C, *spatial)."
    )


class _FeatureInterface:
    """The reference's ``getBiases()`` / ``getFeatures(x)`` model interface."""

    def __init__(self, model: nn.Module):
        self.model = model

    def run(self, x: torch.Tensor, target: Any, need_biases: bool):
        """``(input_grad, feature_grads, biases, resolved target)`` for one forward pass."""
        xg = x.detach().clone().requires_grad_(True)
        with torch.enable_grad():
            res = self.model.getFeatures(xg)
            if not (isinstance(res, (tuple, list)) and len(res) == 2):
                raise UnsupportedModelError(
                    "getFeatures(x) must return (output, features) as in the FullGrad "
                    f"reference; got {type(res).__name__}."
                )
            out, feats = res
            feats = list(feats)
            if not feats or feats[0] is not xg:
                feats = [xg] + feats
            rt = resolve_target(target, out, x.shape[0])
            grads = torch.autograd.grad(rt.scores.sum(), feats, allow_unused=True)
        grads = [torch.zeros_like(f) if g is None else g for f, g in zip(feats, grads)]
        biases = None
        if need_biases:
            biases = list(self.model.getBiases())
            if len(biases) == len(feats):
                biases = biases[1:]  # the reference's placeholder for the input
            if len(biases) != len(feats) - 1:
                raise UnsupportedModelError(
                    f"getBiases() returned {len(biases)} biases for {len(feats) - 1} features "
                    "of getFeatures(x); the reference interface pairs them by position."
                )
        return grads[0], grads[1:], biases, rt


def _times_bias(g: torch.Tensor, b: Any) -> torch.Tensor:
    if isinstance(b, torch.Tensor):
        b = b.detach().to(g.dtype)
        if b.ndim == 1 and g.ndim > 2 and b.numel() == g.shape[1]:
            b = b.view((1, -1) + (1,) * (g.ndim - 2))
    return g * b


def _feature_map(x: torch.Tensor, input_grad: torch.Tensor, terms: Sequence[torch.Tensor]):
    cam = _psi_sum(x.detach() * input_grad)
    for t in terms:
        if t.ndim == x.ndim:
            cam = cam + resize(_psi_sum(t), x.shape[2:])
    return cam


class FullGrad:
    """The reference ``FullGrad`` class: decomposition, completeness check, saliency.

    Args:
        model: the model (any CNN; or one with ``getBiases()`` / ``getFeatures(x)``).
        im_size: ``(C, *spatial)`` of the random input of :meth:`checkCompleteness` (default:
            the first convolution's channels at 224^2 in 2D, 64^3 in 3D).
        tolerance: relative completeness tolerance (the reference's ``rel_tol=1e-4``).

    Example:
        >>> import torch, volsal
        >>> from volsal.compat.fullgrad import FullGrad
        >>> fullgrad = FullGrad(volsal.testing.tiny_cnn(3), im_size=(1, 8, 8, 8))
        >>> _ = fullgrad.checkCompleteness()
        >>> fullgrad.saliency(torch.randn(1, 1, 8, 8, 8), torch.tensor([1])).shape
        torch.Size([1, 1, 8, 8, 8])
    """

    def __init__(
        self,
        model: nn.Module,
        im_size: Sequence[int] | None = None,
        *,
        tolerance: float = DEFAULT_TOLERANCE,
    ):
        self.model = model
        self.im_size = None if im_size is None else tuple(int(s) for s in im_size)
        self.tolerance = tolerance

    def _decompose(self, image: torch.Tensor, target: Any) -> FullGradDecomposition:
        if not _has_feature_interface(self.model):
            return fullgrad_decomposition(self.model, image, target)
        check_input(image, name="image", allow_1d=True)
        with eval_mode(self.model):
            gx, fgrads, biases, rt = _FeatureInterface(self.model).run(image, target, True)
        terms = {
            f"feature{i + 1}": _times_bias(g, b) for i, (g, b) in enumerate(zip(fgrads, biases))
        }
        return FullGradDecomposition(
            image.detach() * gx,
            terms,
            rt.scores.detach(),
            rt.classes,
            rt.description,
            input_gradient=gx,
        )

    def checkCompleteness(self, image: torch.Tensor | None = None) -> CompletenessGap:  # noqa: N802
        """Check ``sum(x*grad_x f) + sum(b*grad_b f) == f(x)`` on a random input (or ``image``).

        Returns:
            the :class:`~volsal.methods.fullgrad.CompletenessGap`.

        Raises:
            UnsupportedModelError: the relative gap exceeds the tolerance; the message names the
                layers that break completeness (use :class:`SimpleFullGrad` for such models).
        """
        if image is None:
            size = self.im_size or _default_im_size(self.model)
            p = next(self.model.parameters(), None)
            dtype = p.dtype if p is not None else torch.float32
            device = p.device if p is not None else torch.device("cpu")
            gen = torch.Generator(device=device).manual_seed(0)
            image = torch.randn((1,) + tuple(size), generator=gen, dtype=dtype, device=device)
        gap = completeness_gap(self._decompose(image, None))
        if not gap.holds(self.tolerance):
            culprits = "; ".join(gap.breaking) or "none recognised"
            raise UnsupportedModelError(
                f"Completeness test failed: raw output {gap.scores.tolist()}, full-gradient sum "
                f"{gap.total.tolist()} (relative gap {gap.max_relative:.3g} > "
                f"{self.tolerance:g}). Layers that break completeness: {culprits}. Use "
                "SimpleFullGrad for this model."
            )
        return gap

    def fullGradientDecompose(  # noqa: N802
        self, image: torch.Tensor, target_class: Any = None
    ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """The input gradient and the bias-gradient terms, as the reference returns them.

        Args:
            image: ``(B, C, *spatial)``.
            target_class: ``None`` (predicted class), an int, or a ``(B,)`` / ``(B, 1)`` tensor.

        Returns:
            ``(input_gradient, bias_gradients)``: ``grad_x f`` shaped like ``image`` (not
            multiplied by the image, as in the reference), and the list of ``b * grad_b f``
            maps ``(B, C_l, *feat)`` (``(B, C_l)`` for linear layers), one per bias-layer call
            in call order.
        """
        dec = self._decompose(image, _target(target_class))
        return dec.input_gradient, list(dec.bias_terms.values())

    def saliency(self, image: torch.Tensor, target_class: Any = None) -> torch.Tensor:
        """The FullGrad saliency map ``(B, 1, *spatial)``."""
        target = _target(target_class)
        if not _has_feature_interface(self.model):
            return _FullGrad(self.model)(image, target)
        check_input(image, name="image", allow_1d=True)
        with eval_mode(self.model):
            gx, fgrads, biases, _ = _FeatureInterface(self.model).run(image, target, True)
        return _feature_map(image, gx, [_times_bias(g, b) for g, b in zip(fgrads, biases)])


class SimpleFullGrad:
    """The reference ``SimpleFullGrad`` class: ``SimpleFullGrad(model).saliency(image, target)``.

    Uses ``getFeatures(x)`` when the model defines it (gradients at those features), otherwise
    volsal's :class:`~volsal.SimpleFullGrad` (gradients at the outputs of the convolutions
    with a bias and the normalisation layers).
    """

    def __init__(self, model: nn.Module, im_size: Sequence[int] | None = None):
        self.model = model
        self.im_size = im_size

    def saliency(self, image: torch.Tensor, target_class: Any = None) -> torch.Tensor:
        """The Simple FullGrad saliency map ``(B, 1, *spatial)``."""
        target = _target(target_class)
        if not _has_feature_interface(self.model):
            return _SimpleFullGrad(self.model)(image, target)
        check_input(image, name="image", allow_1d=True)
        with eval_mode(self.model):
            gx, fgrads, _, _ = _FeatureInterface(self.model).run(image, target, False)
        return _feature_map(image, gx, fgrads)
