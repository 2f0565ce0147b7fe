"""FEI/TIA ``.ser`` files: a series of images (or spectra), each with its own small header.

Layout (little-endian): a header (byte order ``0x4949``, series ID ``0x0197``, version
``0x0210`` with 32-bit or ``0x0220`` with 64-bit offsets, data type ``0x4122`` images or
``0x4120`` spectra, tag type, total and valid number of elements, offset of the offset
arrays, number of dimensions and the dimension arrays); at the offset-array offset, the
byte offset of every element. An image element is a 50-byte header (calibrations, data
type, ``ArraySizeX``, ``ArraySizeY``) followed by ``ArraySizeY x ArraySizeX`` values; a
spectrum element a 26-byte header and ``ArrayLength`` values.
"""

from __future__ import annotations

import math
import os
import struct

import numpy as np

from libertem.common.exceptions import DataSetException
from libertem.common.math import flat_nonzero, prod
from libertem.common.messageconverter import (
    COMMON_PROPERTIES,
    DatasetParamsConverter,
    MessageConverter,
    dataset_schema,
)
from libertem.common.shape import Shape
from libertem.common.slice import Slice
from libertem.io.dataset.base import (
    BasePartition,
    DataSet,
    DataSetMeta,
    DataTile,
    FileSet,
    TilingScheme,
    check_sync_offset,
    dataset_shape,
)
from libertem.io.dataset.base.dataset import files_cache_key
from libertem.io.dataset.base.files import check_file
from libertem.io.dataset.base.framelist import OffsetsPartition

NUMPY = "numpy"
CUDA = "cuda"

SER_DTYPES = {1: "<u1", 2: "<u2", 3: "<u4", 4: "<i1", 5: "<i2", 6: "<i4", 7: "<f4", 8: "<f8"}
IMAGE_ID, SPECTRUM_ID = 0x4122, 0x4120
MAX_DIMS = 8


def _fail(path, what):
    raise DataSetException(f"{path}: not a valid SER file: {what}")


def read_ser_header(path: str | os.PathLike) -> dict:
    """Parse the header, offset array and first element header of a ``.ser`` file.

    Returns a dict with ``nav_dims`` (dimension sizes, slowest first), ``offsets`` (data
    offset of each valid element, after its element header), ``dtype``, ``sig_shape``
    and ``size``.

    Raises
    ------
    DataSetException
        If the file is missing, not a SER file, or inconsistent with its size.
    """
    path = os.fspath(path)
    size = check_file(path)
    try:
        with open(path, "rb") as f:
            head = f.read(34)
            if len(head) < 30:
                _fail(path, f"only {len(head)} bytes")
            order, series_id, version, type_id, _tag, total, valid = struct.unpack_from(
                "<HHHIIII", head
            )
            if order != 0x4949 or series_id != 0x0197:
                _fail(path, "wrong magic (expected 0x4949, 0x0197)")
            if version not in (0x0210, 0x0220):
                _fail(path, f"unsupported series version {version:#06x}")
            if type_id not in (IMAGE_ID, SPECTRUM_ID):
                _fail(path, f"unknown data type id {type_id:#06x}")
            wide = version == 0x0220
            if wide and len(head) < 34:
                _fail(path, "header truncated")
            (offset_array,) = struct.unpack_from("<Q" if wide else "<I", head, 22)
            (ndims,) = struct.unpack_from("<I", head, 30 if wide else 26)
            if ndims > MAX_DIMS:
                _fail(path, f"{ndims} dimensions")
            f.seek(34 if wide else 30)
            nav_dims = []
            for _ in range(ndims):
                block = f.read(28)
                if len(block) < 28:
                    _fail(path, "dimension array truncated")
                dim_size, _, _, _, desc_len = struct.unpack("<iddii", block)
                if dim_size < 1 or desc_len < 0 or desc_len > size:
                    _fail(path, f"invalid dimension (size {dim_size})")
                f.seek(desc_len, 1)
                raw = f.read(4)
                if len(raw) < 4:
                    _fail(path, "dimension array truncated")
                (units_len,) = struct.unpack("<i", raw)
                if units_len < 0 or units_len > size:
                    _fail(path, "invalid units length")
                f.seek(units_len, 1)
                nav_dims.append(dim_size)
            if valid < 1 or valid > total:
                _fail(path, f"{valid} valid of {total} elements")
            itemsize = 8 if wide else 4
            if offset_array + total * itemsize > size:
                _fail(
                    path,
                    f"offset array at {offset_array} ({total} entries) runs past the end "
                    f"of the file ({size} bytes)",
                )
            f.seek(offset_array)
            offsets = np.frombuffer(f.read(valid * itemsize), dtype="<u8" if wide else "<u4")
            offsets = offsets.astype(np.int64)
            elem = _read_element_header(f, path, int(offsets[0]), type_id, size)
    except OSError as e:
        raise DataSetException(f"{path}: cannot read: {e}") from e
    dtype, sig_shape, head_len = elem
    frame_bytes = prod(sig_shape) * dtype.itemsize
    if np.any(offsets < 0) or np.any(offsets + head_len + frame_bytes > size):
        bad = int(np.flatnonzero((offsets < 0) | (offsets + head_len + frame_bytes > size))[0])
        _fail(
            path,
            f"element {bad} at offset {int(offsets[bad])} ({frame_bytes} bytes of data) runs "
            f"past the end of the file ({size} bytes); the file is truncated",
        )
    if valid > 1:  # the last element must agree with the first
        last = _read_element_header_at(path, int(offsets[-1]), type_id, size)
        if last != elem:
            _fail(path, "elements differ in shape or data type")
    return dict(
        nav_dims=tuple(nav_dims),
        total=total,
        offsets=offsets + head_len,
        dtype=dtype,
        sig_shape=sig_shape,
        size=size,
    )


