"""Gatan K2 IS raw acquisitions: eight sector files ``<prefix>N.bin`` and a ``.gtg`` file.

The block layout is described in :mod:`libertem.io.dataset.k2is_sectors` (decoding in
``k2is_decode``, syncing in ``k2is_sync``). Frames are 1860 x 2048 ``uint16`` values; the
dataset starts at the first whole frame with the shutter active in all sectors and holds
the whole frames that all sectors have. The ``.gtg`` file (a DigitalMicrograph tag
file) gives the scan size (``SI Dimensions``: ``Size Y``, ``Size X``).

Tiles are decoded straight from the blocks into the tile buffer by a numba kernel; the
natural tile is one block, ``BLOCK_SHAPE`` = 930 x 16 pixels.
"""

from __future__ import annotations

import os
import re

import numpy as np

from libertem.common.buffers import zeros_aligned
from libertem.common.exceptions import DataSetException
from libertem.common.math import flat_nonzero, make_2D_square, prod
from libertem.common.messageconverter import (
    COMMON_PROPERTIES,
    DatasetParamsConverter,
    MessageConverter,
    dataset_schema,
)
from libertem.common.shape import Shape
from libertem.common.slice import Slice
from libertem.io.dataset.base import DataSet, TilingScheme, iter_tiles
from libertem.io.dataset.base.backend import IOBackend
from libertem.io.dataset.base.basepartition import BasePartition
from libertem.io.dataset.base.checks import check_scan_size, dataset_shape
from libertem.io.dataset.base.decoders import Decoder
from libertem.io.dataset.base.file import File, OffsetsSizes
from libertem.io.dataset.base.filebased import FileSetDataSet
from libertem.io.dataset.base.fileset import FileSet
from libertem.io.dataset.base.meta import DataSetMeta
from libertem.io.dataset.base.readranges import make_get_read_ranges
from libertem.io.dataset.k2is_decode import (
    BLOCK_SHAPE,
    BLOCK_SIZE,
    BLOCKS_PER_SECTOR_PER_FRAME,
    DATA_SIZE,
    FRAME_SHAPE,
    HEADER_SIZE,
    NUM_SECTORS,
    SECTOR_SIZE,
    decode_uint12_le,
)
from libertem.io.dataset.k2is_read import (
    K2FileSet,
    K2ISDecoder,
    K2ISFile,
    K2ISFrameSource,
    decode_k2is,
    k2is_get_read_ranges,
)
from libertem.io.dataset.k2is_sectors import SHUTTER_ACTIVE_MASK, SYNC_WORD, DataBlock, Sector
from libertem.io.dataset.k2is_sync import FIRST_FRAME_SCAN_SIZE, K2Syncer

_IO_BACKENDS = ["mmap", "buffered"]

__all__ = [
    "BLOCKS_PER_SECTOR_PER_FRAME",
    "BLOCK_SHAPE",
    "BLOCK_SIZE",
    "DATA_SIZE",
    "FIRST_FRAME_SCAN_SIZE",
    "HEADER_SIZE",
    "NUM_SECTORS",
    "SECTOR_SIZE",
    "SHUTTER_ACTIVE_MASK",
    "BasePartition",
    "DataBlock",
    "DataSet",
    "DataSetException",
    "DataSetMeta",
    "Decoder",
    "File",
    "FileSet",
    "IOBackend",
    "K2FileSet",
    "K2ISDataSet",
    "K2ISDatasetParams",
    "K2ISDecoder",
    "K2ISFile",
    "K2ISPartition",
    "K2Syncer",
    "MessageConverter",
    "OffsetsSizes",
    "Sector",
    "Shape",
    "Slice",
    "TilingScheme",
    "decode_k2is",
    "decode_uint12_le",
    "flat_nonzero",
    "get_filenames",
    "k2is_get_read_ranges",
    "make_2D_square",
    "make_get_read_ranges",
    "prod",
    "zeros_aligned",
]


# --- finding the files -----------------------------------------------------------------------


def _prefix(path: str) -> str:
    """``<prefix>`` of ``<prefix>N.bin`` or ``<prefix>.gtg``."""
    name = os.path.basename(path)
    if name.lower().endswith(".gtg"):
        return name[:-4]
    m = re.fullmatch(r"(.*?)(\d+)\.bin", name, re.IGNORECASE)
    if m is None:
        raise DataSetException(
            f"{path}: not a K2 IS file: expected a sector file '<prefix>N.bin' or a '.gtg' file"
        )
    return m.group(1)


def _sector_files(folder: str, prefix: str) -> dict[int, str]:
    pattern = re.compile(re.escape(prefix) + r"(\d+)\.bin", re.IGNORECASE)
    names = os.listdir(folder) if os.path.isdir(folder) else []
    found = {}
    for n in names:
        m = pattern.fullmatch(n)
        if m is not None:
            found[int(m.group(1))] = os.path.join(folder, n)
    return found


