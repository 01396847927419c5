"""Core context managers: eval mode, temporary forward hooks, capturing a layer's output.

Principles (DESIGN.md): hooks live only inside a ``with`` block and are removed in ``finally``;
each module's ``training`` flag is restored individually; a captured output is handed downstream
as a clone, so an in-place op after the layer (``ReLU(inplace=True)``) cannot corrupt what was
captured; gradients are taken with ``torch.autograd.grad`` only (never ``.backward()``), so no
parameter ``.grad`` is ever written.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

import torch
from torch import nn

from ..errors import LayerNotCalledError, ParameterError, UnsupportedModelError
from ..targets import ResolvedTarget, resolve_target

__all__ = [
    "eval_mode",
    "forward_hooks",
    "Capture",
    "capture",
    "input_gradient",
    "layer_gradient",
    "run_and_score",
]

_MODEL_MODES = ("eval", "keep", "train")


@contextlib.contextmanager
def eval_mode(model: nn.Module, mode: str = "eval") -> Iterator[nn.Module]:
    """Run the model in eval mode (or leave it as it is), restoring every module's flag on exit.

    Args:
        model: the user's model.
        mode: ``"eval"`` (default: BatchNorm uses running statistics, dropout is off, samples do
            not mix), ``"keep"`` (use the flags as they are) or ``"train"``.

    The flags are set and restored per module (``module.training``), not with ``.train()``,
    so models that override ``train()`` are restored exactly. With ``"train"`` or ``"keep"``,
    the buffers of modules in training mode (BatchNorm running statistics) are restored on exit
    too: a train-mode forward pass updates them, and explaining must not change the model.
    """
    if mode not in _MODEL_MODES:
        raise ParameterError(f"model_mode must be one of {_MODEL_MODES}; got {mode!r}.")
    saved = [(m, m.training) for m in model.modules()]
    try:
        if mode != "keep":
            for m, _ in saved:
                m.training = mode == "train"
        # A module left in training mode may update its buffers during the forward pass
        # (BatchNorm's running_mean/var and num_batches_tracked): snapshot them, put them back.
        buffers = [
            (b, b.detach().clone())
            for m in model.modules()
            if m.training
            for b in m.buffers(recurse=False)
            if b is not None
        ]
        try:
            yield model
        finally:
            with torch.no_grad():
                for b, v in buffers:
                    b.copy_(v)
    finally:
        for m, flag in saved:
            m.training = flag


@contextlib.contextmanager
def forward_hooks(
    pairs: Iterable[tuple[nn.Module, Callable]], *, pre: bool = False
) -> Iterator[None]:
    """Register forward (or forward-pre) hooks for the block's duration; always removed."""
    handles = []
    try:
        for mod, fn in pairs:
            if isinstance(mod, torch.jit.ScriptModule):
                raise UnsupportedModelError(
                    "TorchScript modules do not support hooks, which layer-based methods (CAMs, "
                    "FullGrad, guided backprop on modules) and layer listing need. Use the Python "
                    "model (e.g. `--model-factory pkg.module:function --weights file.pt` on the "
                    "command line); input-gradient methods work on TorchScript as they are."
                )
            handles.append(
                mod.register_forward_pre_hook(fn) if pre else mod.register_forward_hook(fn)
            )
        yield
    finally:
        for h in handles:
            h.remove()
        handles.clear()


@dataclass
class Capture:
    """Outputs of one layer, one entry per call of the layer in the forward pass.

    Attributes:
        name: dotted layer name.
        outputs: the captured tensors (in the autograd graph; leaves when captured with
            ``grad_from_here``). Downstream layers received clones of them.
    """

    name: str
    outputs: list[torch.Tensor] = field(default_factory=list)

    @property
    def output(self) -> torch.Tensor:
        """The output of the last call (the layer's output for a layer called once).

        Raises:
            LayerNotCalledError: the layer did not run in the forward pass.
        """
        if not self.outputs:
            raise LayerNotCalledError(
                f"layer {self.name!r} exists but was never called in the forward pass (a branch "
                "the input does not take, or a module defined but unused). Pick a layer that "
                "runs: `volsal layers` lists the modules with their output shapes."
            )
        return self.outputs[-1]


