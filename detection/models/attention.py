"""Long-distance attention (Lu et al., "Detection of Deepfake Videos Using Long-Distance Attention", IEEE TNNLS
2023, Sec. IV-B, Fig. 5): patch tokens of a ViT -> K learnable (transformation, template) pairs -> K patch
activation maps -> a 1x1 combination into m attention maps.

* :class:`PatchTokens`: a timm ViT's patch embedding + learnable position embedding (+ optionally its first
  transformer blocks), returning the patch tokens as grids ``[N, D, g, g]``.
* :class:`LongDistanceAttention`: for module k, ``X_k = norm(Z U_k)`` (Fig. 5 step 2), ``a_k(p) = <X_k(p), t_k>``
  (step 3, the template "consults" each representation), then ``A = act(W [a_1 .. a_K])`` with a 1x1 conv W.
* :func:`land`: attention maps ``[N, m, g, g]`` resized onto a feature grid ``[h, w]``.
"""

from __future__ import annotations

import math
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import nn

MapActivation = Literal["sigmoid", "softmax", "elu1", "relu"]
LatentNorm = Literal["layernorm", "gelu", "none"]


class PatchTokens(nn.Module):
    """Patch tokens of a timm Vision Transformer.

    Args:
        vit: timm model name (``vit_base_patch16_224``: ViT-B/16 at 224 px, the paper's).
        in_chans: input channels (3 for a frame; 9 for a frame and two residuals; timm adapts pretrained RGB
            patch-embedding weights by tiling them).
        depth: transformer blocks run on the tokens (0 = patch + position embedding only).
        vit_args: extra timm constructor arguments (a tiny ViT for tests: ``img_size``, ``patch_size``,
            ``embed_dim``, ``num_heads``).

    Forward: ``x [N, in_chans, s, s]`` -> list of token grids ``[N, D, g, g]``: the embedding's output when
    ``depth`` is 0, else every block's output (``g = s / patch``).
    """

    def __init__(self, vit: str = "vit_base_patch16_224", in_chans: int = 3, depth: int = 0,
                 vit_args: dict[str, Any] | None = None) -> None:  # fmt: skip
        super().__init__()
        import timm

        # without blocks a class token would reach nothing: the tokens are the patches only
        args = {"num_classes": 0, "global_pool": "", "class_token": depth > 0, **(vit_args or {}), "in_chans": in_chans,
                "depth": depth}  # fmt: skip
        self.vit = timm.create_model(vit, pretrained=False, **args)
        self.vit.norm = nn.Identity()  # tokens are read before the final norm (also for depth 0)
        self.name, self.args = vit, args
        self.grid = tuple(self.vit.patch_embed.grid_size)
        self.img_size = int(self.vit.patch_embed.img_size[0])
        self.dim = int(self.vit.embed_dim)

    def load_pretrained(self, file: str) -> None:
        """Initialise from a local timm weight file (``pretrained_cfg_overlay=dict(file=...)``): the patch and position
        embeddings and the first ``depth`` blocks; the blocks this module does not run are dropped."""
        import timm

        args = {k: v for k, v in self.args.items() if k not in ("depth", "class_token")}
        ref = timm.create_model(self.name, pretrained=True, pretrained_cfg_overlay={"file": file}, **args)
        own = self.vit.state_dict()
        state = {k: v for k, v in ref.state_dict().items() if k in own}
        if "pos_embed" in state and state["pos_embed"].shape[1] == own["pos_embed"].shape[1] + 1:
            state["pos_embed"] = state["pos_embed"][:, 1:]  # the class token's position is not used
        missing = [k for k in own if k not in state]
        if missing:
            from common.errors import CheckpointError

            raise CheckpointError(file, f"the ViT weights lack {missing[:3]}")
        self.vit.load_state_dict(state)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        vit = self.vit
        tokens = vit.norm_pre(vit.patch_drop(vit._pos_embed(vit.patch_embed(x))))
        outs = []
        for block in vit.blocks:
            tokens = block(tokens)
            outs.append(tokens)
        n, g = x.shape[0], self.grid
        grids = [t[:, vit.num_prefix_tokens :] for t in (outs or [tokens])]
        return [t.transpose(1, 2).reshape(n, self.dim, *g) for t in grids]


