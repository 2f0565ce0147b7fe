"""Gatan DigitalMicrograph DM3/DM4 files: one file holding a stack, or a list of frame files."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from libertem.common.exceptions import DataSetException
from libertem.common.shape import Shape
from libertem.io.dataset.base import (
    ArrayPartition,
    DataSet,
    dataset_shape,
)
from libertem.io.dataset.base.files import check_file, open_memmap
from libertem.io.dataset.base.filesource import (
    LayoutPartition,
    check_io_backend,
    single_file_layout,
)
from libertem.io.dataset.dm_tags import ArrayRef, TagGroup, parse_dm, read_dm_header
from libertem.io.dataset.framelist import OffsetsPartition

# ImageData.DataType -> numpy type (byte order from the file header)
DM_IMAGE_TYPES = {
    1: "i2",
    2: "f4",
    3: "c8",
    6: "u1",
    7: "i4",
    9: "i1",
    10: "u2",
    11: "u4",
    12: "f8",
    13: "c16",
    14: "?",
}


@dataclass(frozen=True)
class DMImage:
    """Where and how one image of a DM file is stored.

    Attributes
    ----------
    offset : int
        Byte offset of the data.
    dtype : numpy.dtype
        Dtype of the values, byte order included.
    dims : tuple of int
        ``ImageData.Dimensions`` in DM order (fastest axis first).
    order_swapped : bool
        ``ImageTags.Meta Data.Data Order Swapped``.
    """

    offset: int
    dtype: np.dtype
    dims: tuple[int, ...]
    order_swapped: bool


def _image_info(path: str, byteorder: str, image: TagGroup) -> DMImage | None:
    data = image.find("ImageData", "Data")
    if not isinstance(data, ArrayRef):
        return None
    dims_group = image.find("ImageData", "Dimensions")
    if not isinstance(dims_group, TagGroup) or not dims_group:
        raise DataSetException(f"{path}: image without ImageData.Dimensions")
    dims = tuple(int(v) if isinstance(v, (int, np.integer)) else -1 for _, v in dims_group)
    if any(d < 1 for d in dims) or len(dims) > 4:
        raise DataSetException(f"{path}: unsupported image dimensions {dims}")
    code = image.find("ImageData", "DataType")
    if code not in DM_IMAGE_TYPES:
        raise DataSetException(f"{path}: unsupported DM image data type {code!r}")
    dtype = np.dtype(byteorder + DM_IMAGE_TYPES[code])
    nbytes = int(np.prod(dims, dtype=np.int64)) * dtype.itemsize
    if nbytes != data.count * data.dtype.itemsize:
        raise DataSetException(
            f"{path}: image of dimensions {dims} x {dtype} needs {nbytes} bytes, "
            f"its data tag holds {data.count * data.dtype.itemsize}"
        )
    swapped = image.find("ImageTags", "Meta Data", "Data Order Swapped")
    try:
        swapped = bool(int(swapped)) if swapped is not None else False
    except (TypeError, ValueError):
        swapped = str(swapped).strip().lower() == "true"
    return DMImage(offset=data.offset, dtype=dtype, dims=dims, order_swapped=swapped)


def read_dm_image(path: str | os.PathLike) -> DMImage:
    """The main image of a DM3/DM4 file: the one with the most pixels (thumbnails skipped)."""
    dm = parse_dm(path)
    images = [info for im in dm.images() if (info := _image_info(dm.path, dm.byteorder, im))]
    if not images:
        raise DataSetException(f"{dm.path}: no image data found in the DM file")
    return max(images, key=lambda im: (int(np.prod(im.dims)), images.index(im)))


class DMStackPartition(ArrayPartition):
    """Frames of one DM file, memory-mapped; 4D data stored signal-first is transposed lazily."""

    def __init__(self, path, offset: int, c_shape, sig_first: bool, sig_shape, **kwargs):
        super().__init__(**kwargs)
        self.path = path
        self.offset = int(offset)
        self.c_shape = tuple(c_shape)
        self.sig_first = sig_first
        self.sig_shape = tuple(sig_shape)

    def open_frames(self) -> np.ndarray:
        arr = open_memmap(self.path, self.dtype, self.offset, self.c_shape)
        if self.sig_first:  # (ky, kx, ny, nx) -> (ny * nx, ky, kx), a strided view
            ky, kx, ny, nx = self.c_shape
            return arr.transpose(2, 3, 0, 1).reshape((ny * nx, ky, kx))
        n = int(np.prod(self.c_shape)) // int(np.prod(self.sig_shape))
        return arr.reshape((n, *self.sig_shape))


class DMDataSet(DataSet):
    """Gatan DigitalMicrograph DM3/DM4 data.

    Either one file holding a stack (``path``), read in place, or a list of
    files each holding one frame (``files``), stacked in the given order.

    The image with the most pixels in the file is used (thumbnails are skipped).
    DM lists dimensions fastest first: a 3D image ``[x, y, z]`` is ``z`` frames of
    ``(y, x)``. 4D STEM data is read as ``(scan_y, scan_x, det_y, det_x)``: files with
    the tag ``Meta Data.Data Order Swapped`` set store it in that (C) order, with
    dimensions ``[det_x, det_y, scan_x, scan_y]``; older files without it store
    dimensions ``[scan_x, scan_y, det_x, det_y]`` with the scan axes fastest, and are
    read through a transposed (slower) view. ``force_c_order=True`` reads any 4D file
    as C order.

    Parameters
    ----------
    path
        A DM3/DM4 file holding a 2D, 3D or 4D image.
    files
        Alternatively, DM files holding one 2D frame each, all of one shape and dtype.
    nav_shape, sig_shape
        Reinterpret the data with these shapes.
    sync_offset
        Dataset frame ``i`` is file frame ``i + sync_offset``.
    num_partitions
        Number of partitions; by default derived from size and worker count.
    io_backend
        Reserved for choosing the I/O method; memory mapping is used.
    force_c_order
        Read 4D data in C order even without the ``Data Order Swapped`` tag.
    """

    def __init__(
        self,
        path: str | os.PathLike | None = None,
        files: Sequence[str | os.PathLike] | None = None,
        nav_shape: Sequence[int] | None = None,
        sig_shape: Sequence[int] | None = None,
        sync_offset: int = 0,
        num_partitions: int | None = None,
        io_backend=None,
        force_c_order: bool = False,
    ):
        super().__init__(num_partitions=num_partitions, sync_offset=sync_offset)
        if (path is None) == (files is None):
            raise DataSetException("DM: give either path (one file) or files (a list of files)")
        self._path = None if path is None else os.fspath(path)
        self._files = None if files is None else [os.fspath(f) for f in files]
        if self._files is not None and not self._files:
            raise DataSetException("DM: the list of files is empty")
        self._where = self._path if self._path is not None else self._files[0]
        self._io_backend = check_io_backend(io_backend, self._where)
        self._nav_shape = nav_shape
        self._sig_shape = sig_shape
        self._force_c_order = bool(force_c_order)
        self._shape = None
        self._dtype = None

    @classmethod
    def detect_params(cls, path, executor=None):
        path = os.fspath(path)
        try:
            with open(path, "rb") as f:
                read_dm_header(f, path)
        except (OSError, DataSetException):
            return False
        if not path.lower().endswith((".dm3", ".dm4")):
            return False
        return {"parameters": {"path": path}}

    def _init_single(self):
        image = read_dm_image(self._path)
        dims = image.dims
        c_shape = dims[::-1]
        sig_first = False
        if len(dims) == 4 and not (image.order_swapped or self._force_c_order):
            sig_first = True
            native = (dims[1], dims[0], dims[3], dims[2])
        elif len(dims) == 1:
            native = (1, dims[0])
        elif len(dims) == 2:
            native = (1, *c_shape)
        else:
            native = c_shape
        sig_dims = 1 if len(dims) == 1 else 2
        n_frames = int(np.prod(native[:-sig_dims]))
        self._source = dict(
            path=self._path, offset=image.offset, c_shape=c_shape, sig_first=sig_first
        )
        return native, sig_dims, n_frames, image.dtype

    def _init_files(self):
        offsets, shape, dtype = [], None, None
        for path in self._files:
            image = read_dm_image(path)
            if len(image.dims) > 2 and int(np.prod(image.dims[2:])) > 1:
                raise DataSetException(
                    f"{path}: holds a stack of dimensions {image.dims}; files=[...] takes one "
                    "frame per file"
                )
            frame = image.dims[:2][::-1]
            if shape is None:
                shape, dtype = frame, image.dtype
            elif frame != shape or image.dtype != dtype:
                raise DataSetException(
                    f"{path}: frame {frame} x {image.dtype} differs from the first file's "
                    f"{shape} x {dtype}"
                )
            offsets.append(image.offset)
        self._source = dict(paths=self._files, offsets=offsets)
        return (len(self._files), *shape), len(shape), len(self._files), dtype

    def initialize(self, executor) -> DMDataSet:
        if self._path is not None:
            native, sig_dims, n_frames, dtype = self._init_single()
        else:
            native, sig_dims, n_frames, dtype = self._init_files()
        if self._sig_shape is not None:
            if int(np.prod(self._sig_shape)) != int(np.prod(native[-sig_dims:])):
                raise DataSetException(
                    f"{self._where}: sig_shape {tuple(self._sig_shape)} does not fit frames "
                    f"of shape {native[-sig_dims:]}"
                )
            if self._source.get("sig_first") and tuple(self._sig_shape) != native[-2:]:
                raise DataSetException(
                    f"{self._where}: 4D data stored scan axes first cannot take a different "
                    f"sig_shape {tuple(self._sig_shape)}; its frames are {native[-2:]}"
                )
            sig_dims = len(self._sig_shape)
            native = (n_frames, *tuple(int(s) for s in self._sig_shape))
        self._shape = dataset_shape(
            self._nav_shape,
            self._sig_shape,
            native,
            sig_dims,
            n_frames,
            self.sync_offset,
            self._where,
        )
        self._dtype = dtype
        return self

    @property
    def shape(self) -> Shape:
        return self._shape

    @property
    def dtype(self) -> np.dtype:
        return self._dtype

    def check_valid(self) -> bool:
        for path in [self._path] if self._path is not None else self._files:
            check_file(path)
        return True

    def make_partition(self, start: int, stop: int) -> ArrayPartition:
        if self._shape is None:
            raise DataSetException(f"{self._where}: dataset is not initialized")
        common = dict(
            start=start,
            stop=stop,
            dataset_shape=self._shape,
            dtype=self._dtype,
            sync_offset=self.sync_offset,
        )
        sig = tuple(self._shape.sig)
        if self._path is None:
            return OffsetsPartition(
                **self._source, sig_shape=sig, io_backend=self._io_backend, **common
            )
        source = self._source
        if self._io_backend == "buffered" and not source["sig_first"]:
            n_frames = int(np.prod(source["c_shape"])) // int(np.prod(sig))
            layout = single_file_layout(
                source["path"], source["offset"], n_frames, sig, self._dtype
            )
            return LayoutPartition(layout, io_backend="buffered", **common)
        return DMStackPartition(**source, sig_shape=sig, **common)
