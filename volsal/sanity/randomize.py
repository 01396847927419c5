"""Model parameter randomisation (Adebayo et al. 2018) on deep copies of the model.

The user's model is never changed: layers are found by one probing forward pass on it (in eval
mode, under ``torch.no_grad()``, forward hooks removed in ``finally``), and every randomised
model is a :func:`copy.deepcopy`. The random draws come from a local :class:`torch.Generator`
(CPU, then copied to the parameter's device), seeded per layer from ``seed`` and the layer's
position, so

- the same ``seed`` gives the same copies, on any device;
- a layer gets the same random values in ``"independent"`` and ``"cascading"`` mode;
- the global RNG (CPU and CUDA) is untouched, also with ``init="reset"`` (``reset_parameters``
  runs on a CPU clone of the layer inside :func:`torch.random.fork_rng`).

Reference: Adebayo, Gilmer, Muelly, Goodfellow, Hardt and Kim, "Sanity Checks for Saliency
Maps", NeurIPS 2018.
"""

from __future__ import annotations

import copy
import logging
import warnings
from collections.abc import Iterator, Sequence

import torch
from torch import nn

from ..errors import LayerNotFoundError, ParameterError
from ..hooks import eval_mode, forward_hooks
from ..spatial import check_input

__all__ = ["parameter_layers", "select_layers", "randomize_layers", "randomized_copies"]

_LOG = logging.getLogger("volsal")
_MODES = ("cascading", "independent")
_INITS = ("gaussian", "reset")

LayerSpec = None | Sequence[str] | Sequence[int] | slice | range


def parameter_layers(model: nn.Module, x: torch.Tensor) -> list[str]:
    """Dotted names of the modules that own parameters, in the order they first run.

    A module counts when it owns parameters itself (``recurse=False``): a ``Conv3d``, a
    ``BatchNorm3d``, a ``Linear``, or a custom module with its own ``nn.Parameter``. The order
    comes from one forward pass of ``x[:1]`` with forward hooks on those modules (eval mode,
    no grad; everything restored): a module is placed when its forward *returns*, so a custom
    module owning parameters *and* children comes after its children. Modules that never run
    are left out (logged).

    Args:
        model: the model (not changed).
        x: an input ``(B, C, *spatial)``; only its first sample is used.

    Returns:
        Names in execution order (the root module is called ``""``).
    """
    check_input(x)
    owners = [(n, m) for n, m in model.named_modules() if any(True for _ in m.parameters(False))]
    order: list[str] = []

    def make(name: str):
        def hook(_m, _inp, _out):
            if name not in order:
                order.append(name)

        return hook

    with forward_hooks((m, make(n)) for n, m in owners), eval_mode(model), torch.no_grad():
        model(x[:1])
    if not order and owners:
        raise ParameterError("no module with parameters ran in the forward pass.")
    unused = [n for n, _ in owners if n not in order]
    if unused:
        _LOG.info("parameter layers that did not run and are never randomised: %s", unused)
    return order


def select_layers(all_layers: Sequence[str], layers: LayerSpec) -> list[str]:
    """Pick layers from :func:`parameter_layers` by names, indices, a slice or a range.

    Args:
        all_layers: names in execution order.
        layers: ``None`` (all), a sequence of names, a sequence of (possibly negative) indices
            into ``all_layers``, a ``slice`` or a ``range``.

    Returns:
        The chosen names, in execution order, without duplicates.

    Raises:
        LayerNotFoundError: an unknown name or an index out of range.
    """
    all_layers = list(all_layers)
    if layers is None:
        return all_layers
    if isinstance(layers, slice):
        return all_layers[layers]
    if isinstance(layers, (str, int)):
        layers = [layers]
    chosen: set[str] = set()
    for spec in layers:
        if isinstance(spec, str):
            if spec not in all_layers:
                raise LayerNotFoundError(
                    f"{spec!r} is not a layer with parameters that runs in the forward pass; "
                    f"these are: {all_layers}."
                )
            chosen.add(spec)
        elif isinstance(spec, int) and not isinstance(spec, bool):
            if not -len(all_layers) <= spec < len(all_layers):
                raise LayerNotFoundError(
                    f"layer index {spec} out of range: the model has {len(all_layers)} "
                    f"parameter layers ({all_layers})."
                )
            chosen.add(all_layers[spec])
        else:
            raise ParameterError(f"layers must hold names or indices; got {spec!r}.")
    return [n for n in all_layers if n in chosen]


def _layer_seed(seed: int, index: int) -> int:
    return (int(seed) * 1_000_003 + 7919 * (index + 1)) % (2**63 - 1)


