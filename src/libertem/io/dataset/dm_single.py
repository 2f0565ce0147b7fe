"""One Gatan DigitalMicrograph DM3/DM4 file holding a 2D, 3D or 4D image."""

from __future__ import annotations

import os

import numpy as np

from libertem.common.exceptions import DataSetException
from libertem.common.math import prod
from libertem.common.shape import Shape
from libertem.io.dataset.base import (
    BasePartition,
    DataSet,
    DataSetMeta,
    File,
    FrameSource,
    IOBackend,
    OffsetsSizes,
    dataset_shape,
    iter_tiles,
)
from libertem.io.dataset.base.dataset import files_cache_key
from libertem.io.dataset.base.files import check_file
from libertem.io.dataset.base.partition import frames_slice
from libertem.io.dataset.dm import DMDataSet, DMFileSet, SingleDMDatasetParams
from libertem.io.dataset.dm_header import DMImage, read_dm_image

__all__ = [
    "BasePartition",
    "DMDataSet",
    "DMFile",
    "DMFileSet",
    "DMPartition",
    "DataSet",
    "DataSetException",
    "DataSetMeta",
    "File",
    "IOBackend",
    "Shape",
    "SingleDMDataSet",
    "SingleDMDatasetParams",
    "prod",
    "stored_layout",
]


def stored_layout(image: DMImage, force_c_order: bool) -> tuple[tuple[int, ...], bool]:
    """The C-order shape of the stored array and whether 4D data is stored scan axes last.

    DM lists dimensions fastest first, so the stored C-order array has the reversed
    dimensions. 4D data without the ``Data Order Swapped`` tag keeps the scan axes
    in its two *first* listed (fastest) dimensions: stored C order is
    ``(det_y, det_x, scan_y, scan_x)``, "transposed".
    """
    c_shape = image.dims[::-1]
    transposed = len(image.dims) == 4 and not (image.order_swapped or force_c_order)
    return c_shape, transposed


class DMFile(File):
    """The image data of a single DM file, as frames.

    Parameters are those of :class:`~libertem.io.dataset.base.file.File`
    (``file_header`` is the offset of the image data), and:

    transposed_shape
        For 4D data stored scan axes last: the stored C-order shape
        ``(det_y, det_x, scan_y, scan_x)``; frames are then a strided view across
        the whole array. ``None`` for frames stored one after the other.
    """

    def __init__(
        self,
        path,
        start_idx,
        end_idx,
        native_dtype,
        sig_shape,
        frame_footer=0,
        frame_header=0,
        file_header=0,
        *,
        transposed_shape: tuple[int, int, int, int] | None = None,
    ):
        super().__init__(
            path,
            start_idx,
            end_idx,
            native_dtype,
            sig_shape,
            frame_footer,
            frame_header,
            file_header,
        )
        self._transposed = None if transposed_shape is None else tuple(transposed_shape)

    @property
    def transposed_shape(self) -> tuple[int, int, int, int] | None:
        """The stored shape of data saved scan axes last, else ``None``."""
        return self._transposed

    def get_array_from_memview(self, mem: memoryview, slicing: OffsetsSizes) -> np.ndarray:
        """The frames ``(n, *sig_shape)`` in ``mem`` (the whole file), without copying.

        Raises
        ------
        DataSetException
            If the file is too short for the image.
        """
        if self._transposed is None:
            try:
                return super().get_array_from_memview(mem, slicing)
            except ValueError as e:
                raise DataSetException(f"{self.path}: file truncated: {e}") from None
        buf = np.frombuffer(mem, dtype=np.uint8)
        ky, kx, ny, nx = self._transposed
        nbytes = ky * kx * ny * nx * self.native_dtype.itemsize
        if slicing.file_offset + nbytes > buf.size:
            raise DataSetException(
                f"{self.path}: file truncated: {buf.size} bytes, the image needs "
                f"{nbytes} from offset {slicing.file_offset}"
            )
        stored = np.ndarray(self._transposed, self.native_dtype, buf, slicing.file_offset)
        return stored.transpose(2, 3, 0, 1).reshape((ny * nx, ky, kx))


class DMPartition(BasePartition):
    """Frames of a DM file: block reads with the I/O backend for data stored frame after
    frame, a strided view of a memory map for 4D data stored scan axes last.

    Parameters are those of :class:`~libertem.io.dataset.base.basepartition.BasePartition`.
    """

    def __init__(
        self, meta, partition_slice, fileset, start_frame, num_frames, io_backend, decoder=None
    ):
        super().__init__(
            meta, partition_slice, fileset, start_frame, num_frames, io_backend, decoder
        )
        self._transposed = getattr(fileset[0], "transposed_shape", None) is not None
        if self._transposed:
            self.layout = None  # frames are not evenly strided: no block layout

    def _read_tiles(self, scheme, dest_dtype, roi_part):
        if not self._transposed:
            return super()._read_tiles(scheme, dest_dtype, roi_part)
        source = FrameSource(self.fileset[0].open(), self.sync_offset)
        return iter_tiles(
            source, self.start, self.stop, scheme, dest_dtype, roi_part, self._corrections
        )

    def open_frames(self) -> np.ndarray:
        """All frames of the file ``(n, *sig_shape)``, read-only, before ``sync_offset``."""
        frames = self.fileset[0].open()
        return frames.reshape((frames.shape[0], *self.dataset_shape.sig))


