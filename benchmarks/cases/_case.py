"""What a benchmark case is: a method, its floor, and factories for volsal and each anchor.

A factory has the signature ``(model, x, target, layer) -> callable()``: it does the set-up
(constructing the explainer object, imports) and returns a zero-argument callable that runs
one attribution; only that callable is timed and measured. Factories import what they need
inside their body, so reading the case files imports neither torch nor any anchor.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

Factory = Callable[[Any, Any, int, str], Callable[[], Any]]

# Anchor columns, in table order; a case may add others (they go after these).
ANCHOR_ORDER = ("monai", "captum", "medcam", "pytorch-grad-cam")
ANCHOR_TITLES = {
    "monai": "MONAI",
    "captum": "Captum",
    "medcam": "M3d-CAM (medcam)",
    "pytorch-grad-cam": "pytorch-grad-cam",
}


SMOKE_ENV = "VOLSAL_BENCH_SMOKE"


def is_smoke() -> bool:
    """True in ``run.py --smoke`` (set before the case files are imported, in the parent and in
    every measurement process). Multi-pass cases use it to shrink ``n`` (steps, samples,
    windows) so the smoke run stays short; the floor name follows since it is built from ``n``.
    """
    return os.environ.get(SMOKE_ENV, "") == "1"


class Skip(Exception):
    """Raised by a factory when its library cannot run this case; the reason goes in the cell."""


@dataclass(frozen=True)
class Anchor:
    """Another library's implementation of the same method.

    Attributes:
        factory: ``(model, x, target, layer) -> callable()``.
        requires: modules imported before the factory runs; if one cannot be imported the cell
            reads ``skipped: <reason>`` (an optional library that is absent or broken).
        note: how the anchor is run (settings, what it does beyond the method), for the JSON.
    """

    factory: Factory
    requires: tuple[str, ...] = ()
    note: str = ""


@dataclass(frozen=True)
class Case:
    """One method row of the table.

    Attributes:
        name: row name (``"GradCAM"``, ``"IntegratedGradients n_steps=32"``), unique.
        family: the case file's family (``"gradient"``, ``"cam"``...).
        floor: floor name (see :mod:`benchmarks.floors`), measured in the same run.
        volsal: factory for volsal's implementation.
        anchors: anchor name (``"monai"``, ``"captum"``...) -> :class:`Anchor`.
        models: restrict to these model keys (default: all).
        note: settings, for the JSON and the README.
    """

    name: str
    family: str
    floor: str
    volsal: Factory
    anchors: dict[str, Anchor] = field(default_factory=dict)
    models: tuple[str, ...] | None = None
    note: str = ""


def module_at(model: Any, name: str) -> Any:
    """The submodule of ``model`` at dotted ``name`` (for libraries that take a module)."""
    return model.get_submodule(name)


def upsample_to(cam: Any, x: Any) -> Any:
    """Resize a ``(B, 1, *feat)`` map to ``x``'s grid: (bi/tri)linear, ``align_corners=False``."""
    import torch.nn.functional as F

    mode = {1: "linear", 2: "bilinear", 3: "trilinear"}[x.ndim - 2]
    return F.interpolate(cam, size=tuple(x.shape[2:]), mode=mode, align_corners=False)
