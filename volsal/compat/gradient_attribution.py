"""The "Compare Gradient Attribution Maps" interface (MATLAB ``gradientMap`` and
``randomizeModelParameters``) in PyTorch, over volsal's methods and sanity tools.

- :func:`gradient_map`: ``"GradientExplanation"`` (:class:`volsal.Gradient`),
  ``"GuidedBackprop"`` (:class:`volsal.methods.gradient.GuidedBackprop`) and
  ``"ZeilerFergus"`` (:class:`volsal.methods.gradient.Deconvnet`); as the seed describes, each map
  is the sum of the absolute gradient over channels, rescaled to ``[0, 1]`` per sample.
- :func:`randomize_model_parameters`: a deep copy with the parameters of a range of layers
  re-drawn (layers without parameters skipped), for the independent and cascading checks.
- ``tile_input_and_maps`` lives in :mod:`volsal.compat.visualization`.

Differences from the MATLAB functions, on purpose: inputs are batches ``(B, C, *spatial)``
(2D or 3D) and maps come back as ``(B, 1, *spatial)`` tensors; the target defaults to the
predicted class but can be any volsal target; layer indices are 0-based and count the leaf
modules of ``model.named_modules()`` (definition order, which is the execution order of
sequential models); the random draws are reproducible from ``seed`` and leave the global RNG
alone. For the full check with similarity scores see :mod:`volsal.sanity`.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from ..errors import ParameterError
from ..methods.gradient import Deconvnet, Gradient, GuidedBackprop
from ..ops import minmax
from ..sanity.randomize import randomize_layers
from ..spatial import reduce_channels

__all__ = ["gradient_map", "randomize_model_parameters"]

_METHODS = {
    "gradientexplanation": Gradient,
    "guidedbackprop": GuidedBackprop,
    "zeilerfergus": Deconvnet,
}


def _one_map(model: nn.Module, x: torch.Tensor, name: str, target: Any) -> torch.Tensor:
    key = str(name).lower().replace("-", "").replace("_", "").replace(" ", "")
    if key not in _METHODS:
        raise ParameterError(
            f"unknown gradient attribution method {name!r}; use 'GradientExplanation', "
            "'GuidedBackprop' or 'ZeilerFergus'."
        )
    grads = _METHODS[key](model)(x, target)
    return minmax(reduce_channels(grads, "abs_sum"))


def gradient_map(
    model: nn.Module,
    x: torch.Tensor,
    methods: str | Sequence[str] = "GradientExplanation",
    *,
    target: Any = None,
) -> torch.Tensor | list[torch.Tensor]:
    """Saliency maps of ``model`` for ``x`` by one or several gradient attribution techniques.

    Args:
        model: the classifier (never changed).
        x: input ``(B, C, H, W)`` or ``(B, C, D, H, W)``.
        methods: ``"GradientExplanation"``, ``"GuidedBackprop"``, ``"ZeilerFergus"``, or a
            list of them (case, ``-`` and ``_`` ignored).
        target: any volsal target; ``None`` explains the predicted class.

    Returns:
        One ``(B, 1, *spatial)`` map in ``[0, 1]`` (sum over channels of ``|gradient|``,
        min-max rescaled per sample; a constant map becomes zeros with a
        ``DegenerateMapWarning``), or a list of them when ``methods`` is a list.

    Example:
        >>> import torch, volsal
        >>> from volsal.compat.gradient_attribution import gradient_map
        >>> model = volsal.testing.tiny_cnn(2)
        >>> maps = gradient_map(model, torch.randn(1, 1, 16, 16), ["GradientExplanation", "ZeilerFergus"])
        >>> [tuple(m.shape) for m in maps]
        [(1, 1, 16, 16), (1, 1, 16, 16)]
    """
    if isinstance(methods, str):
        return _one_map(model, x, methods, target)
    return [_one_map(model, x, name, target) for name in methods]


def randomize_model_parameters(
    model: nn.Module,
    layer_index: int,
    num_layers: int = 0,
    *,
    init: str = "gaussian",
    seed: int = 0,
) -> nn.Module:
    """A deep copy of ``model`` with the layers ``layer_index .. layer_index + num_layers``
    re-drawn; layers in that range without parameters (ReLU, pooling...) are skipped.

    ``num_layers=0`` randomises one layer (independent randomisation); a range that reaches the
    output layer is the cascading randomisation of the seed.

    Args:
        model: the trained model (never changed).
        layer_index: 0-based index into the leaf modules in definition order (negative
            indices count from the end).
        num_layers: how many further layers to include.
        init: ``"gaussian"`` (re-drawn from ``N(0, s^2)`` with each tensor's original std) or
            ``"reset"`` (``reset_parameters()``); BatchNorm running statistics are kept.
        seed: reproducibility seed (the global RNG is not used).

    Returns:
        The randomised copy.

    Raises:
        ParameterError: index out of range, negative ``num_layers``, or no layer with
            parameters in the range.
    """
    leaves = [n for n, m in model.named_modules() if not any(True for _ in m.children())]
    n = len(leaves)
    if isinstance(layer_index, bool) or not isinstance(layer_index, int):
        raise ParameterError(f"layer_index must be an int; got {layer_index!r}.")
    if not -n <= layer_index < n:
        raise ParameterError(
            f"layer_index {layer_index} is out of range for {n} layers ({leaves})."
        )
    if isinstance(num_layers, bool) or not isinstance(num_layers, int) or num_layers < 0:
        raise ParameterError(f"num_layers must be an int >= 0; got {num_layers!r}.")
    start = layer_index % n
    chosen = leaves[start : start + num_layers + 1]
    mods = dict(model.named_modules())
    with_params = [c for c in chosen if any(True for _ in mods[c].parameters(recurse=False))]
    if not with_params:
        raise ParameterError(
            f"layers {chosen} hold no parameters: nothing to randomise. Pick a range that "
            "includes a convolution, normalisation or linear layer."
        )
    copy_ = copy.deepcopy(model)
    index_of = {name: i for i, name in enumerate(leaves)}
    return randomize_layers(copy_, with_params, init=init, seed=seed, index_of=index_of)
