"""NanoMegas blockfiles (``.blo``): uint8 diffraction patterns, each behind a 6-byte header.

Header (byte order ``endianess``): ``"IMGBLO"`` at byte 0, a ``uint16`` magic at 6, ``uint32``
offsets of the virtual bright-field image at 8 and of the patterns at 12, and ``uint16``
``DP_SZ`` (pattern side), ``NX``, ``NY`` (scan size) at bytes 20, 24, 26; the header
spans 240 bytes. From the pattern offset on, ``NY * NX`` records follow, each the frame
marker ``0x55AA`` (``uint16``), a ``uint32`` frame number and ``DP_SZ x DP_SZ`` bytes.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass

import numpy as np

from libertem.common.exceptions import DataSetException
from libertem.common.math import prod
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
)
from libertem.io.dataset.base.filebased import ignored_tileshape
from libertem.io.dataset.base.files import check_file
from libertem.io.dataset.base.records import (
    RecordFile,
    RecordLayout,
    RecordStackDataSet,
    read_head,
)

#: values of the ``uint16`` at byte 6 that blockfiles carry
MAGIC_EXPECT = (258, 259)
BLO_MAGIC = b"IMGBLO"
BLO_HEADER_BYTES = 240
BLO_FRAME_HEADER = 6
BLO_FRAME_MARKER = 0x55AA


@dataclass(frozen=True)
class BloHeader:
    """The fields of a blockfile header that locate the patterns."""

    nx: int
    ny: int
    dp_size: int
    data_offset: int

    @property
    def record_bytes(self) -> int:
        """Bytes per frame record: the 6-byte frame header plus the pattern."""
        return BLO_FRAME_HEADER + self.dp_size * self.dp_size


def _check_endianess(endianess: str, where: str) -> str:
    if endianess not in ("<", ">"):
        raise DataSetException(f"{where}: endianess must be '<' or '>', got {endianess!r}")
    return endianess


def parse_blo_header(buf: bytes, endianess: str = "<", where: str = "blockfile") -> BloHeader:
    """Parse the header of a blockfile.

    Raises
    ------
    DataSetException
        If ``buf`` is too short, lacks the ``IMGBLO`` magic or has invalid fields.
    """
    order = _check_endianess(endianess, where)
    if len(buf) < BLO_HEADER_BYTES:
        raise DataSetException(
            f"{where}: too short for a blockfile header ({len(buf)} bytes, "
            f"need {BLO_HEADER_BYTES})"
        )
    if buf[:6] != BLO_MAGIC:
        raise DataSetException(f"{where}: not a blockfile: no 'IMGBLO' magic at byte 0")
    (magic,) = struct.unpack_from(order + "H", buf, 6)
    if magic not in MAGIC_EXPECT:
        raise DataSetException(
            f"{where}: not a blockfile: magic {magic} at byte 6, expected one of {MAGIC_EXPECT}"
        )
    (offset,) = struct.unpack_from(order + "I", buf, 12)
    (dp_size,) = struct.unpack_from(order + "H", buf, 20)
    nx, ny = struct.unpack_from(order + "2H", buf, 24)
    if dp_size < 1 or nx < 1 or ny < 1:
        raise DataSetException(
            f"{where}: corrupt blockfile header: scan {nx} x {ny}, pattern size {dp_size}"
        )
    if offset < BLO_HEADER_BYTES:
        raise DataSetException(
            f"{where}: corrupt blockfile header: data offset {offset} lies inside the header"
        )
    return BloHeader(nx=nx, ny=ny, dp_size=dp_size, data_offset=offset)


def _check_marker(path: str, pos: int, order: str, index: int) -> None:
    try:
        with open(path, "rb") as f:
            f.seek(pos)
            raw = f.read(2)
    except OSError as e:
        raise DataSetException(f"{path}: cannot read: {e}") from e
    if len(raw) < 2 or struct.unpack(order + "H", raw)[0] != BLO_FRAME_MARKER:
        raise DataSetException(
            f"{path}: corrupt blockfile: frame {index} at byte {pos} does not start with the "
            f"frame marker 0x{BLO_FRAME_MARKER:04X} (found {raw.hex()})"
        )


def get_header_dtype_list(endianess="<") -> list[tuple[str, str]]:
    """The fields of a blockfile header as a numpy structured dtype list (byte order
    ``endianess``), from byte 0 on: ``ID``, ``MAGIC``, the data offsets, ``DP_SZ``, ``NX``,
    ``NY``, rotations, scan steps, beam energy, camera length, acquisition time."""
    e = _check_endianess(endianess, "blockfile header")
    return [
        ("ID", "|S6"),
        ("MAGIC", e + "u2"),
        ("Data_offset_1", e + "u4"),
        ("Data_offset_2", e + "u4"),
        ("UNKNOWN1", e + "u4"),
        ("DP_SZ", e + "u2"),
        ("DP_rotation", e + "u2"),
        ("NX", e + "u2"),
        ("NY", e + "u2"),
        ("Scan_rotation", e + "u2"),
        ("SX", e + "f8"),
        ("SY", e + "f8"),
        ("Beam_energy", e + "u4"),
        ("SDP", e + "u2"),
        ("Camera_length", e + "u4"),
        ("Acquisition_time", e + "f8"),
    ]


class BLODatasetParams(DatasetParamsConverter):
    """JSON parameters of blockfiles: ``path``, ``endianess``, ``nav_shape``, ..."""

    SCHEMA = dataset_schema(
        "BLODatasetParams", "BLO", {**COMMON_PROPERTIES, "endianess": {"enum": ["<", ">"]}}
    )


class BloFileSet(FileSet):
    """The file (set) of a blockfile dataset: records of a 6-byte header and a pattern."""


class BloDataSet(RecordStackDataSet):
    """A NanoMegas blockfile: ``NY x NX`` scan of uint8 ``DP_SZ x DP_SZ`` patterns.

    Parameters
    ----------
    path
        The file.
    tileshape
        Ignored (tiles are negotiated); a warning says so.
    endianess
        Byte order of the header, ``'<'`` (default) or ``'>'``.
    nav_shape
        Navigation shape; by default ``(NY, NX)`` from the header.
    sig_shape
        Frame shape; by default ``(DP_SZ, DP_SZ)``.
    sync_offset
        Dataset frame ``i`` is file frame ``i + sync_offset``.
    io_backend
        An :class:`~libertem.io.dataset.base.IOBackend` or its id; default memory maps.
    num_partitions
        Number of partitions; by default derived from size and worker count.
    """

    fileset_cls = BloFileSet

    def __init__(
        self,
        path,
        tileshape=None,
        endianess="<",
        nav_shape=None,
        sig_shape=None,
        sync_offset=0,
        io_backend=None,
        num_partitions=None,
    ):
        super().__init__(
            path,
            nav_shape=nav_shape,
            sig_shape=sig_shape,
            sync_offset=sync_offset,
            num_partitions=num_partitions,
            io_backend=io_backend,
        )
        self._endianess = _check_endianess(endianess, self._path)
        ignored_tileshape(tileshape)
        self._header = None

    @classmethod
    def get_msg_converter(cls):
        return BLODatasetParams

    @classmethod
    def get_supported_extensions(cls) -> set[str]:
        return {"blo"}

    @property
    def header(self) -> dict | None:
        """The header fields (see :func:`get_header_dtype_list`), after ``initialize``."""
        return self._header

    @classmethod
    def detect_params(cls, path, executor=None):
        path = os.fspath(path)
        if not path.lower().endswith(".blo"):
            return False
        try:
            parse_blo_header(read_head(path, BLO_HEADER_BYTES), "<", path)
        except DataSetException:
            return False
        return {"parameters": {"path": path}}

    def read_layout(self) -> RecordLayout:
        size = check_file(self._path)
        h = parse_blo_header(read_head(self._path, BLO_HEADER_BYTES), self._endianess, self._path)
        n = h.nx * h.ny
        needed = h.data_offset + n * h.record_bytes
        if size != needed:
            problem = "truncated" if size < needed else "larger than the header says"
            raise DataSetException(
                f"{self._path}: file {problem}: header says {h.ny} x {h.nx} patterns of "
                f"{h.dp_size} x {h.dp_size} from byte {h.data_offset}, {needed} bytes in all; "
                f"the file has {size}"
            )
        raw = np.frombuffer(
            read_head(self._path, BLO_HEADER_BYTES)[:64],
            dtype=get_header_dtype_list(self._endianess),
        )[0]
        self._header = {name: raw[name].item() for name in raw.dtype.names}
        _check_marker(self._path, h.data_offset, self._endianess, 0)
        _check_marker(self._path, h.data_offset + (n - 1) * h.record_bytes, self._endianess, n - 1)
        return RecordLayout(
            files=(RecordFile(self._path, h.data_offset, n),),
            record_bytes=h.record_bytes,
            skip_bytes=BLO_FRAME_HEADER,
            frame_shape=(h.dp_size, h.dp_size),
            dtype=np.dtype("u1"),
            nav_shape=(h.ny, h.nx),
        )


__all__ = [
    "MAGIC_EXPECT",
    "BLODatasetParams",
    "BasePartition",
    "BloDataSet",
    "BloFileSet",
    "DataSet",
    "DataSetException",
    "DataSetMeta",
    "File",
    "FileSet",
    "IOBackend",
    "MessageConverter",
    "Shape",
    "get_header_dtype_list",
    "parse_blo_header",
    "prod",
]
