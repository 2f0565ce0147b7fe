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
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from libertem.common.exceptions import DataSetException
from libertem.io.dataset.base.files import check_file
from libertem.io.dataset.base.records import (
    RecordFile,
    RecordLayout,
    RecordStackDataSet,
    read_head,
)

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


class BloDataSet(RecordStackDataSet):
    """A NanoMegas blockfile: ``NY x NX`` scan of uint8 ``DP_SZ x DP_SZ`` patterns.

    Parameters
    ----------
    path
        The file.
    tileshape
        Preferred tile shape ``(depth, *sig_block)``, a hint for the tiling, or ``None``.
    endianess
        Byte order of the header, ``'<'`` (default) or ``'>'``.
    nav_shape
        Navigation shape; by default ``(NY, NX)`` from the header.
    sig_shape
        Frame shape; by default ``(DP_SZ, DP_SZ)``.
    sync_offset
        Dataset frame ``i`` is file frame ``i + sync_offset``.
    num_partitions
        Number of partitions; by default derived from size and worker count.
    io_backend
        ``'mmap'`` (default: read-only memory maps, views where possible) or
        ``'buffered'`` (reads into a reused buffer).
    """

    def __init__(
        self,
        path: str | os.PathLike,
        tileshape: Sequence[int] | None = None,
        endianess: str = "<",
        nav_shape: Sequence[int] | None = None,
        sig_shape: Sequence[int] | None = None,
        sync_offset: int = 0,
        num_partitions: int | None = None,
        io_backend=None,
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
        try:
            self._tileshape = None if tileshape is None else tuple(int(t) for t in tileshape)
        except (TypeError, ValueError):
            raise DataSetException(f"{self._path}: invalid tileshape {tileshape!r}") from None

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

    def initialize(self, executor) -> BloDataSet:
        super().initialize(executor)
        ts = self._tileshape
        sig = tuple(self.shape.sig)
        if ts is not None and (
            len(ts) != len(sig) + 1
            or any(t < 1 for t in ts)
            or any(t > s for t, s in zip(ts[1:], sig))
        ):
            raise DataSetException(
                f"{self._path}: tileshape {ts} must be (depth, *sig_block) within the "
                f"signal shape {sig}"
            )
        return self

    def get_base_shape(self) -> tuple[int, ...]:
        if self._tileshape is not None:
            return self._tileshape[1:]
        return super().get_base_shape()

    def get_preferred_depth(self) -> int | None:
        return None if self._tileshape is None else self._tileshape[0]
