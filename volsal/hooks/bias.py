"""Bias sites for FullGrad: capture every bias-carrying layer's output in one forward pass.

The full-gradient decomposition (Srinivas and Fleuret, NeurIPS 2019) of a piecewise-linear
network writes the output as

    f(x) = sum(x * grad_x f) + sum over bias layers l of sum(b_l * grad_{b_l} f)

where ``grad_{b_l} f`` at every output position of layer ``l`` is the gradient of ``f`` with
respect to that layer's output (a bias is added at every position). So the bias terms need only
the gradients with respect to the layers' *outputs*, which :func:`capture_biases` makes
available in one forward pass: either as captured tensors (``keep_outputs=True``, to pass to one
``torch.autograd.grad`` call together with the input), or streamed to a callback during that
call (``on_grad``), so a saliency map never holds all the layer gradients at once.

Bias-carrying layers (:func:`bias_layers`): ``Conv1d/2d/3d`` and ``ConvTranspose1d/2d/3d``
with a bias, ``Linear`` with a bias, and every ``BatchNorm`` (eval mode: the effective bias
``beta - running_mean * gamma / sqrt(running_var + eps)``, with ``gamma = 1, beta = 0`` when
``affine=False``; see :func:`effective_bias`). Sites are keyed by module name *and call*: a
module called twice in one forward gives ``"name"`` and ``"name#1"``, so reused modules and
modules declared in another order than they run are handled (the reference implementation
matches biases to gradients by list position and gets both wrong).

:func:`breaking_ops` names what breaks completeness in a forward pass (normalisations with
data-dependent statistics, smooth activations, attention, train-mode BatchNorm and dropout):
a :class:`~torch.overrides.TorchFunctionMode` sees every functional call, and forward
pre-/post-hooks on every module say in which module it happened.

Like :func:`volsal.hooks.capture`, the captured output is handed downstream as a clone, so an
in-place ReLU after a convolution cannot corrupt it; every hook is removed on exit.
"""

from __future__ import annotations

import contextlib
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import torch
from torch import nn
from torch.overrides import TorchFunctionMode

from ..errors import UnsupportedModelError
from .core import forward_hooks

__all__ = [
    "BIAS_LAYER_TYPES",
    "NORM_LAYER_TYPES",
    "BiasSite",
    "BiasCapture",
    "BreakingOps",
    "bias_layers",
    "effective_bias",
    "capture_biases",
    "breaking_ops",
    "keep_running_stats",
]

#: module types whose output carries a bias (conv and linear only when ``bias`` is set).
BIAS_LAYER_TYPES: tuple[type[nn.Module], ...] = (
    nn.modules.conv._ConvNd,
    nn.Linear,
    nn.modules.batchnorm._BatchNorm,
)
#: normalisation layers (SimpleFullGrad reads gradients at their outputs too).
NORM_LAYER_TYPES: tuple[type[nn.Module], ...] = (
    nn.modules.batchnorm._BatchNorm,
    nn.modules.instancenorm._InstanceNorm,
    nn.GroupNorm,
    nn.LayerNorm,
)


def effective_bias(module: nn.Module) -> torch.Tensor | None:
    """The bias a layer adds to every output position, ``(C_out,)`` (detached), or ``None``.

    - ``Conv*`` / ``ConvTranspose*`` / ``Linear``: ``module.bias`` (``None`` without one).
    - ``BatchNorm*``: ``beta - running_mean * gamma / sqrt(running_var + eps)``
      (``gamma = 1``, ``beta = 0`` when ``affine=False``), the bias of the affine map that
      BatchNorm is in eval mode. ``None`` without running statistics
      (``track_running_stats=False``: batch statistics are always used).
    - anything else: a ``bias`` parameter if the module has one, else ``None``.
    """
    if isinstance(module, nn.modules.batchnorm._BatchNorm):
        if module.running_mean is None or module.running_var is None:
            return None
        mean = module.running_mean.detach()
        scale = torch.rsqrt(module.running_var.detach() + module.eps)
        if module.weight is not None:
            scale = scale * module.weight.detach()
        bias = -mean * scale
        if module.bias is not None:
            bias = bias + module.bias.detach()
        return bias
    bias = getattr(module, "bias", None)
    return bias.detach() if isinstance(bias, torch.Tensor) else None


