"""Finding layers: dotted names, modules, callables, and the automatic CAM layer.

Layers are held by *spec* (a name) in methods and resolved at call time, so the same method
configuration can be re-bound to a deep copy of the model (``method.with_model(copy)``).
"""

from __future__ import annotations

import difflib
import logging
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import nn

from .errors import DegenerateMapWarning, LayerNotFoundError

__all__ = [
    "LayerSpec",
    "unwrap",
    "resolve_layer",
    "layer_names",
    "probe_outputs",
    "auto_layer",
    "ProbeRecord",
]

log = logging.getLogger("volsal")

LayerSpec = str | Sequence[str] | nn.Module | Callable[[nn.Module], nn.Module]


def unwrap(model: nn.Module) -> nn.Module:
    """Return the wrapped module of ``DataParallel`` / ``DistributedDataParallel`` (else ``model``)."""
    while isinstance(model, (nn.DataParallel, nn.parallel.DistributedDataParallel)):
        model = model.module
    return model


def layer_names(model: nn.Module) -> list[str]:
    """Dotted names of all submodules (the root excluded), in definition order."""
    return [n for n, _ in unwrap(model).named_modules() if n]


def _close_names(name: str, names: list[str], n: int = 5) -> list[str]:
    close = difflib.get_close_matches(name, names, n=n, cutoff=0.5)
    if not close:  # fall back to names sharing the last component or a prefix
        tail = name.split(".")[-1]
        close = [m for m in names if m.endswith(tail) or m.startswith(name.split(".")[0])][:n]
    return close


def resolve_layer(model: nn.Module, spec: LayerSpec) -> tuple[str, nn.Module]:
    """Resolve a layer spec to ``(dotted_name, module)``.

    Args:
        model: the model (``DataParallel``/DDP wrappers are unwrapped).
        spec: a dotted name from ``model.named_modules()`` (a leading ``"module."`` of a
            wrapper is accepted), a sequence of name parts such as ``["layer3", "1"]`` (the
            pytorch-saliency seed's spelling), a module of the model, or a callable
            ``model -> module``.

    Raises:
        LayerNotFoundError: unknown name (the message lists the closest names), or a module
            that is not part of the model.
    """
    root = unwrap(model)
    if isinstance(spec, nn.Module):
        for name, mod in root.named_modules():
            if mod is spec:
                return name, mod
        raise LayerNotFoundError(
            f"the module {type(spec).__name__} passed as layer is not part of this model "
            "(after a deepcopy, pass the layer by name so it can be found in the copy)."
        )
    if callable(spec) and not isinstance(spec, str):
        return resolve_layer(root, spec(root))
    if isinstance(spec, (list, tuple)):
        spec = ".".join(str(s) for s in spec)
    if not isinstance(spec, str):
        raise LayerNotFoundError(f"layer must be a name, a module or a callable; got {spec!r}.")
    mods = dict(root.named_modules())
    name = spec
    if name not in mods and name.startswith("module."):
        name = name[len("module.") :]
    if name in mods and name != "":
        return name, mods[name]
    names = [n for n in mods if n]
    close = _close_names(spec, names)
    hint = f" Closest names: {', '.join(repr(c) for c in close)}." if close else ""
    raise LayerNotFoundError(
        f"no layer named {spec!r} in {type(root).__name__}.{hint} "
        "List all names with volsal.layer_names(model) or `volsal layers`."
    )


@dataclass(frozen=True)
class ProbeRecord:
    """One module call seen by :func:`probe_outputs`: name, module type and output shape."""

    name: str
    type: str
    shape: tuple[int, ...] | None
    calls: int


def probe_outputs(model: nn.Module, x: torch.Tensor) -> list[ProbeRecord]:
    """Run one no-grad forward and record every module's output shape, in completion order.

    The model's training flags are not touched here (callers wrap this in ``eval_mode``);
    the hooks are removed on exit, also on error.
    """
    from .hooks import forward_hooks  # local: hooks imports layers

    root = unwrap(model)
    order: dict[str, ProbeRecord] = {}

    def make(name: str, mod: nn.Module):
        def hook(_m, _inp, out):
            shape = tuple(out.shape) if isinstance(out, torch.Tensor) else None
            prev = order.pop(name, None)
            order[name] = ProbeRecord(
                name, type(mod).__name__, shape, (prev.calls if prev else 0) + 1
            )

        return hook

    pairs = [(mod, make(name, mod)) for name, mod in root.named_modules() if name]
    with forward_hooks(pairs), torch.no_grad():
        model(x)
    return list(order.values())


def auto_layer(model: nn.Module, x: torch.Tensor) -> str:
    """The default CAM layer: the last module (in completion order) whose output keeps the
    input's spatial rank and has more than one voxel, probed on the real input.

    Falls back to a single-voxel layer with a :class:`DegenerateMapWarning` (its map would be
    constant). The choice is logged on the ``"volsal"`` logger.

    Raises:
        LayerNotFoundError: no module output has the input's rank.
    """
    records = probe_outputs(model, x)
    spatial = [r for r in records if r.shape is not None and len(r.shape) == x.ndim]
    if not spatial:
        raise LayerNotFoundError(
            f"layer='auto' found no module whose output keeps the input's rank {x.ndim}. "
            "Fix: pass layer=<name> explicitly (see volsal.layer_names(model))."
        )
    good = [r for r in spatial if _numel(r.shape[2:]) > 1]
    pick = good[-1] if good else spatial[-1]
    if not good:
        warnings.warn(
            f"layer='auto' picked {pick.name!r} whose output {pick.shape} is a single voxel: the "
            "map will be constant. Pick an earlier layer with layer=<name>.",
            DegenerateMapWarning,
            stacklevel=3,
        )
    log.info("volsal: layer='auto' chose %r (%s, output %s)", pick.name, pick.type, pick.shape)
    return pick.name


def _numel(shape: Sequence[int]) -> int:
    n = 1
    for s in shape:
        n *= int(s)
    return n


_CONV_DIMS = {
    nn.Conv1d: 1,
    nn.Conv2d: 2,
    nn.Conv3d: 3,
    nn.ConvTranspose1d: 1,
    nn.ConvTranspose2d: 2,
    nn.ConvTranspose3d: 3,
}


def check_model_rank(model: nn.Module, x: torch.Tensor) -> None:
    """Check that ``x`` has the spatial rank of the model's first convolution (if it has one).

    Catches the commonest shape mistake early, with a message that says how to fix it: a
    volume ``(C, D, H, W)`` passed without a batch axis looks like a 2D batch.

    Raises:
        InputShapeError: the first convolution is ``Conv{k}d`` and ``x`` has another rank.
    """
    from .errors import InputShapeError

    for mod in unwrap(model).modules():
        k = _CONV_DIMS.get(type(mod))
        if k is None:
            continue
        if x.ndim - 2 != k:
            want = "(B, C, " + ", ".join("DHW"[3 - k :]) + ")"
            hint = (
                " A volume with a channel axis but no batch axis? Use x[None]."
                if x.ndim == k + 1
                else ""
            )
            raise InputShapeError(
                f"the model's first convolution is {type(mod).__name__}, which expects x of "
                f"shape {want}; got {tuple(x.shape)}.{hint}"
            )
        return
