"""Change the backward rule of every ReLU call in a forward pass (guided backprop, deconvnet).

:func:`relu_gradient_rule` is a context manager. While it is active, every ReLU *call* is routed
through a custom :class:`torch.autograd.Function` whose forward is exactly ReLU (in place when
the call was in place) and whose backward follows the chosen rule:

- ``"guided"`` (Springenberg et al. 2014): ``grad_in = grad_out * [input > 0] * [grad_out > 0]``;
- ``"deconvnet"`` (Zeiler and Fergus 2014): ``grad_in = grad_out * [grad_out > 0]``, whatever the
  input's sign.

What is rerouted: ``nn.ReLU`` modules (they call ``F.relu``), ``F.relu``, ``torch.relu``,
``Tensor.relu`` and the in-place ``F.relu_`` / ``torch.relu_`` / ``Tensor.relu_`` /
``F.relu(inplace=True)``. The interception is a :class:`torch.overrides.TorchFunctionMode`
active only inside the ``with`` block, so the bookkeeping is per *call*: one ``nn.ReLU``
instance reused at several places of a network (or ``nn.ReLU()(x)`` created inline) is
handled at each use. No module is replaced, no ``inplace`` flag is touched, no hook is
registered: the model is exactly as before, on success and on error.

What is *not* rerouted (the rule is defined for ReLU only): ``LeakyReLU``, ``PReLU``,
``ELU``, ``SiLU``/Swish, ``GELU``, ``ReLU6``/``hardtanh``, ``clamp(min=0)`` written by hand, and
ReLUs inside TorchScript code (they never reach Python). These keep their ordinary gradient;
their calls are counted in :attr:`ReluRewrite.others` so a method can warn. When the forward
pass met no ReLU call at all, a guided map would silently be the plain gradient: the methods
raise :class:`~volsal.errors.UnsupportedModelError` instead (see :attr:`ReluRewrite.count`).
"""

from __future__ import annotations

import contextlib
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch.overrides import TorchFunctionMode

from ..errors import ParameterError

__all__ = ["RELU_RULES", "ReluRewrite", "relu_gradient_rule"]

RELU_RULES = ("guided", "deconvnet")

_RELU = {F.relu, torch.relu, torch.Tensor.relu}
_RELU_INPLACE = {F.relu_, torch.relu_, torch.Tensor.relu_}
# Activations the rules do not cover: counted, never rewritten.
_OTHERS = {
    F.leaky_relu: "LeakyReLU",
    F.leaky_relu_: "LeakyReLU",
    F.prelu: "PReLU",
    torch.prelu: "PReLU",
    F.elu: "ELU",
    F.elu_: "ELU",
    F.selu: "SELU",
    F.celu: "CELU",
    F.silu: "SiLU",
    F.gelu: "GELU",
    F.mish: "Mish",
    F.relu6: "ReLU6",
    F.hardtanh: "Hardtanh",
    F.softplus: "Softplus",
}


def _backward(rule: str, grad_out: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
    keep = grad_out > 0
    if rule == "guided":
        keep = keep & (out > 0)
    return torch.where(
        keep, grad_out, torch.zeros((), dtype=grad_out.dtype, device=grad_out.device)
    )


class _ReLU(torch.autograd.Function):
    """ReLU forward, guided/deconvnet backward (out-of-place)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, rule: str) -> torch.Tensor:
        out = x.clamp_min(0)
        ctx.rule = rule
        ctx.save_for_backward(out)
        return out

    @staticmethod
    def backward(ctx, grad_out: torch.Tensor):
        (out,) = ctx.saved_tensors
        return _backward(ctx.rule, grad_out, out), None


class _ReLUInplace(torch.autograd.Function):
    """ReLU forward in place (the caller's tensor is modified, as the plain call would)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, rule: str) -> torch.Tensor:
        x.clamp_min_(0)
        ctx.mark_dirty(x)
        ctx.rule = rule
        ctx.save_for_backward(x)  # the output: out > 0 exactly where input > 0
        return x

    @staticmethod
    def backward(ctx, grad_out: torch.Tensor):
        (out,) = ctx.saved_tensors
        return _backward(ctx.rule, grad_out, out), None


@dataclass
class ReluRewrite:
    """What :func:`relu_gradient_rule` did during its block.

    Attributes:
        rule: ``"guided"`` or ``"deconvnet"``.
        count: number of ReLU calls rerouted (each call of a reused module counts).
        others: calls of activations that were *not* rewritten, by name (``{"SiLU": 4}``).
    """

    rule: str
    count: int = 0
    others: Counter = field(default_factory=Counter)


class _ReluMode(TorchFunctionMode):
    def __init__(self, record: ReluRewrite):
        super().__init__()
        self.record = record

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func in _RELU or func in _RELU_INPLACE:
            x = args[0] if args else kwargs["input"]
            inplace = func in _RELU_INPLACE or bool(
                kwargs.get("inplace", args[1] if len(args) > 1 else False)
            )
            if isinstance(x, torch.Tensor) and torch.is_floating_point(x):
                self.record.count += 1
                fn = _ReLUInplace if inplace else _ReLU
                return fn.apply(x, self.record.rule)
        elif func in _OTHERS:
            self.record.others[_OTHERS[func]] += 1
        return func(*args, **kwargs)


@contextlib.contextmanager
def relu_gradient_rule(rule: str) -> Iterator[ReluRewrite]:
    """Apply a guided/deconvnet backward rule to every ReLU call made inside the block.

    Run the forward pass (and the ``torch.autograd.grad`` call) inside the block; read
    ``record.count`` afterwards to check that ReLUs were met.

    Args:
        rule: ``"guided"`` or ``"deconvnet"`` (see the module docstring).

    Yields:
        :class:`ReluRewrite` counting the rerouted calls and the other activations met.

    Raises:
        ParameterError: unknown rule.

    Example:
        >>> import torch, volsal
        >>> from volsal.hooks import relu_gradient_rule
        >>> model = volsal.testing.tiny_cnn(2)
        >>> x = torch.randn(1, 1, 8, 8, requires_grad=True)
        >>> with relu_gradient_rule("guided") as rec:
        ...     (g,) = torch.autograd.grad(model(x)[:, 0].sum(), x)
        >>> rec.count
        2
    """
    if rule not in RELU_RULES:
        raise ParameterError(f"rule must be one of {RELU_RULES}; got {rule!r}.")
    record = ReluRewrite(rule)
    with _ReluMode(record):
        yield record
