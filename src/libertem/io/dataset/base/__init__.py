"""Interfaces and shared machinery of datasets: partitions, tiles, tiling schemes."""

from libertem.io.dataset.base.dataset import (
    DataSet,
    check_sync_offset,
    dataset_shape,
    resolve_shapes,
)
from libertem.io.dataset.base.filesource import (
    FileFrameSource,
    FileSpan,
    FrameLayout,
    LayoutPartition,
    check_io_backend,
    single_file_layout,
)
from libertem.io.dataset.base.partition import ArrayPartition, Partition
from libertem.io.dataset.base.tiles import DataTile, FrameSource, iter_tiles
from libertem.io.dataset.base.tiling import TilingRequest, TilingScheme, make_tiling_scheme

__all__ = [
    "ArrayPartition",
    "DataSet",
    "DataTile",
    "FileFrameSource",
    "FileSpan",
    "FrameLayout",
    "FrameSource",
    "LayoutPartition",
    "Partition",
    "TilingRequest",
    "TilingScheme",
    "check_io_backend",
    "check_sync_offset",
    "dataset_shape",
    "iter_tiles",
    "make_tiling_scheme",
    "resolve_shapes",
    "single_file_layout",
]
