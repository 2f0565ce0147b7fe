"""Datasets held in memory: numpy arrays, or sparse arrays (pydata.sparse, scipy.sparse)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import sparseconverter

from libertem.common.exceptions import DataSetException
from libertem.common.math import count_nonzero, flat_nonzero, prod
from libertem.common.messageconverter import (
    DatasetParamsConverter,
    MessageConverter,
    dataset_schema,
    shape_schema,
)
from libertem.common.shape import Shape
from libertem.common.slice import Slice
from libertem.common.sparse import is_sparse
from libertem.io.dataset.base import (
    BasePartition,
    DataSet,
    DataTile,
    TilingScheme,
    check_sync_offset,
)
from libertem.io.dataset.base.backend import IOBackend, MMapBackend
from libertem.io.dataset.base.backend_impl import MMapBackendImpl, MMapFile
from libertem.io.dataset.base.checks import check_dtype, check_size
from libertem.io.dataset.base.file import File
from libertem.io.dataset.base.fileset import FileSet
from libertem.io.dataset.base.meta import DataSetMeta
from libertem.io.dataset.memory_input import (
    check_array_backends,
    check_tileshape,
    memory_shapes,
)
from libertem.io.dataset.memory_read import (
    FakeMMapFile,
    MemBackend,
    MemBackendImpl,
    MemoryFile,
    MemoryPartition,
    MemPartition,
)
from libertem.io.dataset.memory_sparse import as_frames

if TYPE_CHECKING:
    from libertem.common.executor import JobExecutor


class MemoryDataSet(DataSet):
    """A dataset backed by an array in memory, for tests, demos and data already loaded.

    Parameters
    ----------
    tileshape
        Tile shape ``(depth, *sig_block)``; if given, every tile has this shape
        (clipped at frame and partition edges), and partitions read tiles without a
        tiling scheme. Kept as the attribute ``tileshape`` (a ``Shape``).
    num_partitions
        Number of partitions; by default derived from size and worker count.
    data
        The array, navigation axes first: a numpy array, a pydata.sparse array
        (``sparse.COO``, ``sparse.GCXS``...) or a 2D scipy.sparse matrix with one
        flattened frame per row (give ``sig_shape`` then).
    sig_dims
        How many trailing axes of ``data`` are signal axes (default 2).
    check_cast
        Refuse to read the data in a dtype that changes values (e.g. floats with
        fractions as integers).
    tiledelay
        Seconds to wait before each tile (for testing progress and cancellation).
    datashape
        Instead of ``data``: the shape of random float32 data to generate.
    base_shape
        Natural block of the tiles, ``(1, *sig_block)`` (default: from ``tileshape``,
        else rows).
    force_need_decode
        Always copy tiles into buffers instead of handing out views.
    io_backend
        Accepted for compatibility; the data needs no I/O (see :class:`MemBackend`).
    nav_shape, sig_shape
        Reinterpret the data with these shapes: they default to the array's own
        leading and trailing axes (see :func:`memory_shapes`); the data is read as
        ``size // prod(sig_shape)`` frames, which need not fill ``nav_shape``.
    sync_offset
        Dataset frame ``i`` is data frame ``i + sync_offset``; frames without data are
        never read (results keep their initial values there).
    array_backends
        Array backends the dataset offers its tiles in; by default the data's own
        (``'numpy'`` and ``'cupy'`` for dense data). The first is its native one.
    """

    def __init__(
        self,
        tileshape=None,
        num_partitions=None,
        data=None,
        sig_dims=None,
        check_cast=True,
        tiledelay=None,
        datashape=None,
        base_shape=None,
        force_need_decode=False,
        io_backend=None,
        nav_shape=None,
        sig_shape=None,
        sync_offset=0,
        array_backends=None,
    ):
        super().__init__(num_partitions=num_partitions, sync_offset=sync_offset)
        if data is None:
            if datashape is None:
                raise DataSetException("memory dataset: pass `data` or `datashape`")
            data = np.random.default_rng().random(tuple(datashape), dtype=np.float32)
        sparse_input = is_sparse(data)
        if not sparse_input:
            data = np.asarray(data)
        check_dtype(data.dtype, "memory dataset")
        native_backend = sparseconverter.get_backend(data) if sparse_input else "numpy"
        scipy_input = native_backend in sparseconverter.D2_BACKENDS and sparse_input
        if sig_dims is None and sig_shape is None and nav_shape is None and scipy_input:
            sig_dims = 1
        nav, sig, image_count = memory_shapes(data.shape, nav_shape, sig_shape, sig_dims)
        check_sync_offset(sync_offset, image_count)
        check_size(nav + sig, data.dtype, "memory dataset")
        self.data = data
        self._frames = as_frames(data, sig) if sparse_input else data.reshape((-1, *sig))
        self._shape = Shape(nav + sig, sig_dims=len(sig))
        self._dtype = np.dtype(data.dtype)
        self._native_backend = native_backend
        self._array_backends = check_array_backends(array_backends, native_backend, sparse_input)
        self._check_cast = bool(check_cast)
        self._tiledelay = tiledelay
        self._force_need_decode = bool(force_need_decode)
        self._io_backend_arg = io_backend
        checked = check_tileshape(tileshape, sig)
        #: the forced tile shape (a ``Shape``), or ``None``
        self.tileshape = None if checked is None else Shape(checked, sig_dims=len(sig))
        self._base_shape = None if base_shape is None else tuple(int(b) for b in base_shape)
        if self._base_shape is not None and len(self._base_shape) not in (len(sig), len(sig) + 1):
            raise DataSetException(
                f"memory dataset: base_shape {self._base_shape} must be (1, *sig_block) "
                f"with {len(sig)} signal axes"
            )
        self._image_count = image_count
        self._meta = DataSetMeta(
            shape=self._shape,
            array_backends=self._array_backends,
            image_count=image_count,
            raw_dtype=self._dtype,
            sync_offset=sync_offset,
        )

    @property
    def _tileshape(self) -> tuple[int, ...] | None:
        return None if self.tileshape is None else tuple(int(t) for t in self.tileshape)

    def initialize(self, executor) -> MemoryDataSet:
        """Nothing to open: the data is here."""
        return self

    @classmethod
    def detect_params(cls, data, executor: JobExecutor):
        """Parameters to wrap ``data`` (an array) as a memory dataset, or ``False``."""
        if isinstance(data, (str, bytes)) or not hasattr(data, "shape"):
            return False
        return {"parameters": {"data": data}, "info": {}}

    @classmethod
    def get_msg_converter(cls):
        """The converter of this dataset's parameters (:class:`MemDatasetParams`)."""
        return MemDatasetParams

    def get_io_backend(self) -> MemBackend:
        """:class:`MemBackend`: the data needs no I/O."""
        return MemBackend()

    def check_valid(self) -> bool:
        """In-memory data is always readable."""
        return True

    def get_cache_key(self) -> str:
        """Identifies this dataset (the array object and how it is viewed) in this process."""
        return f"memory-{id(self.data):x}-{tuple(self._shape)}-{self._dtype}-{self.sync_offset}"

    @property
    def shape(self) -> Shape:
        """Shape of the dataset, navigation axes first."""
        return self._shape

    @property
    def dtype(self) -> np.dtype:
        """Dtype of the data."""
        return self._dtype

    @property
    def array_backends(self) -> tuple[str, ...]:
        """Array backends the tiles can come in (the first is the data's own)."""
        return self._array_backends

    def get_base_shape(self, roi=None) -> tuple[int, ...]:
        """The natural block: ``base_shape`` as given (LiberTEM's form ``(1, *sig_block)``
        or just the signal block), else the signal part of ``tileshape``, else rows."""
        if self._base_shape is not None:
            return self._base_shape
        if self._tileshape is not None:
            return self._tileshape[1:]
        return super().get_base_shape()

    def get_preferred_depth(self) -> int | None:
        """The depth of ``tileshape``, if given."""
        return None if self._tileshape is None else self._tileshape[0]

    def adjust_tileshape(
        self, tileshape: tuple[int, ...], roi: np.ndarray | None
    ) -> tuple[int, ...]:
        """The ``tileshape`` of the constructor, if given, is forced (depth included)."""
        if self._tileshape is None:
            return tuple(int(t) for t in tileshape)
        return self._tileshape

    def need_decode(self, read_dtype, roi, corrections) -> bool:
        """Whether tiles must be copied (not views): forced, another dtype, corrections."""
        if self._force_need_decode or is_sparse(self._frames):
            return True
        if corrections is not None and corrections.have_corrections():
            return True
        if np.dtype(read_dtype) != self._dtype:
            return True
        return roi is not None and not bool(np.all(roi))

    def make_partition(self, start: int, stop: int) -> MemPartition:
        """The partition of frames ``[start, stop)``, holding its part of the data."""
        n_frames = self._frames.shape[0]
        lo = min(max(start + self.sync_offset, 0), n_frames)
        hi = min(max(stop + self.sync_offset, 0), n_frames)
        partition = MemPartition(
            self._tiledelay,
            self._tileshape,
            self._force_need_decode,
            frames=self._frames[lo:hi],
            check_cast=self._check_cast,
            array_backend=self._array_backends[0],
            start=start,
            stop=stop,
            dataset_shape=self._shape,
            dtype=self.dtype,
            sync_offset=self.sync_offset - lo,
        )
        # LiberTEM's names: first frame in stored coordinates (may be negative), frames
        partition._start_frame = start + self.sync_offset
        partition._num_frames = stop - start
        return partition


class MemDatasetParams(DatasetParamsConverter):
    """Validates and converts the JSON parameters of a memory dataset (``type: 'MEMORY'``)."""

    SCHEMA = dataset_schema(
        "MemDatasetParams",
        "MEMORY",
        {
            "tileshape": shape_schema(),
            "datashape": shape_schema(),
            "num_partitions": {"type": "integer", "minimum": 1},
            "sig_dims": {"type": "integer", "minimum": 1},
            "nav_shape": shape_schema(),
            "sig_shape": shape_schema(),
            "sync_offset": {"type": "integer"},
        },
        required=(),
    )


__all__ = [
    "BasePartition",
    "DataSet",
    "DataSetException",
    "DataSetMeta",
    "DataTile",
    "File",
    "MMapBackend",
    "Shape",
    "memory_shapes",
    "FakeMMapFile",
    "FileSet",
    "MMapBackendImpl",
    "MMapFile",
    "MessageConverter",
    "IOBackend",
    "MemBackend",
    "MemBackendImpl",
    "MemDatasetParams",
    "MemPartition",
    "MemoryDataSet",
    "MemoryFile",
    "MemoryPartition",
    "Slice",
    "TilingScheme",
    "count_nonzero",
    "flat_nonzero",
    "prod",
]
