"""Factory functions for the CLI tests (importable as ``cli_models`` with tests/cli on sys.path)."""

from __future__ import annotations

import torch
from torch import nn

from volsal.testing import tiny_cnn

_CONV = {2: nn.Conv2d, 3: nn.Conv3d}
_GAP = {2: nn.AdaptiveAvgPool2d, 3: nn.AdaptiveAvgPool3d}


def build(spatial_dims: int = 3, num_classes: int = 2):
    return tiny_cnn(spatial_dims, num_classes=num_classes)


class Square(nn.Module):
    """``x ** 2``: makes the input gradient ``2 K^T (K x)`` peak where the image is bright."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * x


class BrightNet(nn.Module):
    """conv (positive 3^k Gaussian kernel) -> square (``features``) -> GAP -> linear (2 classes).

    Class 1's logit is ``mean((K * x)^2)``, class 0's its negative. For an image that is a
    bright blob on a zero background:

    - the input gradient of class 1 is ``(2 / N) K^T (K * x)``, the blob smoothed twice by a
      symmetric positive kernel: it peaks at the blob's centre;
    - Grad-CAM on ``features`` weighs its single channel by ``mean(d logit / d A) = 1 / N``
      (positive), so the CAM is ``(K * x)^2 / N``, which also peaks at the blob's centre.
    """

    def __init__(self, spatial_dims: int = 3):
        super().__init__()
        k = spatial_dims
        conv = _CONV[k](1, 1, 3, padding=1, bias=False)
        g = torch.tensor([0.5, 1.0, 0.5])
        kernel = g
        for _ in range(k - 1):
            kernel = kernel[..., None] * g
        with torch.no_grad():
            conv.weight.copy_((kernel / kernel.sum()).reshape(1, 1, *(3,) * k))
        self.features = nn.Sequential(conv, Square())
        self.gap = _GAP[k](1)
        self.fc = nn.Linear(1, 2, bias=False)
        with torch.no_grad():
            self.fc.weight.copy_(torch.tensor([[-1.0], [1.0]]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.gap(self.features(x)).flatten(1))


def bright(spatial_dims: int = 3) -> BrightNet:
    return BrightNet(spatial_dims)
