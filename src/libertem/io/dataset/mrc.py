"""MRC2014 files (``.mrc``, ``.mrcs``): a stack of frames, memory-mapped in place.

Layout: a 1024-byte header, an extended header of ``NSYMBT`` bytes, then ``NZ`` frames of
``NY x NX`` values in C order. Header words used here: ``NX``, ``NY``, ``NZ``, ``MODE`` at bytes
0, 4, 8, 12; ``NSYMBT`` at byte 92; the ID ``"MAP "`` at byte 208; the machine stamp at byte
212 (``0x44 0x44``/``0x44 0x41``: little-endian, ``0x11 0x11``: big-endian).
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass

import numpy as np

from libertem.common.exceptions import DataSetException
from libertem.common.math import make_2D_square, prod
from libertem.common.messageconverter import (
    COMMON_PROPERTIES,
    DatasetParamsConverter,
    MessageConverter,
    dataset_schema,
)
from libertem.common.shape import Shape
from libertem.io.dataset.base import (
    BasePartition,
    DataSet,
    DataSetMeta,
    File,
    FileSet,
    IOBackend,
    MMapBackend,
    MMapBackendImpl,
    MMapFileBase,
)
from libertem.io.dataset.base.files import check_file
from libertem.io.dataset.base.records import (
    RecordFile,
    RecordLayout,
    RecordStackDataSet,
    read_head,
)

MRC_HEADER_BYTES = 1024

#: MODE -> dtype (without byte order)
MRC_MODES = {0: "i1", 1: "i2", 2: "f4", 4: "c8", 6: "u2", 12: "f2"}

_EXTENSIONS = (".mrc", ".mrcs")


@dataclass(frozen=True)
class MRCHeader:
    """The fields of an MRC header that locate the frames."""

    nx: int
    ny: int
    nz: int
    mode: int
    dtype: np.dtype
    data_offset: int

    @property
    def data_bytes(self) -> int:
        """Bytes of image data the header describes."""
        return self.nx * self.ny * self.nz * self.dtype.itemsize


def _byte_order(buf: bytes) -> str | None:
    stamp = buf[212:214]
    if stamp in (b"\x44\x44", b"\x44\x41"):
        return "<"
    if stamp == b"\x11\x11":
        return ">"
    # unknown stamp (some writers leave it empty): take the order in which MODE makes sense
    for order in "<>":
        (mode,) = struct.unpack_from(order + "i", buf, 12)
        if mode in MRC_MODES:
            return order
    return None


def parse_mrc_header(buf: bytes, where: str = "MRC file") -> MRCHeader:
    """Parse the 1024-byte main header of an MRC2014 file.

    Raises
    ------
    DataSetException
        If ``buf`` is too short, lacks the ``MAP`` ID or has invalid fields.
    """
    if len(buf) < MRC_HEADER_BYTES:
        raise DataSetException(
            f"{where}: too short for an MRC header ({len(buf)} bytes, need {MRC_HEADER_BYTES})"
        )
    if buf[208:212] not in (b"MAP ", b"MAP\x00"):
        raise DataSetException(
            f"{where}: not an MRC2014 file: no 'MAP ' ID at byte 208 (found {buf[208:212]!r})"
        )
    order = _byte_order(buf)
    if order is None:
        raise DataSetException(
            f"{where}: corrupt MRC header: unknown machine stamp {buf[212:216]!r} "
            "and no valid MODE"
        )
    nx, ny, nz, mode = struct.unpack_from(order + "4i", buf, 0)
    (nsymbt,) = struct.unpack_from(order + "i", buf, 92)
    if mode not in MRC_MODES:
        raise DataSetException(
            f"{where}: unsupported MRC mode {mode} (supported: "
            f"{', '.join(f'{m} ({t})' for m, t in MRC_MODES.items())})"
        )
    if nx < 1 or ny < 1 or nz < 1:
        raise DataSetException(f"{where}: corrupt MRC header: dimensions {nx} x {ny} x {nz}")
    if nsymbt < 0:
        raise DataSetException(f"{where}: corrupt MRC header: extended header size {nsymbt}")
    return MRCHeader(
        nx=nx,
        ny=ny,
        nz=nz,
        mode=mode,
        dtype=np.dtype(order + MRC_MODES[mode]),
        data_offset=MRC_HEADER_BYTES + nsymbt,
    )


class MRCDatasetParams(DatasetParamsConverter):
    """JSON parameters of MRC files: ``path``, ``nav_shape``, ``sig_shape``, ..."""

    SCHEMA = dataset_schema("MRCDatasetParams", "MRC", dict(COMMON_PROPERTIES))


class MRCBackendFile(MMapFileBase):
    """An MRC file opened for reading: :attr:`array` is its stack of frames.

    Opening checks the MRC header against the description.
    """

    def open(self) -> MRCBackendFile:
        super().open()
        h = parse_mrc_header(bytes(self.mmap[:MRC_HEADER_BYTES]), self._path)
        if (h.data_offset, h.nz) != (self._desc.file_header_bytes, self._desc.num_frames):
            self.close()
            raise DataSetException(f"{self._path}: the MRC header changed since it was read")
        return self


class MRCBackendImpl(MMapBackendImpl):
    """Reads MRC files through memory maps (:class:`MRCBackendFile`)."""

    file_cls = MRCBackendFile


class MRCBackend(MMapBackend):
    """The default I/O backend of MRC files: memory maps of the checked files."""

    def get_impl(self) -> MRCBackendImpl:
        return MRCBackendImpl(self.enable_readahead_hints)


class MRCPartition(BasePartition):
    """A partition of an MRC file."""


class MRCDataSet(RecordStackDataSet):
    """An MRC2014 file: ``NZ`` frames of ``NY x NX``, memory-mapped in place.

    Modes 0 (int8), 1 (int16), 2 (float32), 4 (complex64), 6 (uint16) and 12 (float16),
    either byte order. Volumes are read as a stack of their sections.

    Parameters
    ----------
    path
        The file.
    nav_shape
        Navigation shape, e.g. ``(ny, nx)`` of a scan; by default ``(NZ,)``.
    sig_shape
        Frame shape; by default ``(NY, NX)``.
    sync_offset
        Dataset frame ``i`` is file frame ``i + sync_offset``.
    io_backend
        An :class:`~libertem.io.dataset.base.IOBackend` or its id; default
        :class:`MRCBackend` (memory maps).
    num_partitions
        Number of partitions; by default derived from size and worker count.
    """

    partition_cls = MRCPartition

    @classmethod
    def get_msg_converter(cls):
        return MRCDatasetParams

    @classmethod
    def get_supported_extensions(cls) -> set[str]:
        return {"mrc", "mrcs"}

    def get_supported_io_backends(self) -> list[str]:
        """``['mmap', 'buffered', 'direct']``."""
        return ["mmap", "buffered", "direct"]

    def get_io_backend(self) -> IOBackend:
        """The given I/O backend, or :class:`MRCBackend`."""
        return self._io_backend if self._io_backend is not None else MRCBackend()

    @classmethod
    def detect_params(cls, path, executor=None):
        path = os.fspath(path)
        if not path.lower().endswith(_EXTENSIONS):
            return False
        try:
            parse_mrc_header(read_head(path, MRC_HEADER_BYTES), path)
        except DataSetException:
            return False
        return {"parameters": {"path": path}}

    def read_layout(self) -> RecordLayout:
        size = check_file(self._path)
        h = parse_mrc_header(read_head(self._path, MRC_HEADER_BYTES), self._path)
        needed = h.data_offset + h.data_bytes
        if size != needed:
            problem = "truncated" if size < needed else "larger than the header says"
            raise DataSetException(
                f"{self._path}: file {problem}: header says {h.nz} frames of {h.ny} x {h.nx} "
                f"x {h.dtype} (mode {h.mode}) after {h.data_offset} header bytes, "
                f"{needed} bytes in all; the file has {size}"
            )
        frame_bytes = h.nx * h.ny * h.dtype.itemsize
        return RecordLayout(
            files=(RecordFile(self._path, h.data_offset, h.nz),),
            record_bytes=frame_bytes,
            skip_bytes=0,
            frame_shape=(h.ny, h.nx),
            dtype=h.dtype,
        )


__all__ = [
    "BasePartition",
    "DataSet",
    "DataSetException",
    "DataSetMeta",
    "File",
    "FileSet",
    "IOBackend",
    "MMapBackendImpl",
    "MMapFileBase",
    "MRCBackend",
    "MRCBackendFile",
    "MRCBackendImpl",
    "MRCDataSet",
    "MRCDatasetParams",
    "MRCPartition",
    "MessageConverter",
    "Shape",
    "make_2D_square",
    "parse_mrc_header",
    "prod",
]
