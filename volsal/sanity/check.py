"""The model-parameter (and data) randomisation sanity checks of Adebayo et al. (2018).

``check_parameter_randomization(method, x, target)`` computes the method's map on the trained
model and on randomised deep copies (:func:`~volsal.sanity.randomize.randomized_copies`) with
``method.with_model(copy)``: the same method configuration, any method of the
:class:`~volsal.base.Attribution` protocol. A method that explains the model should give maps
that drift away from the original as more layers are randomised; maps that stay similar
depend on the input more than on the model (Adebayo et al. found this for guided backprop).

Similarity metrics (names for ``metrics=``; any ``callable(a, b) -> (B,)`` also works):

- ``"spearman_abs"``, ``"spearman"``: rank correlation of the absolute / signed maps;
- ``"ssim"``, ``"hog"``: SSIM and HOG similarity of the absolute maps, each sample divided by
  its maximum (maps in ``[0, 1]``, the normalisation of Adebayo et al.'s visualisations);
- ``"topk"``: share of the top 10 % voxels (by absolute value) in common.

Values are per sample; the table holds their mean over the batch.

Reference: Adebayo, Gilmer, Muelly, Goodfellow, Hardt and Kim, "Sanity Checks for Saliency
Maps", NeurIPS 2018.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from ..errors import ParameterError
from .randomize import LayerSpec, randomized_copies
from .similarity import hog_similarity, spearman, spearman_abs, ssim, topk_intersection

__all__ = [
    "METRICS",
    "RandomizationResult",
    "check_parameter_randomization",
    "check_data_randomization",
]


def _unit_abs(t: torch.Tensor) -> torch.Tensor:
    t = t.detach().abs()
    peak = t.flatten(1).amax(1).reshape((-1,) + (1,) * (t.ndim - 1))
    return t / torch.where(peak > 0, peak, torch.ones_like(peak))


METRICS: dict[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = {
    "spearman_abs": spearman_abs,
    "spearman": spearman,
    "ssim": lambda a, b: ssim(_unit_abs(a), _unit_abs(b), data_range=1.0),
    "hog": lambda a, b: hog_similarity(_unit_abs(a), _unit_abs(b)),
    "topk": lambda a, b: topk_intersection(a, b, 0.1),
}
DEFAULT_METRICS = ("spearman_abs", "spearman", "ssim", "hog", "topk")


@dataclass
class RandomizationResult:
    """Maps and similarity scores of a randomisation check.

    Attributes:
        method: the method's name.
        mode: ``"cascading"``, ``"independent"`` or ``"data"``.
        original: map of the trained model ``(B, C, *spatial)``.
        maps: label -> map, ``"original"`` first, then the randomised models in check order.
        values: label -> metric -> ``(B,)`` per-sample similarity to the original.
        table: one dict per randomised model: ``layer``, ``depth`` (layers counted from the
            output, 1 = output layer; in cascading mode also the number of layers randomised)
            and the batch mean of each metric.
    """

    method: str
    mode: str
    original: torch.Tensor
    maps: dict[str, torch.Tensor] = field(default_factory=dict)
    values: dict[str, dict[str, torch.Tensor]] = field(default_factory=dict)
    table: list[dict[str, Any]] = field(default_factory=list)

    @property
    def metric_names(self) -> list[str]:
        return [k for k in (self.table[0] if self.table else {}) if k not in ("layer", "depth")]

    def to_markdown(self, digits: int = 3) -> str:
        """The table as GitHub markdown."""
        cols = ["layer", "depth"] + self.metric_names
        lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
        for row in self.table:
            cells = []
            for c in cols:
                v = row[c]
                cells.append(
                    f"{v:.{digits}f}"
                    if isinstance(v, float)
                    else f"`{v}`"
                    if c == "layer"
                    else str(v)
                )
            lines.append("| " + " | ".join(cells) + " |")
        return "\n".join(lines)

    def plot_curve(self, metrics: Sequence[str] | None = None, ax: Any = None) -> Any:
        """Similarity to the original map against randomised depth (one line per metric).

        Returns:
            The matplotlib ``Figure``.
        """
        from matplotlib.figure import Figure

        if ax is None:
            fig = Figure(figsize=(max(4.0, 0.5 * len(self.table) + 2), 3.2), layout="constrained")
            ax = fig.add_subplot()
        else:
            fig = ax.figure
        depth = [0] + [row["depth"] for row in self.table]
        for name in metrics or self.metric_names:
            ax.plot(depth, [1.0] + [row[name] for row in self.table], marker="o", label=name)
        ax.set_xticks(
            depth,
            ["original"] + [row["layer"] for row in self.table],
            rotation=60,
            ha="right",
            fontsize=7,
        )
        ax.axhline(0, color="0.7", lw=0.8)
        ax.set_ylabel("similarity to original")
        ax.set_title(f"{self.method}: {self.mode} randomisation", fontsize=9)
        ax.legend(fontsize=7)
        return fig

    def plot_maps(
        self,
        image: torch.Tensor | None = None,
        sample: int = 0,
        *,
        absolute: bool = True,
        shared_scale: bool = False,
        **kwargs: Any,
    ) -> Any:
        """Grid of the maps (original first), drawn with :func:`volsal.viz.compare`.

        Args:
            image: the input ``(B, C, *spatial)`` or ``(C, *spatial)`` shown in the first
                column (zeros when omitted).
            sample: which sample of the batch.
            absolute: show ``|map|`` summed over channels (what the ``"spearman_abs"``,
                ``"ssim"``, ``"hog"`` and ``"topk"`` scores compare); False: signed sum.
            shared_scale: one colour scale for all maps. Off by default: a randomised model's
                gradients can be orders of magnitude larger than the trained model's, and the
                check is about the *structure* of each map (Adebayo et al. scale each map).
            **kwargs: passed to :func:`volsal.viz.compare` (``axis``, ``slices``,
                ``overlay``...; 3D default: the slice through the original map's peak).

        Returns:
            The matplotlib ``Figure``.
        """
        from ..viz import compare

        k = self.original.ndim - 2
        if image is None:
            image = torch.zeros_like(self.original[sample, :1])
        elif image.ndim == self.original.ndim:
            image = image[sample]
        maps = {}
        for label, m in self.maps.items():
            m = m[sample].detach()
            maps[label] = m.abs().sum(0) if absolute else m.sum(0)
        kwargs.setdefault("title", f"{self.method}: {self.mode} randomisation")
        if k == 3 and "affine" not in kwargs and "spacing" not in kwargs:
            kwargs.setdefault("axis", 0)  # plain array axes: a tensor carries no orientation
        return compare(
            image.detach().cpu(),
            {n: m.cpu() for n, m in maps.items()},
            shared_scale=shared_scale,
            spatial_dims=k,
            **kwargs,
        )


def _resolve_metrics(metrics: Sequence[str | Callable]) -> dict[str, Callable]:
    out = {}
    for m in metrics:
        if isinstance(m, str):
            if m not in METRICS:
                raise ParameterError(f"unknown similarity metric {m!r}; known: {sorted(METRICS)}.")
            out[m] = METRICS[m]
        elif callable(m):
            out[getattr(m, "__name__", type(m).__name__)] = m
        else:
            raise ParameterError(f"metrics must be names or callables; got {m!r}.")
    return out


class _FixedClasses:
    """Target of the classes explained on the trained model (``target=None``): the randomised
    models explain the same class, not their own prediction."""

    __name__ = "fixed classes"

    def __init__(self, classes: torch.Tensor):
        self.classes = classes

    def __call__(self, out: torch.Tensor) -> torch.Tensor:
        cls = self.classes.to(out.device)
        if out.ndim == 2 and out.shape[1] == 1:  # single-logit binary: the sign explained
            return torch.where(cls > 0, out[:, 0], -out[:, 0])
        return out.gather(1, cls[:, None]).squeeze(1)


def _check_method(method: Any) -> None:
    if not (hasattr(method, "with_model") and hasattr(method, "model") and callable(method)):
        raise ParameterError(
            "method must follow the volsal Attribution protocol (callable, with .model and "
            f".with_model(model)); got {type(method).__name__}. Fix: e.g. volsal.Gradient(model)."
        )


def _original(method: Any, x: torch.Tensor, target: Any) -> tuple[torch.Tensor, Any]:
    if target is None and hasattr(method, "explain"):
        exp = method.explain(x, None)
        if exp.classes is not None:
            return exp.maps.detach(), _FixedClasses(exp.classes)
        return exp.maps.detach(), None
    return method(x, target).detach(), target


def _row(label, depth, original, maps, fns, result) -> None:
    vals = {name: fn(original, maps).detach().cpu() for name, fn in fns.items()}
    result.maps[label] = maps
    result.values[label] = vals
    result.table.append(
        {
            "layer": label,
            "depth": depth,
            **{n: float(v.double().nanmean()) for n, v in vals.items()},
        }
    )


def check_parameter_randomization(
    method: Any,
    x: torch.Tensor,
    target: Any = None,
    mode: str = "cascading",
    layers: LayerSpec = None,
    metrics: Sequence[str | Callable] = DEFAULT_METRICS,
    seed: int = 0,
    init: str = "gaussian",
) -> RandomizationResult:
    """Model-parameter randomisation test: how much does the map change with the weights?

    Args:
        method: a configured method (``volsal.Gradient(model)``, ...): the protocol needs
            ``method(x, target)``, ``method.model`` and ``method.with_model(copy)``.
        x: input ``(B, C, *spatial)``.
        target: any target spec; ``None`` explains the class predicted by the trained model,
            and the randomised models explain that same class.
        mode: ``"cascading"`` (top-down, cumulative) or ``"independent"`` (one layer at a time).
        layers: which parameter layers (names, indices, slice, range; ``None`` = all).
        metrics: similarity names (see the module docstring) or callables ``(a, b) -> (B,)``.
        seed: randomisation seed (the global RNG is not used).
        init: ``"gaussian"`` or ``"reset"`` (see :func:`~volsal.sanity.randomize.randomize_layers`).

    Returns:
        :class:`RandomizationResult`.

    Example:
        >>> import torch, volsal
        >>> from volsal.sanity import check_parameter_randomization
        >>> model = volsal.testing.tiny_cnn(3)
        >>> x = torch.randn(1, 1, 8, 8, 8)
        >>> res = check_parameter_randomization(volsal.Gradient(model), x, 0, metrics=["spearman"])
        >>> [row["layer"] for row in res.table][:2]
        ['fc', 'features.bn2']
    """
    _check_method(method)
    fns = _resolve_metrics(metrics)
    original, fixed = _original(method, x, target)
    result = RandomizationResult(getattr(method, "name", type(method).__name__), mode, original)
    result.maps["original"] = original
    copies = randomized_copies(method.model, x, mode=mode, layers=layers, init=init, seed=seed)
    for depth, (label, model_copy) in enumerate(copies, start=1):
        maps = method.with_model(model_copy)(x, fixed).detach()
        _row(label, depth, original, maps, fns, result)
        del model_copy
    return result


def check_data_randomization(
    method: Any,
    x: torch.Tensor,
    target: Any,
    model_random_labels: nn.Module,
    metrics: Sequence[str | Callable] = DEFAULT_METRICS,
) -> RandomizationResult:
    """Data randomisation test: compare with a model you trained on shuffled labels.

    Adebayo et al.'s second test: a map that explains the *learned* relation between input and
    label should differ between the model trained on true labels and one (same architecture)
    trained to fit randomly permuted labels. Training that model is up to you.

    Args:
        method: method configured on the model trained on the true labels.
        x: input ``(B, C, *spatial)``.
        target: target spec (``None``: the class predicted by the true-label model, explained
            on both models).
        model_random_labels: the model trained on shuffled labels.
        metrics: as :func:`check_parameter_randomization`.

    Returns:
        :class:`RandomizationResult` with one row, labelled ``"random labels"``.
    """
    _check_method(method)
    if not isinstance(model_random_labels, nn.Module):
        raise ParameterError(
            f"model_random_labels must be an nn.Module; got {type(model_random_labels).__name__}."
        )
    fns = _resolve_metrics(metrics)
    original, fixed = _original(method, x, target)
    result = RandomizationResult(getattr(method, "name", type(method).__name__), "data", original)
    result.maps["original"] = original
    maps = method.with_model(model_random_labels)(x, fixed).detach()
    _row("random labels", 1, original, maps, fns, result)
    return result