def _read_element_header_at(path, offset, type_id, size):
    with open(path, "rb") as f:
        return _read_element_header(f, path, offset, type_id, size)


def _read_element_header(f, path, offset, type_id, size):
    head_len = 50 if type_id == IMAGE_ID else 26
    if offset < 0 or offset + head_len > size:
        _fail(path, f"element header at offset {offset} is past the end of the file")
    f.seek(offset)
    raw = f.read(head_len)
    if type_id == IMAGE_ID:
        code, sx, sy = struct.unpack_from("<hii", raw, 40)
        sig_shape = (sy, sx)
    else:
        code, length = struct.unpack_from("<hi", raw, 20)
        sig_shape = (length,)
    if code not in SER_DTYPES:
        _fail(path, f"unsupported element data type {code} at offset {offset}")
    if any(s < 1 for s in sig_shape):
        _fail(path, f"invalid element shape {sig_shape} at offset {offset}")
    return np.dtype(SER_DTYPES[code]), sig_shape, head_len


class SERDatasetParams(DatasetParamsConverter):
    """JSON parameters of ``.ser`` files: ``path``, ``emipath``, ``nav_shape``, ..."""

    SCHEMA = dataset_schema(
        "SERDatasetParams", "SER", {**COMMON_PROPERTIES, "emipath": {"type": "string"}}
    )


class SERFile:
    """A ``.ser`` file of ``num_frames`` elements (frames ``[0, num_frames)``).

    Parameters
    ----------
    path
        The file.
    num_frames
        Valid elements in the file.
    """

    def __init__(self, path, num_frames):
        self.path = os.fspath(path)
        self._num_frames = int(num_frames)

    @property
    def start_idx(self) -> int:
        """``0``: a ``.ser`` file holds a whole series."""
        return 0

    @property
    def end_idx(self) -> int:
        """One past the last frame."""
        return self._num_frames

    @property
    def num_frames(self) -> int:
        """Valid elements in the file."""
        return self._num_frames

    def get_handle(self):
        """The file, opened read-only (binary); close it when done."""
        return open(self.path, "rb")

    def __repr__(self) -> str:
        return f"<SERFile {self.path} ({self._num_frames} frames)>"


class SERFileSet(FileSet):
    """The file of a ``.ser`` dataset."""


class SERPartition(OffsetsPartition):
    """A partition of a ``.ser`` file: frames at the offsets of its element headers.

    Parameters
    ----------
    path
        The file.
    *args, **kwargs
        As for :class:`~libertem.io.dataset.base.framelist.OffsetsPartition`.
    """

    def __init__(self, path, *args, **kwargs):
        super().__init__(path, *args, **kwargs)
        self.path = path


