"""Gatan DigitalMicrograph DM3/DM4 files: the ``DMDataSet`` factory and stacks of 2D files.

``DMDataSet(...)`` returns a :class:`~libertem.io.dataset.dm_single.SingleDMDataSet`
(one file holding a 2D, 3D or 4D image, ``path=``) or a :class:`StackedDMDataSet`
(a list of files holding one frame each, ``files=[...]``), depending on its arguments.
"""

from __future__ import annotations

import os
import warnings

import numpy as np

from libertem.common.exceptions import DataSetException
from libertem.common.math import prod
from libertem.common.messageconverter import (
    COMMON_PROPERTIES,
    DatasetParamsConverter,
    MessageConverter,
    dataset_schema,
    shape_schema,
)
from libertem.common.shape import Shape
from libertem.io.dataset.base import (
    BasePartition,
    DataSet,
    DataSetMeta,
    File,
    FileSet,
    IOBackend,
    OffsetsSizes,
    dataset_shape,
)
from libertem.io.dataset.base.dataset import files_cache_key
from libertem.io.dataset.base.files import check_file
from libertem.io.dataset.base.partition import frames_slice
from libertem.io.dataset.dm_header import DMImage, read_dm_header, read_dm_image

__all__ = [
    "BasePartition",
    "DMDataSet",
    "DMFileSet",
    "DM_EXTENSIONS",
    "DataSet",
    "DataSetException",
    "DataSetMeta",
    "File",
    "FileSet",
    "IOBackend",
    "MessageConverter",
    "OffsetsSizes",
    "Shape",
    "SingleDMDatasetParams",
    "StackedDMDataSet",
    "StackedDMDatasetParams",
    "StackedDMFile",
    "prod",
]

DM_EXTENSIONS = {"dm3", "dm4"}


class SingleDMDatasetParams(DatasetParamsConverter):
    """JSON parameters of a single DM file: ``path``, shapes, ``force_c_order``,
    ``dataset_index``, ..."""

    SCHEMA = dataset_schema(
        "SingleDMDatasetParams",
        "DM",
        {
            **COMMON_PROPERTIES,
            "force_c_order": {"type": "boolean"},
            "dataset_index": {"type": "integer", "minimum": 0},
        },
    )


class StackedDMDatasetParams(DatasetParamsConverter):
    """JSON parameters of a stack of DM files: ``files``, ``same_offset``, shapes, ..."""

    SCHEMA = dataset_schema(
        "StackedDMDatasetParams",
        "DM",
        {
            "files": {"type": "array", "items": {"type": "string"}, "minItems": 1},
            "same_offset": {"type": "boolean"},
            "nav_shape": shape_schema(),
            "sig_shape": shape_schema(),
            "sync_offset": {"type": "integer"},
            "io_backend": COMMON_PROPERTIES["io_backend"],
        },
        required=("files",),
    )

    def convert_to_python(self, raw_data) -> dict:
        """Constructor arguments: shapes as tuples, ``files`` as a list of paths."""
        result = super().convert_to_python(raw_data)
        if "files" in result:
            result["files"] = list(result["files"])
        return result

    def convert_from_python(self, raw_data) -> dict:
        """A message: ``"type": "DM"``, paths as strings, tuples as lists."""
        message = super().convert_from_python(raw_data)
        message.setdefault("type", "DM")
        if "files" in message:
            message["files"] = [os.fspath(f) for f in message["files"]]
        return message


def _wants_stack(args: tuple, kwargs: dict) -> bool:
    """Whether ``DMDataSet(*args, **kwargs)`` describes a stack of files."""
    has_path = "path" in kwargs or (bool(args) and not isinstance(args[0], (list, tuple)))
    has_files = kwargs.get("files") is not None or (
        bool(args) and isinstance(args[0], (list, tuple))
    )
    if has_path == has_files:
        raise DataSetException("DM: give either path (one file) or files (a list of files)")
    return has_files


