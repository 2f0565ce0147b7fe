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
from typing import TYPE_CHECKING, NamedTuple

import numpy as np

from libertem.common.exceptions import DataSetException
from libertem.common.executor import JobExecutor
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
)
from libertem.io.dataset.base.files import check_file, open_file_map
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
#: bytes of the main header at the start of the first file
SERIES_HEADER_SIZE = 256
#: largest scan side the scan detection considers
MAX_SCAN_IDX = 4096
#: byte offset of the scan index (``rotidx``) in a version-2 frame header
ROTIDX_OFFSET = 48
SEEK_SET = os.SEEK_SET
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


def _header_fields(buf: bytes, where: str) -> dict[str, int]:
    """The checked fields of a TVIPS main header, plus ``frame_header`` (bytes per frame)."""
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
    h["frame_header"] = frame_header
    return h


def parse_tvips_header(buf: bytes, where: str = "TVIPS file") -> TVIPSHeader:
    """Parse the main header at the start of the first TVIPS file.

    Raises
    ------
    DataSetException
        If ``buf`` is too short or a field is out of range.
    """
    h = _header_fields(buf, where)
    frame_header = h["frame_header"]
    return TVIPSHeader(
        header_bytes=h["size"],
        version=h["version"],
        dimx=h["dimx"],
        dimy=h["dimy"],
        dtype=np.dtype(f"<u{h['bitsperpixel'] // 8}"),
        frame_header_bytes=frame_header,
    )


class SeriesHeader(NamedTuple):
    """The main header of a TVIPS recording."""

    version: int
    xdim: int
    ydim: int
    xbin: int
    ybin: int
    bpp: int
    pixel_size_nm: int
    high_tension_kv: int
    mag_total: int
    frame_header_bytes: int


class DetectionError(Exception):
    """The scan shape or start could not be found from the frame headers."""


def read_series_header(path: str) -> SeriesHeader:
    """The main header of the TVIPS recording whose first file is ``path``.

    Raises
    ------
    DataSetException
        If the file is missing, too short, or a field is out of range.
    """
    path = os.fspath(path)
    check_file(path)
    h = _header_fields(read_head(path, SERIES_HEADER_SIZE), path)
    return SeriesHeader(
        version=h["version"],
        xdim=h["dimx"],
        ydim=h["dimy"],
        xbin=h["binx"],
        ybin=h["biny"],
        bpp=h["bitsperpixel"],
        pixel_size_nm=h["pixelsize"],
        high_tension_kv=h["ht"],
        mag_total=h["magtotal"],
        frame_header_bytes=h["frame_header"],
    )


def _header_size(path: str) -> int:
    return parse_tvips_header(read_head(path, TVIPS_MIN_HEADER), path).header_bytes


def frames_in_file(path: str, series_header: SeriesHeader) -> int:
    """Number of frame records in one file of a recording (the first holds the main
    header before them)."""
    path = os.fspath(path)
    size = check_file(path)
    match = _PART_RE.match(path)
    first = match is None or int(match["num"]) == 0
    offset = _header_size(path) if first else 0
    record = series_header.frame_header_bytes + (
        series_header.xdim * series_header.ydim * series_header.bpp // 8
    )
    return max(0, size - offset) // record


def get_filenames(path: str) -> list[str]:
    """The files of the recording that starts with ``path``."""
    return tvips_series(os.fspath(path))


def get_image_count_and_sig_shape(path: str) -> tuple[int, tuple[int, int]]:
    """Frames in all files of the recording, and the frame shape ``(ydim, xdim)``."""
    header = read_series_header(path)
    count = sum(frames_in_file(p, header) for p in get_filenames(path))
    return count, (header.ydim, header.xdim)


def _rotidx(path: str, header: SeriesHeader, limit: int) -> np.ndarray:
    """The scan index (``rotidx``) of the first ``limit`` frames of the recording."""
    out = []
    for i, part in enumerate(get_filenames(path)):
        n = frames_in_file(part, header)
        if n == 0:
            continue
        offset = _header_size(part) if i == 0 else 0
        record = header.frame_header_bytes + header.xdim * header.ydim * header.bpp // 8
        mm = open_file_map(part)
        idx = np.ndarray((n,), "<u4", mm, offset + ROTIDX_OFFSET, (record,))
        out.append(np.array(idx[: max(0, limit - sum(len(o) for o in out))]))
        if sum(len(o) for o in out) >= limit:
            break
    return np.concatenate(out) if out else np.zeros(0, np.uint32)


