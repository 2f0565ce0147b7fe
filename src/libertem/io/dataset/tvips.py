"""TVIPS ``.tvips`` recordings, and the record-stack machinery shared by MRC, EMPAD and blo.

A *record stack* is a file (or a series of files) holding fixed-size records, each a
frame preceded by a per-frame header or followed by extra rows. Its frames are read with
the shared :class:`~libertem.io.dataset.base.FrameLayout` machinery: strided views of
read-only memory maps (``io_backend='mmap'``, the default) or buffered reads
(``io_backend='buffered'``), never including header bytes.

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
from abc import abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from math import prod

import numpy as np

from libertem.common.exceptions import DataSetException
from libertem.common.shape import Shape
from libertem.io.dataset.base import (
    DataSet,
    FileSpan,
    FrameLayout,
    LayoutPartition,
    check_io_backend,
    check_sync_offset,
    resolve_shapes,
)
from libertem.io.dataset.base.files import check_file

# --- record stacks (shared with mrc, empad, blo) ------------------------------------------------


@dataclass(frozen=True)
class RecordFile:
    """A file part of a record stack: ``n_records`` records starting at byte ``offset``."""

    path: str
    offset: int
    n_records: int


@dataclass(frozen=True)
class RecordLayout:
    """Where the frames of a record stack are.

    Attributes
    ----------
    files
        The files, in frame order.
    record_bytes
        Bytes per record (frame plus per-frame header or trailer).
    skip_bytes
        Bytes before the frame data within a record.
    frame_shape
        Native shape of a frame.
    dtype
        Dtype of the stored values, byte order included.
    nav_shape
        Navigation shape stated by the file's metadata, or ``None`` for a plain stack.
    """

    files: tuple[RecordFile, ...]
    record_bytes: int
    skip_bytes: int
    frame_shape: tuple[int, ...]
    dtype: np.dtype
    nav_shape: tuple[int, ...] | None = None

    @property
    def n_frames(self) -> int:
        """Frames in all files together."""
        return sum(f.n_records for f in self.files)


def read_head(path: str, n: int) -> bytes:
    """The first ``n`` bytes of ``path`` (fewer if the file is shorter)."""
    try:
        with open(path, "rb") as f:
            return f.read(n)
    except OSError as e:
        raise DataSetException(f"{path}: cannot read: {e}") from e


def frame_layout(layout: RecordLayout, sig_shape: Sequence[int]) -> FrameLayout:
    """The base ``FrameLayout`` of ``layout``'s frames, as frames of ``sig_shape``."""
    frame_bytes = prod(layout.frame_shape) * layout.dtype.itemsize
    spans = tuple(
        FileSpan(f.path, f.offset + layout.skip_bytes, layout.record_bytes, f.n_records)
        for f in layout.files
    )
    return FrameLayout(spans, frame_bytes, tuple(int(s) for s in sig_shape), layout.dtype.str)


class RecordStackDataSet(DataSet):
    """Base of the datasets whose frames are records in files; subclasses read the layout.

    Parameters
    ----------
    path
        The file.
    nav_shape, sig_shape
        Reinterpret the frames with these shapes (``sig_shape`` must keep the pixel count).
    sync_offset
        Dataset frame ``i`` is file frame ``i + sync_offset``; frames outside read as zeros.
    num_partitions
        Number of partitions; by default derived from size and worker count.
    io_backend
        ``'mmap'`` (default: read-only memory maps, views where possible) or
        ``'buffered'`` (reads into a reused buffer).
    """

    def __init__(
        self,
        path: str | os.PathLike,
        nav_shape: Sequence[int] | None = None,
        sig_shape: Sequence[int] | None = None,
        sync_offset: int = 0,
        num_partitions: int | None = None,
        io_backend=None,
    ):
        super().__init__(num_partitions=num_partitions, sync_offset=sync_offset)
        self._path = os.fspath(path)
        self._io_backend = check_io_backend(io_backend, self._path)
        self._nav_shape = nav_shape
        self._sig_shape = sig_shape
        self._layout: RecordLayout | None = None
        self._shape: Shape | None = None

    @property
    def path(self) -> str:
        """The file."""
        return self._path

    @abstractmethod
    def read_layout(self) -> RecordLayout:
        """Read and check the headers; raise ``DataSetException`` naming file and problem."""

    def initialize(self, executor) -> RecordStackDataSet:
        layout = self.read_layout()
        n_file = layout.n_frames
        if n_file < 1:
            raise DataSetException(f"{self._path}: the file holds no frames")
        native_nav = layout.nav_shape or (n_file,)
        try:
            nav, sig = resolve_shapes(
                self._nav_shape,
                self._sig_shape,
                (*native_nav, *layout.frame_shape),
                len(layout.frame_shape),
                self._path,
            )
        except (TypeError, ValueError) as e:
            raise DataSetException(
                f"{self._path}: invalid nav_shape {self._nav_shape!r} or sig_shape "
                f"{self._sig_shape!r}: {e}"
            ) from e
        if not nav or not sig:
            raise DataSetException(f"{self._path}: nav_shape and sig_shape must not be empty")
        if self.sync_offset == 0 and prod(nav) > n_file:
            raise DataSetException(
                f"{self._path}: nav_shape {nav} needs {prod(nav)} frames, the file has {n_file}"
            )
        check_sync_offset(self.sync_offset, n_file, self._path)
        self._layout = layout
        self._shape = Shape(nav + sig, sig_dims=len(sig))
        return self

    @property
    def shape(self) -> Shape:
        return self._shape

    @property
    def dtype(self) -> np.dtype:
        return None if self._layout is None else self._layout.dtype

    def check_valid(self) -> bool:
        for f in self._layout.files if self._layout else ():
            read_head(f.path, 1)
        return True

    def make_partition(self, start: int, stop: int) -> LayoutPartition:
        if self._layout is None:
            raise DataSetException(f"{self._path}: dataset is not initialized")
        return LayoutPartition(
            layout=frame_layout(self._layout, tuple(self._shape.sig)),
            start=start,
            stop=stop,
            dataset_shape=self._shape,
            dtype=self._layout.dtype,
            sync_offset=self.sync_offset,
            io_backend=self._io_backend,
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
