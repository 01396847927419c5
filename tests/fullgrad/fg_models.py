"""Small models for the FullGrad tests (float64, seeded, non-trivial BatchNorm statistics)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

CONV = {1: nn.Conv1d, 2: nn.Conv2d, 3: nn.Conv3d}
BN = {1: nn.BatchNorm1d, 2: nn.BatchNorm2d, 3: nn.BatchNorm3d}
IN = {1: nn.InstanceNorm1d, 2: nn.InstanceNorm2d, 3: nn.InstanceNorm3d}
POOL = {1: nn.MaxPool1d, 2: nn.MaxPool2d, 3: nn.MaxPool3d}
GAP = {1: nn.AdaptiveAvgPool1d, 2: nn.AdaptiveAvgPool2d, 3: nn.AdaptiveAvgPool3d}


def seeded(model: nn.Module, seed: int = 0, dtype=torch.float64) -> nn.Module:
    """Random weights, biases and BatchNorm statistics from a local generator; eval mode."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.ndim > 1:
                p.copy_(torch.randn(p.shape, generator=gen) / p[0].numel() ** 0.5)
            elif name.endswith("weight"):
                p.copy_(0.8 + 0.4 * torch.rand(p.shape, generator=gen))
            else:
                p.copy_(0.2 * torch.randn(p.shape, generator=gen))
        for name, b in model.named_buffers():
            if name.endswith("running_mean"):
                b.copy_(0.2 * torch.randn(b.shape, generator=gen))
            elif name.endswith("running_var"):
                b.copy_(0.5 + torch.rand(b.shape, generator=gen))
    return model.to(dtype).eval()


class ConvNet(nn.Module):
    """conv-BN-ReLU-maxpool-conv-BN-ReLU-flatten-Linear-BN1d-ReLU-Linear (a fixed-size head)."""

    def __init__(self, k: int, size: int = 8, act: type[nn.Module] = nn.ReLU, inplace=False):
        super().__init__()
        self.conv1 = CONV[k](1, 3, 3, padding=1)
        self.bn1 = BN[k](3)
        self.act1 = act(inplace=inplace) if act in (nn.ReLU, nn.SiLU) else act()
        self.pool = POOL[k](2)
        self.conv2 = CONV[k](3, 4, 3, padding=1)
        self.bn2 = BN[k](4)
        self.act2 = nn.ReLU(inplace=inplace)
        self.fc1 = nn.Linear(4 * (size // 2) ** k, 6)
        self.bn3 = nn.BatchNorm1d(6)
        self.fc2 = nn.Linear(6, 3)

    def forward(self, x):
        x = self.pool(self.act1(self.bn1(self.conv1(x))))
        x = self.act2(self.bn2(self.conv2(x))).flatten(1)
        return self.fc2(F.relu(self.bn3(self.fc1(x))))


class Shuffled(nn.Module):
    """Modules declared in another order than they run, with a two-branch block."""

    def __init__(self, k: int):
        super().__init__()
        self.fc = nn.Linear(4, 3)
        self.branch_b = CONV[k](3, 4, 1)
        self.bn_a = BN[k](4)
        self.branch_a = CONV[k](3, 4, 3, padding=1)
        self.bn0 = BN[k](3)
        self.stem = CONV[k](1, 3, 3, padding=1)
        self.gap = GAP[k](1)

    def forward(self, x):
        x = F.relu(self.bn0(self.stem(x)))
        x = F.relu(self.bn_a(self.branch_a(x))) + self.branch_b(x)
        return self.fc(self.gap(x).flatten(1))


class Reused(nn.Module):
    """One conv (and one BatchNorm) called twice in a forward pass."""

    def __init__(self, k: int):
        super().__init__()
        self.stem = CONV[k](1, 4, 3, padding=1)
        self.block = CONV[k](4, 4, 3, padding=1)
        self.bn = BN[k](4)
        self.relu = nn.ReLU()
        self.gap = GAP[k](1)
        self.fc = nn.Linear(4, 3)

    def forward(self, x):
        x = self.relu(self.stem(x))
        x = self.relu(self.bn(self.block(x)))
        x = self.relu(self.bn(self.block(x)))
        return self.fc(self.gap(x).flatten(1))


class Plain(nn.Module):
    """conv - norm - act - conv - norm - act - GAP - linear with a choice of norm and act."""

    def __init__(self, k: int, norm: str = "bn", act: str = "relu", affine: bool = True):
        super().__init__()
        norms = {
            "bn": lambda c: BN[k](c, affine=affine),
            "in": lambda c: IN[k](c, affine=affine),
            "gn": lambda c: nn.GroupNorm(2, c, affine=affine),
        }
        acts = {
            "relu": nn.ReLU,
            "silu": nn.SiLU,
            "prelu": nn.PReLU,
            "leaky": lambda: nn.LeakyReLU(0.1),
            "functional_silu": None,
        }
        self.act_name = act
        self.conv1 = CONV[k](1, 4, 3, padding=1)
        self.norm1 = norms[norm](4)
        self.act1 = acts[act]() if acts.get(act) else nn.Identity()
        self.conv2 = CONV[k](4, 6, 3, stride=2, padding=1)
        self.norm2 = norms[norm](6)
        self.act2 = acts[act]() if acts.get(act) else nn.Identity()
        self.gap = GAP[k](1)
        self.fc = nn.Linear(6, 3)

    def forward(self, x):
        x = self.act1(self.norm1(self.conv1(x)))
        x = self.act2(self.norm2(self.conv2(x)))
        if self.act_name == "functional_silu":
            x = F.silu(x)
        return self.fc(self.gap(x).flatten(1))


def lift_to_3d(model2d: nn.Module, model3d: nn.Module) -> nn.Module:
    """Copy a 2D model's weights into a 3D one whose kernels have depth 1."""
    with torch.no_grad():
        sd3 = model3d.state_dict()
        for name, t in model2d.state_dict().items():
            sd3[name].copy_(t.unsqueeze(2) if t.ndim == 4 else t)
    return model3d


class LiftNet(nn.Module):
    """2D: k=(3, 3); 3D: kernels (1, 3, 3), pools (1, 2, 2); a stride-2 conv too."""

    def __init__(self, k: int):
        super().__init__()
        kern = 3 if k == 2 else (1, 3, 3)
        pad = 1 if k == 2 else (0, 1, 1)
        pool = 2 if k == 2 else (1, 2, 2)
        stride = 2 if k == 2 else (1, 2, 2)
        self.conv1 = CONV[k](1, 3, kern, padding=pad)
        self.bn1 = BN[k](3)
        self.pool = POOL[k](pool)
        self.conv2 = CONV[k](3, 4, kern, stride=stride, padding=pad)
        self.bn2 = BN[k](4)
        self.gap = GAP[k](1)
        self.fc = nn.Linear(4, 3)

    def forward(self, x):
        x = self.pool(F.relu(self.bn1(self.conv1(x)), inplace=True))
        x = F.relu(self.bn2(self.conv2(x)))
        return self.fc(self.gap(x).flatten(1))
