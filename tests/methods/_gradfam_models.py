"""Small models for the gradient-family tests (guided backprop, IG, SmoothGrad, occlusion)."""

from __future__ import annotations

import functools

import torch
import torch.nn.functional as F
from torch import nn

CONV = {2: nn.Conv2d, 3: nn.Conv3d}


def seeded(module: nn.Module, seed: int = 0, nonneg_after: tuple[str, ...] = ()) -> nn.Module:
    """Deterministic weights from a local generator (the global RNG is not used)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in module.named_parameters():
            fan_in = p[0].numel() if p.ndim > 1 else 1
            p.copy_(torch.randn(p.shape, generator=gen, dtype=p.dtype) / fan_in**0.5)
            if name.split(".")[0] in nonneg_after and p.ndim > 1:
                p.abs_()
    return module.double().eval()


class ReluNet(nn.Module):
    """conv -> relu -> conv -> relu -> conv -> relu -> GAP -> fc, with three ReLU spellings.

    ``style="module"``: separate ``nn.ReLU`` modules; ``"functional"``: ``F.relu``,
    ``torch.relu``, ``Tensor.relu``; ``"inplace_functional"``: ``F.relu(inplace=True)``,
    ``torch.relu_``, ``Tensor.relu_``; ``"reused"``: ONE ``nn.ReLU(inplace=True)`` called
    three times.
    """

    def __init__(self, k: int, style: str = "module", cin: int = 1):
        super().__init__()
        self.style = style
        self.c1 = CONV[k](cin, 4, 3, padding=1)
        self.c2 = CONV[k](4, 4, 3, padding=1)
        self.c3 = CONV[k](4, 6, 3, padding=1)
        self.fc = nn.Linear(6, 3)
        if style == "module":
            self.r1, self.r2, self.r3 = nn.ReLU(), nn.ReLU(), nn.ReLU()
        elif style == "reused":
            self.act = nn.ReLU(inplace=True)

    def _acts(self, i: int, h: torch.Tensor) -> torch.Tensor:
        if self.style == "module":
            return (self.r1, self.r2, self.r3)[i](h)
        if self.style == "reused":
            return self.act(h)
        if self.style == "functional":
            return (lambda t: F.relu(t), torch.relu, lambda t: t.relu())[i](h)
        if self.style == "inplace_functional":
            return (lambda t: F.relu(t, inplace=True), torch.relu_, lambda t: t.relu_())[i](h)
        raise ValueError(self.style)

    def forward(self, x):
        h = self._acts(0, self.c1(x))
        h = self._acts(1, self.c2(h))
        h = self._acts(2, self.c3(h))
        return self.fc(h.flatten(2).mean(-1))


def relu_net(k: int, style: str = "module", cin: int = 1, **kw) -> ReluNet:
    return seeded(ReluNet(k, style, cin), **kw)


class SiluNet(nn.Module):
    """No ReLU anywhere: conv -> SiLU -> conv -> GELU -> GAP -> fc."""

    def __init__(self, k: int):
        super().__init__()
        self.c1, self.c2 = CONV[k](1, 4, 3, padding=1), CONV[k](4, 4, 3, padding=1)
        self.a1, self.a2 = nn.SiLU(), nn.GELU()
        self.fc = nn.Linear(4, 2)

    def forward(self, x):
        return self.fc(self.a2(self.c2(self.a1(self.c1(x)))).flatten(2).mean(-1))


class MixedNet(SiluNet):
    """One ReLU and one SiLU."""

    def forward(self, x):
        return self.fc(F.relu(self.c2(self.a1(self.c1(x)))).flatten(2).mean(-1))


class LinearNet(nn.Module):
    """``f(x) = W vec(x) + b``: integrated gradients is exactly ``w_c * (x - x0)``."""

    def __init__(self, shape: tuple[int, ...], classes: int = 3, bias: bool = True):
        super().__init__()
        self.fc = nn.Linear(int(torch.tensor(shape).prod()), classes, bias=bias)

    def forward(self, x):
        return self.fc(x.flatten(1))


class Recorder(nn.Module):
    """Records the batch size and grad mode of every call; raises on call number ``fail_at``."""

    def __init__(self, inner: nn.Module, fail_at: int | None = None):
        super().__init__()
        self.inner = inner
        self.fail_at = fail_at
        self.calls: list[tuple[int, bool]] = []

    def forward(self, x):
        self.calls.append((x.shape[0], torch.is_grad_enabled()))
        if self.fail_at is not None and len(self.calls) >= self.fail_at:
            raise RuntimeError(f"boom on call {len(self.calls)}")
        return self.inner(x)


@functools.lru_cache(maxsize=1)
def monai_resnet18() -> nn.Module:
    """MONAI's 3D ResNet-18 (in-place ReLUs reused inside each block), float64, eval."""
    from monai.networks.nets import resnet18

    with torch.random.fork_rng():  # MONAI's own init, seeded, global RNG restored
        torch.manual_seed(3)
        model = resnet18(spatial_dims=3, n_input_channels=1, num_classes=2)
    return model.double().eval()
