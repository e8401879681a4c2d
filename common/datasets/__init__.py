"""Dataset indexes: read the layouts users already have on disk, in place, into :class:`VideoRecord`s."""

from common.datasets.celebdf import CelebDFIndex
from common.datasets.ffpp import FaceForensicsIndex
from common.datasets.generic import CsvIndex, FolderIndex
from common.datasets.records import DatasetIndex, VideoRecord, group_split, index_hash
from common.datasets.single import SingleVideoIndex
from common.datasets.vox import VoxIndex

__all__ = [
    "CelebDFIndex",
    "CsvIndex",
    "DatasetIndex",
    "FaceForensicsIndex",
    "FolderIndex",
    "SingleVideoIndex",
    "VideoRecord",
    "VoxIndex",
    "group_split",
    "index_hash",
]
