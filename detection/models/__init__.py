"""Detector networks (plain ``nn.Module``\\ s behind one interface, :class:`Detector`)."""

from detection.models.base import Detector, InputSpec, build_detector, detector_classes
from detection.models.conv_traces import ConvTraceDetector
from detection.models.legacy import LegacyResNeXtLSTM, PublishedResNeXtLSTM
from detection.models.long_distance_attention import LongDistanceAttentionDetector
from detection.models.mesonet import MesoNet
from detection.models.multi_cue import MultiCueDetector
from detection.models.resnext_lstm import ResNeXtLSTM
from detection.models.transfer import MobileNetTransfer

__all__ = [
    "ConvTraceDetector",
    "Detector",
    "InputSpec",
    "LegacyResNeXtLSTM",
    "LongDistanceAttentionDetector",
    "MesoNet",
    "MobileNetTransfer",
    "MultiCueDetector",
    "PublishedResNeXtLSTM",
    "ResNeXtLSTM",
    "build_detector",
    "detector_classes",
]
