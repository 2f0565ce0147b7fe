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

import numpy as np

from libertem.common.exceptions import DataSetException
from libertem.common.math import make_2D_square, prod
from libertem.common.messageconverter import (
    COMMON_PROPERTIES,
    DatasetParamsConverter,
    MessageConverter,
    dataset_schema,
)
from libertem.common.shape import Shape
from libertem.io.corrections.corrset import CorrectionSet
from libertem.io.dataset.base import (
    BasePartition,
    DataSet,
    DataSetMeta,
    File,
    FileSet,
    IOBackend,
    dataset_shape,
)
from libertem.io.dataset.base.filebased import FileSetDataSet, renamed_shape
from libertem.io.dataset.base.files import check_file
from libertem.io.dataset.seq_defects import (
    array_cropping,
    bin_array2d,
    load_seq_corrections,
    xml_binned_map_maker,
    xml_defect_coord_extractor,
    xml_defect_data_extractor,
    xml_generate_map_size,
    xml_map_index_selector,
    xml_map_sizes,
    xml_processing,
    xml_unbinned_map_maker,
)

MAGIC = 0xFEED
NAME = "Norpix seq"
#: bytes of the header that hold the fields read here
HEADER_SIZE = 632
#: struct codes of the header fields
DWORD = "L"
LONG = "l"
DOUBLE = "d"
USHORT = "H"
#: (name, byte offset, struct code) of the header fields describing the images
HEADER_FIELDS = (
    ("version", 28, LONG),
    ("header_size", 32, LONG),
    ("width", 548, DWORD),
    ("height", 552, DWORD),
    ("bit_depth", 556, DWORD),
    ("bit_depth_real", 560, DWORD),
    ("image_size_bytes", 564, DWORD),
    ("image_format", 568, DWORD),
    ("allocated_frames", 572, DWORD),
    ("origin", 576, DWORD),
    ("true_image_size", 580, DWORD),
    ("frame_rate", 584, DOUBLE),
    ("compression_format", 620, DWORD),
)
MONO_FORMATS = (100, 101)  # monochrome, monochrome bayer (raw)


def _fail(path, what):
    raise DataSetException(f"{path}: not a valid Norpix SEQ file: {what}")


def _has_magic(head: bytes) -> bool:
    if len(head) < 28 or struct.unpack_from("<I", head)[0] != MAGIC:
        return False
    return head[4:28].decode("utf-16-le", "replace").startswith(NAME)


def read_header_fields(head: bytes) -> dict:
    """The :data:`HEADER_FIELDS` of a ``.seq`` header (at least :data:`HEADER_SIZE` bytes)."""
    if len(head) < HEADER_SIZE:
        raise DataSetException(f"a .seq header needs {HEADER_SIZE} bytes, got {len(head)}")
    return {
        name: struct.unpack_from("<" + code, head, offset)[0]
        for name, offset, code in HEADER_FIELDS
    }


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
    fields = read_header_fields(head)
    version = fields["version"]
    width, height, bits = fields["width"], fields["height"], fields["bit_depth"]
    image_bytes, image_format = fields["image_size_bytes"], fields["image_format"]
    allocated, true_size = fields["allocated_frames"], fields["true_image_size"]
    compression = fields["compression_format"]
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
        fields=fields,
    )


class SEQDatasetParams(DatasetParamsConverter):
    """JSON parameters of ``.seq`` files: ``path``, ``nav_shape``, ``sig_shape``, ..."""

    SCHEMA = dataset_schema("SEQDatasetParams", "SEQ", dict(COMMON_PROPERTIES))


class SEQFileSet(FileSet):
    """The ``.seq`` file: frames every ``true_image_size`` bytes after the header."""


class SEQDataSet(FileSetDataSet):
    """A Norpix StreamPix ``.seq`` file (uncompressed 8/16-bit monochrome), read in place.

    Corrections stored beside the file are used (see :meth:`get_correction_data`):
    a dark frame ``<path>.dark.mrc``, a gain map ``<path>.gain.mrc``, and a map of
    excluded pixels ``<path without .seq>.xml``.

    Parameters
    ----------
    path
        The file.
    scan_size
        Deprecated name of ``nav_shape``.
    nav_shape
        Navigation shape; by default ``(number of frames,)``.
    sig_shape
        Reinterpret frames with this shape (default ``(height, width)``).
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
        scan_size: tuple[int, ...] | None = None,
        nav_shape: tuple[int, ...] | None = None,
        sig_shape: tuple[int, ...] | None = None,
        sync_offset: int = 0,
        io_backend=None,
        num_partitions=None,
    ):
        super().__init__(
            io_backend=io_backend, num_partitions=num_partitions, sync_offset=sync_offset
        )
        self._path = os.fspath(path)
        self._nav_shape = renamed_shape(nav_shape, scan_size, "nav_shape", "scan_size", self._path)
        self._sig_shape = sig_shape
        self._info = None

    @classmethod
    def get_msg_converter(cls):
        return SEQDatasetParams

    @classmethod
    def get_supported_extensions(cls) -> set[str]:
        return {"seq"}

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
        n = info["count"]
        native = (n, info["height"], info["width"])
        sig_dims = 2
        if self._sig_shape is not None:
            if prod(self._sig_shape) != info["height"] * info["width"]:
                raise DataSetException(
                    f"{self._path}: sig_shape {tuple(self._sig_shape)} does not fit frames "
                    f"of shape {native[1:]}"
                )
            sig_dims = len(self._sig_shape)
            native = (n, *tuple(int(s) for s in self._sig_shape))
        shape = dataset_shape(
            self._nav_shape, self._sig_shape, native, sig_dims, n, self.sync_offset, self._path
        )
        dtype = info["dtype"]
        frame_bytes = info["width"] * info["height"] * dtype.itemsize
        self._fileset = SEQFileSet(
            [
                File(
                    self._path,
                    0,
                    n,
                    dtype,
                    (info["height"], info["width"]),
                    frame_footer=info["stride"] - frame_bytes,
                    file_header=info["first"],
                )
            ]
        )
        self._info = info
        self._set_meta(shape, dtype, n, metadata=dict(info["fields"]))
        return self

    def get_correction_data(self) -> CorrectionSet:
        """Dark frame, gain map and excluded pixels from the files beside the ``.seq``
        (an empty ``CorrectionSet`` if there are none); see
        :func:`~libertem.io.dataset.seq_defects.load_seq_corrections`."""
        return load_seq_corrections(self._path, tuple(self.shape.sig))

    def get_diagnostics(self) -> list[dict]:
        info = self._info or {}
        return [
            {"name": "frames", "value": str(info.get("count"))},
            {"name": "frame shape", "value": f"{info.get('height')} x {info.get('width')}"},
            {"name": "dtype", "value": str(info.get("dtype"))},
        ]


__all__ = [
    "DOUBLE",
    "DWORD",
    "HEADER_SIZE",
    "LONG",
    "USHORT",
    "BasePartition",
    "CorrectionSet",
    "DataSet",
    "DataSetException",
    "DataSetMeta",
    "File",
    "FileSet",
    "IOBackend",
    "MessageConverter",
    "SEQDataSet",
    "SEQDatasetParams",
    "SEQFileSet",
    "Shape",
    "array_cropping",
    "bin_array2d",
    "make_2D_square",
    "prod",
    "read_seq_header",
    "xml_binned_map_maker",
    "xml_defect_coord_extractor",
    "xml_defect_data_extractor",
    "xml_generate_map_size",
    "xml_map_index_selector",
    "xml_map_sizes",
    "xml_processing",
    "xml_unbinned_map_maker",
]
