"""Thin adapters that run code written for the seed systems unchanged, over volsal's methods.

One submodule per interface; names are not re-exported here because the interfaces overlap
(three of them define a ``GuidedBackprop``):

========================================  =============================================
Interface (seed)                          Module
========================================  =============================================
FullGrad reference (000, 002)             :mod:`volsal.compat.fullgrad`
PAIR saliency ``GetMask`` (001)           :mod:`volsal.compat.pair`
PAIR plots ``VisualizeImage*`` (001)      :mod:`volsal.compat.visualization`
pytorch-saliency ``saliency(...)`` (003)  :mod:`volsal.compat.pytorch_saliency`
``saliency_plot`` (003)                   :mod:`volsal.compat.visualization`
"Compare Gradient Attribution Maps" (004) :mod:`volsal.compat.gradient_attribution`
``tileInputAndMaps`` (004)                :mod:`volsal.compat.visualization`
========================================  =============================================

Each adapter's docstring lists where it differs from the original on purpose (no state left
on the model, volsal's target and geometry conventions, seeded noise).
"""

from __future__ import annotations

import importlib
from types import ModuleType

SUBMODULES = ("fullgrad", "pair", "visualization", "pytorch_saliency", "gradient_attribution")

__all__ = list(SUBMODULES)


def __getattr__(name: str) -> ModuleType:
    # Lazy: ``import volsal.compat`` does not pull in matplotlib through the plotting adapters.
    if name in SUBMODULES:
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
