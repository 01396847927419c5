"""Faithfulness metrics: deletion / insertion AUC (Petsiuk et al. 2018), 20 steps, batch 16.

Floor: ``steps`` no-grad forwards of the perturbed copies, ``BATCH`` per call (the batching of
``volsal.metrics.deletion_auc``'s default ``batch_size``). volsal also runs the unperturbed
input once (batch 1) to fix the class and score the step that equals ``x``: ``steps + 1``
forwards in all. The map is a seeded random map made outside the timed call (the ranking,
not the map's meaning, is what costs). No anchor: neither Captum (``captum.metrics`` has
infidelity and sensitivity) nor MONAI has a deletion / insertion curve.
"""

from __future__ import annotations

from typing import Any

from ..floors import FORWARD_NOGRAD, floor_name
from ._case import Case, is_smoke

STEPS = 4 if is_smoke() else 20
BATCH = 16


def _random_map(x: Any) -> Any:
    import torch

    gen = torch.Generator().manual_seed(0)
    return torch.rand(x.shape, generator=gen).to(device=x.device, dtype=x.dtype)


def _deletion(model: Any, x: Any, target: int, layer: str) -> Any:
    from volsal.metrics import deletion_auc

    attr = _random_map(x)
    return lambda: deletion_auc(model, x, attr, target, steps=STEPS, batch_size=BATCH)


def _insertion(model: Any, x: Any, target: int, layer: str) -> Any:
    from volsal.metrics import insertion_auc

    attr = _random_map(x)
    return lambda: insertion_auc(model, x, attr, target, steps=STEPS, batch_size=BATCH)


_NOTE = (
    f"steps={STEPS}, batch_size={BATCH}, baseline 0, logits; seeded random map made outside "
    f"the timed call; {STEPS} perturbed copies + 1 unperturbed forward"
)

CASES = [
    Case(
        name=f"deletion AUC {STEPS} steps",
        family="metrics",
        floor=floor_name(FORWARD_NOGRAD, STEPS, BATCH),
        volsal=_deletion,
        note=_NOTE,
    ),
    Case(
        name=f"insertion AUC {STEPS} steps",
        family="metrics",
        floor=floor_name(FORWARD_NOGRAD, STEPS, BATCH),
        volsal=_insertion,
        note=_NOTE,
    ),
]