class SingleDMDataSet(DMDataSet):
    """One DM3/DM4 file holding a 2D, 3D or 4D image, read in place.

    DM lists dimensions fastest first: a 3D image ``[x, y, z]`` is ``z`` frames of
    ``(y, x)``; a 2D image is one frame. 4D STEM data is read as
    ``(scan_y, scan_x, det_y, det_x)``: files with the tag ``Meta Data.Data Order
    Swapped`` store it in that (C) order; files without it store the scan axes
    last ("transposed"), and are read through a strided view, which is correct
    but slow: convert them once with
    :func:`~libertem.contrib.convert_transposed.convert_dm4_transposed`.

    Parameters
    ----------
    path
        The file.
    nav_shape, sig_shape
        Reinterpret the data with these shapes (``sig_shape`` with the same number
        of pixels as the stored frames).
    sync_offset
        Dataset frame ``i`` is file frame ``i + sync_offset``; frames outside read as zeros.
    io_backend
        How to read (see :mod:`~libertem.io.dataset.base.backend`); transposed 4D
        data is always memory-mapped.
    force_c_order
        Read 4D data in plain C order, ignoring the ``Data Order Swapped`` tag: the
        first two stored axes become the navigation axes.
    dataset_index
        Which image of the file's ``ImageList`` to read (thumbnails count; they are
        usually image 0); by default the largest image.
    num_partitions
        Number of partitions; by default derived from size and worker count.

    Examples
    --------
    >>> ds = ctx.load("dm", path="/path/to/file.dm4")  # doctest: +SKIP
    """

    # DMDataSet(...) and SingleDMDataSet(...) accept the same arguments
    __new__ = DMDataSet.__new__

    def __init__(
        self,
        path: os.PathLike,
        nav_shape: tuple[int, ...] | None = None,
        sig_shape: tuple[int, ...] | None = None,
        sync_offset: int = 0,
        io_backend: IOBackend | None = None,
        force_c_order: bool = False,
        dataset_index: int | None = None,
        num_partitions: int | None = None,
    ):
        if path is None or isinstance(path, (list, tuple)):
            raise DataSetException("DM: path must name one DM file")
        self._path = os.fspath(path)
        super().__init__(
            io_backend=io_backend, num_partitions=num_partitions, sync_offset=sync_offset
        )
        self._nav_shape = None if nav_shape is None else tuple(nav_shape)
        self._sig_shape = None if sig_shape is None else tuple(sig_shape)
        self._force_c_order = bool(force_c_order)
        self._dataset_index = dataset_index
        self._shape = None
        self._dtype = None
        self._fileset: DMFileSet | None = None

    @classmethod
    def detect_params(cls, path: str, executor=None):
        """``{'parameters': {'path': path}}`` for a ``.dm3``/``.dm4`` file with a DM header."""
        return DMDataSet.detect_params(path, executor)

    def _native(self, image: DMImage, transposed: bool) -> tuple[tuple[int, ...], int]:
        """Native dataset shape (frames first) and number of signal dims."""
        dims = image.dims
        if transposed:
            return (dims[1], dims[0], dims[3], dims[2]), 2
        if len(dims) == 1:
            return (1, dims[0]), 1
        if len(dims) == 2:
            return (1, *dims[::-1]), 2
        return dims[::-1], 2

    def initialize(self, executor) -> SingleDMDataSet:
        """Parse the tags, find the image and determine the shape."""
        image = read_dm_image(self._path, self._dataset_index)
        c_shape, transposed = stored_layout(image, self._force_c_order)
        native, sig_dims = self._native(image, transposed)
        frame = native[-sig_dims:]
        n_frames = prod(native[:-sig_dims])
        if self._sig_shape is not None:
            if prod(self._sig_shape) != prod(frame):
                raise DataSetException(
                    f"{self._path}: sig_shape {self._sig_shape} does not fit frames of "
                    f"shape {frame}"
                )
            if transposed and self._sig_shape != frame:
                raise DataSetException(
                    f"{self._path}: 4D data stored scan axes last cannot take a different "
                    f"sig_shape {self._sig_shape}; its frames are {frame}"
                )
            sig_dims = len(self._sig_shape)
            native = (n_frames, *(int(s) for s in self._sig_shape))
        self._shape = dataset_shape(
            self._nav_shape,
            self._sig_shape,
            native,
            sig_dims,
            n_frames,
            self.sync_offset,
            self._path,
        )
        dm_file = DMFile(
            self._path,
            0,
            n_frames,
            image.dtype,
            frame,
            file_header=image.offset,
            transposed_shape=c_shape if transposed else None,
        )
        self._fileset = DMFileSet([dm_file])
        self._dtype = image.dtype
        self._image_count = n_frames
        return self

    @property
    def shape(self) -> Shape:
        """Shape of the dataset, navigation axes first."""
        return self._shape

    @property
    def dtype(self) -> np.dtype:
        """Dtype of the stored values, byte order included."""
        return self._dtype

    def check_valid(self) -> bool:
        """Check that the file exists and is readable."""
        check_file(self._path)
        return True

    def get_cache_key(self) -> str:
        """A key identifying the data read: file, image, order, shape and sync offset."""
        return files_cache_key(
            self, [self._path], dataset_index=self._dataset_index, c_order=self._force_c_order
        )

    def make_partition(self, start: int, stop: int) -> DMPartition:
        if self._fileset is None:
            raise DataSetException(f"{self._path}: dataset is not initialized")
        part_slice = frames_slice(start, stop, self._shape.sig)
        return DMPartition(
            self.meta,
            part_slice,
            self._fileset,
            start + self.sync_offset,
            stop - start,
            self.get_io_backend(),
        )
