"""Record stacks: frames stored as fixed-size records in one or more files.

A *record stack* is a file (or a series of files) holding fixed-size records, each a
frame preceded by a per-frame header or followed by extra bytes. Formats describe
where the records are (:class:`RecordLayout`, read from their headers in
:meth:`RecordStackDataSet.read_layout`); reading goes through the shared
:class:`~libertem.io.dataset.base.filesource.FrameLayout` machinery: strided views of
read-only memory maps (``io_backend='mmap'``, the default) or buffered reads
(``io_backend='buffered'``), never including header bytes.
"""

from __future__ import annotations

import os
from abc import abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from math import prod

import numpy as np

from libertem.common.exceptions import DataSetException
from libertem.common.shape import Shape
from libertem.io.dataset.base.dataset import DataSet, dataset_shape
from libertem.io.dataset.base.filesource import (
    FileSpan,
    FrameLayout,
    LayoutPartition,
    check_io_backend,
)


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
            shape = dataset_shape(
                self._nav_shape,
                self._sig_shape,
                (*native_nav, *layout.frame_shape),
                len(layout.frame_shape),
                n_file,
                self.sync_offset,
                self._path,
            )
        except (TypeError, ValueError) as e:
            raise DataSetException(
                f"{self._path}: invalid nav_shape {self._nav_shape!r} or sig_shape "
                f"{self._sig_shape!r}: {e}"
            ) from e
        if not tuple(shape.nav) or not tuple(shape.sig):
            raise DataSetException(f"{self._path}: nav_shape and sig_shape must not be empty")
        self._layout = layout
        self._shape = shape
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
