"""TVIPS ``.tvips`` recordings, read as a record stack (see ``base/records.py``).

TVIPS layout (little-endian): file ``*_000.tvips`` starts with a main header whose first
``uint32`` fields are ``size`` (bytes of the main header, 256), ``version`` (1 or 2),
``dimx``, ``dimy``, ``bitsperpixel`` (8 or 16), ``offsetx``, ``offsety``, ``binx``, ``biny``,
``pixelsize``, ``ht``, ``magtotal`` and ``frameheaderbytes``. Then come records of a frame
header (12 bytes in version 1, ``frameheaderbytes`` in version 2) followed by ``dimy x dimx``
unsigned integers. A recording may continue in ``*_001.tvips``, ``*_002.tvips``, ... which
hold records only.
"""

from __future__ import annotations

import os
import re
import struct
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

# --- TVIPS ---------------------------------------------------------------------------------------

TVIPS_MAIN_FIELDS = (
    "size version dimx dimy bitsperpixel offsetx offsety binx biny pixelsize ht magtotal "
    "frameheaderbytes"
).split()
TVIPS_MIN_HEADER = 4 * len(TVIPS_MAIN_FIELDS)
TVIPS_V1_FRAME_HEADER = 12
_MAX_FRAME_HEADER = 1 << 20
_PART_RE = re.compile(r"^(?P<stem>.*)_(?P<num>[0-9]{3})\.tvips$", re.IGNORECASE)


@dataclass(frozen=True)
class TVIPSHeader:
    """The fields of a TVIPS main header that locate the frames."""

    header_bytes: int
    version: int
    dimx: int
    dimy: int
    dtype: np.dtype
    frame_header_bytes: int

    @property
    def record_bytes(self) -> int:
        """Bytes per frame record: frame header plus pixels."""
        return self.frame_header_bytes + self.dimx * self.dimy * self.dtype.itemsize


def parse_tvips_header(buf: bytes, where: str = "TVIPS file") -> TVIPSHeader:
    """Parse the main header at the start of the first TVIPS file.

    Raises
    ------
    DataSetException
        If ``buf`` is too short or a field is out of range.
    """
    if len(buf) < TVIPS_MIN_HEADER:
        raise DataSetException(
            f"{where}: too short for a TVIPS main header ({len(buf)} bytes, need "
            f"{TVIPS_MIN_HEADER})"
        )
    h = dict(zip(TVIPS_MAIN_FIELDS, struct.unpack_from(f"<{len(TVIPS_MAIN_FIELDS)}I", buf)))
    if h["version"] not in (1, 2):
        raise DataSetException(f"{where}: unsupported TVIPS version {h['version']} (know 1, 2)")
    if h["bitsperpixel"] not in (8, 16):
        raise DataSetException(
            f"{where}: unsupported bitsperpixel {h['bitsperpixel']} in the TVIPS header (8, 16)"
        )
    if h["dimx"] < 1 or h["dimy"] < 1:
        raise DataSetException(f"{where}: invalid frame size {h['dimx']} x {h['dimy']}")
    if h["size"] < TVIPS_MIN_HEADER:
        raise DataSetException(
            f"{where}: corrupt TVIPS header: header size {h['size']} < {TVIPS_MIN_HEADER}"
        )
    frame_header = TVIPS_V1_FRAME_HEADER if h["version"] == 1 else h["frameheaderbytes"]
    if frame_header > _MAX_FRAME_HEADER:
        raise DataSetException(f"{where}: implausible frame header size {frame_header} bytes")
    return TVIPSHeader(
        header_bytes=h["size"],
        version=h["version"],
        dimx=h["dimx"],
        dimy=h["dimy"],
        dtype=np.dtype(f"<u{h['bitsperpixel'] // 8}"),
        frame_header_bytes=frame_header,
    )


def tvips_series(path: str) -> list[str]:
    """The files of the recording starting at ``path`` (``*_000.tvips``, ``*_001.tvips``, ...)."""
    match = _PART_RE.match(path)
    if match is None:
        return [path]
    if int(match["num"]) != 0:
        raise DataSetException(
            f"{path}: part {match['num']} of a TVIPS series; open the first part (_000)"
        )
    ext = path[-len(".tvips") :]
    files = [path]
    for i in range(1, 1000):
        candidate = f"{match['stem']}_{i:03d}{ext}"
        if not os.path.isfile(candidate):
            break
        files.append(candidate)
    return files


class TVIPSDataSet(RecordStackDataSet):
    """A TVIPS recording (``.tvips``), possibly split over ``_000``, ``_001``, ... files.

    The frames of all parts form one stack of ``dimy x dimx`` 8- or 16-bit frames;
    per-frame headers are skipped by strided views of read-only memory maps.

    Parameters
    ----------
    path
        The file, for a series the first part ``*_000.tvips``.
    nav_shape
        Navigation shape; by default a 1D stack of all frames.
    sig_shape
        Frame shape; by default ``(dimy, dimx)``.
    sync_offset
        Dataset frame ``i`` is recorded frame ``i + sync_offset``.
    num_partitions
        Number of partitions; by default derived from size and worker count.
    io_backend
        ``'mmap'`` (default: read-only memory maps, views where possible) or
        ``'buffered'`` (reads into a reused buffer).
    """

    @classmethod
    def detect_params(cls, path, executor=None):
        path = os.fspath(path)
        if not path.lower().endswith(".tvips"):
            return False
        try:
            parse_tvips_header(read_head(path, TVIPS_MIN_HEADER), path)
        except DataSetException:
            return False
        return {"parameters": {"path": path}}

    def read_layout(self) -> RecordLayout:
        size = check_file(self._path)
        series = tvips_series(self._path)
        header = parse_tvips_header(read_head(self._path, TVIPS_MIN_HEADER), self._path)
        record = header.record_bytes
        files = []
        for i, part in enumerate(series):
            part_size = size if i == 0 else check_file(part)
            offset = header.header_bytes if i == 0 else 0
            if part_size < offset or (part_size - offset) % record != 0:
                raise DataSetException(
                    f"{part}: truncated or corrupt: {part_size - offset} bytes of records are "
                    f"not a whole number of {record}-byte frame records "
                    f"({header.frame_header_bytes}-byte header + {header.dimy} x "
                    f"{header.dimx} x {header.dtype})"
                )
            if part_size > offset:
                files.append(RecordFile(part, offset, (part_size - offset) // record))
        if not files:
            raise DataSetException(f"{self._path}: the TVIPS recording holds no frames")
        return RecordLayout(
            files=tuple(files),
            record_bytes=record,
            skip_bytes=header.frame_header_bytes,
            frame_shape=(header.dimy, header.dimx),
            dtype=header.dtype,
        )