def bias_layers(model: nn.Module) -> dict[str, nn.Module]:
    """Name -> module of the bias-carrying layers of ``model`` (definition order).

    Conv / transposed conv / Linear with a bias, and every BatchNorm (its effective bias exists
    whenever it has running statistics; whether it runs in eval mode is checked per call).
    """
    out = {}
    for name, mod in model.named_modules():
        if not name or not isinstance(mod, BIAS_LAYER_TYPES):
            continue
        if isinstance(mod, nn.modules.batchnorm._BatchNorm) or mod.bias is not None:
            out[name] = mod
    return out


@dataclass
class BiasSite:
    """One call of one captured layer.

    Attributes:
        key: ``"name"`` for the first call, ``"name#1"``, ``"name#2"``... for later calls.
        module_name: dotted module name.
        call: call index of the module in the forward pass (0 for the first call).
        module_type: class name of the module.
        bias: effective bias ``(C_l,)`` (detached) or ``None`` (a layer without one).
        shape: shape of the layer output.
        channel_last: the bias runs along the last axis (``Linear``), else along axis 1.
        output: the captured output (in the autograd graph) with ``keep_outputs=True``,
            else ``None``.
    """

    key: str
    module_name: str
    call: int
    module_type: str
    bias: torch.Tensor | None
    shape: torch.Size
    channel_last: bool
    output: torch.Tensor | None = None

    def term(self, grad: torch.Tensor) -> torch.Tensor:
        """The bias-gradient term ``b * grad`` of this site, with channels on axis 1.

        Args:
            grad: gradient of the scores w.r.t. the layer output, shaped like it.

        Returns:
            ``(B, C_l, *feat)`` for convolutions and normalisations; ``(B, C_l)`` for a
            ``Linear`` on ``(B, C_in)`` (``(B, C_l, *rest)`` for ``(B, *rest, C_in)``).
            Summed over everything but the batch axis, it is ``b . grad_b f`` per sample.

        Raises:
            UnsupportedModelError: the site has no bias.
        """
        if self.bias is None:
            raise UnsupportedModelError(f"layer {self.key!r} has no bias term.")
        b = self.bias.to(grad.dtype)
        if self.channel_last:
            t = grad * b
            return t.movedim(-1, 1) if t.ndim > 2 else t
        return grad * b.view((1, -1) + (1,) * (grad.ndim - 2))


@dataclass
class BiasCapture:
    """What :func:`capture_biases` saw: the sites in call order.

    Attributes:
        sites: one :class:`BiasSite` per call of a captured layer, in call order.
    """

    sites: list[BiasSite] = field(default_factory=list)

    def by_key(self) -> dict[str, BiasSite]:
        return {s.key: s for s in self.sites}