class LongDistanceAttention(nn.Module):
    """K long-distance attention modules and their 1x1 combination into m attention maps (paper Sec. IV-B).

    Args:
        dim: token width D.
        modules: K (12 in the paper).
        latent_dim: width d of each latent forgery-property space (``U_k`` is ``D x d``; the paper gives no d).
        maps: m final attention maps (4 by default, paper Table IX).
        per_input: module k reads the k-th of K token grids (one per ViT block) instead of all reading one grid.
        latent_norm: the non-linearity on ``Z U_k``. Without one, ``<Z U_k, t_k> = Z (U_k t_k)``: U_k would collapse
            into a single 1x1 convolution and add nothing; the paper (Fig. 5) draws the representations X as their
            own space, so ``layernorm`` (default), ``gelu`` or ``none`` (the literal linear reading).
        activation: how combined activations become non-negative attention weights. The paper calls them
            "confidence levels" of patches, hence ``sigmoid`` (default); ``softmax`` over patches (times the
            number of patches, so the mean weight is 1), ``elu1`` (ELU + 1, as MAT) or ``relu``.

    Forward: token grids ``[N, D, g, g]`` (one, or K with ``per_input``) -> ``(maps [N, m, g, g],
    activations [N, K, g, g])``.
    """

    def __init__(self, dim: int, modules: int = 12, latent_dim: int = 128, maps: int = 4, per_input: bool = False,
                 latent_norm: LatentNorm = "layernorm", activation: MapActivation = "sigmoid") -> None:  # fmt: skip
        super().__init__()
        if latent_norm not in ("layernorm", "gelu", "none"):
            raise ValueError(f"latent_norm must be layernorm, gelu or none, not {latent_norm!r}")
        if activation not in ("sigmoid", "softmax", "elu1", "relu"):
            raise ValueError(f"activation must be sigmoid, softmax, elu1 or relu, not {activation!r}")
        self.modules_k, self.latent_dim, self.per_input = modules, latent_dim, per_input
        self.transform = nn.Parameter(torch.empty(modules, dim, latent_dim))  # U_k
        self.templates = nn.Parameter(torch.empty(modules, latent_dim))  # t_k
        self.norm = nn.LayerNorm(latent_dim) if latent_norm == "layernorm" else None
        self.gelu = latent_norm == "gelu"
        self.combine = nn.Conv2d(modules, maps, 1)
        self.activation = activation
        nn.init.trunc_normal_(self.transform, std=1 / math.sqrt(dim))
        nn.init.trunc_normal_(self.templates, std=1 / math.sqrt(latent_dim))

    def forward(self, grids: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        if self.per_input and len(grids) != self.modules_k:
            raise ValueError(f"per_input needs {self.modules_k} token grids (one per module), got {len(grids)}")
        n, _, h, w = grids[-1].shape
        if self.per_input:
            z = torch.stack([g.flatten(2).transpose(1, 2) for g in grids], dim=1)  # [N, K, P, D]
            x = torch.einsum("nkpd,kde->nkpe", z, self.transform)
        else:
            x = torch.einsum("npd,kde->nkpe", grids[-1].flatten(2).transpose(1, 2), self.transform)  # X_k: [N, K, P, d]
        if self.norm is not None:
            x = self.norm(x)
        elif self.gelu:
            x = F.gelu(x)
        act = torch.einsum("nkpe,ke->nkp", x, self.templates) / math.sqrt(self.latent_dim)  # a_k(p)
        act = act.view(n, self.modules_k, h, w)
        combined = self.combine(act)
        if self.activation == "sigmoid":
            maps = combined.sigmoid()
        elif self.activation == "softmax":
            maps = combined.flatten(2).softmax(-1).view_as(combined) * (h * w)
        elif self.activation == "elu1":
            maps = F.elu(combined) + 1
        else:
            maps = F.relu(combined)
        return maps, act


ResizeMode = Literal["exact", "bilinear"]


def pool_factor(grid: int, side: int) -> int:
    """The smallest p with ``grid % p == 0`` and ``side % (grid / p) == 0`` (0 when none): pooling a ``grid``-sized
    map by p and repeating each cell ``side * p / grid`` times lands it exactly on a ``side``-sized feature grid.
    Pooling to a single cell (a global average, no longer a map) does not count."""
    for p in range(1, max(grid, 2)):
        if grid % p == 0 and side % (grid // p) == 0:
            return p
    return 0


def land(maps: torch.Tensor, size: tuple[int, int], mode: ResizeMode = "exact") -> torch.Tensor:
    """Attention maps ``[N, m, g, g]`` -> ``[N, m, h, w]`` on a feature grid.

    ``exact``: each patch covers a whole block of feature cells (nearest repetition by an integer factor, after
    average pooling by the smallest factor that makes it integer, e.g. 14 -> 7 -> 49); the paper picks 398 px so
    that this holds (Sec. VI-D). ``bilinear``: smooth resizing for any size.
    """
    h, w = size
    if mode == "bilinear":
        return F.interpolate(maps, size=size, mode="bilinear", align_corners=False)
    g_h, g_w = maps.shape[-2:]
    p_h, p_w = pool_factor(g_h, h), pool_factor(g_w, w)
    if not p_h or not p_w:
        raise ValueError(f"a {g_h}x{g_w} attention grid does not land exactly on a {h}x{w} feature grid; "
                         f"choose sizes that divide, or resize: bilinear")  # fmt: skip
    if p_h > 1 or p_w > 1:
        maps = F.avg_pool2d(maps, (p_h, p_w))
    return maps.repeat_interleave(h // maps.shape[-2], dim=-2).repeat_interleave(w // maps.shape[-1], dim=-1)