class DMDataSet(DataSet):
    """Gatan DigitalMicrograph DM3/DM4 data: the factory of the two DM dataset types.

    ``DMDataSet(path=...)`` (or a path as first argument) gives a
    :class:`~libertem.io.dataset.dm_single.SingleDMDataSet`; ``DMDataSet(files=[...])``
    (or a list as first argument) gives a :class:`StackedDMDataSet`. The other
    arguments are those of the chosen class.

    Raises
    ------
    DataSetException
        If neither or both of ``path`` and ``files`` are given.
    """

    def __new__(cls, *args, **kwargs):
        if cls is DMDataSet:
            if _wants_stack(args, kwargs):
                cls = StackedDMDataSet
            else:
                from libertem.io.dataset.dm_single import SingleDMDataSet

                cls = SingleDMDataSet
        return super().__new__(cls)

    @classmethod
    def get_supported_extensions(cls) -> set[str]:
        """File name extensions of DM files."""
        return set(DM_EXTENSIONS)

    @classmethod
    def get_supported_io_backends(cls) -> list[str]:
        """Every I/O backend of this platform (``'mmap'``, ``'buffered'``, ``'direct'``)."""
        return IOBackend.get_supported()

    @classmethod
    def get_msg_converter(cls) -> type[MessageConverter]:
        """The converter of the JSON parameters of a single-file DM dataset."""
        return SingleDMDatasetParams

    @classmethod
    def detect_params(cls, path, executor=None):
        """``{'parameters': {'path': path}}`` for a ``.dm3``/``.dm4`` file with a DM header."""
        path = os.fspath(path)
        if not path.lower().endswith((".dm3", ".dm4")):
            return False
        try:
            with open(path, "rb") as f:
                read_dm_header(f, path)
        except (OSError, DataSetException):
            return False
        return {"parameters": {"path": path}}


class DMFileSet(FileSet):
    """The files of a DM dataset: all frames of one shape and dtype.

    Raises
    ------
    DataSetException
        Naming the first file whose frames differ from those of the first file.
    """

    def __init__(
        self, files: list[File], frame_header_bytes: int = 0, frame_footer_bytes: int = 0
    ):
        super().__init__(files, frame_header_bytes, frame_footer_bytes)
        if files:
            first = self.files[0]
            for f in self.files[1:]:
                if f.sig_shape != first.sig_shape or f.native_dtype != first.native_dtype:
                    raise DataSetException(
                        f"{f.path}: frame {f.sig_shape} x {f.native_dtype} differs from the "
                        f"first file's {first.sig_shape} x {first.native_dtype}"
                    )


class StackedDMFile(File):
    """One DM file of a stack: a single frame at ``file_header`` bytes into the file."""

    def get_array_from_memview(self, mem: memoryview, slicing: OffsetsSizes) -> np.ndarray:
        """The file's frame as an array ``(1, *sig_shape)`` viewing ``mem``.

        Raises
        ------
        DataSetException
            If the file ends before the frame does.
        """
        end = slicing.file_offset + slicing.frame_offset + slicing.frame_size
        if len(mem) < end:
            raise DataSetException(
                f"{self.path}: file truncated: {len(mem)} bytes, the frame ends at byte {end}"
            )
        return super().get_array_from_memview(mem, slicing)


