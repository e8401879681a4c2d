"""Detector networks (plain ``nn.Module``\\ s behind one interface, :class:`Detector`)."""

from detection.models.base import Detector, InputSpec, build_detector, detector_classes
from detection.models.legacy import LegacyResNeXtLSTM, PublishedResNeXtLSTM
from detection.models.mesonet import MesoNet
from detection.models.resnext_lstm import ResNeXtLSTM

__all__ = [
    "Detector",
    "InputSpec",
    "LegacyResNeXtLSTM",
    "MesoNet",
    "PublishedResNeXtLSTM",
    "ResNeXtLSTM",
    "build_detector",
    "detector_classes",
]