@contextlib.contextmanager
def capture_biases(
    model: nn.Module,
    layers: dict[str, nn.Module] | None = None,
    *,
    keep_outputs: bool = True,
    on_grad: Callable[[BiasSite, torch.Tensor], None] | None = None,
) -> Iterator[BiasCapture]:
    """Capture the bias sites of every forward pass run inside the block.

    Args:
        model: the model.
        layers: name -> module to capture; default :func:`bias_layers` ``(model)``. Modules
            without a bias may be given (SimpleFullGrad): their sites have ``bias=None``.
        keep_outputs: keep each site's output tensor (``site.output``) for a later
            ``torch.autograd.grad(score, [x, *outputs])``.
        on_grad: called as ``on_grad(site, grad)`` with the gradient w.r.t. the site's
            output while a backward pass (e.g. ``torch.autograd.grad(score, x)``) runs through
            it (a tensor hook on the output, which lives only in this forward's graph). With
            ``keep_outputs=False`` the output itself is not retained.

    Yields:
        :class:`BiasCapture`, filled during the forward pass.

    Raises:
        UnsupportedModelError: a captured layer returns something other than a tensor, or
            the model is TorchScript.
    """
    explicit = layers is not None
    if layers is None:
        layers = bias_layers(model)
    cap = BiasCapture()
    calls: Counter[str] = Counter()

    def make(name: str, mod: nn.Module):
        channel_last = isinstance(mod, nn.Linear)

        def hook(_m, _inp, out):
            if not isinstance(out, torch.Tensor):
                raise UnsupportedModelError(
                    f"layer {name!r} returns a {type(out).__name__}, not a tensor; FullGrad "
                    "needs the output of every bias-carrying layer as a single tensor."
                )
            call = calls[name]
            calls[name] += 1
            bias = effective_bias(mod)
            if bias is not None:
                n = out.shape[-1] if channel_last else (out.shape[1] if out.ndim > 1 else -1)
                if bias.numel() != n:
                    bias = None  # a layer whose bias does not run along the channels
            if bias is None and not explicit:
                return None
            site = BiasSite(
                key=name if call == 0 else f"{name}#{call}",
                module_name=name,
                call=call,
                module_type=type(mod).__name__,
                bias=bias,
                shape=out.shape,
                channel_last=channel_last,
            )
            cap.sites.append(site)
            if not out.requires_grad:
                return None
            if keep_outputs:
                site.output = out
            if on_grad is not None:
                out.register_hook(lambda g, s=site: on_grad(s, g))
            return out.clone()

        return hook

    with forward_hooks((mod, make(name, mod)) for name, mod in layers.items()):
        yield cap


@dataclass
class BreakingOps:
    """What breaks the completeness identity in a forward pass, by module.

    Attributes:
        found: ``"where (what)"`` -> number of calls, in order of first occurrence; ``where``
            is the dotted name of the innermost module running (``"forward of Net"`` for the
            root, ``"target"`` outside the model).
    """

    found: dict[str, int] = field(default_factory=dict)

    def names(self) -> list[str]:
        """``"where (what)"`` strings, with a call count when above one."""
        return [k if n == 1 else f"{k} x{n}" for k, n in self.found.items()]

    def __bool__(self) -> bool:
        return bool(self.found)


# functional ops that are not positively homogeneous (or use data-dependent statistics)
_ALWAYS_BREAKING = {
    "silu": "SiLU",
    "gelu": "GELU",
    "elu": "ELU",
    "selu": "SELU",
    "celu": "CELU",
    "mish": "Mish",
    "softplus": "Softplus",
    "tanh": "Tanh",
    "sigmoid": "Sigmoid",
    "logsigmoid": "LogSigmoid",
    "hardswish": "Hardswish",
    "hardsigmoid": "Hardsigmoid",
    "hardtanh": "Hardtanh",
    "relu6": "ReLU6",
    "softmax": "Softmax",
    "log_softmax": "LogSoftmax",
    "softmin": "Softmin",
    "layer_norm": "LayerNorm",
    "rms_norm": "RMSNorm",
    "group_norm": "GroupNorm",
    "instance_norm": "InstanceNorm",
    "local_response_norm": "LocalResponseNorm",
    "multi_head_attention_forward": "MultiheadAttention",
    "scaled_dot_product_attention": "attention",
}
_DROPOUT = {"dropout", "dropout1d", "dropout2d", "dropout3d", "alpha_dropout"}
_DROPOUT |= {"feature_alpha_dropout"}


def _arg(args: tuple, kwargs: dict, i: int, name: str, default):
    if name in kwargs:
        return kwargs[name]
    return args[i] if len(args) > i else default