class StackedDMDataSet(DMDataSet):
    """A stack of DM3/DM4 files holding one 2D frame each, in the order given.

    Parameters
    ----------
    files
        The files; all frames must have one shape and dtype.
    scan_size
        Deprecated name of ``nav_shape``.
    same_offset
        All files store their frame at the same offset with the same shape and
        dtype: read the tags of the first file only (faster for many files).
    nav_shape
        Navigation shape; by default the number of files.
    sig_shape
        Frame shape (same number of pixels as the stored frames).
    sync_offset
        Dataset frame ``i`` is file ``i + sync_offset``; frames outside read as zeros.
    io_backend
        ``'mmap'`` (default) or ``'buffered'``.
    num_partitions
        Number of partitions; by default derived from size and worker count.

    Examples
    --------
    >>> ds = ctx.load("dm", files=["f0.dm4", "f1.dm4"])  # doctest: +SKIP
    """

    # DMDataSet(...) and StackedDMDataSet(...) accept the same arguments
    __new__ = DMDataSet.__new__

    def __init__(
        self,
        files=None,
        scan_size=None,
        same_offset: bool = False,
        nav_shape=None,
        sig_shape=None,
        sync_offset: int = 0,
        io_backend=None,
        num_partitions: int | None = None,
    ):
        if files is None or isinstance(files, (str, os.PathLike)):
            raise DataSetException("DM: files must be a list of DM files")
        self._files = [os.fspath(f) for f in files]
        if not self._files:
            raise DataSetException("DM: the list of files is empty")
        super().__init__(
            io_backend=io_backend, num_partitions=num_partitions, sync_offset=sync_offset
        )
        if scan_size is not None:
            warnings.warn(
                "scan_size is deprecated, use nav_shape instead", FutureWarning, stacklevel=2
            )
            if nav_shape is None:
                nav_shape = scan_size
        self._where = self._files[0]
        self._same_offset = bool(same_offset)
        self._nav_shape = None if nav_shape is None else tuple(nav_shape)
        self._sig_shape = None if sig_shape is None else tuple(sig_shape)
        self._shape = None
        self._dtype = None
        self._fileset: DMFileSet | None = None

    @classmethod
    def get_msg_converter(cls) -> type[MessageConverter]:
        """The converter of the JSON parameters of a stacked DM dataset."""
        return StackedDMDatasetParams

    @classmethod
    def detect_params(cls, path, executor=None):
        """Stacks are never detected from a single path: ``False``."""
        return False

    def _frame_of(self, path: str) -> DMImage:
        image = read_dm_image(path)
        if len(image.dims) > 2 and prod(image.dims[2:]) > 1:
            raise DataSetException(
                f"{path}: holds a stack of dimensions {image.dims}; a stacked DM dataset "
                "takes one frame per file (open it with path=... instead of a list of files)"
            )
        return image

    def _read_files(self) -> DMFileSet:
        first = self._frame_of(self._files[0])
        frame = first.dims[:2][::-1]
        nbytes = prod(frame) * first.dtype.itemsize
        files = []
        for i, path in enumerate(self._files):
            if i == 0 or not self._same_offset:
                image = first if i == 0 else self._frame_of(path)
                this, dtype, offset = image.dims[:2][::-1], image.dtype, image.offset
            else:
                size = check_file(path)
                if size < first.offset + nbytes:
                    raise DataSetException(
                        f"{path}: {size} bytes, too short for a frame at offset {first.offset} "
                        "(same_offset=True assumes the layout of the first file)"
                    )
                this, dtype, offset = frame, first.dtype, first.offset
            files.append(StackedDMFile(path, i, i + 1, dtype, this, file_header=offset))
        return DMFileSet(files)

    def initialize(self, executor) -> StackedDMDataSet:
        """Parse the tags of the files and determine the shape."""
        fileset = self._read_files()
        frame = fileset[0].sig_shape
        n = len(self._files)
        native = (n, *frame)
        sig_dims = len(frame)
        if self._sig_shape is not None:
            if prod(self._sig_shape) != prod(frame):
                raise DataSetException(
                    f"{self._where}: sig_shape {self._sig_shape} does not fit frames of "
                    f"shape {frame}"
                )
            sig_dims = len(self._sig_shape)
            native = (n, *(int(s) for s in self._sig_shape))
        self._shape = dataset_shape(
            self._nav_shape, self._sig_shape, native, sig_dims, n, self.sync_offset, self._where
        )
        self._dtype = fileset[0].native_dtype
        self._fileset = fileset
        self._image_count = n
        return self

    @property
    def shape(self) -> Shape:
        """Shape of the dataset, navigation axes first."""
        return self._shape

    @property
    def dtype(self) -> np.dtype:
        """Dtype of the stored values."""
        return self._dtype

    def check_valid(self) -> bool:
        """Check that every file exists and is readable."""
        for path in self._files:
            check_file(path)
        return True

    def get_cache_key(self) -> str:
        """A key identifying the data read: files, shape and sync offset."""
        return files_cache_key(self, self._files)

    def make_partition(self, start: int, stop: int) -> BasePartition:
        if self._fileset is None:
            raise DataSetException(f"{self._where}: dataset is not initialized")
        part_slice = frames_slice(start, stop, self._shape.sig)
        n = len(self._fileset)
        # the files holding the partition's frames; the nearest one if it holds none
        first = min(max(start + self.sync_offset, 0), n - 1)
        last = min(max(stop - 1 + self.sync_offset, 0), n - 1)
        return BasePartition(
            self.meta,
            part_slice,
            self._fileset.get_for_range(first, last),
            start + self.sync_offset,
            stop - start,
            self.get_io_backend(),
        )