def detect_shape(path: str) -> tuple[int, tuple[int, ...]]:
    """Where the scan starts and its shape, from the frame headers' scan indices.

    In a scan, each frame header holds the index of its scan position (``rotidx``,
    from 1); frames before the scan have index 0. The scan starts at the first frame
    of index 1 and has as many positions as indices follow in increasing order; a
    square number of positions is taken as a square scan.

    Returns
    -------
    sync_offset, nav_shape
        The first frame of the scan, and the scan's shape.

    Raises
    ------
    DetectionError
        If the headers hold no scan indices (version 1, or no frame of index 1).
    """
    path = os.fspath(path)
    get_filenames(path)  # a later part of a series is refused, naming the first part
    header = read_series_header(path)
    if header.version < 2 or header.frame_header_bytes < ROTIDX_OFFSET + 4:
        raise DetectionError(f"{path}: frame headers without scan indices")
    idx = _rotidx(path, header, MAX_SCAN_IDX * MAX_SCAN_IDX + 1)
    starts = np.flatnonzero(idx == 1)
    if starts.size == 0:
        raise DetectionError(f"{path}: no frame with scan index 1")
    start = int(starts[0])
    run = idx[start:]
    steps = np.flatnonzero(np.diff(run.astype(np.int64)) != 1)
    count = int(run.size if steps.size == 0 else steps[0] + 1)
    return start, make_2D_square((count,))


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


class TVIPSDatasetParams(DatasetParamsConverter):
    """JSON parameters of TVIPS recordings: ``path``, ``nav_shape``, ``sync_offset``, ..."""

    SCHEMA = dataset_schema("TVIPSDatasetParams", "TVIPS", dict(COMMON_PROPERTIES))


class TVIPSDataSet(RecordStackDataSet):
    """A TVIPS recording (``.tvips``), possibly split over ``_000``, ``_001``, ... files.

    The frames of all parts form one stack of ``dimy x dimx`` 8- or 16-bit frames;
    per-frame headers are skipped by strided views of read-only memory maps.

    Parameters
    ----------
    path
        The file, for a series the first part ``*_000.tvips``.
    nav_shape
        Navigation shape; by default the scan found in the frame headers
        (:func:`detect_shape`), else a 1D stack of all frames.
    sig_shape
        Frame shape; by default ``(dimy, dimx)``.
    sync_offset
        Dataset frame ``i`` is recorded frame ``i + sync_offset``; by default where the
        scan starts according to the frame headers (0 if they do not say).
    io_backend
        An :class:`~libertem.io.dataset.base.IOBackend` or its id; default memory maps.
    num_partitions
        Number of partitions; by default derived from size and worker count.
    """

    def __init__(
        self,
        path,
        nav_shape: tuple[int, ...] | None = None,
        sig_shape: tuple[int, ...] | None = None,
        sync_offset: int | None = None,
        io_backend: IOBackend | None = None,
        num_partitions: int | None = None,
    ):
        super().__init__(
            path,
            nav_shape=nav_shape,
            sig_shape=sig_shape,
            sync_offset=0 if sync_offset is None else sync_offset,
            num_partitions=num_partitions,
            io_backend=io_backend,
        )
        self._detect_sync = sync_offset is None

    @classmethod
    def get_msg_converter(cls):
        return TVIPSDatasetParams

    @classmethod
    def get_supported_extensions(cls) -> set[str]:
        return {"tvips"}

    def initialize(self, executor: JobExecutor) -> TVIPSDataSet:
        if self._detect_sync or self._nav_shape is None:
            try:
                sync, nav = detect_shape(self._path)
            except DetectionError:
                sync, nav = 0, None
            if self._detect_sync:
                self._sync_offset = sync
            if self._nav_shape is None and nav is not None:
                self._detected_nav = nav
        return super().initialize(executor)

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
        n_frames = sum(f.n_records for f in files)
        nav = getattr(self, "_detected_nav", None)
        if nav is not None and prod(nav) + self.sync_offset > n_frames:
            nav = None
        return RecordLayout(
            files=tuple(files),
            record_bytes=record,
            skip_bytes=header.frame_header_bytes,
            frame_shape=(header.dimy, header.dimx),
            dtype=header.dtype,
            nav_shape=nav,
        )


__all__ = [
    "MAX_SCAN_IDX",
    "SEEK_SET",
    "SERIES_HEADER_SIZE",
    "TYPE_CHECKING",
    "BasePartition",
    "DataSet",
    "DataSetException",
    "DataSetMeta",
    "DetectionError",
    "File",
    "FileSet",
    "IOBackend",
    "JobExecutor",
    "MessageConverter",
    "SeriesHeader",
    "Shape",
    "TVIPSDataSet",
    "TVIPSDatasetParams",
    "detect_shape",
    "frames_in_file",
    "get_filenames",
    "get_image_count_and_sig_shape",
    "make_2D_square",
    "parse_tvips_header",
    "prod",
    "read_series_header",
]
