"""Gradient-based input attributions."""

from __future__ import annotations

from typing import Any

import torch

from ..base import Attribution, Explanation
from ..hooks import input_gradient
from .registry import register

__all__ = ["Gradient"]


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
