"""Benchmark cases, one module per method family (``gradient.py``, ``cam.py``, ...).

Each module defines ``CASES: list[Case]``. :func:`load_cases` imports every module in this
package whose name does not start with ``_`` and collects them, so a new family is one new
file.
"""

from __future__ import annotations

import importlib
import pkgutil

from ._case import (
    ANCHOR_ORDER,
    ANCHOR_TITLES,
    SMOKE_ENV,
    Anchor,
    Case,
    Skip,
    is_smoke,
    module_at,
    upsample_to,
)

__all__ = [
    "ANCHOR_ORDER",
    "ANCHOR_TITLES",
    "Anchor",
    "Case",
    "SMOKE_ENV",
    "Skip",
    "is_smoke",
    "load_cases",
    "module_at",
    "upsample_to",
]


def load_cases() -> dict[str, Case]:
    """All cases of all family modules, by name (in file order, families sorted by name)."""
    cases: dict[str, Case] = {}
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda i: i.name):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        for case in getattr(module, "CASES", []):
            if case.name in cases:
                raise ValueError(f"duplicate benchmark case name {case.name!r} in {info.name}")
            cases[case.name] = case
    return cases
