"""The spatial-temporal long-distance attention detector (Lu et al., "Detection of Deepfake Videos Using
Long-Distance Attention", IEEE TNNLS 35(7), 2023; seeds 000 and 003).

Per tested frame t of a clip (paper Sec. IV, Fig. 4):

* **spatial** (Sec. IV-C): the frame at ``vit_size`` (224) -> ViT patch tokens -> K long-distance attention
  modules -> m maps ``[m, 14, 14]``, multiplied into the *shallow* Xception features (block1, 98x98 at 398 px:
  each patch covers 7x7 feature cells);
* **temporal** (Sec. IV-D, Eq. 1 ``r^t = I^{t+1} - I^t``): the frame and the residuals of its next n - 1 frames
  (9 channels for n = 3) -> a second ViT + modules -> m maps multiplied into *mid-level* features (block2, 49x49:
  the 14x14 maps pooled to 7x7 land on 7x7 cells);
* Xception at ``size`` (398) -> global average pooling -> a linear layer -> 2 logits (cross-entropy, Sec. IV-A).

A clip of T >= n frames tests its first T - n + 1 frames; the clip's logits are the mean of theirs.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from detection.models.attention import LatentNorm, LongDistanceAttention, MapActivation, PatchTokens, ResizeMode, land
from detection.models.base import Detector, InputSpec
from detection.models.xception import GATED_LAYERS, Gate, GuidedXception, grid_sizes

XCEPTION_MEAN = (0.5, 0.5, 0.5)  # timm legacy_xception and the augreg ViT-B/16 both normalise to [-1, 1]
XCEPTION_STD = (0.5, 0.5, 0.5)
VIT_WEIGHTS = "vit_base_patch16_224_augreg2"  # pretrained/manifest.yaml names
XCEPTION_WEIGHTS = "legacy_xception_imagenet"


class LongDistanceAttentionDetector(Detector):
    """Xception guided by spatial and temporal long-distance attention maps.

    Args:
        size: backbone input side (398: block1 98 = 7 x 14 and block2 49 = 7 x 7, so the 14x14 patch maps land on
            whole feature cells, paper Sec. VI-D).
        frames: n, frames per temporal input (the tested frame and the next n - 1; 3 by default, Sec. VI-C).
        vit: timm ViT name for both modules (``vit_base_patch16_224``, ViT-B/16 at 224 px).
        vit_args: extra timm arguments (tiny ViTs: ``img_size``, ``patch_size``, ``embed_dim``, ``num_heads``).
        vit_depth: transformer blocks run before the modules. 0 (default) is the paper's reading: Fig. 5 draws
            patch embedding + position embedding -> U -> template, Sec. VI-D loads the ViT's weights "partly", and
            Table VII's budget (spatial model 23.17 M parameters, 14.92 GFLOPs, i.e. Xception at 398 px plus
            ~2.4 M) leaves no room for ViT-B's 85 M-parameter blocks. 12 runs them all.
        per_block: module k reads block k's tokens (needs ``vit_depth == modules``) instead of the last tokens.
        modules: K long-distance attention modules per branch (12, Sec. IV-B).
        latent_dim: d, width of each latent space (not given in the paper).
        maps: m attention maps per branch (4, Table IX).
        latent_norm: non-linearity on ``Z U_k`` (see :class:`LongDistanceAttention`; ``layernorm`` default).
        activation: attention weights from combined activations (``sigmoid``: "confidence levels", default).
        temporal_input: ``frame_and_residuals`` (the frame and n - 1 residuals, 3n channels: Fig. 6 shows "the image
            of the tested video and its following motion residuals") or ``residuals`` (3 (n - 1) channels).
        spatial_layer: block whose output the spatial maps re-weight (``block1``: "shallow", 128 channels).
        temporal_layer: block whose output the temporal maps re-weight (``block2``: "mid-level", 256 channels).
        resize: how maps land on a feature grid: ``exact`` (whole cells, needs sizes that divide) or ``bilinear``.
        gate: ``multiply`` (``F * A``, the paper) or ``residual`` (``F * (1 + A)``).
        temporal: use the temporal branch (False: the paper's "spatial" model of Table VII).
        dropout: dropout before the linear head (the paper gives none).
        pretrained_vit: initialise both ViTs from the local ViT-B/16 file of ``pretrained/`` when a fit starts (the
            paper initialises the ViT from pretrained weights).
        pretrained_backbone: initialise Xception from the local ImageNet file (the paper trains it from random
            initialisation, Sec. V-A; ImageNet weights are the usual FaceForensics++ baseline).

    Forward: ``video [B, T, 3, H, W]`` RGB [0, 1], T >= n -> logits ``[B, 2]`` (index 1 = fake).
    """

    fixed_size = True  # the maps land on the feature grids of this input size
    explains_itself = True  # explain() returns the attention maps

    def __init__(
        self,
        size: int = 398,
        frames: int = 3,
        vit: str = "vit_base_patch16_224",
        vit_args: dict[str, Any] | None = None,
        vit_depth: int = 0,
        per_block: bool = False,
        modules: int = 12,
        latent_dim: int = 128,
        maps: int = 4,
        latent_norm: LatentNorm = "layernorm",
        activation: MapActivation = "sigmoid",
        temporal_input: str = "frame_and_residuals",
        spatial_layer: str = "block1",
        temporal_layer: str = "block2",
        resize: ResizeMode = "exact",
        gate: Gate = "multiply",
        temporal: bool = True,
        dropout: float = 0.0,
        pretrained_vit: bool = True,
        pretrained_backbone: bool = False,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        if frames < 2:
            raise ValueError(f"frames (n) must be at least 2 for the temporal residuals, not {frames}")
        if temporal_input not in ("frame_and_residuals", "residuals"):
            raise ValueError(f"temporal_input must be frame_and_residuals or residuals, not {temporal_input!r}")
        for name, layer in (("spatial_layer", spatial_layer), ("temporal_layer", temporal_layer)):
            if layer not in GATED_LAYERS:
                raise ValueError(f"{name} must be one of {', '.join(GATED_LAYERS)}, not {layer!r}")
        if per_block and vit_depth != modules:
            raise ValueError(f"per_block reads one ViT block per module: vit_depth ({vit_depth}) must equal modules")
        if resize not in ("exact", "bilinear"):
            raise ValueError(f"resize must be exact or bilinear, not {resize!r}")
        self.input_spec = InputSpec(size=size, margin=1.0, frames=frames, mean=XCEPTION_MEAN, std=XCEPTION_STD)
        self.n = frames
        self.backbone = GuidedXception(gate)
        self.spatial_tokens = PatchTokens(vit, 3, vit_depth, vit_args)
        self.spatial = LongDistanceAttention(self.spatial_tokens.dim, modules, latent_dim, maps, per_block,
                                             latent_norm, activation)  # fmt: skip
        if temporal:
            chans = 3 * frames if temporal_input == "frame_and_residuals" else 3 * (frames - 1)
            self.temporal_tokens = PatchTokens(vit, chans, vit_depth, vit_args)
            self.temporal = LongDistanceAttention(self.temporal_tokens.dim, modules, latent_dim, maps, per_block,
                                                  latent_norm, activation)  # fmt: skip
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(self.backbone.num_features, 2)
        self.grids = grid_sizes(size)
        if resize == "exact":  # refuse sizes whose maps cannot land on whole cells now, not in the first batch
            for layer, tokens in ((spatial_layer, self.spatial_tokens),) + (
                ((temporal_layer, self.temporal_tokens),) if temporal else ()
            ):
                land(torch.zeros(1, 1, *tokens.grid), (self.grids[layer],) * 2)

    # ------------------------------------------------------------------ pretrained weights
    def init_pretrained(self) -> None:
        from common.weights import find

        if self.hparams.pretrained_vit:
            file = str(find(VIT_WEIGHTS))
            self.spatial_tokens.load_pretrained(file)
            if self.hparams.temporal:
                self.temporal_tokens.load_pretrained(file)
        if self.hparams.pretrained_backbone:
            self.backbone.load_pretrained(str(find(XCEPTION_WEIGHTS)))

    # ------------------------------------------------------------------ inputs of the two branches
    def _frames(self, video: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``video [B, T, 3, H, W]`` -> (normalised tested frames ``[B*T', 3, S, S]``, temporal stacks
        ``[B*T', 3n or 3(n-1), S, S]``), ``T' = T - n + 1``."""
        b, t = video.shape[:2]
        if t < self.n:
            raise ValueError(f"clips of {t} frames are too short: this detector reads {self.n} consecutive frames")
        x = self.prepare(video).unflatten(0, (b, t))  # [B, T, 3, S, S]
        tested = t - self.n + 1
        windows = torch.stack([x[:, i : i + self.n] for i in range(tested)], dim=1)  # [B, T', n, 3, S, S]
        residuals = windows[:, :, 1:] - windows[:, :, :-1]  # r^t = I^{t+1} - I^t (Eq. 1)
        parts = [windows[:, :, :1], residuals] if self.hparams.temporal_input == "frame_and_residuals" else [residuals]
        stack = torch.cat(parts, dim=2).flatten(2, 3).flatten(0, 1)
        return windows[:, :, 0].flatten(0, 1), stack

    def _small(self, x: torch.Tensor, tokens: PatchTokens) -> torch.Tensor:
        if x.shape[-1] == tokens.img_size:
            return x
        return F.interpolate(x.float(), size=(tokens.img_size,) * 2, mode="bilinear", antialias=True,
                             align_corners=False).to(x.dtype)  # fmt: skip

    def attention(self, video: torch.Tensor) -> dict[str, torch.Tensor]:
        """``{"spatial": [B*T', m, g, g], "temporal": ...}``: the attention maps of each tested frame."""
        frame, stack = self._frames(video)
        return self._attention(frame, stack)

    def _attention(self, frame: torch.Tensor, stack: torch.Tensor) -> dict[str, torch.Tensor]:
        frame = frame.contiguous()
        out = {"spatial": self.spatial(self.spatial_tokens(self._small(frame, self.spatial_tokens)))[0]}
        if self.hparams.temporal:
            out["temporal"] = self.temporal(
                self.temporal_tokens(self._small(stack.contiguous(), self.temporal_tokens))
            )[0]
        return out

    # ------------------------------------------------------------------ the detector interface
    def scored_frames(self, frames: int) -> int:
        return max(0, frames - self.n + 1)

    def forward_features(self, video: torch.Tensor) -> torch.Tensor:
        """``video [B, T, 3, H, W]`` -> features of the tested frames ``[B*T', 2048, h, w]``."""
        frame, stack = self._frames(video)
        maps = self._attention(frame, stack)
        mode = self.hparams.resize
        guides = {
            self.hparams.spatial_layer: land(maps["spatial"], (self.grids[self.hparams.spatial_layer],) * 2, mode)
        }
        if "temporal" in maps:
            layer = self.hparams.temporal_layer
            temporal = land(maps["temporal"], (self.grids[layer],) * 2, mode)
            guides[layer] = guides[layer] * temporal if layer in guides else temporal
        if self.is_channels_last():
            frame = frame.contiguous(memory_format=torch.channels_last)
        return self.backbone(frame, guides)

    def forward_head(self, features: torch.Tensor, b: int, t: int) -> torch.Tensor:
        logits = self.fc(self.dropout(features.mean(dim=(2, 3))))  # per tested frame [B*T', 2]
        return logits.view(b, -1, 2).mean(dim=1)

    def feature_layer(self) -> nn.Module:
        return self.backbone

    def explain(self, clip: torch.Tensor) -> dict[str, np.ndarray]:
        """The attention maps of each tested frame of ``clip [1, T, 3, S, S]``, averaged over the m maps and scaled
        to ``[T', S, S]`` in [0, 1] per frame: ``{"spatial attention": ..., "temporal attention": ...}``."""
        with torch.inference_mode():
            maps = self.attention(clip)
        size = clip.shape[-1]
        out = {}
        for name, m in maps.items():
            heat = F.interpolate(m.float().mean(1, keepdim=True), size=(size, size), mode="nearest")[:, 0]
            lo = heat.flatten(1).min(1).values.view(-1, 1, 1)
            hi = heat.flatten(1).max(1).values.view(-1, 1, 1)
            out[f"{name} attention"] = ((heat - lo) / (hi - lo).clamp_min(1e-6)).cpu().numpy()
        return out

    def describe(self) -> dict[str, str]:
        branches = "spatial + temporal" if self.hparams.temporal else "spatial"
        return {"name": f"Long-distance attention ({branches}, Xception at {self.hparams.size} px)",
                "weights": "trained with forgelab", "licence": "yours"}  # fmt: skip
