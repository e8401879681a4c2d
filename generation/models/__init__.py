"""Networks of motion-supervised co-part segmentation (Siarohin, Roy et al., ICPR 2020).

Module and parameter names mirror the published implementation so its checkpoints load 1:1.
"""

from generation.models.reconstruction import ReconstructionModule
from generation.models.segmentation import SegmentationModule

__all__ = ["ReconstructionModule", "SegmentationModule"]
