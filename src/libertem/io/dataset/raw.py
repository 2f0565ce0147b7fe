"""Raw binary files: frames stored back to back, no header."""

from __future__ import annotations

import os

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
    DirectBackend,
    File,
    FileSet,
    IOBackend,
    dataset_shape,
    resolve_shapes,
)
from libertem.io.dataset.base.checks import check_dtype, check_size
from libertem.io.dataset.base.filebased import FileSetDataSet, ignored_tileshape, renamed_shape
from libertem.io.dataset.base.files import check_file


class RAWDatasetParams(DatasetParamsConverter):
    """JSON parameters of raw files: ``path``, ``dtype``, ``nav_shape``, ``sig_shape``, ..."""

    SCHEMA = dataset_schema(
        "RAWDatasetParams",
        "RAW",
        {**COMMON_PROPERTIES, "dtype": {"type": "string"}},
        required=("path", "dtype", "nav_shape", "sig_shape"),
    )


class RawFile(File):
    """A raw file: frames back to back (no header unless the file set says so)."""


class RawFileSet(FileSet):
    """The file (set) of a raw dataset."""


class RawPartition(BasePartition):
    """A partition of a raw dataset."""


class RawFileDataSet(FileSetDataSet):
    """A raw binary file of frames in C order, without header.

    Parameters
    ----------
    path
        The file.
    dtype
        Dtype of the stored values (byte order included, e.g. ``'>u2'``).
    scan_size
        Deprecated name of ``nav_shape``.
    detector_size
        Deprecated name of ``sig_shape``.
    enable_direct
        Deprecated: read with direct I/O (same as ``io_backend=DirectBackend()``).
    detector_size_raw, crop_detector_to
        No longer supported (a ``DataSetException`` says so).
    tileshape
        Ignored (tiles are negotiated); a warning says so.
    nav_shape
        Navigation shape, e.g. ``(ny, nx)``.
    sig_shape
        Frame shape, e.g. ``(sy, sx)``.
    sync_offset
        Dataset frame ``i`` is file frame ``i + sync_offset``; frames outside the file
        read as zeros.
    io_backend
        An :class:`~libertem.io.dataset.base.IOBackend` (or ``'mmap'``, ``'buffered'``,
        ``'direct'``); default: memory maps, tiles are views where possible.
    num_partitions
        Number of partitions; by default derived from size and worker count.
    """

    partition_cls = RawPartition

    def __init__(
        self,
        path,
        dtype,
        scan_size=None,
        detector_size=None,
        enable_direct=False,
        detector_size_raw=None,
        crop_detector_to=None,
        tileshape=None,
        nav_shape=None,
        sig_shape=None,
        sync_offset=0,
        io_backend=None,
        num_partitions=None,
    ):
        where = os.fspath(path)
        if detector_size_raw is not None or crop_detector_to is not None:
            raise DataSetException(
                f"{where}: detector_size_raw and crop_detector_to are not supported; "
                "pass the stored frame shape as sig_shape"
            )
        if enable_direct:
            if io_backend is not None:
                raise DataSetException(f"{where}: pass io_backend or enable_direct, not both")
            io_backend = DirectBackend()
        ignored_tileshape(tileshape)
        super().__init__(
            io_backend=io_backend, num_partitions=num_partitions, sync_offset=sync_offset
        )
        self._path = where
        nav_shape = renamed_shape(nav_shape, scan_size, "nav_shape", "scan_size", where)
        sig_shape = renamed_shape(sig_shape, detector_size, "sig_shape", "detector_size", where)
        if nav_shape is None or sig_shape is None:
            raise DataSetException(f"{where}: raw files need nav_shape and sig_shape")
        self._native_dtype = check_dtype(dtype, where)
        sig_dims = len(sig_shape)
        self._nav, self._sig = resolve_shapes(nav_shape, sig_shape, sig_shape, sig_dims, where)
        check_size(self._nav + self._sig, self._native_dtype, where)

    @property
    def path(self) -> str:
        """The file."""
        return self._path

    @classmethod
    def get_msg_converter(cls):
        return RAWDatasetParams

    @classmethod
    def get_supported_extensions(cls) -> set[str]:
        return {"raw", "bin"}

    def initialize(self, executor) -> RawFileDataSet:
        size = check_file(self._path)
        frame_bytes = prod(self._sig) * self._native_dtype.itemsize
        n_file = size // frame_bytes
        if n_file == 0:
            raise DataSetException(
                f"{self._path}: file of {size} bytes is smaller than one frame "
                f"of {self._sig} x {self._native_dtype} ({frame_bytes} bytes)"
            )
        shape = dataset_shape(
            self._nav,
            self._sig,
            (n_file, *self._sig),
            len(self._sig),
            n_file,
            self.sync_offset,
            self._path,
            self._native_dtype,
        )
        self._fileset = RawFileSet([RawFile(self._path, 0, n_file, self._native_dtype, self._sig)])
        self._set_meta(shape, self._native_dtype, n_file)
        return self


__all__ = [
    "BasePartition",
    "DataSet",
    "DataSetException",
    "DataSetMeta",
    "DirectBackend",
    "File",
    "FileSet",
    "IOBackend",
    "MessageConverter",
    "RAWDatasetParams",
    "RawFile",
    "RawFileDataSet",
    "RawFileSet",
    "RawPartition",
    "Shape",
    "prod",
]