def _gaussian_like(p: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """``N(0, s^2)`` with ``s`` the tensor's std (its RMS if constant; zeros stay zero)."""
    data = p.detach().to("cpu", torch.float64)
    scale = data.std() if data.numel() > 1 else data.abs().sum()
    if not scale > 0:
        scale = data.square().mean().sqrt()
    draw = torch.randn(p.shape, generator=gen, dtype=torch.float64) * scale
    return draw.to(device=p.device, dtype=p.dtype)


def _reset_on_cpu(module: nn.Module, seed: int) -> dict[str, torch.Tensor] | None:
    """Own parameters of ``module`` after ``reset_parameters()`` on a CPU clone, or ``None``."""
    if not callable(getattr(module, "reset_parameters", None)):
        return None
    clone = copy.deepcopy(module).to("cpu")
    with torch.random.fork_rng(devices=[]):
        torch.random.default_generator.manual_seed(seed)
        clone.reset_parameters()
    return {n: p.detach() for n, p in clone.named_parameters(recurse=False)}


def randomize_layers(
    model: nn.Module,
    names: Sequence[str],
    *,
    init: str = "gaussian",
    seed: int = 0,
    index_of: dict[str, int] | None = None,
) -> nn.Module:
    """Re-draw the own parameters of the named modules of ``model`` **in place**.

    Call it on a copy (:func:`randomized_copies` does). Buffers (BatchNorm running
    statistics) are never touched, so normalisation layers stay valid (no NaN).

    Args:
        model: the module to change (a copy).
        names: dotted module names.
        init: ``"gaussian"`` (each parameter tensor re-drawn from ``N(0, s^2)``, ``s`` its
            original std, or its RMS when the tensor is constant, e.g. fresh BatchNorm weights;
            all-zero tensors stay zero) or ``"reset"`` (the module's ``reset_parameters()``,
            running statistics kept; modules without it fall back to ``"gaussian"`` with a
            warning).
        seed: base seed.
        index_of: name -> position used to derive each layer's seed (default: position in
            ``names``).

    Returns:
        ``model``.
    """
    if init not in _INITS:
        raise ParameterError(f"init must be one of {_INITS}; got {init!r}.")
    mods = dict(model.named_modules())
    for pos, name in enumerate(names):
        module = mods[name]
        layer_seed = _layer_seed(seed, (index_of or {}).get(name, pos))
        new = _reset_on_cpu(module, layer_seed) if init == "reset" else None
        if init == "reset" and new is None:
            warnings.warn(
                f"layer {name!r} ({type(module).__name__}) has no reset_parameters(); its "
                "parameters are re-drawn from a Gaussian instead.",
                stacklevel=3,
            )
        gen = torch.Generator().manual_seed(layer_seed)
        with torch.no_grad():
            for pname, p in module.named_parameters(recurse=False):
                value = new[pname] if new is not None else _gaussian_like(p, gen)
                p.copy_(value.to(device=p.device, dtype=p.dtype))
    return model


def randomized_copies(
    model: nn.Module,
    x: torch.Tensor,
    mode: str = "cascading",
    layers: LayerSpec = None,
    init: str = "gaussian",
    seed: int = 0,
) -> Iterator[tuple[str, nn.Module]]:
    """Yield ``(label, model_copy)`` with more and more (or single) layers randomised.

    - ``"cascading"``: from the output layer down, cumulatively: the k-th copy has the top
      ``k`` chosen layers randomised; the label is the deepest layer randomised so far.
    - ``"independent"``: one chosen layer at a time, top-down; the label is that layer.

    Each copy is a fresh deep copy (keeping one does not change the next); the model itself is
    never changed. Copies keep the model's ``training`` flags and device.

    Args:
        model: the trained model.
        x: an input used for the probing forward pass that orders the layers.
        mode: ``"cascading"`` or ``"independent"``.
        layers: which parameter layers (see :func:`select_layers`); ``None`` is all.
        init: ``"gaussian"`` or ``"reset"`` (see :func:`randomize_layers`).
        seed: reproducibility seed (the global RNG is not used).

    Yields:
        ``(layer_name, randomised_copy)``, top-down.

    Example:
        >>> import torch, volsal
        >>> from volsal.sanity import randomized_copies
        >>> model = volsal.testing.tiny_cnn(3)
        >>> x = torch.randn(1, 1, 8, 8, 8)
        >>> [name for name, _ in randomized_copies(model, x)][:2]
        ['fc', 'features.bn2']
    """
    if mode not in _MODES:
        raise ParameterError(f"mode must be one of {_MODES}; got {mode!r}.")
    if init not in _INITS:
        raise ParameterError(f"init must be one of {_INITS}; got {init!r}.")
    all_layers = parameter_layers(model, x)
    chosen = select_layers(all_layers, layers)
    index_of = {n: i for i, n in enumerate(all_layers)}
    base = model
    for name in reversed(chosen):
        copy_ = copy.deepcopy(base)
        randomize_layers(copy_, [name], init=init, seed=seed, index_of=index_of)
        if mode == "cascading":
            base = copy_
        yield name, copy_
