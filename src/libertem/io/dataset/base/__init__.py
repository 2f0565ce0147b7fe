"""Interfaces and shared machinery of datasets: partitions, tiles, tiling schemes, I/O.

The names LiberTEM documents under ``libertem.io.dataset.base`` are here, built on
our machinery: frame sources and :func:`iter_tiles` (tiles.py), file layouts
(layout.py) read with memory maps or buffered/direct reads (filesource.py), and the tiling
rules of the tiling negotiation (tiling.py; the negotiation with the UDFs,
:class:`Negotiator`, is in :mod:`libertem.udf.negotiation`).
"""

from libertem.common.exceptions import DataSetException
from libertem.io.dataset.base.backend import (
    BufferedBackend,
    DirectBackend,
    IOBackend,
    MMapBackend,
    as_io_backend,
    check_io_backend,
)
from libertem.io.dataset.base.backend_impl import (
    BufferedBackendImpl,
    DirectBackendImpl,
    IOBackendImpl,
    MMapBackendImpl,
    MMapFile,
    MMapFileBase,
)
from libertem.io.dataset.base.basepartition import BasePartition
from libertem.io.dataset.base.checks import check_sync_offset, dataset_shape, resolve_shapes
from libertem.io.dataset.base.coordinates import get_coordinates, roi_to_nd_indices
from libertem.io.dataset.base.dataset import DataSet, WritableDataSet
from libertem.io.dataset.base.decoders import (
    Decoder,
    DtypeConversionDecoder,
    decode_swap_2,
    decode_swap_4,
)
from libertem.io.dataset.base.file import File, OffsetsSizes
from libertem.io.dataset.base.fileset import FileSet, FileTree
from libertem.io.dataset.base.filesource import FileFrameSource, LayoutPartition
from libertem.io.dataset.base.layout import FileSpan, FrameLayout, single_file_layout
from libertem.io.dataset.base.meta import DataSetMeta
from libertem.io.dataset.base.partition import ArrayPartition, Partition
from libertem.io.dataset.base.readranges import default_get_read_ranges, make_get_read_ranges
from libertem.io.dataset.base.structure import PartitionStructure, WritablePartition
from libertem.io.dataset.base.tiles import DataTile, FrameSource, iter_tiles
from libertem.io.dataset.base.tiling import TilingRequest, TilingScheme, make_tiling_scheme

# LiberTEM's (private) name of roi_to_nd_indices
_roi_to_nd_indices = roi_to_nd_indices

__all__ = [
    "ArrayPartition",
    "BasePartition",
    "BufferedBackend",
    "BufferedBackendImpl",
    "DataSet",
    "DataSetException",
    "DataSetMeta",
    "DataTile",
    "Decoder",
    "DirectBackend",
    "DirectBackendImpl",
    "DtypeConversionDecoder",
    "File",
    "FileFrameSource",
    "FileSet",
    "FileSpan",
    "FileTree",
    "FrameLayout",
    "FrameSource",
    "IOBackend",
    "IOBackendImpl",
    "LayoutPartition",
    "MMapBackend",
    "MMapBackendImpl",
    "MMapFile",
    "MMapFileBase",
    "OffsetsSizes",
    "Partition",
    "PartitionStructure",
    "TilingRequest",
    "TilingScheme",
    "WritableDataSet",
    "WritablePartition",
    "_roi_to_nd_indices",
    "as_io_backend",
    "check_io_backend",
    "check_sync_offset",
    "dataset_shape",
    "decode_swap_2",
    "decode_swap_4",
    "default_get_read_ranges",
    "get_coordinates",
    "iter_tiles",
    "make_get_read_ranges",
    "make_tiling_scheme",
    "resolve_shapes",
    "roi_to_nd_indices",
    "single_file_layout",
]


def __getattr__(name: str):
    # LiberTEM's name here that belongs to the UDF layer
    if name == "Negotiator":
        from libertem.udf.negotiation import Negotiator

        return Negotiator
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
