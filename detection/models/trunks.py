"""Frame encoders: a torchvision or timm CNN without its pooling and classifier, plus its width."""

from __future__ import annotations

from torch import nn

from common.errors import CheckpointError
from common.weights import fit_state_dict, load_pretrained_state

# torchvision trunks whose ImageNet weights the pretrained/ manifest knows
MANIFEST_NAMES = {"resnext50_32x4d": "resnext50_32x4d_imagenet"}
# torchvision ResNet keys conv1, bn1, layer1..4 -> children 0, 1, 4..7 of the trunk Sequential
TORCHVISION_RESNET_CHILDREN = {"conv1": "0", "bn1": "1", "layer1": "4", "layer2": "5", "layer3": "6", "layer4": "7"}


def torchvision_trunk(name: str) -> tuple[nn.Sequential, int]:
    """``torchvision.models.<name>`` minus its last two children (avgpool, fc) and its feature width."""
    import torchvision

    try:
        net = torchvision.models.get_model(name, weights=None)
    except ValueError:
        raise CheckpointError(name, "unknown torchvision model name") from None
    fc = getattr(net, "fc", None)
    if not isinstance(fc, nn.Linear):
        raise CheckpointError(name, "only ResNet-style torchvision trunks (with .fc) are supported")
    return nn.Sequential(*list(net.children())[:-2]), fc.in_features


def load_imagenet(trunk: nn.Module, name: str) -> None:
    """Load torchvision ImageNet weights for ``name`` from the local file the manifest names."""
    key = MANIFEST_NAMES.get(name)
    if key is None:
        raise CheckpointError(name, f"no local ImageNet weights are declared for {name}; use pretrained: false")
    state = load_pretrained_state(key, rename=TORCHVISION_RESNET_CHILDREN)
    fit_state_dict(trunk, state, key, f"the {name} trunk")


def build_trunk(name: str) -> tuple[nn.Module, int]:
    """A trunk by name (random weights): a torchvision name (``resnext50_32x4d``) or ``timm:<name>``."""
    if name.startswith("timm:"):
        import timm

        net = timm.create_model(name[len("timm:") :], pretrained=False, num_classes=0, global_pool="")
        return net, int(net.num_features)
    return torchvision_trunk(name)
