"""The hook layer: the only code in volsal that touches a model, always inside a ``with`` block.

Everything registered or changed here is removed or restored on exit, on success and on error.
"""

from __future__ import annotations

from .bias import (
    BiasCapture,
    BiasSite,
    BreakingOps,
    bias_layers,
    breaking_ops,
    capture_biases,
    effective_bias,
    keep_running_stats,
)
from .core import (
    Capture,
    capture,
    eval_mode,
    forward_hooks,
    input_gradient,
    layer_gradient,
    run_and_score,
)
from .relu import RELU_RULES, ReluRewrite, relu_gradient_rule

__all__ = [
    "Capture",
    "capture",
    "eval_mode",
    "forward_hooks",
    "input_gradient",
    "layer_gradient",
    "run_and_score",
    "RELU_RULES",
    "ReluRewrite",
    "relu_gradient_rule",
    "BiasCapture",
    "BiasSite",
    "BreakingOps",
    "bias_layers",
    "breaking_ops",
    "capture_biases",
    "effective_bias",
    "keep_running_stats",
]