def get_filenames(path, disable_glob=False) -> list[str]:
    """The sector files of the acquisition of ``path`` (a sector file or the ``.gtg``),
    sorted by sector number; with ``disable_glob``, just ``[path]``."""
    path = os.fspath(path)
    if disable_glob:
        return [path]
    folder = os.path.dirname(os.path.abspath(path))
    prefix = _prefix(path)
    found = _sector_files(folder, prefix)
    if not found and path.lower().endswith(".gtg"):
        found = _sector_files(folder, prefix + "_")
    return [found[k] for k in sorted(found)]


def _checked_sector_files(path: str) -> list[str]:
    files = get_filenames(path)
    numbers = [int(re.search(r"(\d+)\.bin$", f, re.IGNORECASE).group(1)) for f in files]
    if numbers != list(range(1, NUM_SECTORS + 1)):
        raise DataSetException(
            f"{path}: a K2 IS acquisition has {NUM_SECTORS} sector files numbered 1 to "
            f"{NUM_SECTORS}; found {numbers or 'none'}"
        )
    return files


def _gtg_path(path: str) -> str | None:
    if path.lower().endswith(".gtg"):
        return path
    folder = os.path.dirname(os.path.abspath(path))
    prefix = _prefix(path)
    for candidate in (prefix + ".gtg", prefix.rstrip("_") + ".gtg"):
        full = os.path.join(folder, candidate)
        if os.path.isfile(full):
            return full
    return None


def _find_group(group, name: str, depth: int = 0):
    from libertem.io.dataset.dm_header import TagGroup

    if depth > 8:
        return None
    for key, value in group:
        if isinstance(value, TagGroup):
            if key == name:
                return value
            found = _find_group(value, name, depth + 1)
            if found is not None:
                return found
    return None


def read_scan_size(gtg_path: str) -> tuple[int, int] | None:
    """The scan size ``(y, x)`` stored in a ``.gtg`` file, or ``None`` if it has none.

    Raises
    ------
    DataSetException
        If the file is not a valid tag file.
    """
    from libertem.io.dataset.dm_header import parse_dm

    tags = parse_dm(gtg_path)
    dims = _find_group(tags.root, "SI Dimensions")
    if dims is None:
        return None
    size = dims.get("Size Y"), dims.get("Size X")
    if not all(isinstance(v, (int, np.integer)) and 0 < v < 1 << 31 for v in size):
        return None
    return int(size[0]), int(size[1])


class K2ISDatasetParams(DatasetParamsConverter):
    """Parameters of a K2 IS dataset as a JSON message (``"type": "K2IS"``)."""

    SCHEMA = dataset_schema(
        "K2ISDatasetParams",
        "K2IS",
        {
            **COMMON_PROPERTIES,
            "io_backend": {"enum": list(_IO_BACKENDS)},
        },
    )


# --- partitions and the dataset ------------------------------------------------------------


class K2ISPartition(BasePartition):
    """Frames of a K2 IS dataset (a range of the flat navigation axis).

    Parameters
    ----------
    meta
        The dataset's :class:`DataSetMeta` (shape, ``image_count``, ``sync_offset``).
    partition_slice
        The partition's region in flat-nav coordinates.
    fileset
        The :class:`K2FileSet` of the sector files.
    start_frame
        File frame of the partition's first frame (its start plus the ``sync_offset``).
    num_frames
        Frames of the partition.
    io_backend
        The ``IOBackend`` to read with (memory maps or buffered reads).
    decoder
        The :class:`K2ISDecoder`: used for LiberTEM's range-by-range reading; our tiles
        are decoded whole frames at a time by the format's own kernel.
    """

    def validate_tiling_scheme(self, tiling_scheme) -> None:
        """Raise ``ValueError`` unless the slices of ``tiling_scheme`` follow the block grid
        (origins and sizes multiples of ``BLOCK_SHAPE``, or reaching the frame's edge)."""
        super().validate_tiling_scheme(tiling_scheme)
        if tuple(self.meta.shape.sig) != FRAME_SHAPE:
            return
        for origin, shape in tiling_scheme.slices_array:
            for o, s, b, full in zip(origin, shape, BLOCK_SHAPE, FRAME_SHAPE):
                if o % b or (s % b and o + s != full):
                    raise ValueError(
                        f"invalid tiling scheme: slice at {tuple(origin)} of shape "
                        f"{tuple(shape)} cuts the K2 IS blocks of {BLOCK_SHAPE}"
                    )

    def open_source(self) -> K2ISFrameSource:
        """The frame source reading this partition's frames."""
        files = list(self._fileset)
        return K2ISFrameSource(
            [f.path for f in files],
            [f.file_header_bytes for f in files],
            files[0].num_frames,
            tuple(self.meta.shape.sig),
            self.sync_offset,
            self._io_backend.id_,
        )

    def _read_tiles(self, scheme, dest_dtype, roi_part):
        return iter_tiles(
            self.open_source(),
            self.start,
            self.stop,
            scheme,
            dest_dtype,
            roi_part,
            self._corrections,
        )