class SERDataSet(DataSet):
    """A FEI/TIA ``.ser`` file of images (or spectra).

    Images are stored bottom row first; they are read flipped, top row first, as
    ncempy and rsciio read them. The navigation shape is taken from the dimension
    arrays (slowest first) when they describe all elements; elements
    beyond the number of valid elements (an aborted acquisition) read as zeros. When
    the elements are evenly spaced, frames are a strided view of a memory map,
    otherwise they are read one by one.

    Parameters
    ----------
    path
        The file.
    emipath
        The ``.emi`` file of the series (optional; checked to be readable).
    nav_shape, sig_shape
        Reinterpret the data with these shapes.
    sync_offset
        Dataset frame ``i`` is file frame ``i + sync_offset``.
    io_backend
        ``'mmap'`` (default: a strided view of a memory map when elements are evenly
        spaced) or ``'buffered'`` (element by element reads).
    num_partitions
        Number of partitions; by default derived from size and worker count.
    """

    def __init__(
        self,
        path,
        emipath=None,
        nav_shape=None,
        sig_shape=None,
        sync_offset=0,
        io_backend=None,
        num_partitions=None,
    ):
        super().__init__(
            io_backend=io_backend, num_partitions=num_partitions, sync_offset=sync_offset
        )
        self._path = os.fspath(path)
        self._emipath = None if emipath is None else os.fspath(emipath)
        self._nav_shape = nav_shape
        self._sig_shape = sig_shape
        self._shape = None
        self._dtype = None

    @classmethod
    def detect_params(cls, path, executor=None):
        path = os.fspath(path)
        try:
            with open(path, "rb") as f:
                head = f.read(4)
        except OSError:
            return False
        if head != struct.pack("<HH", 0x4949, 0x0197):
            return False
        return {"parameters": {"path": path}}

    @classmethod
    def get_msg_converter(cls):
        return SERDatasetParams

    @classmethod
    def get_supported_extensions(cls) -> set[str]:
        return {"ser"}

    def get_supported_io_backends(self) -> list[str]:
        """``['mmap', 'buffered']``."""
        return ["mmap", "buffered"]

    def get_cache_key(self) -> str:
        return files_cache_key(self, [self._path])

    def initialize(self, executor) -> SERDataSet:
        if self._emipath is not None:
            check_file(self._emipath)
        info = read_ser_header(self._path)
        self._info = info
        n_file = int(info["offsets"].size)
        native_nav = info["nav_dims"]
        if not native_nav or math.prod(native_nav) != info["total"]:
            native_nav = (info["total"],)
        sig_dims = len(info["sig_shape"])
        native = (*native_nav, *info["sig_shape"])
        if self._sig_shape is not None:
            sig_dims = len(self._sig_shape)
            native = (*native_nav, *tuple(int(s) for s in self._sig_shape))
            if len(info["sig_shape"]) == 2 and tuple(self._sig_shape) != info["sig_shape"]:
                raise DataSetException(
                    f"{self._path}: SER images (stored bottom row first) cannot take a "
                    f"different sig_shape {tuple(self._sig_shape)}; frames are "
                    f"{info['sig_shape']}"
                )
            if prod(self._sig_shape) != prod(info["sig_shape"]):
                raise DataSetException(
                    f"{self._path}: sig_shape {tuple(self._sig_shape)} does not fit frames "
                    f"of shape {info['sig_shape']}"
                )
        # the header's own shape may count elements never written (they read as zeros)
        frames = n_file if self._nav_shape is not None else info["total"]
        self._shape = dataset_shape(
            self._nav_shape,
            self._sig_shape,
            native,
            sig_dims,
            frames,
            self.sync_offset,
            self._path,
            info["dtype"],
        )
        check_sync_offset(self.sync_offset, n_file, self._path)
        self._dtype = info["dtype"]
        self._image_count = n_file
        self._fileset = SERFileSet([SERFile(self._path, n_file)])
        return self

    @property
    def fileset(self) -> SERFileSet:
        """The file of the dataset."""
        return self._fileset

    @property
    def shape(self) -> Shape:
        return self._shape

    @property
    def dtype(self) -> np.dtype:
        return self._dtype

    def check_valid(self) -> bool:
        check_file(self._path)
        return True

    def make_partition(self, start: int, stop: int) -> SERPartition:
        if self._shape is None:
            raise DataSetException(f"{self._path}: dataset is not initialized")
        return SERPartition(
            self._path,
            offsets=self._info["offsets"],
            sig_shape=tuple(self._shape.sig),
            file_size=self._info["size"],
            flip_rows=len(self._info["sig_shape"]) == 2,
            start=start,
            stop=stop,
            dataset_shape=self._shape,
            dtype=self._dtype,
            sync_offset=self.sync_offset,
            io_backend=self.get_io_backend().id_,
        )


__all__ = [
    "CUDA",
    "NUMPY",
    "BasePartition",
    "DataSet",
    "DataSetException",
    "DataSetMeta",
    "DataTile",
    "FileSet",
    "MessageConverter",
    "SERDataSet",
    "SERDatasetParams",
    "SERFile",
    "SERFileSet",
    "SERPartition",
    "Shape",
    "Slice",
    "TilingScheme",
    "flat_nonzero",
    "prod",
    "read_ser_header",
]
