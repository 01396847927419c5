"""The bundled demo classifier: a small 3D CNN that says whether a brain volume holds a lesion.

Layout (input ``(B, 1, 64, 64, 64)``; sizes are per spatial axis)::

    features.block1   Conv3d(1->8, 3, stride 2, pad 1) + BN + ReLU   32^3
    features.down1    MaxPool3d(2)                              16^3
    features.block2   Conv3d(8->16, 3, pad 1) + BN + ReLU       16^3
    features.down2    MaxPool3d(2)                              8^3
    features.block3   Conv3d(16->32, 3, pad 1) + BN + ReLU      8^3
    features.block4   Conv3d(32->64, 3, pad 1) + BN + ReLU      8^3   <- the Grad-CAM layer
    pool              AdaptiveAvgPool3d(1)                      1^3
    classifier        Linear(64 -> 2)                           class 0 = no lesion, 1 = lesion

A strided convolution and max-pooling both downsample, so a ``features.block4`` cell ``o`` is
centred on input voxel ``8 * o + 3`` along each axis (its receptive field spans 49 voxels),
half a voxel off the ``8 * o + 3.5`` where a plain half-pixel upsampling would place it. The weights are trained
by ``examples/make_demo_assets.py``.
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["DemoNet3D"]


def _conv_block(c_in: int, c_out: int, stride: int = 1) -> nn.Sequential:
    """Conv3d(3, pad 1) + BatchNorm3d + ReLU(inplace) with named children conv/bn/relu."""
    block = nn.Sequential()
    block.add_module("conv", nn.Conv3d(c_in, c_out, 3, stride=stride, padding=1, bias=False))
    block.add_module("bn", nn.BatchNorm3d(c_out))
    block.add_module("relu", nn.ReLU(inplace=True))
    return block


class DemoNet3D(nn.Module):
    """Small 3D lesion classifier for the volsal demo (73,162 parameters, 0.3 MB of weights).

    Args:
        in_channels: input channels (1 for the bundled T1 volumes).
        num_classes: output classes (2: no lesion, lesion).
        widths: channels of the four convolution stages.

    Shape:
        x: ``(B, in_channels, D, H, W)``; trained on ``64^3``. Returns logits ``(B, num_classes)``.

    Example:
        >>> import torch
        >>> net = DemoNet3D().eval()
        >>> net(torch.zeros(1, 1, 64, 64, 64)).shape
        torch.Size([1, 2])
    """

    def __init__(
        self,
        in_channels: int = 1,
        num_classes: int = 2,
        widths: tuple[int, int, int, int] = (8, 16, 32, 64),
    ) -> None:
        super().__init__()
        w1, w2, w3, w4 = widths
        self.features = nn.Sequential()
        self.features.add_module("block1", _conv_block(in_channels, w1, stride=2))
        self.features.add_module("down1", nn.MaxPool3d(2))
        self.features.add_module("block2", _conv_block(w1, w2))
        self.features.add_module("down2", nn.MaxPool3d(2))
        self.features.add_module("block3", _conv_block(w2, w3))
        self.features.add_module("block4", _conv_block(w3, w4))
        self.pool = nn.AdaptiveAvgPool3d(1)
        self.classifier = nn.Linear(w4, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``(B, num_classes)`` for ``x`` of shape ``(B, C, D, H, W)``."""
        return self.classifier(torch.flatten(self.pool(self.features(x)), 1))
