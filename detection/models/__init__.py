"""Detector networks (plain ``nn.Module``s)."""

from detection.models.legacy import LegacyResNeXtLSTM
from detection.models.resnext_lstm import ResNeXtLSTM

__all__ = ["LegacyResNeXtLSTM", "ResNeXtLSTM"]
