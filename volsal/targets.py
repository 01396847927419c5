"""Targets: what is explained. Every spec becomes one differentiable score per sample.

Accepted specs (``target=`` of every method):

- ``int``: the same class for every sample, ``output[:, c]``.
- a sequence or 1-D integer tensor of length ``B``: one class per sample.
- ``None``: the predicted class (argmax of the output of the method's own forward pass,
  which runs the model in eval mode unless told otherwise). For a single-logit binary model
  the predicted class is explained with the sign that makes it positive (``+logit`` when
  ``logit > 0``, else ``-logit``).
- a callable ``output -> (B,)`` scores (regression heads, dict/tuple outputs, custom scores).
- a :class:`Target` object: :class:`ClassTarget`, :class:`BinaryTarget`, :class:`RegionTarget`.
- :class:`MultiTarget` ``([t1, t2, ...])``: several targets in one call (methods that support it,
  e.g. every CAM, return ``(B, T, *spatial)`` from one forward pass). A plain list is never
  read as several targets: a list of length ``B`` is one class per sample, any other length is
  an error.

Single-logit binary models (output ``(B, 1)`` or ``(B,)``): target ``0`` is the logit (evidence
for the positive class), ``BinaryTarget(negative=True)`` its negation (evidence for the negative
class), ``None`` the predicted class with the sign that makes its score positive.

Scores are taken from the raw output (logits), never a softmax: a confident softmax has
vanishing gradients (USER_NEEDS P5).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from .errors import OutputShapeError, TargetError

__all__ = [
    "Target",
    "ClassTarget",
    "BinaryTarget",
    "RegionTarget",
    "MultiTarget",
    "ResolvedTarget",
    "resolve_target",
    "check_output",
]


class Target:
    """Base class of target objects: ``__call__(output) -> (B,)`` scores."""

    def __call__(self, output: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def describe(self) -> str:
        return type(self).__name__


def check_output(output: object, batch: int) -> torch.Tensor:
    """Check that a model output is a ``(B, K, *spatial)`` tensor and return it.

    Raises:
        OutputShapeError: not a tensor, wrong batch size, or no class axis.
    """
    if not isinstance(output, torch.Tensor):
        raise OutputShapeError(
            f"the model returned a {type(output).__name__}, not a tensor. Fix: pass a callable "
            "target that picks the score, e.g. target=lambda out: out['logits'][:, 1]."
        )
    if output.ndim < 2:
        raise OutputShapeError(
            f"the model output has shape {tuple(output.shape)}: no class axis. Expected "
            "(B, K) or (B, K, *spatial). Fix: pass target=lambda out: out (regression head), "
            "or make the model return (B, 1)."
        )
    if output.shape[0] != batch:
        raise OutputShapeError(
            f"the model output has batch size {output.shape[0]}, the input {batch}. "
            "volsal needs one output row per input sample."
        )
    return output


@dataclass(frozen=True)
class ClassTarget(Target):
    """Score of one class per sample: ``output[b, classes[b]]`` (summed over spatial dims, if any,
    only through :class:`RegionTarget`)."""

    classes: int | Sequence[int] | torch.Tensor

    def __call__(self, output: torch.Tensor) -> torch.Tensor:
        output = check_output(output, output.shape[0] if isinstance(output, torch.Tensor) else -1)
        if output.ndim > 2:
            raise TargetError(
                f"the model output has spatial dims {tuple(output.shape)} (segmentation?): a class "
                "index does not say which voxels to explain. Fix: target=RegionTarget(cls, mask) "
                "(sums the class logits inside the mask), or a callable."
            )
        cls = _class_indices(self.classes, output)
        return output.gather(1, cls[:, None]).squeeze(1)

    def describe(self) -> str:
        return f"class {_short(self.classes)}"


@dataclass(frozen=True)
class BinaryTarget(Target):
    """Single-logit binary models, output ``(B, 1)`` or ``(B,)``: the logit, or its negation.

    ``BinaryTarget()`` explains the positive class (score = logit);
    ``BinaryTarget(negative=True)`` the negative class (score = -logit).
    Integer target ``0`` on a one-logit model is the same as ``BinaryTarget()``.
    """

    negative: bool = False

    def __call__(self, output: torch.Tensor) -> torch.Tensor:
        if output.ndim == 2 and output.shape[1] == 1:
            output = output[:, 0]
        if output.ndim != 1:
            raise TargetError(
                f"BinaryTarget expects a single-logit output (B,) or (B, 1); got {tuple(output.shape)}."
            )
        return -output if self.negative else output

    def describe(self) -> str:
        return "negative logit" if self.negative else "positive logit"


@dataclass(frozen=True)
class RegionTarget(Target):
    """Segmentation outputs ``(B, K, *spatial)``: class ``cls`` logits summed (or averaged) in a region.

    Args:
        cls: class channel to explain.
        mask: boolean or weight mask of shape ``(*spatial)``, ``(B, *spatial)`` or
            ``(B, 1, *spatial)`` on the *output* grid; ``None`` means the voxels predicted as
            ``cls`` (argmax over classes; for a one-channel sigmoid output, logit > 0).
        reduce: ``"sum"`` or ``"mean"`` over the region.

    Never allocates anything larger than the output itself.
    """

    cls: int
    mask: torch.Tensor | None = None
    reduce: str = "sum"

    def __call__(self, output: torch.Tensor) -> torch.Tensor:
        if output.ndim < 3:
            raise TargetError(
                f"RegionTarget needs a dense output (B, K, *spatial); got {tuple(output.shape)}. "
                "Use an int class target for classifiers."
            )
        k = output.shape[1]
        if not 0 <= int(self.cls) < k:
            raise TargetError(
                f"RegionTarget class {self.cls} is out of range for {k} output channels."
            )
        logits = output[:, int(self.cls)]
        if self.mask is None:
            with torch.no_grad():
                if k == 1:
                    region = (output[:, 0] > 0).to(output.dtype)
                else:
                    region = (output.argmax(1) == int(self.cls)).to(output.dtype)
        else:
            region = torch.as_tensor(self.mask, device=output.device)
            if region.ndim == logits.ndim + 1 and region.shape[1] == 1:
                region = region[:, 0]
            if region.shape[-(logits.ndim - 1) :] != logits.shape[1:] or region.ndim not in (
                logits.ndim - 1,
                logits.ndim,
            ):
                raise TargetError(
                    f"RegionTarget mask has shape {tuple(region.shape)}; the output grid is "
                    f"{tuple(logits.shape[1:])}. Fix: resample the mask to the output grid."
                )
            if region.ndim == logits.ndim and region.shape[0] not in (1, logits.shape[0]):
                raise TargetError(
                    f"RegionTarget mask has {region.shape[0]} masks for a batch of "
                    f"{logits.shape[0]}. Fix: one mask (*spatial) for all samples, or one per sample."
                )
            region = region.to(output.dtype)
        scores = (logits * region).flatten(1).sum(1)
        if self.reduce == "mean":
            count = torch.broadcast_to(region, logits.shape).flatten(1).sum(1)
            scores = scores / count.clamp_min(1)
        elif self.reduce != "sum":
            raise TargetError(f"RegionTarget reduce must be 'sum' or 'mean'; got {self.reduce!r}.")
        return scores

    def describe(self) -> str:
        return f"region of class {self.cls} ({'mask' if self.mask is not None else 'predicted'})"


class MultiTarget(Target):
    """Several targets explained in one call, each any target spec (int, per-sample list,
    :class:`RegionTarget`, callable...).

    ``method(x, MultiTarget([0, 1, 2]))`` returns ``(B, T, *spatial)`` maps, map ``t`` of sample
    ``b`` explaining target ``t`` (CAMs: one forward pass and ``T`` backward passes from the
    layer). Why not ``target=[0, 1, 2]``: a list of length ``B`` already means one class per
    sample, so a plain list would change meaning with the batch size.

    Methods that do not support it raise :class:`~volsal.errors.TargetError`.

    Args:
        targets: a non-empty sequence of target specs.

    Example:
        >>> import torch, volsal
        >>> cam = volsal.GradCAM(volsal.testing.tiny_cnn(2), layer="features")
        >>> cam(torch.randn(2, 1, 8, 8), volsal.MultiTarget([0, 1, 2])).shape
        torch.Size([2, 3, 8, 8])
    """

    def __init__(self, targets: Sequence[object]):
        if isinstance(targets, (str, bytes)) or not isinstance(targets, Sequence) or not targets:
            raise TargetError(
                f"MultiTarget needs a non-empty list of targets, e.g. MultiTarget([0, 1, 2]); "
                f"got {targets!r}."
            )
        if any(isinstance(t, MultiTarget) for t in targets):
            raise TargetError("MultiTarget cannot contain another MultiTarget.")
        self.targets = tuple(targets)

    def __len__(self) -> int:
        return len(self.targets)

    def __iter__(self):
        return iter(self.targets)

    def __call__(self, output: torch.Tensor) -> torch.Tensor:
        raise TargetError(
            "this method does not support MultiTarget (several targets in one call); call it "
            "once per target and stack the maps: torch.cat([m(x, t) for t in targets], 1). "
            "GradCAM, GradCAMPlusPlus and HiResCAM support MultiTarget natively."
        )

    def describe(self) -> str:
        return "multi[" + ", ".join(_describe(t) for t in self.targets) + "]"

    def __repr__(self) -> str:
        return f"MultiTarget({list(self.targets)!r})"


def _describe(t: object) -> str:
    if isinstance(t, Target):
        return t.describe()
    if t is None:
        return "predicted"
    if callable(t):
        return getattr(t, "__name__", type(t).__name__)
    return f"class {_short(t)}"


@dataclass(frozen=True)
class ResolvedTarget:
    """A target turned into scores.

    Attributes:
        scores: ``(B,)`` differentiable scores (what is differentiated).
        classes: ``(B,)`` class indices when the target is a class, else ``None``.
        description: human-readable, for sidecars and figure titles.
    """

    scores: torch.Tensor
    classes: torch.Tensor | None
    description: str


def _short(v: object) -> str:
    if isinstance(v, torch.Tensor):
        v = v.tolist()
    s = str(v)
    return s if len(s) <= 40 else s[:37] + "..."


def _class_indices(spec: int | Sequence[int] | torch.Tensor, output: torch.Tensor) -> torch.Tensor:
    """Validate a class spec against ``output (B, K)`` and return ``(B,)`` long indices."""
    b, k = output.shape[0], output.shape[1]
    if isinstance(spec, bool):
        raise TargetError(f"target must be a class index, got the bool {spec!r}.")
    if isinstance(spec, int):
        cls = torch.full((b,), spec, dtype=torch.long, device=output.device)
    else:
        try:
            cls = torch.as_tensor(spec, device=output.device)
        except (TypeError, ValueError, RuntimeError) as err:
            raise TargetError(f"cannot read target {spec!r} as class indices: {err}") from None
        if cls.is_floating_point() or cls.dtype == torch.bool:
            raise TargetError(f"target class indices must be integers; got dtype {cls.dtype}.")
        if cls.ndim == 0:
            cls = cls.expand(b)
        if cls.ndim != 1 or cls.shape[0] != b:
            raise TargetError(
                f"target has {cls.numel()} class indices (shape {tuple(cls.shape)}) for a batch of "
                f"{b}. Fix: give one int for all samples, or exactly {b} (one per sample)."
            )
        cls = cls.long()
    bad = (cls < 0) | (cls >= k)
    if bool(bad.any()):
        raise TargetError(
            f"target class {cls[bad].tolist()} out of range: the model has {k} output classes "
            f"(valid 0..{k - 1})."
        )
    return cls


def resolve_target(
    target: int | Sequence[int] | torch.Tensor | Callable | Target | None,
    output: object,
    batch: int | None = None,
) -> ResolvedTarget:
    """Turn any target spec into one finite score per sample.

    Args:
        target: see the module docstring.
        output: the model output of the forward pass being explained.
        batch: expected batch size (defaults to the output's).

    Returns:
        ResolvedTarget with ``scores (B,)``.

    Raises:
        TargetError: out-of-range class, wrong number of targets, non-finite scores,
            implicit target on a dense (segmentation) output.
        OutputShapeError: the output cannot be scored with this kind of target.
    """
    classes = None
    if callable(target) and not isinstance(target, Target):
        scores = target(output)
        description = getattr(target, "__name__", type(target).__name__)
        if batch is None and isinstance(output, torch.Tensor):
            batch = output.shape[0]
    else:
        if batch is None:
            batch = output.shape[0] if isinstance(output, torch.Tensor) else -1
        output = check_output(output, batch)
        if isinstance(target, Target):
            scores = target(output)
            description = target.describe()
            if isinstance(target, ClassTarget):
                classes = _class_indices(target.classes, output)
        elif output.ndim > 2:
            raise TargetError(
                f"the model output has spatial dims {tuple(output.shape)} (a segmentation "
                "network?): the target must be explicit. Fix: target=RegionTarget(cls) (class "
                "logits summed over the voxels predicted as cls) or RegionTarget(cls, mask)."
            )
        elif target is None:
            if output.shape[1] == 1:
                logit = output[:, 0]
                sign = torch.where(logit.detach() >= 0, 1.0, -1.0).to(logit.dtype)
                scores = logit * sign
                classes = (sign > 0).long()
                description = "predicted (binary, signed logit)"
            else:
                classes = output.detach().argmax(1)
                scores = output.gather(1, classes[:, None]).squeeze(1)
                description = "predicted class"
        else:
            classes = _class_indices(target, output)
            scores = output.gather(1, classes[:, None]).squeeze(1)
            description = f"class {_short(target)}"
    if not isinstance(scores, torch.Tensor):
        raise TargetError(f"the target returned a {type(scores).__name__}; expected a tensor (B,).")
    if scores.ndim == 2 and scores.shape[1] == 1:
        scores = scores[:, 0]
    if scores.ndim != 1 or (batch is not None and batch >= 0 and scores.shape[0] != batch):
        raise TargetError(
            f"the target must give one score per sample, shape ({batch},); got "
            f"{tuple(scores.shape)}. Fix: make the callable return output[..., c] per sample "
            "(reduce spatial dims with .flatten(1).sum(1))."
        )
    if not bool(torch.isfinite(scores.detach()).all()):
        raise TargetError(
            "the target scores are not finite (NaN/Inf). Check the input intensities and the "
            "model (fp16 overflow?)."
        )
    return ResolvedTarget(scores=scores, classes=classes, description=description)
