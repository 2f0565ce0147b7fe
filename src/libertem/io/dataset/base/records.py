"""Record stacks: frames stored as fixed-size records in one or more files.

A *record stack* is a file (or a series of files) holding fixed-size records, each a
frame preceded by a per-frame header or followed by extra bytes. Formats describe
where the records are (:class:`RecordLayout`, read from their headers in
:meth:`RecordStackDataSet.read_layout`); reading goes through the shared
:class:`~libertem.io.dataset.base.layout.FrameLayout` machinery: strided views of
read-only memory maps (``io_backend='mmap'``, the default) or buffered reads
(``io_backend='buffered'`` or ``'direct'``), never including header bytes: the layout
becomes a :class:`~libertem.io.dataset.base.fileset.FileSet` read by
:class:`~libertem.io.dataset.base.basepartition.BasePartition` objects.
"""

from __future__ import annotations

import os
from abc import abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from math import prod

import numpy as np

from libertem.common.exceptions import DataSetException
from libertem.io.dataset.base.checks import dataset_shape
from libertem.io.dataset.base.file import File
from libertem.io.dataset.base.filebased import FileSetDataSet
from libertem.io.dataset.base.fileset import FileSet


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


def record_fileset(layout: RecordLayout, file_cls=File, fileset_cls=FileSet) -> FileSet:
    """The :class:`FileSet` of ``layout``'s frames (headers and trailers skipped)."""
    frame_bytes = prod(layout.frame_shape) * layout.dtype.itemsize
    footer = layout.record_bytes - layout.skip_bytes - frame_bytes
    if footer < 0:
        raise DataSetException(
            f"{layout.files[0].path}: records of {layout.record_bytes} bytes cannot hold "
            f"{layout.skip_bytes} header bytes and a frame of {frame_bytes} bytes"
        )
    files, start = [], 0
    for f in layout.files:
        files.append(
            file_cls(
                f.path,
                start,
                start + f.n_records,
                layout.dtype,
                layout.frame_shape,
                frame_footer=footer,
                frame_header=layout.skip_bytes,
                file_header=f.offset,
            )
        )
        start += f.n_records
    return fileset_cls(files)


class RecordStackDataSet(FileSetDataSet):
    """Base of the datasets whose frames are records in files; subclasses read the layout.

    Subclasses call ``RecordStackDataSet.__init__`` from their own constructor, implement
    :meth:`read_layout`, and may set :attr:`file_cls` / :attr:`fileset_cls` /
    :attr:`partition_cls` to their own classes.

    Parameters
    ----------
    path
        The file.
    nav_shape, sig_shape
        Reinterpret the frames with these shapes (``sig_shape`` must keep the pixel count).
    sync_offset
        Dataset frame ``i`` is file frame ``i + sync_offset``; frames outside read as zeros.
    io_backend
        An :class:`~libertem.io.dataset.base.IOBackend` or its id (``'mmap'``, the
        default: read-only memory maps, views where possible; ``'buffered'``, ``'direct'``).
    num_partitions
        Number of partitions; by default derived from size and worker count.
    """

    file_cls: type[File] = File
    fileset_cls: type[FileSet] = FileSet

    def __init__(
        self,
        path: str | os.PathLike,
        nav_shape: Sequence[int] | None = None,
        sig_shape: Sequence[int] | None = None,
        sync_offset: int = 0,
        io_backend=None,
        num_partitions: int | None = None,
    ):
        super().__init__(
            io_backend=io_backend, num_partitions=num_partitions, sync_offset=sync_offset
        )
        self._path = os.fspath(path)
        self._nav_shape = nav_shape
        self._sig_shape = sig_shape
        self._layout: RecordLayout | None = None

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
        self._fileset = record_fileset(layout, self.file_cls, self.fileset_cls)
        self._set_meta(shape, layout.dtype, n_file)
        return self

    def get_diagnostics(self) -> list[dict]:
        if self._layout is None:
            return []
        return [
            {"name": "dtype", "value": str(self._layout.dtype)},
            {"name": "frames in file(s)", "value": str(self._layout.n_frames)},
            {"name": "files", "value": str(len(self._layout.files))},
        ]
