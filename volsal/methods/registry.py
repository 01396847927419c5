"""The method registry: one line per method; contract tests and the CLI are generated from it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from torch import nn

from ..errors import ParameterError

__all__ = ["MethodInfo", "REGISTRY", "register", "get_method", "method_names"]


@dataclass(frozen=True)
class MethodInfo:
    """A registered method.

    Attributes:
        name: canonical name (``"gradcam"``).
        cls: the class.
        kind: ``"input"`` (``(B, C, *spatial)`` maps) or ``"cam"`` (``(B, 1, *spatial)``).
        reference: paper reference, for the README table.
        aliases: other accepted names (case-insensitive).
        test_factory: builds a small, fast instance for the contract tests from a model whose
            last conv stage is called ``"features"`` (see ``volsal.testing.tiny_cnn``).
        batch_independent: ``attr(x)[i] == attr(x[i:i+1])`` holds exactly.
    """

    name: str
    cls: type
    kind: str
    reference: str = ""
    aliases: tuple[str, ...] = ()
    test_factory: Callable[[nn.Module], Any] | None = None
    batch_independent: bool = True
    extra: dict[str, Any] = field(default_factory=dict)

    def make_for_test(self, model: nn.Module):
        return self.test_factory(model) if self.test_factory else self.cls(model)


REGISTRY: dict[str, MethodInfo] = {}


def _norm(name: str) -> str:
    return name.lower().replace("-", "").replace("_", "").replace(" ", "")


def register(
    name: str,
    *,
    kind: str,
    reference: str = "",
    aliases: tuple[str, ...] = (),
    test_factory: Callable[[nn.Module], Any] | None = None,
    batch_independent: bool = True,
):
    """Class decorator adding a method to :data:`REGISTRY` and setting ``cls.name``/``cls.kind``."""

    def deco(cls):
        cls.name = name
        cls.kind = kind
        REGISTRY[name] = MethodInfo(
            name, cls, kind, reference, tuple(aliases), test_factory, batch_independent
        )
        return cls

    return deco


def get_method(name: str) -> MethodInfo:
    """Look a method up by name or alias (case, ``-`` and ``_`` ignored).

    Raises:
        ParameterError: unknown name; the message lists the known ones.
    """
    key = _norm(name)
    for info in REGISTRY.values():
        if key == _norm(info.name) or key in {_norm(a) for a in info.aliases}:
            return info
    raise ParameterError(f"unknown method {name!r}; known: {', '.join(sorted(REGISTRY))}.")


def method_names() -> list[str]:
    """Registered method names, in registration order."""
    return list(REGISTRY)