@contextlib.contextmanager
def capture(
    model: nn.Module, layers: dict[str, nn.Module], *, grad_from_here: bool = False
) -> Iterator[dict[str, Capture]]:
    """Capture the outputs of ``layers`` (name -> module) during forward passes in the block.

    Args:
        model: the model (only used for messages).
        layers: modules to capture, by dotted name.
        grad_from_here: make the *first* captured output of the first layer a fresh leaf that
            requires grad and switch autograd on from there. Run the forward under
            ``torch.no_grad()``: the prefix before the layer then builds no graph at all, so a
            Grad-CAM costs about one inference pass. The ``no_grad`` block's exit restores the
            grad mode.

    Yields:
        dict name -> :class:`Capture`.
    """
    del model
    caps = {name: Capture(name) for name in layers}
    first = next(iter(layers), None)

    def make(name: str):
        cap = caps[name]

        def hook(_m, _inp, out):
            if not isinstance(out, torch.Tensor):
                raise UnsupportedModelError(
                    f"layer {name!r} returns a {type(out).__name__}, not a tensor; pick a layer "
                    "whose output is a single tensor."
                )
            if grad_from_here and name == first and not cap.outputs:
                torch.set_grad_enabled(True)
                out = out.detach().requires_grad_(True)
            cap.outputs.append(out)
            return out.clone()

        return hook

    with forward_hooks((mod, make(name)) for name, mod in layers.items()):
        yield caps


def run_and_score(
    model: nn.Module, x: torch.Tensor, target, *, batch: int | None = None
) -> tuple[object, ResolvedTarget]:
    """One forward pass and the target's scores ``(B,)`` (in the current grad mode)."""
    out = model(x)
    return out, resolve_target(target, out, x.shape[0] if batch is None else batch)


def input_gradient(
    model: nn.Module, x: torch.Tensor, target
) -> tuple[torch.Tensor, ResolvedTarget]:
    """Gradient of the target scores w.r.t. the input, without touching ``x`` or any ``.grad``.

    Differentiates ``scores.sum()``: samples are independent in eval mode, so each sample gets
    the gradient of its own score.

    Args:
        model: the model (already in the wanted train/eval mode).
        x: input ``(B, C, *spatial)``; a detached copy is differentiated.
        target: any target spec (see :mod:`volsal.targets`).

    Returns:
        ``(grads, resolved)`` with ``grads`` shaped like ``x``.
    """
    xg = x.detach().clone().requires_grad_(True)
    with torch.enable_grad():
        _, rt = run_and_score(model, xg, target)
        if not rt.scores.requires_grad:
            raise UnsupportedModelError(
                "the target score does not depend on the input through autograd (a model that "
                "detaches its input, or runs under torch.no_grad()?)."
            )
        (grads,) = torch.autograd.grad(rt.scores.sum(), xg)
    return grads, ResolvedTarget(rt.scores.detach(), rt.classes, rt.description)


def layer_gradient(
    model: nn.Module, x: torch.Tensor, target, name: str, module: nn.Module
) -> tuple[torch.Tensor, torch.Tensor, ResolvedTarget]:
    """Activations of one layer and the gradient of the target scores with respect to them.

    The forward pass runs under ``torch.no_grad()`` up to the layer; autograd is switched on
    from the layer's output onward (see :func:`capture`), so the cost is about one inference
    pass plus a backward through the layers *after* ``name``.

    Returns:
        ``(acts, grads, resolved)``: ``acts`` and ``grads`` shaped like the layer's output
        (detached), for the layer's last call in the forward pass.

    Raises:
        LayerNotCalledError: the layer did not run.
        UnsupportedModelError: the score does not depend on the layer's output.
    """
    with capture(model, {name: module}, grad_from_here=True) as caps, torch.no_grad():
        _, rt = run_and_score(model, x, target)
        acts = caps[name].output
        grads = None
        if rt.scores.requires_grad:
            (grads,) = torch.autograd.grad(rt.scores.sum(), acts, allow_unused=True)
        if grads is None:
            raise UnsupportedModelError(
                f"the target score does not depend on the output of layer {name!r} (a layer "
                "in a branch that does not reach the output?). Pick a layer on the path to the "
                "output."
            )
    return acts.detach(), grads, ResolvedTarget(rt.scores.detach(), rt.classes, rt.description)