def _breaking_kind(func, args: tuple, kwargs: dict) -> str | None:
    name = getattr(func, "__name__", "")
    if not isinstance(name, str):
        return None
    base = name.rstrip("_")
    if base in _ALWAYS_BREAKING:
        return _ALWAYS_BREAKING[base]
    if base == "batch_norm":
        training = _arg(args, kwargs, 5, "training", False)
        stats = _arg(args, kwargs, 1, "running_mean", None)
        if training or stats is None:
            return "BatchNorm using batch statistics: train mode"
        return None
    if base in _DROPOUT:
        p = _arg(args, kwargs, 1, "p", 0.5)
        training = _arg(args, kwargs, 2, "training", True)
        if training and p:
            return "Dropout in train mode"
    return None


class _BreakingMode(TorchFunctionMode):
    def __init__(self, record: BreakingOps, stack: list[str], root: str):
        super().__init__()
        self.record = record
        self.stack = stack
        self.root = root

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        kind = _breaking_kind(func, args, kwargs)
        if kind is not None:
            where = self.stack[-1] if self.stack else "target"
            key = f"{where or self.root} ({kind})"
            self.record.found[key] = self.record.found.get(key, 0) + 1
        return func(*args, **kwargs)


@contextlib.contextmanager
def breaking_ops(model: nn.Module) -> Iterator[BreakingOps]:
    """Record the operations that break FullGrad's completeness, in the forward passes inside.

    Completeness ``sum(x * grad_x f) + sum_l sum(b_l * grad_b_l f) = f(x)`` holds when every
    operation other than the biases is positively homogeneous (piecewise-linear through the
    origin): convolutions, linear layers, ReLU / LeakyReLU / PReLU, max and average pooling,
    eval-mode BatchNorm, concatenation, addition, reshaping, linear resizing. Recorded as
    breaking: SiLU, GELU, ELU, SELU, CELU, Mish, Softplus, Tanh, Sigmoid, Hardswish,
    Hardsigmoid, Hardtanh / ReLU6 (saturation), softmax, LayerNorm, RMSNorm, GroupNorm,
    InstanceNorm, LocalResponseNorm, attention, BatchNorm using batch statistics (train mode
    or ``track_running_stats=False``) and dropout in train mode: as modules and as functional
    calls (``F.silu``, ``torch.sigmoid``, ``x.tanh()``...). Products of two activations,
    ``clamp(max=...)`` and custom autograd functions are not recognised.

    Args:
        model: the model (forward pre-/post-hooks on every module say where an op happened;
            removed on exit).

    Yields:
        :class:`BreakingOps`, filled during the forward pass.
    """
    record = BreakingOps()
    stack: list[str] = []
    mods = list(model.named_modules())

    def push(name: str):
        def hook(_m, _inp):
            stack.append(name)

        return hook

    def pop(_m, _inp, _out):
        if stack:
            stack.pop()

    root = f"forward of {type(model).__name__}"
    with (
        forward_hooks(((m, push(n)) for n, m in mods), pre=True),
        forward_hooks((m, pop) for _, m in mods),
        _BreakingMode(record, stack, root),
    ):
        yield record


@contextlib.contextmanager
def keep_running_stats(model: nn.Module) -> Iterator[None]:
    """Restore every normalisation layer's running statistics on exit.

    A train-mode forward pass (``model_mode="train"``, or ``"keep"`` on a model in train mode)
    updates BatchNorm's ``running_mean``, ``running_var`` and ``num_batches_tracked``; this
    context puts them back, on success and on error, so explaining never changes the model.
    """
    saved = [
        (b, b.detach().clone())
        for m in model.modules()
        if isinstance(m, NORM_LAYER_TYPES) and m.training
        for b in m.buffers(recurse=False)
    ]
    try:
        yield
    finally:
        with torch.no_grad():
            for b, v in saved:
                b.copy_(v)
