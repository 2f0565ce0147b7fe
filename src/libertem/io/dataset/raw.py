"""Raw binary files: frames stored back to back, no header."""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np

from libertem.common.exceptions import DataSetException
from libertem.common.shape import Shape
from libertem.io.dataset.base import DataSet, check_sync_offset
from libertem.io.dataset.base.files import check_file
from libertem.io.dataset.base.filesource import (
    LayoutPartition,
    check_io_backend,
    single_file_layout,
)


class RawFileDataSet(DataSet):
    """A raw binary file of frames in C order, without header.

    Parameters
    ----------
    path
        The file.
    nav_shape
        Navigation shape, e.g. ``(ny, nx)``.
    sig_shape
        Frame shape, e.g. ``(sy, sx)``.
    dtype
        Dtype of the stored values (byte order included, e.g. ``'>u2'``).
    sync_offset
        Dataset frame ``i`` is file frame ``i + sync_offset``; frames outside the file
        read as zeros.
    num_partitions
        Number of partitions; by default derived from size and worker count.
    io_backend
        ``'mmap'`` (default: memory-mapped, tiles are views where possible) or
        ``'buffered'`` (reads into reused buffers; better for files not in the page cache).
    """

    def __init__(
        self,
        path: str | os.PathLike,
        nav_shape: Sequence[int],
        sig_shape: Sequence[int],
        dtype,
        sync_offset: int = 0,
        num_partitions: int | None = None,
        io_backend=None,
    ):
        super().__init__(num_partitions=num_partitions, sync_offset=sync_offset)
        self._path = os.fspath(path)
        if nav_shape is None or sig_shape is None:
            raise DataSetException(f"{self._path}: raw files need nav_shape and sig_shape")
        nav = tuple(int(s) for s in nav_shape)
        sig = tuple(int(s) for s in sig_shape)
        if not nav or not sig or any(s < 1 for s in nav + sig):
            raise DataSetException(
                f"{self._path}: nav_shape {nav} and sig_shape {sig} must be non-empty and positive"
            )
        try:
            self._dtype = np.dtype(dtype)
        except TypeError as e:
            raise DataSetException(f"{self._path}: invalid dtype {dtype!r}") from e
        self._shape = Shape(nav + sig, sig_dims=len(sig))
        self._file_frames = None
        self._io_backend = check_io_backend(io_backend, self._path)

    @property
    def path(self) -> str:
        """The file."""
        return self._path

    def initialize(self, executor) -> RawFileDataSet:
        size = check_file(self._path)
        frame_bytes = self._shape.sig.size * self._dtype.itemsize
        self._file_frames = size // frame_bytes
        nav_size = self._shape.nav.size
        if self._file_frames == 0:
            raise DataSetException(
                f"{self._path}: file of {size} bytes is smaller than one frame "
                f"of {tuple(self._shape.sig)} x {self._dtype} ({frame_bytes} bytes)"
            )
        if self.sync_offset == 0 and self._file_frames < nav_size:
            raise DataSetException(
                f"{self._path}: file too small: nav_shape {tuple(self._shape.nav)} x sig_shape "
                f"{tuple(self._shape.sig)} x {self._dtype} needs {nav_size * frame_bytes} bytes, "
                f"the file has {size}"
            )
        check_sync_offset(self.sync_offset, self._file_frames, self._path)
        return self

    @property
    def shape(self) -> Shape:
        return self._shape

    @property
    def dtype(self) -> np.dtype:
        return self._dtype

    def check_valid(self) -> bool:
        try:
            with open(self._path, "rb") as f:
                f.read(1)
        except OSError as e:
            raise DataSetException(f"{self._path}: cannot read: {e}") from e
        return True

    def make_partition(self, start: int, stop: int) -> LayoutPartition:
        if self._file_frames is None:
            raise DataSetException(f"{self._path}: dataset is not initialized")
        layout = single_file_layout(
            self._path, 0, self._file_frames, tuple(self._shape.sig), self._dtype
        )
        return LayoutPartition(
            layout,
            start,
            stop,
            self._shape,
            self._dtype,
            sync_offset=self.sync_offset,
            io_backend=self._io_backend,
        )
