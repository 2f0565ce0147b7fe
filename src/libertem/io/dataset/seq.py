"""Norpix StreamPix ``.seq`` files (uncompressed, 8/16-bit monochrome).

Layout (little-endian): a 1024-byte header: magic ``0xFEED`` (4 bytes), the name
``"Norpix seq"`` (24 bytes, UTF-16), version and header size (4 bytes each), a
512-byte description, then the image info at byte 548: width, height, bit depth,
real bit depth, image size in bytes, image format, allocated frames, origin, true
image size (the frame stride, image plus timestamp and padding), frame rate
(double), ..., compression format at byte 620. Frames start at byte 8192 (version
5 and later, 1024 before) and follow every ``true_image_size`` bytes.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Sequence

import numpy as np

from libertem.common.exceptions import DataSetException
from libertem.common.shape import Shape
from libertem.io.dataset.base import DataSet, dataset_shape
from libertem.io.dataset.base.files import check_file
from libertem.io.dataset.base.filesource import check_io_backend
from libertem.io.dataset.framelist import OffsetsPartition

MAGIC = 0xFEED
NAME = "Norpix seq"
MONO_FORMATS = (100, 101)  # monochrome, monochrome bayer (raw)


def _fail(path, what):
    raise DataSetException(f"{path}: not a valid Norpix SEQ file: {what}")


def _has_magic(head: bytes) -> bool:
    if len(head) < 28 or struct.unpack_from("<I", head)[0] != MAGIC:
        return False
    return head[4:28].decode("utf-16-le", "replace").startswith(NAME)


def read_seq_header(path: str | os.PathLike) -> dict:
    """The image info of a ``.seq`` file: ``width``, ``height``, ``dtype``,
    ``first`` (offset of frame 0), ``stride``, ``count`` (frames) and ``size``.

    Raises
    ------
    DataSetException
        If the file is missing, not a SEQ file, compressed, not 8/16-bit monochrome,
        or shorter than its header says.
    """
    path = os.fspath(path)
    size = check_file(path)
    try:
        with open(path, "rb") as f:
            head = f.read(1024)
    except OSError as e:
        raise DataSetException(f"{path}: cannot read: {e}") from e
    if len(head) < 1024:
        _fail(path, f"header needs 1024 bytes, the file has {len(head)}")
    if not _has_magic(head):
        _fail(path, "wrong magic (expected 0xFEED and 'Norpix seq')")
    version, _header_size = struct.unpack_from("<ii", head, 28)
    (width, height, bits, _bits_real, image_bytes, image_format, allocated, _origin, true_size) = (
        struct.unpack_from("<9I", head, 548)
    )
    (compression,) = struct.unpack_from("<I", head, 620)
    if compression != 0:
        raise DataSetException(
            f"{path}: compressed Norpix SEQ files (compression format {compression}) "
            "are not supported"
        )
    if image_format not in MONO_FORMATS:
        raise DataSetException(
            f"{path}: Norpix SEQ image format {image_format} is not supported "
            "(only 8/16-bit monochrome)"
        )
    if bits not in (8, 16):
        raise DataSetException(f"{path}: Norpix SEQ bit depth {bits} is not supported (8/16)")
    if width < 1 or height < 1:
        _fail(path, f"image size {width} x {height}")
    dtype = np.dtype("u1" if bits == 8 else "<u2")
    frame_bytes = width * height * dtype.itemsize
    if image_bytes != frame_bytes:
        _fail(
            path, f"image size {image_bytes} bytes does not match {width} x {height} x {bits} bit"
        )
    if true_size < frame_bytes:
        _fail(path, f"true image size {true_size} is smaller than an image ({frame_bytes})")
    first = 8192 if version >= 5 else 1024
    available = (size - first + true_size - frame_bytes) // true_size if size >= first else 0
    count = allocated if allocated > 0 else available
    if count < 1:
        _fail(path, "no frames")
    if count > available:
        raise DataSetException(
            f"{path}: file truncated: header says {count} frames of {true_size} bytes from "
            f"offset {first} ({first + (count - 1) * true_size + frame_bytes} bytes), "
            f"the file has {size}"
        )
    return dict(
        width=width,
        height=height,
        dtype=dtype,
        first=first,
        stride=true_size,
        count=count,
        size=size,
    )


class SEQDataSet(DataSet):
    """A Norpix StreamPix ``.seq`` file, frames memory-mapped as a strided view.

    Parameters
    ----------
    path
        The file.
    nav_shape
        Navigation shape; by default ``(number of frames,)``.
    sig_shape
        Reinterpret frames with this shape (default ``(height, width)``).
    sync_offset
        Dataset frame ``i`` is file frame ``i + sync_offset``.
    num_partitions
        Number of partitions; by default derived from size and worker count.
    io_backend
        Reserved for choosing the I/O method; memory mapping is used.
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
        self._shape = None
        self._dtype = None

    @classmethod
    def detect_params(cls, path, executor=None):
        path = os.fspath(path)
        try:
            with open(path, "rb") as f:
                head = f.read(28)
        except OSError:
            return False
        if not _has_magic(head):
            return False
        return {"parameters": {"path": path}}

    def initialize(self, executor) -> SEQDataSet:
        info = read_seq_header(self._path)
        self._info = info
        n = info["count"]
        native = (n, info["height"], info["width"])
        sig_dims = 2
        if self._sig_shape is not None:
            if int(np.prod(self._sig_shape)) != info["height"] * info["width"]:
                raise DataSetException(
                    f"{self._path}: sig_shape {tuple(self._sig_shape)} does not fit frames "
                    f"of shape {native[1:]}"
                )
            sig_dims = len(self._sig_shape)
            native = (n, *tuple(int(s) for s in self._sig_shape))
        self._shape = dataset_shape(
            self._nav_shape, self._sig_shape, native, sig_dims, n, self.sync_offset, self._path
        )
        self._dtype = info["dtype"]
        return self

    @property
    def shape(self) -> Shape:
        return self._shape

    @property
    def dtype(self) -> np.dtype:
        return self._dtype

    def check_valid(self) -> bool:
        check_file(self._path)
        return True

    def make_partition(self, start: int, stop: int) -> OffsetsPartition:
        if self._shape is None:
            raise DataSetException(f"{self._path}: dataset is not initialized")
        info = self._info
        offsets = info["first"] + info["stride"] * np.arange(info["count"], dtype=np.int64)
        return OffsetsPartition(
            paths=self._path,
            offsets=offsets,
            sig_shape=tuple(self._shape.sig),
            file_size=info["size"],
            start=start,
            stop=stop,
            dataset_shape=self._shape,
            dtype=self._dtype,
            sync_offset=self.sync_offset,
            io_backend=self._io_backend,
        )
