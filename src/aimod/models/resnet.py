"""CIFAR-style ResNets (He et al., 2016, section 4.2), the family of the published ResNet-56 experiments.

``resnet_cifar(depth)`` builds ResNet-(6n+2): a 3x3 stem, three stages of ``n`` basic blocks with widths
16, 32 and 64 (strides 1, 2, 2), global average pooling and a linear classifier. Projection shortcuts
(1x1 conv + batch norm) are used where the shape changes.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

__all__ = ["BasicBlock", "CifarResNet", "resnet_cifar"]


class BasicBlock(nn.Module):
    """Two 3x3 convolutions with batch norm and a residual connection."""

    def __init__(self, in_channels: int, out_channels: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or in_channels != out_channels:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, stride, bias=False), nn.BatchNorm2d(out_channels)
            )

    def forward(self, x: Tensor) -> Tensor:
        """(B, C_in, H, W) -> (B, C_out, H / stride, W / stride)."""
        out = torch.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return torch.relu(out + self.shortcut(x))


class CifarResNet(nn.Module):
    """ResNet-(6n+2) for small images; ``forward`` returns logits ``(B, num_classes)``."""

    def __init__(self, blocks_per_stage: int, num_classes: int = 10, in_channels: int = 1) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(in_channels, 16, 3, 1, 1, bias=False), nn.BatchNorm2d(16), nn.ReLU())
        layers: list[nn.Module] = []
        channels = 16
        for width, stride in ((16, 1), (32, 2), (64, 2)):
            for i in range(blocks_per_stage):
                layers.append(BasicBlock(channels, width, stride if i == 0 else 1))
                channels = width
        self.stages = nn.Sequential(*layers)
        self.head = nn.Linear(64, num_classes)
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x: Tensor) -> Tensor:
        """(B, in_channels, H, W) images -> (B, num_classes) logits."""
        features = self.stages(self.stem(x))  # (B, 64, H/4, W/4)
        logits: Tensor = self.head(features.mean(dim=(2, 3)))  # (B, num_classes)
        return logits


def resnet_cifar(depth: int = 20, num_classes: int = 10, in_channels: int = 1) -> CifarResNet:
    """ResNet-``depth`` with ``depth = 6n + 2`` (20, 32, 44, 56, 110).

    Example:
        >>> model = resnet_cifar(20)
        >>> sum(p.numel() for p in model.parameters()) > 250_000
        True
        >>> model(torch.zeros(2, 1, 28, 28)).shape
        torch.Size([2, 10])
    """
    if depth < 8 or (depth - 2) % 6:
        raise ValueError(f"`depth` must be 6n + 2 with n >= 1 (8, 20, 32, 44, 56, ...), got {depth}.")
    return CifarResNet((depth - 2) // 6, num_classes, in_channels)
