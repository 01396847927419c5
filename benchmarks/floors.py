"""Floors: the passes a method intrinsically needs, measured by actually running them.

A floor is named by a string:

- ``"forward_nograd"``: one forward pass under ``torch.no_grad()``.
- ``"forward_backward_input"``: one forward pass, then ``torch.autograd.grad`` of the sum of
  the target logits with respect to the input only (parameters keep ``requires_grad`` as the
  model has it, but no parameter ``.grad`` is ever allocated).
- ``"N x forward_nograd (batch B)"`` / ``"N x forward_backward_input (batch B)"``: the same
  pass over ``N`` copies of the input, ``B`` copies per model call (``ceil(N / B)`` calls, the
  last one possibly smaller). The batched input is built once, outside the timed call. Use
  :func:`floor_name` to spell these.

Multi-pass methods (SmoothGrad, IntegratedGradients, Occlusion, metrics) compare against the
multi-pass floor with their own ``n`` and ``batch_size``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

FORWARD_NOGRAD = "forward_nograd"
FORWARD_BACKWARD_INPUT = "forward_backward_input"
KINDS = (FORWARD_NOGRAD, FORWARD_BACKWARD_INPUT)

_MULTI = re.compile(r"^(\d+) x (\w+)(?: \(batch (\d+)\))?$")


def floor_name(kind: str, n: int = 1, batch_size: int = 1) -> str:
    """The name of a floor: ``kind`` alone for one pass, else ``"N x kind (batch B)"``."""
    if kind not in KINDS:
        raise ValueError(f"unknown floor kind {kind!r}; expected one of {KINDS}")
    if n < 1 or batch_size < 1:
        raise ValueError(f"n and batch_size must be >= 1, got n={n}, batch_size={batch_size}")
    if n == 1 and batch_size == 1:
        return kind
    return f"{n} x {kind} (batch {min(batch_size, n)})"


def parse_floor(name: str) -> tuple[str, int, int]:
    """Inverse of :func:`floor_name`: ``(kind, n, batch_size)``."""
    if name in KINDS:
        return name, 1, 1
    match = _MULTI.match(name)
    if not match or match.group(2) not in KINDS:
        raise ValueError(
            f"bad floor name {name!r}; expected one of {KINDS} or 'N x KIND (batch B)'"
        )
    n = int(match.group(1))
    batch = int(match.group(3) or 1)
    return match.group(2), n, min(batch, n)


def make_floor(name: str, model: Any, x: Any, target: int) -> Callable[[], Any]:
    """A callable running the floor ``name`` on ``model`` and ``x`` (batch 1).

    The batched copies of ``x`` are made here, outside the call that is timed.
    """
    import torch

    kind, n, batch = parse_floor(name)
    xb = x.expand(batch, *x.shape[1:]).clone() if batch > 1 else x.detach().clone()
    sizes = [batch] * (n // batch) + ([n % batch] if n % batch else [])

    if kind == FORWARD_NOGRAD:

        def run() -> Any:
            with torch.no_grad():
                out = None
                for m in sizes:
                    out = model(xb[:m])
            return out

        return run

    def run_grad() -> Any:
        grad = None
        for m in sizes:
            xi = xb[:m].detach().requires_grad_(True)
            out = model(xi)
            (grad,) = torch.autograd.grad(out[:, target].sum(), xi)
        return grad

    return run_grad
