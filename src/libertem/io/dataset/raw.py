"""Raw binary files: frames stored back to back, no header."""

from __future__ import annotations

import os
import warnings

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
from libertem.io.dataset.base.filebased import FileSetDataSet
from libertem.io.dataset.base.files import check_file


class RAWDatasetParams(DatasetParamsConverter):
    """JSON parameters of raw files: ``path``, ``dtype``, ``nav_shape``, ``sig_shape``, ..."""

    SCHEMA = dataset_schema(
        "RAWDatasetParams",
        "RAW",
        {**COMMON_PROPERTIES, "dtype": {"type": "string"}},
        required=("path", "dtype", "nav_shape", "sig_shape"),
    )

    def convert_to_python(self, raw_data) -> dict:
        """``path``, ``dtype``, ``nav_shape``, ``sig_shape`` (values as they are), plus
        ``sync_offset`` if the message has one."""
        data = {k: raw_data[k] for k in ("path", "dtype", "nav_shape", "sig_shape")}
        if "sync_offset" in raw_data:
            data["sync_offset"] = raw_data["sync_offset"]
        return data


def _deprecated(message: str) -> None:
    warnings.warn(message, FutureWarning, stacklevel=4)


def _as_shape(shape) -> tuple[int, ...] | None:
    return None if shape is None else tuple(int(s) for s in shape)


def legacy_raw_shapes(
    scan_size, detector_size, detector_size_raw, crop_detector_to, nav_shape, sig_shape
) -> tuple:
    """``(nav_shape, sig_shape)`` from the raw dataset's current and deprecated arguments.

    Each deprecated argument issues a ``FutureWarning``.

    Raises
    ------
    ValueError
        For conflicting arguments, or a crop (no longer supported).
    TypeError
        If a shape is missing in the end.
    """
    if crop_detector_to is not None:
        _deprecated(
            "crop_detector_to and detector_size_raw are deprecated; "
            "please specify sig_shape instead"
        )
        if detector_size is not None:
            raise ValueError("cannot specify both detector_size and crop_detector_to")
        if _as_shape(detector_size_raw) != _as_shape(crop_detector_to):
            raise ValueError(
                "RawFileDataSet can't crop detector anymore, please use EMPAD DataSet"
            )
        detector_size = crop_detector_to
    elif detector_size_raw is not None:
        _deprecated("detector_size_raw is deprecated and has no effect")
    if scan_size is not None:
        _deprecated("scan_size argument is deprecated. please specify nav_shape instead")
        if nav_shape is not None:
            raise ValueError("cannot specify both scan_size and nav_shape")
        nav_shape = scan_size
    if detector_size is not None:
        _deprecated("detector_size argument is deprecated. please specify sig_shape instead")
        if sig_shape is not None:
            raise ValueError("cannot specify both detector_size and sig_shape")
        sig_shape = detector_size
    if nav_shape is None:
        raise TypeError("missing 1 required argument: 'nav_shape'")
    if sig_shape is None:
        raise TypeError("missing 1 required argument: 'sig_shape'")
    return nav_shape, sig_shape


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
        Deprecated; only equal values are accepted (as ``sig_shape``), a crop is not.
    tileshape
        Ignored (tiles are negotiated); a warning says so.
    nav_shape
        Navigation shape, e.g. ``(ny, nx)``.
    sig_shape
        Frame shape, e.g. ``(sy, sx)``.
    sync_offset
        Dataset frame ``i`` is file frame ``i + sync_offset``; frames outside the file
        are never read (results keep their initial values there).
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
        if enable_direct:
            if io_backend is not None:
                raise ValueError("can't specify io_backend and enable_direct at the same time")
            _deprecated("enable_direct is deprecated; pass `io_backend=DirectBackend()` instead")
            io_backend = DirectBackend()
        if tileshape is not None:
            _deprecated("tileshape is ignored: tiles are negotiated with the UDFs")
        nav_shape, sig_shape = legacy_raw_shapes(
            scan_size, detector_size, detector_size_raw, crop_detector_to, nav_shape, sig_shape
        )
        super().__init__(
            io_backend=io_backend, num_partitions=num_partitions, sync_offset=sync_offset
        )
        self._path = where
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
        elements = size // self._native_dtype.itemsize
        if prod(self._sig) > elements:
            raise DataSetException(f"sig_shape must be less than size: {elements}")
        n_file = elements // prod(self._sig)
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
