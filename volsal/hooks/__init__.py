"""The hook layer: the only code in volsal that touches a model, always inside a ``with`` block.

Everything registered or changed here is removed or restored on exit, on success and on error.
"""

from __future__ import annotations

from .core import (
    Capture,
    capture,
    eval_mode,
    forward_hooks,
    input_gradient,
    layer_gradient,
    run_and_score,
)

__all__ = [
    "Capture",
    "capture",
    "eval_mode",
    "forward_hooks",
    "input_gradient",
    "layer_gradient",
    "run_and_score",
]
