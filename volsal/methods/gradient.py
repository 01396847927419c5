"""Gradient-based input attributions: Gradient, InputXGradient, GuidedBackprop, Deconvnet."""

from __future__ import annotations

import warnings
from typing import Any, ClassVar

import torch
from torch import nn

from ..base import Attribution, Explanation
from ..errors import UnsupportedModelError, VolsalWarning
from ..hooks import input_gradient
from ..hooks.relu import relu_gradient_rule
from .registry import register

__all__ = ["Gradient", "InputXGradient", "GuidedBackprop", "Deconvnet"]


@register(
    "gradient",
    kind="input",
    reference="Simonyan et al. 2014, Deep Inside Convolutional Networks, arXiv:1312.6034",
    aliases=("vanilla", "saliency", "vanillagrad", "GradientExplanation"),
)
class Gradient(Attribution):
    """Vanilla gradient of the target score with respect to the input.

    ``attr = d score / d x``, signed, shaped like ``x`` ``(B, C, *spatial)``. One forward and one
    backward pass to the input; no parameter ``.grad`` is allocated and ``x`` is not modified
    (a detached copy is differentiated, so repeated calls never accumulate).

    Reference: Simonyan, Vedaldi and Zisserman, "Deep Inside Convolutional Networks:
    Visualising Image Classification Models and Saliency Maps", ICLR workshop 2014.

    Example:
        >>> import torch, volsal
        >>> model = volsal.testing.tiny_cnn(3)
        >>> x = torch.randn(2, 1, 8, 8, 8)
        >>> volsal.Gradient(model)(x, target=1).shape
        torch.Size([2, 1, 8, 8, 8])
    """

    def _attribute(self, x: torch.Tensor, target: Any) -> Explanation:
        grads, rt = input_gradient(self.model, x, target)
        return self._result(grads, rt)


@register(
    "input_x_gradient",
    kind="input",
    reference="Shrikumar et al. 2016, Not Just a Black Box, arXiv:1605.01713",
    aliases=("inputxgradient", "gradientxinput", "grad_x_input"),
)
class InputXGradient(Attribution):
    """Input times gradient: ``attr = x * d score / d x``, shaped like ``x``.

    Equals integrated gradients with a zero baseline on models that are linear in ``x``
    (bias-free piecewise-linear networks: exactly), and is one forward plus one backward pass.

    Reference: Shrikumar, Greenside, Shcherbina and Kundaje, "Not Just a Black Box: Learning
    Important Features Through Propagating Activation Differences", arXiv:1605.01713, 2016.

    Example:
        >>> import torch, volsal
        >>> model = volsal.testing.tiny_cnn(3)
        >>> volsal.InputXGradient(model)(torch.randn(1, 1, 8, 8, 8), target=0).shape
        torch.Size([1, 1, 8, 8, 8])
    """

    def _attribute(self, x: torch.Tensor, target: Any) -> Explanation:
        grads, rt = input_gradient(self.model, x, target)
        return self._result(x.detach() * grads, rt)


class _ReluRuleGradient(Attribution):
    """Input gradient with a modified ReLU backward rule (see :mod:`volsal.hooks.relu`)."""

    _rule: ClassVar[str] = "guided"

    def __init__(
        self,
        model: nn.Module,
        *,
        warn_other_activations: bool = True,
        model_mode: str = "eval",
        mode: str | None = None,
    ):
        super().__init__(model, model_mode=model_mode, mode=mode)
        self.warn_other_activations = warn_other_activations

    def _attribute(self, x: torch.Tensor, target: Any) -> Explanation:
        with relu_gradient_rule(self._rule) as rec:
            grads, rt = input_gradient(self.model, x, target)
        others = ", ".join(f"{n} x{c}" for n, c in sorted(rec.others.items()))
        if rec.count == 0:
            raise UnsupportedModelError(
                f"{type(self).__name__} needs ReLU activations, and the forward pass met none"
                + (
                    f" (it met {others}, which the {self._rule} rule does not cover)"
                    if others
                    else ""
                )
                + ". Without ReLUs the result would be the plain gradient. Fix: use "
                "volsal.Gradient (or IntegratedGradients / SmoothGrad) for this model."
            )
        if others and self.warn_other_activations:
            warnings.warn(
                f"{type(self).__name__}: {rec.count} ReLU call(s) use the {self._rule} rule, but "
                f"the forward pass also met {others}, whose ordinary gradient is kept (the rule is "
                "defined for ReLU only). Pass warn_other_activations=False to silence this.",
                VolsalWarning,
                stacklevel=4,
            )
        return self._result(grads, rt, relu_calls=rec.count, other_activations=dict(rec.others))


@register(
    "guided_backprop",
    kind="input",
    reference="Springenberg et al. 2015, Striving for Simplicity: The All Convolutional Net, "
    "arXiv:1412.6806",
    aliases=("guidedbackprop", "guided", "GuidedBackpropGrad"),
)
class GuidedBackprop(_ReluRuleGradient):
    """Guided backpropagation: the input gradient where every ReLU passes back only positive
    gradients at positive inputs, ``grad_in = grad_out * [input > 0] * [grad_out > 0]``.

    Only the backward rule of ReLU calls changes (``nn.ReLU`` modules, in place or not and reused
    or not, and ``F.relu`` / ``torch.relu`` / ``Tensor.relu`` calls in ``forward``); nothing on
    the model is replaced (see :func:`volsal.hooks.relu_gradient_rule`). LeakyReLU, PReLU, ELU,
    SiLU and GELU keep their ordinary gradient, with a :class:`~volsal.errors.VolsalWarning`
    when the forward met any (``warn_other_activations=False`` silences it). Cost: one forward
    and one backward pass. ``explain().extras["relu_calls"]`` counts the rewritten calls.

    Args:
        model: the model.
        warn_other_activations: warn when non-ReLU activations were met.
        model_mode, mode: see :class:`~volsal.base.Attribution`.

    Raises:
        UnsupportedModelError: the forward pass met no ReLU call (the map would be the plain
            gradient; MONAI and Captum silently return that).

    Reference: Springenberg, Dosovitskiy, Brox and Riedmiller, "Striving for Simplicity: The All
    Convolutional Net", ICLR workshop 2015, arXiv:1412.6806.

    Example:
        >>> import torch, volsal
        >>> model = volsal.testing.tiny_cnn(3)
        >>> volsal.GuidedBackprop(model)(torch.randn(1, 1, 8, 8, 8), target=0).shape
        torch.Size([1, 1, 8, 8, 8])
    """

    _rule = "guided"


@register(
    "deconvnet",
    kind="input",
    reference="Zeiler and Fergus 2014, Visualizing and Understanding Convolutional Networks, "
    "arXiv:1311.2901",
    aliases=("deconvolution", "zeilerfergus", "deconv"),
)
class Deconvnet(_ReluRuleGradient):
    """Deconvnet (Zeiler and Fergus): every ReLU passes back the positive part of the incoming
    gradient whatever its input was, ``grad_in = grad_out * [grad_out > 0]``.

    Same machinery, options and errors as :class:`GuidedBackprop` (Captum calls it
    ``Deconvolution``). Cost: one forward and one backward pass.

    Reference: Zeiler and Fergus, "Visualizing and Understanding Convolutional Networks",
    ECCV 2014, arXiv:1311.2901.

    Example:
        >>> import torch, volsal
        >>> model = volsal.testing.tiny_cnn(2)
        >>> volsal.Deconvnet(model)(torch.randn(1, 1, 8, 8), target=0).shape
        torch.Size([1, 1, 8, 8])
    """

    _rule = "deconvnet"
