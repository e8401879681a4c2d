"""MesoNet (Afchar, Nozick, Yamagishi, Echizen, "MesoNet: a Compact Facial Video Forgery Detection Network",
WIFS 2018): Meso4 and MesoInception4 as plain ``nn.Module``s, loadable from the authors' Keras weights.

Both networks see one 256x256 RGB face in [0, 1] (no normalisation). Every block is conv (``same``
padding, ReLU inside the conv) -> BatchNorm (Keras epsilon 1e-3) -> max-pool; the head flattens the
8x8x16 map **in NHWC order** (as Keras did), then Dense 1024->16, LeakyReLU(0.1), Dense 16->1 and a
sigmoid that scores class **real** (the authors' ``flow_from_directory`` labels: df = 0, real = 1).

As a :class:`~detection.models.base.Detector`, a clip's p(fake) is the mean of its frames'
``1 - sigmoid(z)`` (the authors aggregate frames by averaging), turned into two-class logits.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from common.errors import CheckpointError
from common.weights import fit_state_dict, numbered_groups, read_h5, weight_file
from detection.models.base import Detector, InputSpec, logits_from_p_fake

KERAS_BN_EPS = 1e-3
# The authors' video pipeline (pipeline.py) crops a square of side 1.3 * 2.2 * max(eye distance, eye-mouth
# distance) around the nose, 1.14 times the MTCNN box on the sample video (median; 1.10-1.19), and resizes it
# to 256 with a cubic spline (scipy zoom): bicubic here.
MESONET_SPEC = InputSpec(size=256, margin=1.14, frames=20, stride=1, resize="bicubic")


def conv(cin: int, cout: int, k: int, dilation: int = 1) -> nn.Conv2d:
    """Keras ``Conv2D(padding="same")`` with stride 1 and an odd kernel: symmetric padding."""
    return nn.Conv2d(cin, cout, k, padding=dilation * (k - 1) // 2, dilation=dilation)


class InceptionModule(nn.Module):
    """MesoInception's module I(a, b, c, d): a 1x1 branch and three 1x1 -> 3x3 branches with dilation 1, 2, 3,
    each conv followed by ReLU, concatenated in branch order (``[B, a+b+c+d, H, W]``)."""

    def __init__(self, cin: int, a: int, b: int, c: int, d: int) -> None:
        super().__init__()
        self.b1 = conv(cin, a, 1)
        self.b2_1, self.b2_2 = conv(cin, b, 1), conv(b, b, 3, 1)
        self.b3_1, self.b3_2 = conv(cin, c, 1), conv(c, c, 3, 2)
        self.b4_1, self.b4_2 = conv(cin, d, 1), conv(d, d, 3, 3)

    def keras_order(self) -> list[nn.Conv2d]:
        """The convs in the order the authors' code created them (the h5 groups' numeric suffixes)."""
        return [self.b1, self.b2_1, self.b2_2, self.b3_1, self.b3_2, self.b4_1, self.b4_2]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        r = F.relu
        return torch.cat([
            r(self.b1(x)), r(self.b2_2(r(self.b2_1(x)))), r(self.b3_2(r(self.b3_1(x)))), r(self.b4_2(r(self.b4_1(x)))),
        ], dim=1)  # fmt: skip


class MesoNet(Detector):
    """Meso4 or MesoInception4.

    Args:
        variant: ``"meso4"`` or ``"inception4"``.
        weights: the authors' Keras weights, loaded at construction: a ``pretrained/manifest.yaml`` name
            (``mesonet_meso4_df``, ``mesonet_inception4_df``, ``..._f2f``) or a ``.h5`` path; ``None`` leaves
            the random initialisation (training from scratch, tests).
        frames: frames per scored clip.
        margin: face crop side / face box side (the authors' crop rule, see ``MESONET_SPEC``).

    Forward: ``video [B, T, 3, H, W]`` RGB [0, 1] -> logits ``[B, 2]``; :meth:`real_logit` gives the
    original per-frame output ``z`` (``sigmoid(z)`` = p(real)).
    """

    fixed_size = True

    def __init__(
        self,
        variant: Literal["meso4", "inception4"] = "meso4",
        weights: str | None = None,
        frames: int = MESONET_SPEC.frames,
        margin: float = MESONET_SPEC.margin,
    ) -> None:
        super().__init__()
        if variant not in ("meso4", "inception4"):
            raise ValueError(f"variant must be meso4 or inception4, not {variant!r}")
        self.save_hyperparameters()
        self.variant = variant
        self.weights = weights
        self.input_spec = MESONET_SPEC.replace(frames=frames, margin=margin)
        if variant == "meso4":
            self.block1 = conv(3, 8, 3)
            self.block2 = conv(8, 8, 5)
            widths = (8, 8)
        else:
            self.block1 = InceptionModule(3, 1, 4, 4, 2)
            self.block2 = InceptionModule(11, 2, 4, 4, 2)
            widths = (11, 12)
        self.block3 = conv(widths[1], 16, 5)
        self.block4 = conv(16, 16, 5)
        self.bn = nn.ModuleList(nn.BatchNorm2d(c, eps=KERAS_BN_EPS) for c in (*widths, 16, 16))
        self.pools = (2, 2, 2, 4)
        self.dense1 = nn.Linear(1024, 16)
        self.dense2 = nn.Linear(16, 1)
        self.dropout = nn.Dropout(0.5)
        if weights is not None:
            load_keras_weights(self, weight_file(weights))

    def keras_convs(self) -> list[nn.Conv2d]:
        """Every conv in the authors' creation order."""
        blocks: Sequence[nn.Module] = (self.block1, self.block2)
        early = [m for b in blocks for m in (b.keras_order() if isinstance(b, InceptionModule) else [b])]
        return [*early, self.block3, self.block4]

    def blocks(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Outputs of the four blocks (after BatchNorm and pooling), NCHW: ``[N, C, 128|64|32|8, ...]``."""
        outs = []
        for block, bn, pool in zip((self.block1, self.block2, self.block3, self.block4), self.bn, self.pools):
            y = block(x)
            if not isinstance(block, InceptionModule):
                y = F.relu(y)
            x = F.max_pool2d(bn(y), pool)
            outs.append(x)
        return outs

    def real_logit(self, frames: torch.Tensor) -> torch.Tensor:
        """The original output before its sigmoid: ``frames [N, 3, 256, 256]`` RGB [0, 1] -> ``z [N]``."""
        return self.head_logit(self.blocks(frames)[-1])

    def head_logit(self, block4: torch.Tensor) -> torch.Tensor:
        """Block 4 ``[N, 16, 8, 8]`` -> ``z [N]`` (flattened NHWC, as Keras)."""
        flat = self.dropout(block4.permute(0, 2, 3, 1).flatten(1))
        hidden = self.dropout(F.leaky_relu(self.dense1(flat), 0.1))
        return self.dense2(hidden)[:, 0]

    def forward_features(self, video: torch.Tensor) -> torch.Tensor:
        return self.blocks(self.prepare(video))[-1]

    def forward_head(self, features: torch.Tensor, b: int, t: int) -> torch.Tensor:
        p_fake_frames = torch.sigmoid(-self.head_logit(features)).view(b, t)
        return logits_from_p_fake(p_fake_frames.mean(dim=1))

    def feature_layer(self) -> nn.Module:
        return self.block4

    def to_channels_last(self) -> MesoNet:
        self.to(memory_format=torch.channels_last)
        return self

    def describe(self) -> dict[str, str]:
        name = "Meso4" if self.variant == "meso4" else "MesoInception4"
        if self.weights is None:
            return {"name": name, "weights": "random / trained here"}
        return {"name": name, "weights": Path(self.weights).name,
                "source": "Afchar et al., WIFS 2018 (github.com/DariusAf/MesoNet), authors' Keras weights",
                "licence": "Apache-2.0"}  # fmt: skip


EXPECTED_H5 = "a MesoNet Keras weight file (Meso4 or MesoInception4, e.g. pretrained/mesonet/Meso4_DF.h5)"


def keras_variant(path: str | Path) -> Literal["meso4", "inception4"]:
    """Which MesoNet a Keras weight file holds: 4 conv groups = Meso4, 16 = MesoInception4."""
    convs = numbered_groups(read_h5(path, EXPECTED_H5), "conv2d")
    if len(convs) == 4:
        return "meso4"
    if len(convs) == 16:
        return "inception4"
    raise CheckpointError(path, f"has {len(convs)} conv layers; expected {EXPECTED_H5} (4 or 16 conv layers)")


def load_keras_weights(model: MesoNet, path: str | Path) -> None:
    """Copy the authors' Keras weights into ``model``, mapping layers **by group name** (the numeric suffix is
    the authors' creation order), never by the file's topological order (which swaps MesoInception's
    dilation-1 and dilation-2 branches). Conv kernels HWIO -> OIHW, Dense kernels transposed, BatchNorm
    gamma/beta/moving statistics -> weight/bias/running statistics."""
    layers = read_h5(path, EXPECTED_H5)
    convs, bns = numbered_groups(layers, "conv2d"), numbered_groups(layers, "batch_normalization")
    denses = numbered_groups(layers, "dense")
    ours = model.keras_convs()
    if (len(convs), len(bns), len(denses)) != (len(ours), 4, 2):
        raise CheckpointError(path, f"has {len(convs)} conv, {len(bns)} batch-norm and {len(denses)} dense layers; "
                              f"{model.variant} needs {len(ours)}, 4 and 2: expected {EXPECTED_H5}")  # fmt: skip

    def take(group: str, var: str, shape: tuple[int, ...], transform) -> torch.Tensor:
        if var not in layers[group]:
            raise CheckpointError(path, f"layer {group} has no {var!r} array; expected {EXPECTED_H5}")
        value = torch.from_numpy(transform(np.asarray(layers[group][var], np.float32)).copy())
        if tuple(value.shape) != shape:
            raise CheckpointError(path, f"{group}/{var} has shape {tuple(value.shape)}, expected {shape} "
                                  f"({model.variant}); expected {EXPECTED_H5}")  # fmt: skip
        return value

    def same(a: np.ndarray) -> np.ndarray:
        return a

    state: dict[str, torch.Tensor] = {}
    names = {id(m): n for n, m in model.named_modules()}
    with torch.no_grad():
        for group, module in zip(convs, ours):
            n = names[id(module)]
            state[f"{n}.weight"] = take(group, "kernel", tuple(module.weight.shape), lambda a: a.transpose(3, 2, 0, 1))
            state[f"{n}.bias"] = take(group, "bias", tuple(module.bias.shape), same)
        for i, group in enumerate(bns):
            c = (model.bn[i].num_features,)
            for ours_name, theirs in (("weight", "gamma"), ("bias", "beta"), ("running_mean", "moving_mean"),
                                      ("running_var", "moving_variance")):  # fmt: skip
                state[f"bn.{i}.{ours_name}"] = take(group, theirs, c, same)
        for group, dense in zip(denses, (model.dense1, model.dense2)):
            n = names[id(dense)]
            state[f"{n}.weight"] = take(group, "kernel", tuple(dense.weight.shape), lambda a: a.T)
            state[f"{n}.bias"] = take(group, "bias", tuple(dense.bias.shape), same)
    fit_state_dict(model, state, path, f"{model.variant} (Keras weights)",
                   allow_missing=lambda k: k.endswith("num_batches_tracked"))  # fmt: skip


def load_mesonet(path: str | Path) -> MesoNet:
    """A MesoNet built for (and loaded from) the authors' ``.h5`` file; the variant is read from the file."""
    return MesoNet(keras_variant(path), weights=str(path)).eval()
