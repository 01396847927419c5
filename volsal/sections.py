"""Model sections: run a classifier as conv section -> adaptive layer -> flatten -> fc section.

The pytorch-saliency interface (seed 003) describes a model by ``section_names``::

    section_names = [["conv1", "bn1", "relu", "maxpool", "layer1", "layer2", "layer3", "layer4"],
                     ["fc"]]
    adaptive_layer = "avgpool"

and runs it as ``fc_section(flatten(adaptive_layer(conv_section(x))))``, each section applying
its modules one after the other. For CAMs this has one use beyond naming: the conv section
runs without an autograd graph, grad being switched on only from the CAM layer's output
(:func:`volsal.hooks.capture` with ``grad_from_here``), so a Grad-CAM costs what inference
costs.

The sectioned forward is only right when the model's own ``forward`` is that composition (no
functional ops between the modules, no skip connections across them). :func:`check_sections`
compares the two once; CAMs run it on every call only when built with ``check=True``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from .errors import LayerNotFoundError, SectionError
from .layers import LayerSpec, resolve_layer, unwrap

__all__ = ["Sections", "parse_sections", "sectioned_forward", "section_layer", "check_sections"]


@dataclass(frozen=True)
class Sections:
    """A validated ``section_names`` + ``adaptive_layer`` description.

    Attributes:
        conv: dotted names of the conv section's modules, in the order they run.
        fc: dotted names of the fully connected section's modules.
        adaptive: the module applied between the sections (before flattening), or ``None``.
    """

    conv: tuple[str, ...]
    fc: tuple[str, ...]
    adaptive: str | None = None

    def default_layer(self) -> str:
        """The default CAM layer: the last module of the conv section (as in the seed)."""
        return self.conv[-1]

    def in_conv(self, name: str) -> bool:
        """Whether ``name`` is a conv-section module or one of its submodules."""
        return any(name == c or name.startswith(c + ".") for c in self.conv)


def _as_list(v: object, what: str) -> list[str]:
    if isinstance(v, str):
        return [v]
    if isinstance(v, Sequence) and all(isinstance(s, str) for s in v):
        return list(v)
    raise SectionError(
        f"{what} must be a list of module names (strings); got {v!r}. Example: "
        "section_names=[['conv1', 'bn1', 'relu', 'maxpool', 'layer1', 'layer2', 'layer3', "
        "'layer4'], ['fc']]."
    )


def parse_sections(
    model: nn.Module,
    section_names: Sequence[Sequence[str] | str],
    adaptive_layer: str | None = None,
) -> Sections:
    """Validate ``section_names`` (and ``adaptive_layer``) against the model.

    Args:
        model: the model (``DataParallel`` wrappers are unwrapped).
        section_names: ``[[conv modules...], [fc modules...]]``; a bare string per section
            (``["features", "classifier"]``) is accepted as in the seed.
        adaptive_layer: name of the module between the sections (``"avgpool"``), or ``None``.

    Returns:
        :class:`Sections`.

    Raises:
        SectionError: not two sections, an empty conv section, a module listed twice.
        LayerNotFoundError: names that are not modules of the model; the message lists every
            missing name, the closest existing names and the model's top-level modules.
    """
    if isinstance(section_names, str) or len(section_names) != 2:
        raise SectionError(
            "section_names must hold exactly two sections, [[conv modules...], [fc modules...]]; "
            f"got {section_names!r}."
        )
    conv = _as_list(section_names[0], "section_names[0] (the conv section)")
    fc = _as_list(section_names[1], "section_names[1] (the fc section)")
    if not conv:
        raise SectionError("section_names[0] (the conv section) is empty.")
    listed = conv + fc + ([adaptive_layer] if adaptive_layer is not None else [])
    dup = sorted({n for n in listed if listed.count(n) > 1})
    if dup:
        raise SectionError(f"section_names lists {dup} more than once.")
    root = unwrap(model)
    missing, hints = [], []
    for n in listed:
        try:
            resolve_layer(root, n)
        except LayerNotFoundError as err:
            missing.append(n)
            hints.append(str(err).split(" List all names")[0])
    if missing:
        top = [n for n, _ in root.named_children()]
        raise LayerNotFoundError(
            f"section_names/adaptive_layer name module(s) {missing} that {type(root).__name__} "
            f"does not have ({' '.join(hints)}). Its top-level modules are {top}; "
            "volsal.layer_names(model) lists them all."
        )
    return Sections(tuple(conv), tuple(fc), adaptive_layer)


def sectioned_forward(model: nn.Module, sections: Sections, x: torch.Tensor) -> torch.Tensor:
    """Run ``fc(flatten(adaptive(conv(x))))``, each section's modules one after the other.

    Returns:
        the output ``(B, K)`` (flattened to ``(B, -1)`` between the sections; the seed's
        ``(B, 1, K)`` reshaping is not kept).
    """
    mods = dict(unwrap(model).named_modules())
    h = x
    for n in sections.conv:
        h = mods[n](h)
    if sections.adaptive is not None:
        h = mods[sections.adaptive](h)
    h = h.flatten(1)
    for n in sections.fc:
        h = mods[n](h)
    return h


def section_layer(model: nn.Module, sections: Sections, layer: LayerSpec) -> tuple[str, nn.Module]:
    """Resolve the CAM layer of a sectioned model; ``"auto"``/``None`` is the conv section's last.

    ``layer`` may be ``["layer3", "1"]`` (module, submodule) as in the seed.

    Raises:
        LayerNotFoundError: unknown name.
        SectionError: the layer is not inside the conv section (its output has no grid, or it
            would not run in the conv section).
    """
    if layer is None or (isinstance(layer, str) and layer == "auto"):
        layer = sections.default_layer()
    name, mod = resolve_layer(model, layer)
    if not sections.in_conv(name):
        raise SectionError(
            f"layer {name!r} is not in the conv section {list(sections.conv)}; a CAM layer must "
            "be a conv-section module or one of its submodules (e.g. ['layer3', '1'])."
        )
    return name, mod


def check_sections(
    model: nn.Module,
    x: torch.Tensor,
    section_names: Sequence[Sequence[str] | str] | Sections,
    adaptive_layer: str | None = None,
    *,
    rtol: float = 1e-4,
    atol: float = 1e-5,
) -> None:
    """Check that the sectioned forward gives the same output as ``model(x)``.

    Runs two no-grad forward passes in the model's current train/eval mode (callers wrap it in
    :func:`volsal.hooks.eval_mode`).

    Raises:
        SectionError: shapes or values differ (the model's ``forward`` is not the composition of
            its sections: a functional op, a skip connection or a missing module), with the
            largest difference and how to fix it.
        LayerNotFoundError: unknown names.
    """
    sections = (
        section_names
        if isinstance(section_names, Sections)
        else parse_sections(model, section_names, adaptive_layer)
    )
    with torch.no_grad():
        ref = model(x)
        try:
            got = sectioned_forward(model, sections, x)
        except Exception as err:  # noqa: BLE001 - turned into a SectionError with context
            raise SectionError(
                f"running the model as sections {list(sections.conv)} -> "
                f"{sections.adaptive!r} -> flatten -> {list(sections.fc)} failed: "
                f"{type(err).__name__}: {err}. Check the order of the modules and the "
                "adaptive layer (print(model) shows the structure)."
            ) from err
    if not isinstance(ref, torch.Tensor) or ref.shape != got.shape:
        raise SectionError(
            f"the sectioned forward gives shape {tuple(got.shape)}, model(x) gives "
            f"{tuple(ref.shape) if isinstance(ref, torch.Tensor) else type(ref).__name__}. "
            "section_names must list every module of model.forward in order."
        )
    if not torch.allclose(got, ref, rtol=rtol, atol=atol):
        diff = float((got - ref).abs().max())
        raise SectionError(
            f"the sectioned forward differs from model(x) (max |difference| {diff:.3g}): "
            "model.forward is not conv section -> adaptive layer -> flatten -> fc section "
            "(functional ops or skip connections between the listed modules, or a module "
            "left out). Fix section_names, or use layer=<name> without sections (the hook "
            "path works on any forward)."
        )