class K2ISDataSet(FileSetDataSet):
    """A Gatan K2 IS acquisition.

    Parameters
    ----------
    path
        Any of the eight sector files ``<prefix>N.bin``, or the ``<prefix>.gtg`` file.
    nav_shape
        Navigation shape; by default the scan size in the ``.gtg`` file, else the frames
        as a square scan if their number is a square, else as a 1D stack.
    sig_shape
        Reinterpret frames with this shape (1860 * 2048 pixels).
    sync_offset
        Dataset frame ``i`` is frame ``i + sync_offset`` counted from the first
        shutter-active frame; negative values insert blank frames at the start. By
        default derived from the scan metadata: frames recorded beyond the ``.gtg`` scan
        size are taken to precede the scan; 0 without a scan size.
    io_backend
        ``'mmap'`` (default) or ``'buffered'``, or a matching ``IOBackend``.
    num_partitions
        Number of partitions; by default derived from size and worker count.
    """

    partition_cls = K2ISPartition

    def __init__(
        self,
        path,
        nav_shape=None,
        sig_shape=None,
        sync_offset=None,
        io_backend=None,
        num_partitions=None,
    ):
        super().__init__(io_backend=io_backend, num_partitions=num_partitions)
        self._path = os.fspath(path)
        self._nav_shape = None if nav_shape is None else tuple(nav_shape)
        self._sig_shape = None if sig_shape is None else tuple(sig_shape)
        self._user_sync_offset = None if sync_offset is None else int(sync_offset)
        self._first_frame_id = None
        self._scan = None

    @classmethod
    def get_supported_extensions(cls) -> set[str]:
        return {"bin", "gtg"}

    @classmethod
    def get_supported_io_backends(cls) -> list[str]:
        return list(_IO_BACKENDS)

    @classmethod
    def get_msg_converter(cls):
        return K2ISDatasetParams

    @classmethod
    def detect_params(cls, path, executor=None):
        path = os.fspath(path)
        if not path.lower().endswith((".bin", ".gtg")):
            return False
        try:
            files = _checked_sector_files(path)
            sector = Sector(files[0], 0)
            try:
                head = sector.first_block().header
            finally:
                sector.close()
        except (DataSetException, OSError, ValueError):
            return False
        if head["sync"] != SYNC_WORD:
            return False
        return {"parameters": {"path": path}, "info": {"native_sig_shape": FRAME_SHAPE}}

    def _sync(self, files):
        syncer = K2Syncer(files)
        try:
            n_frames = syncer.sync()
            offsets = [s.first_block_offset for s in syncer.sectors]
            first_id = syncer.first_blocks()[0].frame_id
        finally:
            syncer.close()
        return n_frames, offsets, first_id

    def initialize(self, executor) -> K2ISDataSet:
        files = _checked_sector_files(self._path)
        n_frames, offsets, first_id = self._sync(files)
        gtg = _gtg_path(self._path)
        scan = read_scan_size(gtg) if gtg is not None else None
        nav = self._nav_shape or scan or make_2D_square((n_frames,))
        sync_offset = self._user_sync_offset
        if sync_offset is None:
            sync_offset = max(0, n_frames - prod(scan)) if scan is not None else 0
        if self._nav_shape is None and scan is not None:
            check_scan_size(scan, n_frames, sync_offset, gtg)
        shape = dataset_shape(
            nav, self._sig_shape, (n_frames, *FRAME_SHAPE), 2, n_frames, sync_offset, self._path
        )
        self._sync_offset = int(sync_offset)
        self._first_frame_id = first_id
        self._scan = scan
        self._fileset = K2FileSet(
            [
                K2ISFile(p, 0, n_frames, np.uint16, SECTOR_SIZE, file_header=off)
                for p, off in zip(files, offsets)
            ]
        )
        self._set_meta(shape, np.uint16, n_frames, {"first_frame_id": first_id, "scan_size": scan})
        return self

    @property
    def dtype(self) -> np.dtype:
        return np.dtype(np.uint16)

    def check_valid(self) -> bool:
        """Re-check the sync of the sector files; raise ``DataSetException`` if it fails."""
        files = list(self._need_fileset())
        syncer = K2Syncer(
            [f.path for f in files], start_offsets=[f.file_header_bytes for f in files]
        )
        try:
            for sector in syncer.sectors:
                end = sector.first_block_offset + self._image_count * (
                    BLOCKS_PER_SECTOR_PER_FRAME * BLOCK_SIZE
                )
                sector.set_last_block_offset(end - BLOCK_SIZE)
            syncer.validate_sync()
            syncer.check_block_order()
        finally:
            syncer.close()
        return True

    def get_base_shape(self, roi=None) -> tuple[int, ...]:
        """One block, ``(930, 16)`` (whole rows for another ``sig_shape``)."""
        if self._meta is not None and tuple(self.shape.sig) != FRAME_SHAPE:
            return super().get_base_shape(roi)
        return BLOCK_SHAPE

    def get_diagnostics(self) -> list[dict]:
        """Facts about the acquisition: frames found, first frame id, scan size."""
        self._need_fileset()
        return [
            {"name": "Frames found", "value": str(self._image_count)},
            {"name": "First frame id", "value": str(self._first_frame_id)},
            {"name": "Scan size (.gtg)", "value": str(self._scan)},
            {"name": "Sync offset", "value": str(self._sync_offset)},
        ]

    def get_decoder(self) -> K2ISDecoder:
        return K2ISDecoder()
