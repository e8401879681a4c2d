"""Xception (Chollet, CVPR 2017; timm ``legacy_xception``, the layout FaceForensics++ used) whose intermediate
feature maps can be re-weighted by attention maps: the guided backbone of the long-distance attention detector.

Feature grids of ``legacy_xception`` (spec ``seed_detectors.md`` Sec. 1.3): conv1 has no padding and stride 2,
conv2 no padding, every strided block ends in ``MaxPool2d(3, 2, 1)``. At 398 px: block1 98x98 (128 channels),
block2 49x49 (256), block3..block11 25x25 (728), block12 and the head 13x13 (2048).
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn

GATED_LAYERS = ("block1", "block2", "block3", "block4", "block5", "block6", "block7", "block8", "block9", "block10",
                "block11")  # fmt: skip
Gate = Literal["multiply", "residual"]


def grid_sizes(size: int) -> dict[str, int]:
    """Side of each block's output grid for a ``size`` x ``size`` input (spec Sec. 1.3 size rules)."""
    side = (size - 3) // 2 + 1 - 2  # conv1 (3x3, stride 2, no padding), conv2 (3x3, no padding)
    sides: dict[str, int] = {}
    for i in range(1, 13):
        if i in (1, 2, 3, 12):  # the strided blocks
            side = (side - 1) // 2 + 1
        sides[f"block{i}"] = side
    return sides


def gate(features: torch.Tensor, maps: torch.Tensor, mode: Gate = "multiply") -> torch.Tensor:
    """Re-weight ``features [N, C, h, w]`` with ``maps [N, m, h, w]``: channel c by map ``floor(c m / C)`` (m equal
    channel groups, one attention map each). ``multiply``: ``F * A`` (the paper's element-wise multiplication);
    ``residual``: ``F * (1 + A)``, which keeps the plain stream at initialisation."""
    c, m = features.shape[1], maps.shape[1]
    index = torch.arange(c, device=features.device) * m // c
    weights = maps.to(features.dtype)[:, index]
    return features * (weights + 1 if mode == "residual" else weights)


class GuidedXception(nn.Module):
    """``legacy_xception`` with attention gates after chosen blocks.

    Forward: ``x [N, 3, S, S]`` (normalised), ``guides {block name: maps [N, m, h, w]}`` already on that block's
    grid -> features after the last activation ``[N, 2048, h32, w32]``.
    """

    def __init__(self, gate_mode: Gate = "multiply") -> None:
        super().__init__()
        import timm

        self.net = timm.create_model("legacy_xception", pretrained=False, num_classes=0, global_pool="")
        self.gate_mode = gate_mode
        self.num_features = int(self.net.num_features)

    def load_pretrained(self, file: str) -> None:
        """ImageNet weights from a local timm / Cadene file (``pretrained_cfg_overlay=dict(file=...)``)."""
        import timm

        ref = timm.create_model("legacy_xception", pretrained=True, pretrained_cfg_overlay={"file": file},
                                num_classes=0, global_pool="")  # fmt: skip
        self.net.load_state_dict(ref.state_dict())

    def forward(self, x: torch.Tensor, guides: dict[str, torch.Tensor]) -> torch.Tensor:
        n = self.net
        x = n.act2(n.bn2(n.conv2(n.act1(n.bn1(n.conv1(x))))))
        for i in range(1, 13):
            name = f"block{i}"
            x = getattr(n, name)(x)
            if name in guides:
                x = gate(x, guides[name], self.gate_mode)
        x = n.act3(n.bn3(n.conv3(x)))
        return n.act4(n.bn4(n.conv4(x)))
