"""Small torchvision-style models for the CAM tests (torchvision is not a dependency)."""

from __future__ import annotations

import torch
from torch import nn

CONV = {2: nn.Conv2d, 3: nn.Conv3d}
BN = {2: nn.BatchNorm2d, 3: nn.BatchNorm3d}
MAXP = {2: nn.MaxPool2d, 3: nn.MaxPool3d}
GAP = {2: nn.AdaptiveAvgPool2d, 3: nn.AdaptiveAvgPool3d}


class BasicBlock(nn.Module):
    """torchvision's BasicBlock: conv-bn-relu-conv-bn + (downsampled) identity, relu."""

    def __init__(self, k: int, cin: int, cout: int, stride: int = 1):
        super().__init__()
        self.conv1 = CONV[k](cin, cout, 3, stride, 1, bias=False)
        self.bn1 = BN[k](cout)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = CONV[k](cout, cout, 3, 1, 1, bias=False)
        self.bn2 = BN[k](cout)
        self.downsample = None
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(CONV[k](cin, cout, 1, stride, bias=False), BN[k](cout))

    def forward(self, x):
        idt = x if self.downsample is None else self.downsample(x)
        out = self.bn2(self.conv2(self.relu(self.bn1(self.conv1(x)))))
        return self.relu(out + idt)


class ResNet(nn.Module):
    """torchvision ResNet-18 layout (names conv1, bn1, relu, maxpool, layer1..4, avgpool, fc),
    two blocks per stage, narrow."""

    def __init__(self, k: int = 2, in_channels: int = 3, num_classes: int = 1000, w: int = 4):
        super().__init__()
        self.conv1 = CONV[k](in_channels, w, 7, 2, 3, bias=False)
        self.bn1 = BN[k](w)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = MAXP[k](3, 2, 1)
        widths = [w, 2 * w, 4 * w, 8 * w]
        cin = w
        for i, cout in enumerate(widths):
            stride = 1 if i == 0 else 2
            layer = nn.Sequential(BasicBlock(k, cin, cout, stride), BasicBlock(k, cout, cout))
            setattr(self, f"layer{i + 1}", layer)
            cin = cout
        self.avgpool = GAP[k](1)
        self.fc = nn.Linear(cin, num_classes)

    def forward(self, x):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(self.avgpool(x), 1))


class VGG(nn.Module):
    """torchvision VGG layout: features -> avgpool -> flatten -> classifier."""

    def __init__(self, k: int = 2, in_channels: int = 3, num_classes: int = 10):
        super().__init__()
        c, p = CONV[k], MAXP[k]
        self.features = nn.Sequential(
            c(in_channels, 4, 3, padding=1), nn.ReLU(inplace=True), p(2),
            c(4, 8, 3, padding=1), nn.ReLU(inplace=True), p(2),
            c(8, 8, 3, padding=1), nn.ReLU(inplace=True),
        )  # fmt: skip
        self.avgpool = GAP[k](2)
        self.classifier = nn.Sequential(
            nn.Linear(8 * 2**k, 16), nn.ReLU(True), nn.Dropout(), nn.Linear(16, num_classes)
        )

    def forward(self, x):
        return self.classifier(torch.flatten(self.avgpool(self.features(x)), 1))


def seeded(model: nn.Module, seed: int = 0, dtype=torch.float32) -> nn.Module:
    """Random weights and BatchNorm statistics from a local generator; eval mode."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.ndim > 1:
                p.copy_(torch.randn(p.shape, generator=gen) / p[0].numel() ** 0.5)
            elif name.endswith("weight"):
                p.copy_(1 + 0.2 * torch.rand(p.shape, generator=gen))
            else:
                p.copy_(0.1 * torch.randn(p.shape, generator=gen))
        for name, b in model.named_buffers():
            if name.endswith("running_mean"):
                b.copy_(0.1 * torch.randn(b.shape, generator=gen))
            elif name.endswith("running_var"):
                b.copy_(0.5 + torch.rand(b.shape, generator=gen))
    return model.to(dtype).eval()


RESNET_SECTIONS = [
    ["conv1", "bn1", "relu", "maxpool", "layer1", "layer2", "layer3", "layer4"],
    ["fc"],
]
