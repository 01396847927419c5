"""Helpers for testing volsal and code built on it: tiny models and the side-effect check.

``assert_no_side_effects(call, model, x)`` is the project's contract that the user's model is
never changed. It snapshots everything a saliency method could disturb, runs ``call``, and
compares: parameters, buffers (BatchNorm running stats), parameter ``.grad``, every module's
``training`` flag, ``requires_grad`` flags, module classes and ``inplace`` attributes, the hook
dictionaries of every module and the global hook dictionaries, the input's values,
``requires_grad`` and ``.grad``, the global RNG state and the grad mode.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

__all__ = [
    "tiny_cnn",
    "TinyCNN",
    "snapshot",
    "compare_snapshots",
    "assert_no_side_effects",
    "SideEffectError",
]

_CONV = {1: nn.Conv1d, 2: nn.Conv2d, 3: nn.Conv3d}
_BN = {1: nn.BatchNorm1d, 2: nn.BatchNorm2d, 3: nn.BatchNorm3d}
_POOL = {1: nn.MaxPool1d, 2: nn.MaxPool2d, 3: nn.MaxPool3d}
_GAP = {1: nn.AdaptiveAvgPool1d, 2: nn.AdaptiveAvgPool2d, 3: nn.AdaptiveAvgPool3d}


class TinyCNN(nn.Module):
    """conv-BN-ReLU-maxpool-conv-BN-ReLU (``features``) -> global average pool -> linear (``fc``).

    Submodule names: ``features.conv1``, ``features.bn1``, ``features.relu1``,
    ``features.pool1``, ``features.conv2``, ``features.bn2``, ``features.relu2``, ``gap``,
    ``fc``. The last conv stage (``features``) is at half the input resolution.
    """

    def __init__(
        self,
        spatial_dims: int = 2,
        in_channels: int = 1,
        num_classes: int = 3,
        width: int = 4,
        inplace: bool = False,
    ):
        super().__init__()
        k = spatial_dims
        self.features = nn.Sequential(
            OrderedDict(
                conv1=_CONV[k](in_channels, width, 3, padding=1),
                bn1=_BN[k](width),
                relu1=nn.ReLU(inplace=inplace),
                pool1=_POOL[k](2),
                conv2=_CONV[k](width, 2 * width, 3, padding=1),
                bn2=_BN[k](2 * width),
                relu2=nn.ReLU(inplace=inplace),
            )
        )
        self.gap = _GAP[k](1)
        self.fc = nn.Linear(2 * width, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.gap(self.features(x)).flatten(1))


def tiny_cnn(
    spatial_dims: int = 2,
    *,
    in_channels: int = 1,
    num_classes: int = 3,
    width: int = 4,
    inplace: bool = False,
    dtype: torch.dtype = torch.float32,
    seed: int = 0,
) -> TinyCNN:
    """A small seeded :class:`TinyCNN` with non-trivial BatchNorm statistics, in eval mode.

    The global RNG is not used (weights come from a local generator).
    """
    gen = torch.Generator().manual_seed(seed)
    model = TinyCNN(spatial_dims, in_channels, num_classes, width, inplace)
    with torch.no_grad():
        for name, p in model.named_parameters():
            fan_in = p[0].numel() if p.ndim > 1 else 1
            if name.endswith("weight") and p.ndim > 1:
                p.copy_(torch.randn(p.shape, generator=gen) / fan_in**0.5)
            elif "bn" in name and name.endswith("weight"):
                p.copy_(1 + 0.2 * torch.rand(p.shape, generator=gen))
            else:
                p.copy_(0.1 * torch.randn(p.shape, generator=gen))
        for name, b in model.named_buffers():
            if name.endswith("running_mean"):
                b.copy_(0.1 * torch.randn(b.shape, generator=gen))
            elif name.endswith("running_var"):
                b.copy_(0.5 + torch.rand(b.shape, generator=gen))
    return model.to(dtype).eval()


class SideEffectError(AssertionError):
    """Raised by :func:`assert_no_side_effects` with the list of what changed."""


_HOOK_DICTS = (
    "_forward_hooks",
    "_forward_pre_hooks",
    "_backward_hooks",
    "_backward_pre_hooks",
    "_forward_hooks_with_kwargs",
    "_forward_hooks_always_called",
    "_forward_pre_hooks_with_kwargs",
    "_state_dict_hooks",
    "_state_dict_pre_hooks",
    "_load_state_dict_pre_hooks",
    "_load_state_dict_post_hooks",
)
_GLOBAL_HOOKS = (
    "_global_forward_hooks",
    "_global_forward_pre_hooks",
    "_global_backward_hooks",
    "_global_backward_pre_hooks",
    "_global_forward_hooks_always_called",
    "_global_module_registration_hooks",
    "_global_parameter_registration_hooks",
    "_global_buffer_registration_hooks",
)


def _hooks_of(obj: Any, names: tuple[str, ...]) -> dict[str, list]:
    out = {}
    for n in names:
        d = getattr(obj, n, None)
        if d is not None:
            out[n] = [(k, id(v)) for k, v in d.items()]
    return out


def _clone(t: torch.Tensor | None) -> torch.Tensor | None:
    return None if t is None else t.detach().clone()


def snapshot(model: nn.Module, x: torch.Tensor | None = None) -> dict[str, Any]:
    """Everything :func:`assert_no_side_effects` compares, as a plain dict."""
    import torch.nn.modules.module as module_mod

    snap: dict[str, Any] = {
        "params": {
            n: (_clone(p), p.requires_grad, _clone(p.grad), p.data_ptr())
            for n, p in model.named_parameters(remove_duplicate=False)
        },
        "buffers": {n: _clone(b) for n, b in model.named_buffers(remove_duplicate=False)},
        "modules": {
            n: (
                type(m),
                m.training,
                getattr(m, "inplace", None),
                _hooks_of(m, _HOOK_DICTS),
                sorted(m._modules),
            )
            for n, m in model.named_modules(remove_duplicate=False)
        },
        "global_hooks": _hooks_of(module_mod, _GLOBAL_HOOKS),
        "rng": torch.get_rng_state(),
        "grad_enabled": torch.is_grad_enabled(),
    }
    if x is not None:
        snap["x"] = (_clone(x), x.requires_grad, _clone(x.grad) if x.is_leaf else None)
    return snap


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, torch.Tensor) or isinstance(b, torch.Tensor):
        if a is None or b is None:
            return a is b
        return a.shape == b.shape and a.dtype == b.dtype and bool(torch.equal(a, b))
    if isinstance(a, (tuple, list)):
        return len(a) == len(b) and all(_same(u, v) for u, v in zip(a, b))
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    return a == b


def compare_snapshots(before: dict[str, Any], after: dict[str, Any]) -> list[str]:
    """Human-readable list of differences between two :func:`snapshot` results."""
    diffs = []
    for section in before:
        a, b = before[section], after.get(section)
        if isinstance(a, dict) and section in ("params", "buffers", "modules"):
            if a.keys() != b.keys():
                diffs.append(f"{section}: names changed {sorted(set(a) ^ set(b))}")
                continue
            for k in a:
                if not _same(a[k], b[k]):
                    diffs.append(f"{section}[{k!r}] changed")
        elif not _same(a, b):
            diffs.append(f"{section} changed")
    return diffs


def assert_no_side_effects(
    call: Callable[[], Any],
    model: nn.Module,
    x: torch.Tensor | None = None,
    *,
    raises: type[BaseException] | tuple[type[BaseException], ...] | None = None,
) -> Any:
    """Run ``call()`` and assert it changed nothing on ``model`` and ``x``.

    Args:
        call: zero-argument callable, e.g. ``lambda: method(x, target=1)``.
        model: the model that must stay untouched.
        x: the input tensor that must stay untouched.
        raises: if given, ``call`` must raise this exception type; the state is compared
            after the exception too.

    Returns:
        The call's result (``None`` when it raised as expected).

    Raises:
        SideEffectError: something changed (the message lists what), or the expected
            exception did not happen.
    """
    before = snapshot(model, x)
    result = None
    raised: BaseException | None = None
    try:
        result = call()
    except BaseException as err:  # noqa: BLE001 - re-raised below unless expected
        raised = err
    after = snapshot(model, x)
    diffs = compare_snapshots(before, after)
    if diffs:
        msg = "the call changed the model or input:\n  " + "\n  ".join(diffs)
        if raised is not None:
            msg += f"\n(the call raised {type(raised).__name__}: {raised})"
        raise SideEffectError(msg)
    if raises is not None:
        if raised is None:
            raise SideEffectError(f"expected {raises} to be raised; the call returned normally.")
        if not isinstance(raised, raises):
            raise raised
        return None
    if raised is not None:
        raise raised
    return result
