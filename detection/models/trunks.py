"""Frame encoders: a torchvision or timm CNN without its pooling and classifier, plus its width."""

from __future__ import annotations

import torch
from torch import nn

from common.errors import CheckpointError

# torchvision trunks whose ImageNet weights the pretrained/ manifest knows
MANIFEST_NAMES = {"resnext50_32x4d": "resnext50_32x4d_imagenet"}


def torchvision_trunk(name: str) -> tuple[nn.Sequential, int]:
    """``torchvision.models.<name>`` minus its last two children (avgpool, fc) and its feature width."""
    import torchvision

    try:
        net = torchvision.models.get_model(name, weights=None)
    except ValueError:
        raise CheckpointError(name, "unknown torchvision model name") from None
    children = list(net.children())[:-2]
    width = net.fc.in_features if hasattr(net, "fc") else None
    if width is None:
        raise CheckpointError(name, "only ResNet-style torchvision trunks (with .fc) are supported")
    return nn.Sequential(*children), width


def load_imagenet(trunk: nn.Sequential, name: str) -> None:
    """Load torchvision ImageNet weights for ``name`` from the local file the manifest names."""
    import pretrained

    key = MANIFEST_NAMES.get(name)
    if key is None:
        raise CheckpointError(name, f"no local ImageNet weights are declared for {name}; use pretrained: false")
    path = pretrained.find(key)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise CheckpointError(path, f"not a readable weight file ({type(exc).__name__})") from None
    names = [n for n, _ in trunk.named_children()]
    assert names == [str(i) for i in range(len(names))]
    # torchvision keys are conv1, bn1, layer1..4 -> children 0, 1, 4..7 of the Sequential
    mapping = {"conv1": "0", "bn1": "1", "layer1": "4", "layer2": "5", "layer3": "6", "layer4": "7"}
    renamed = {}
    for k, v in state.items():
        head, _, rest = k.partition(".")
        if head in mapping:
            renamed[f"{mapping[head]}.{rest}"] = v
    missing, unexpected = trunk.load_state_dict(renamed, strict=False)
    if missing:
        raise CheckpointError(path, f"does not fit {name}: missing {missing[:3]}")


def build_trunk(name: str, pretrained: bool) -> tuple[nn.Module, int]:
    """A trunk by name: a torchvision name (``resnext50_32x4d``) or ``timm:<name>`` (``timm:resnet18``)."""
    if name.startswith("timm:"):
        import timm

        if pretrained:
            raise CheckpointError(name, "timm trunks are built from scratch here (no download); use pretrained: false")
        net = timm.create_model(name[len("timm:") :], pretrained=False, num_classes=0, global_pool="")
        return net, int(net.num_features)
    trunk, width = torchvision_trunk(name)
    if pretrained:
        load_imagenet(trunk, name)
    return trunk, width
