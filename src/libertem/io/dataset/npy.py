"""NumPy ``.npy`` files, read in place."""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np

from libertem.common.exceptions import DataSetException
from libertem.common.shape import Shape
from libertem.io.dataset.base import DataSet, dataset_shape
from libertem.io.dataset.base.files import check_file
from libertem.io.dataset.base.filesource import (
    LayoutPartition,
    check_io_backend,
    single_file_layout,
)


def read_npy_header(path: str) -> tuple[tuple[int, ...], np.dtype, int]:
    """Shape, dtype and data offset of an ``.npy`` file.

    Raises
    ------
    DataSetException
        If the file is not an ``.npy`` file, is Fortran-ordered, holds objects,
        or is shorter than its header says.
    """
    size = check_file(path)
    try:
        with open(path, "rb") as f:
            version = np.lib.format.read_magic(f)
            if version == (1, 0):
                shape, fortran, dtype = np.lib.format.read_array_header_1_0(f)
            else:
                shape, fortran, dtype = np.lib.format.read_array_header_2_0(f)
            offset = f.tell()
    except Exception as e:  # numpy's header parser fails in many ways on corrupt headers
        raise DataSetException(f"{path}: not a valid .npy file: {e!r}") from e
    if fortran:
        raise DataSetException(f"{path}: Fortran-ordered .npy files are not supported")
    if dtype.hasobject:
        raise DataSetException(f"{path}: .npy files of Python objects are not supported")
    needed = offset + int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if size < needed:
        raise DataSetException(
            f"{path}: file truncated: header says {shape} x {dtype} ({needed} bytes), "
            f"the file has {size}"
        )
    return tuple(shape), dtype, offset


class NPYDataSet(DataSet):
    """An ``.npy`` file, memory-mapped read-only.

    Parameters
    ----------
    path
        The file.
    sig_dims
        How many trailing axes are signal axes.
    nav_shape, sig_shape
        Reinterpret the data with these shapes.
    sync_offset
        Dataset frame ``i`` is file frame ``i + sync_offset``.
    num_partitions
        Number of partitions; by default derived from size and worker count.
    io_backend
        ``'mmap'`` (default) or ``'buffered'``; see ``RawFileDataSet``.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        sig_dims: int = 2,
        nav_shape: Sequence[int] | None = None,
        sig_shape: Sequence[int] | None = None,
        sync_offset: int = 0,
        num_partitions: int | None = None,
        io_backend=None,
    ):
        super().__init__(num_partitions=num_partitions, sync_offset=sync_offset)
        self._path = os.fspath(path)
        self._sig_dims = len(sig_shape) if sig_shape is not None else int(sig_dims)
        self._nav_shape = nav_shape
        self._sig_shape = sig_shape
        self._shape = None
        self._dtype = None
        self._io_backend = check_io_backend(io_backend, self._path)

    @classmethod
    def detect_params(cls, path, executor=None):
        if not os.fspath(path).lower().endswith(".npy"):
            return False
        try:
            read_npy_header(os.fspath(path))
        except DataSetException:
            return False
        return {"parameters": {"path": os.fspath(path)}}

    def initialize(self, executor) -> NPYDataSet:
        shape, dtype, offset = read_npy_header(self._path)
        sig_shape = self._sig_shape
        native = shape
        if sig_shape is not None:
            frame = int(np.prod(sig_shape))
            total = int(np.prod(shape))
            if total % frame != 0:
                raise DataSetException(
                    f"{self._path}: data of shape {shape} cannot be split into frames of "
                    f"sig_shape {tuple(sig_shape)}"
                )
            native = (total // frame, *tuple(sig_shape))
        sig_dims = self._sig_dims
        self._file_frames = (
            int(np.prod(native[: len(native) - sig_dims])) if sig_shape is None else native[0]
        )
        self._shape = dataset_shape(
            self._nav_shape,
            sig_shape,
            native,
            sig_dims,
            self._file_frames,
            self.sync_offset,
            self._path,
        )
        self._dtype = dtype
        self._offset = offset
        return self

    @property
    def shape(self) -> Shape:
        return self._shape

    @property
    def dtype(self) -> np.dtype:
        return self._dtype

    def make_partition(self, start: int, stop: int) -> LayoutPartition:
        layout = single_file_layout(
            self._path, self._offset, self._file_frames, tuple(self._shape.sig), self._dtype
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
