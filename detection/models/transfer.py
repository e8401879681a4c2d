"""MobileNet transfer learning (Rahul U et al., IJRTE 2020; seed 004): a frozen ImageNet MobileNet computes one
"bottleneck" vector per face frame, once, into a cache; a softmax layer is then trained on the cache in seconds
(TensorFlow's image-retraining recipe, spec section 6).

The network is an ordinary, differentiable :class:`Detector` (Grad-CAM works), saved as a forgelab checkpoint
(weights only); what differs is how it is fitted: :meth:`MobileNetTransfer.fit_head` on cached bottlenecks
(``forgelab transfer``), never by back-propagating through the backbone.
"""

from __future__ import annotations

from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import nn

from common.errors import ConfigError
from detection.models.base import Detector, InputSpec, logits_from_p_fake

Bottleneck = Literal["pooled", "logits"]
# timm backbones whose ImageNet weights the pretrained/ manifest declares
MANIFEST_NAMES = {"mobilenetv1_100": "mobilenetv1_100_imagenet"}


class MobileNetTransfer(Detector):
    """A frozen MobileNet and a trained softmax layer on its bottleneck.

    Args:
        backbone: timm model name (``mobilenetv1_100``, MobileNet v1 at width 1.0, the closest to the paper's
            MobileNet with published weights; any timm CNN works).
        pretrained: load the backbone's ImageNet weights from the local file the manifest names when the bottlenecks
            are first computed (:meth:`init_pretrained`); ``False`` keeps random weights (tests; an honest baseline).
        bottleneck: ``pooled``, the globally pooled last feature map (1024-d for MobileNet v1), or ``logits``, the
            1000 ImageNet logits, as TensorFlow's retraining script caches.
        size: face-crop side (the paper's MobileNet sizes: 224, 192, 160, 128).
        margin: face-crop margin.

    Forward: ``video [B, T, 3, H, W]`` RGB in [0, 1] -> logits ``[B, 2]``: each frame's p(fake) from the softmax
    layer, averaged over the clip. Inputs are scaled to [-1, 1] (mean = std = 0.5) as the recipe does.
    """

    def __init__(self, backbone: str = "mobilenetv1_100", pretrained: bool = True, bottleneck: Bottleneck = "pooled",
                 size: int = 224, margin: float = 1.3) -> None:  # fmt: skip
        super().__init__()
        import timm

        if bottleneck not in ("pooled", "logits"):
            raise ConfigError(f"bottleneck must be pooled or logits, not {bottleneck!r}")
        self.save_hyperparameters()
        self.input_spec = InputSpec(size=size, margin=margin, frames=1, mean=(0.5,) * 3, std=(0.5,) * 3)
        self.backbone = timm.create_model(backbone, pretrained=False, num_classes=1000 if bottleneck == "logits" else 0)
        self.backbone.requires_grad_(False)
        width = 1000 if bottleneck == "logits" else int(self.backbone.num_features)
        # the bottlenecks' standardisation, fitted with the head (a fixed affine map, part of the softmax layer)
        self.register_buffer("centre", torch.zeros(width))
        self.register_buffer("scale", torch.ones(width))
        self.head = nn.Linear(width, 2)

    def train(self, mode: bool = True) -> MobileNetTransfer:
        """The backbone stays in eval mode (frozen: BatchNorm keeps its running statistics)."""
        super().train(mode)
        self.backbone.eval()
        return self

    def init_pretrained(self) -> None:
        if not self.hparams.pretrained:
            return
        import timm

        from common.errors import CheckpointError
        from common.weights import find

        name = self.hparams.backbone
        if name not in MANIFEST_NAMES:
            raise CheckpointError(name, f"no local ImageNet weights are declared for {name}; use pretrained: false")
        classes = 1000 if self.hparams.bottleneck == "logits" else 0
        ref = timm.create_model(name, pretrained=True, num_classes=classes,
                                pretrained_cfg_overlay={"file": str(find(MANIFEST_NAMES[name]))})  # fmt: skip
        self.backbone.load_state_dict(ref.state_dict())

    # ------------------------------------------------------------------ bottlenecks and the softmax layer
    def bottlenecks(self, video: torch.Tensor) -> torch.Tensor:
        """``video [B, T, 3, H, W]`` RGB in [0, 1] -> one bottleneck per frame ``[B*T, D]`` (no autograd)."""
        with torch.inference_mode():
            return self.backbone.forward_head(self.backbone.forward_features(self.prepare(video))).float()

    def fit_head(self, features: torch.Tensor, labels: torch.Tensor, steps: int = 300, lr: float = 0.01,
                 weight_decay: float = 1e-4, seed: int = 0) -> list[float]:  # fmt: skip
        """Train the softmax layer on cached bottlenecks ``[N, D]`` and labels ``[N]`` (1 = fake): standardise them,
        then full-batch Adam on the class-balanced cross-entropy. Returns the loss per step."""
        y = labels.long().cpu()
        if len(set(y.tolist())) < 2:
            raise ConfigError("training the softmax layer needs real and fake examples")
        x = features.float().cpu().clone()  # a normal tensor even when the cache was made in inference mode
        self.centre.copy_(x.mean(0))
        self.scale.copy_(x.std(0).clamp_min(1e-6))
        x = (x - self.centre) / self.scale
        weight = len(y) / (2 * torch.bincount(y, minlength=2).float())
        generator = torch.Generator().manual_seed(seed)
        head = nn.Linear(x.shape[1], 2)
        with torch.no_grad():
            head.weight.normal_(0, 0.01, generator=generator)
            head.bias.zero_()
        optimiser = torch.optim.Adam(head.parameters(), lr=lr, weight_decay=weight_decay)
        losses = []
        with torch.enable_grad():
            for _ in range(steps):
                optimiser.zero_grad()
                loss = F.cross_entropy(head(x), y, weight=weight)
                loss.backward()
                optimiser.step()
                losses.append(loss.item())
        self.head.load_state_dict(head.state_dict())
        return losses

    def p_fake_frames(self, features: torch.Tensor) -> torch.Tensor:
        """p(fake) ``[N]`` of bottlenecks ``[N, D]``."""
        x = (features.to(self.centre) - self.centre) / self.scale
        return self.head(x).float().softmax(1)[:, 1]

    # ------------------------------------------------------------------ the detector interface
    def forward_features(self, video: torch.Tensor) -> torch.Tensor:
        return self.backbone.forward_features(self.prepare(video))

    def forward_head(self, features: torch.Tensor, b: int, t: int) -> torch.Tensor:
        p = self.p_fake_frames(self.backbone.forward_head(features)).view(b, t).mean(1)
        return logits_from_p_fake(p)

    def feature_layer(self) -> nn.Module:
        return self.backbone

    def describe(self) -> dict[str, Any]:
        hp = self.hparams
        weights = "ImageNet (local file), frozen" if hp.pretrained else "random, frozen (no ImageNet file used)"
        backbone = "ImageNet" if hp.pretrained else "RANDOM (baseline, no transfer)"
        return {"name": f"MobileNet transfer ({hp.backbone}, {backbone} backbone, {hp.bottleneck} bottleneck)",
                "weights": f"backbone {weights}; softmax layer fitted with forgelab",
                "licence": "Apache-2.0 (timm) + yours"}  # fmt: skip
