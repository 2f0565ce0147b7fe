"""NumPy ``.npy`` files, read in place."""

from __future__ import annotations

import os
from typing import NamedTuple

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
    dataset_shape,
)
from libertem.io.dataset.base.checks import check_dtype
from libertem.io.dataset.base.filebased import FileSetDataSet
from libertem.io.dataset.base.files import check_file


class NPYInfo(NamedTuple):
    """What an ``.npy`` header says.

    Attributes
    ----------
    dtype
        Dtype of the values, as a numpy dtype string (e.g. ``'<u2'``).
    shape
        Shape of the array.
    count
        Number of values.
    offset
        Byte offset of the data in the file.
    """

    dtype: str
    shape: tuple[int, ...]
    count: int
    offset: int


def read_npy_info(path: str) -> NPYInfo:
    """The header of the ``.npy`` file ``path``.

    Raises
    ------
    DataSetException
        If the file is not an ``.npy`` file, is Fortran-ordered, holds anything but
        numbers (objects, records, strings), or is shorter than its header says.
    """
    path = os.fspath(path)
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
    check_dtype(dtype, path)
    count = prod(shape)
    needed = offset + count * dtype.itemsize
    if size < needed:
        raise DataSetException(
            f"{path}: file truncated: header says {shape} x {dtype} ({needed} bytes), "
            f"the file has {size}"
        )
    return NPYInfo(dtype.str, tuple(int(s) for s in shape), count, offset)


def read_npy_header(path: str) -> tuple[tuple[int, ...], np.dtype, int]:
    """Shape, dtype and data offset of an ``.npy`` file (see :func:`read_npy_info`)."""
    info = read_npy_info(path)
    return info.shape, np.dtype(info.dtype), info.offset


class NPYDatasetParams(DatasetParamsConverter):
    """JSON parameters of ``.npy`` files: ``path``, ``sig_dims``, ``nav_shape``, ..."""

    SCHEMA = dataset_schema(
        "NPYDatasetParams", "NPY", {**COMMON_PROPERTIES, "sig_dims": {"type": "integer"}}
    )


class NPYDataSet(FileSetDataSet):
    """An ``.npy`` file, read in place (C order; any dtype but objects).

    Parameters
    ----------
    path
        The file.
    sig_dims
        How many trailing axes are signal axes (``None``: ``len(sig_shape)``).
    nav_shape, sig_shape
        Reinterpret the data with these shapes: frames of ``sig_shape`` are cut from
        the flat data; ``nav_shape`` may hold more or fewer positions than frames.
    sync_offset
        Dataset frame ``i`` is file frame ``i + sync_offset``.
    io_backend
        An :class:`~libertem.io.dataset.base.IOBackend` or its id; default memory maps.
    num_partitions
        Number of partitions; by default derived from size and worker count.
    """

    def __init__(
        self,
        path: str,
        sig_dims: int | None = 2,
        nav_shape: tuple[int, int] | None = None,
        sig_shape: tuple[int, int] | None = None,
        sync_offset: int = 0,
        io_backend: IOBackend | None = None,
        num_partitions: int | None = None,
    ):
        super().__init__(
            io_backend=io_backend, num_partitions=num_partitions, sync_offset=sync_offset
        )
        self._path = os.fspath(path)
        if sig_shape is not None:
            sig_shape = tuple(int(s) for s in sig_shape)
        if sig_dims is None:
            if sig_shape is None:
                raise DataSetException("Must supply one of sig_dims or sig_shape to NPYDataSet")
            sig_dims = len(sig_shape)
        elif sig_shape is not None and len(sig_shape) != sig_dims:
            raise DataSetException(
                f"Mismatching sig_dims (= {sig_dims}) and sig_shape {sig_shape} arguments"
            )
        self._sig_dims = int(sig_dims)
        self._nav_shape = nav_shape
        self._sig_shape = sig_shape

    @property
    def path(self) -> str:
        """The file."""
        return self._path

    @classmethod
    def get_msg_converter(cls):
        return NPYDatasetParams

    @classmethod
    def get_supported_extensions(cls) -> set[str]:
        return {"npy"}

    @classmethod
    def detect_params(cls, path, executor=None):
        """``{"parameters": {"path", "nav_shape", "sig_shape"}, "info": {"image_count",
        "native_sig_shape"}}`` from the file's header (two signal axes), or ``False`` if
        ``path`` is not a readable ``.npy`` file."""
        try:
            path = os.fspath(path)
            info = read_npy_info(path)
        except Exception:  # anything unreadable, or not a path at all, is not an .npy file
            return False
        nav, sig = tuple(info.shape[:-2]), tuple(info.shape[-2:])
        return {
            "parameters": {"path": path, "nav_shape": nav, "sig_shape": sig},
            "info": {"image_count": prod(nav), "native_sig_shape": sig},
        }

    def _get_fileset(self) -> FileSet:
        """The file set: the one ``.npy`` file (after :meth:`initialize`)."""
        return self._need_fileset()

    def initialize(self, executor) -> NPYDataSet:
        """Read the header: frames of ``sig_shape`` (default: the array's last ``sig_dims``
        axes) are cut from the flat data in C order, ``size // prod(sig_shape)`` of
        them (leftover values are ignored); ``nav_shape`` defaults to the array's
        leading axes."""
        info = read_npy_info(self._path)
        shape, dtype = info.shape, np.dtype(info.dtype)
        sig_dims = self._sig_dims
        if not 1 <= sig_dims <= len(shape):
            raise DataSetException(f"{self._path}: sig_dims={sig_dims} does not fit {shape}")
        split = len(shape) - sig_dims
        sig = shape[split:] if self._sig_shape is None else self._sig_shape
        nav = shape[:split] or (1,)
        if self._nav_shape is not None:
            nav = tuple(int(s) for s in self._nav_shape)
        if prod(sig) < 1:
            raise DataSetException(f"{self._path}: sig_shape {sig} holds no pixels")
        n_file = info.count // prod(sig)
        ds_shape = dataset_shape(
            nav, sig, (n_file, *sig), len(sig), n_file, self.sync_offset, self._path, dtype
        )
        self._fileset = FileSet(
            [File(self._path, 0, n_file, dtype, tuple(ds_shape.sig), file_header=info.offset)]
        )
        self._set_meta(ds_shape, dtype, n_file)
        return self


__all__ = [
    "BasePartition",
    "DataSet",
    "DataSetException",
    "DataSetMeta",
    "File",
    "FileSet",
    "IOBackend",
    "MessageConverter",
    "NPYDataSet",
    "NPYDatasetParams",
    "NPYInfo",
    "Shape",
    "prod",
    "read_npy_info",
]
