"""The :class:`Attribution` base class and the :class:`Explanation` result.

Every method follows one contract::

    method = Method(model, **options)   # cheap: no forward pass, no hook, nothing registered
    maps = method(x, target=...)        # == method.attribute(x, target)
    exp = method.explain(x, target)     # maps + scores + target + layer + options

``x`` is ``(B, C, H, W)`` or ``(B, C, D, H, W)``; maps come back on ``x``'s device with ``x``'s
spatial size, raw and signed. Nothing is stored on ``self`` by a call.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
from torch import nn

from .errors import ParameterError
from .hooks import eval_mode
from .layers import check_model_rank
from .spatial import check_input, check_mode
from .targets import ResolvedTarget

__all__ = ["Attribution", "Explanation"]


@dataclass
class Explanation:
    """What a method computed, with what was chosen to compute it.

    Attributes:
        maps: ``(B, C, *spatial)`` (input-space methods) or ``(B, 1, *spatial)`` (CAMs).
        scores: ``(B,)`` target scores of the explained forward pass (detached).
        classes: ``(B,)`` class indices explained, or ``None`` for callable/region targets.
        target: description of the target.
        method: method name (registry name).
        layer: dotted name of the layer used, if any.
        options: the method's options (for sidecars and reproducibility).
        extras: method-specific results (e.g. ``"completeness_gap"``, ``"feature_map"``).
    """

    maps: torch.Tensor
    scores: torch.Tensor
    classes: torch.Tensor | None
    target: str
    method: str
    layer: str | None = None
    options: dict[str, Any] = field(default_factory=dict)
    extras: dict[str, Any] = field(default_factory=dict)

    def metadata(self) -> dict[str, Any]:
        """JSON-friendly description (no tensors but small lists)."""
        return {
            "method": self.method,
            "layer": self.layer,
            "target": self.target,
            "classes": None if self.classes is None else self.classes.tolist(),
            "scores": self.scores.detach().cpu().tolist(),
            "options": {k: _jsonable(v) for k, v in self.options.items()},
        }


def _jsonable(v: Any) -> Any:
    if isinstance(v, (str, int, float, bool)) or v is None:
        return v
    if isinstance(v, (list, tuple)):
        return [_jsonable(u) for u in v]
    if isinstance(v, dict):
        return {str(k): _jsonable(u) for k, u in v.items()}
    if isinstance(v, torch.Tensor) and v.numel() <= 16:
        return v.tolist()
    if isinstance(v, Attribution):
        return v.name
    return repr(v) if len(repr(v)) < 120 else type(v).__name__


class Attribution:
    """Base class of all methods. Subclasses implement :meth:`_attribute`.

    Args:
        model: the model to explain. It is never changed: see :mod:`volsal.testing`.
        model_mode: ``"eval"`` (default; each module's flag is restored afterwards),
            ``"keep"`` (run as it is) or ``"train"``.
        mode: optional seed-style ``"2D"``/``"3D"`` flag; it only checks ``x``'s rank.
    """

    #: registry name, set by ``@register``.
    name: ClassVar[str] = "attribution"
    #: ``"input"`` for ``(B, C, *spatial)`` maps, ``"cam"`` for ``(B, 1, *spatial)`` maps.
    kind: ClassVar[str] = "input"

    def __init__(self, model: nn.Module, *, model_mode: str = "eval", mode: str | None = None):
        if not isinstance(model, nn.Module):
            raise ParameterError(f"model must be a torch.nn.Module; got {type(model).__name__}.")
        if model_mode not in ("eval", "keep", "train"):
            raise ParameterError(
                f"model_mode must be 'eval', 'keep' or 'train'; got {model_mode!r}."
            )
        self.model = model
        self.model_mode = model_mode
        self.mode = mode

    # -- public API -------------------------------------------------------------------------
    def __call__(self, x: torch.Tensor, target: Any = None) -> torch.Tensor:
        return self.attribute(x, target)

    def attribute(self, x: torch.Tensor, target: Any = None) -> torch.Tensor:
        """Compute the maps. See :meth:`explain` for the arguments."""
        return self.explain(x, target).maps

    def explain(self, x: torch.Tensor, target: Any = None) -> Explanation:
        """Compute the maps and return them with the scores and choices made.

        Args:
            x: ``(B, C, H, W)`` or ``(B, C, D, H, W)`` floating-point input.
            target: int, per-sample ints, ``None`` (predicted class), callable or
                :class:`~volsal.targets.Target`.

        Raises:
            InputShapeError, InputValueError: bad input.
            TargetError: bad target.
            LayerNotFoundError: unknown layer name.
        """
        check_input(x)
        check_mode(self.mode, x)
        check_model_rank(self.model, x)
        with eval_mode(self.model, self.model_mode):
            return self._attribute(x, target)

    def with_model(self, model: nn.Module) -> Attribution:
        """The same method and options, bound to another model (e.g. a randomised deep copy)."""
        new = copy.copy(self)
        new.model = model
        return new

    def options(self) -> dict[str, Any]:
        """The options that define this method's configuration."""
        return {k: v for k, v in vars(self).items() if k != "model" and not k.startswith("_")}

    def __repr__(self) -> str:
        opts = ", ".join(f"{k}={v!r}" for k, v in self.options().items())
        return f"{type(self).__name__}({type(self.model).__name__}, {opts})"

    # -- for subclasses ---------------------------------------------------------------------
    def _attribute(self, x: torch.Tensor, target: Any) -> Explanation:  # pragma: no cover
        raise NotImplementedError

    def _result(
        self,
        maps: torch.Tensor,
        resolved: ResolvedTarget,
        *,
        layer: str | None = None,
        **extras: Any,
    ) -> Explanation:
        """Package a result (subclasses call this at the end of :meth:`_attribute`)."""
        return Explanation(
            maps=maps,
            scores=resolved.scores.detach(),
            classes=resolved.classes,
            target=resolved.description,
            method=self.name,
            layer=layer,
            options=self.options(),
            extras=extras,
        )
