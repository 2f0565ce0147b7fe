"""Datasets held in memory: numpy arrays, or sparse arrays (pydata.sparse, scipy.sparse)."""

from __future__ import annotations

import time
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
    ArrayPartition,
    BasePartition,
    DataSet,
    DataTile,
    FrameSource,
    TilingScheme,
    check_sync_offset,
    iter_tiles,
    resolve_shapes,
)
from libertem.io.dataset.base.backend import IOBackend, MMapBackend
from libertem.io.dataset.base.backend_impl import MMapBackendImpl, MMapFile
from libertem.io.dataset.base.checks import check_dtype, check_size, max_frames
from libertem.io.dataset.base.file import File
from libertem.io.dataset.base.fileset import FileSet
from libertem.io.dataset.base.meta import DataSetMeta
from libertem.io.dataset.memory_sparse import as_frames, sparse_backend_of, sparse_tiles

if TYPE_CHECKING:
    from libertem.common.executor import JobExecutor


class MemoryFile(File):
    """The frames of an in-memory dataset as a :class:`~libertem.io.dataset.base.file.File`.

    Parameters
    ----------
    data
        The frames, ``(n_frames, *sig_shape)`` (dense or sparse).
    check_cast
        Check, when the frames are read in another dtype, that no value changes.
    *args, **kwargs
        As for ``File``; by default a file of all frames of ``data``.
    """

    def __init__(self, data, check_cast=True, *args, **kwargs):
        if not args:
            kwargs.setdefault("path", "<memory>")
            kwargs.setdefault("start_idx", 0)
            kwargs.setdefault("end_idx", data.shape[0])
            kwargs.setdefault("native_dtype", data.dtype)
            kwargs.setdefault("sig_shape", tuple(data.shape[1:]))
        super().__init__(*args, **kwargs)
        self._data = data
        self._check_cast = bool(check_cast)

    @property
    def data(self):
        """The frames."""
        return self._data


class _CheckedSource(FrameSource):
    """Frames of an array; with ``check_cast``, refuses conversions that change values."""

    def __init__(self, frames, sync_offset: int, check_cast: bool, dest_dtype, decode: bool):
        super().__init__(frames, sync_offset)
        self._check = check_cast and not np.can_cast(frames.dtype, dest_dtype, casting="safe")
        self._dest = np.dtype(dest_dtype)
        self.viewable = not decode

    def _checked(self, part: np.ndarray) -> np.ndarray:
        if self._check:
            from libertem.udf.base import check_cast

            check_cast(part, np.empty((), dtype=self._dest))
        return part

    def view(self, a: int, b: int):
        return self._checked(self.frames[a:b])

    def read_into(self, a: int, b: int, out: np.ndarray) -> None:
        self._checked(self.frames[a:b])
        super().read_into(a, b, out)


class FakeMMapFile(MMapFile):
    """An "opened file" over the frames of a :class:`MemoryFile`: no file, no map.

    Parameters
    ----------
    path
        Name only (in-memory data has no path).
    desc
        The :class:`MemoryFile`.
    """

    def open(self) -> FakeMMapFile:
        """Nothing to open; :attr:`array` is the data."""
        self._array = self._desc.data
        return self

    def close(self) -> None:
        """Forget the data."""
        self._array = None

    @property
    def array(self):
        """The frames of the :class:`MemoryFile`."""
        if self._array is None:
            self.open()
        return self._array


class MemBackendImpl(MMapBackendImpl):
    """Reads the tiles of in-memory data (the implementation of :class:`MemBackend`).

    Parameters
    ----------
    enable_readahead_hints
        Accepted for compatibility; memory needs no read-ahead.
    """

    file_cls = FakeMMapFile

    def get_tiles(
        self,
        decoder,
        tiling_scheme,
        fileset,
        read_ranges,
        roi,
        native_dtype,
        read_dtype,
        sync_offset,
        corrections,
        array_backend,
    ):
        """Tiles of the frames of ``fileset`` (one :class:`MemoryFile`) that ``roi`` selects.

        ``read_ranges`` and ``decoder`` are not needed: the frames are arrays.
        Dataset frame ``i`` is file frame ``i + sync_offset``; ``roi`` is a flat
        boolean mask of the dataset frames, or ``None``.
        """
        (file,) = fileset.files
        frames = file.data
        n = max(0, frames.shape[0] - sync_offset) if roi is None else np.asarray(roi).size
        if is_sparse(frames):
            tiles = sparse_tiles(
                frames,
                0,
                n,
                sync_offset,
                tiling_scheme,
                np.dtype(read_dtype),
                roi,
                array_backend or sparse_backend_of(frames),
                corrections,
            )
        else:
            source = _CheckedSource(frames, sync_offset, file._check_cast, read_dtype, False)
            tiles = iter_tiles(source, 0, n, tiling_scheme, read_dtype, roi, corrections)
        yield from tiles


class MemBackend(MMapBackend):
    """The I/O backend of in-memory datasets: tiles are views of (or converted from) the
    arrays themselves."""

    id_ = "memory"

    def get_impl(self) -> MemBackendImpl:
        """The reader."""
        return MemBackendImpl(self.enable_readahead_hints)


class MemPartition(ArrayPartition):
    """A partition that carries its own part of the in-memory frames.

    Parameters
    ----------
    tiledelay
        Seconds to wait before each tile (to test progress and cancellation), or ``None``.
    tileshape
        The dataset's natural tile shape, or ``None``.
    force_need_decode
        Always copy tiles into a buffer instead of handing out views.
    *args, **kwargs
        As for :class:`~libertem.io.dataset.base.ArrayPartition`, plus ``frames``
        (the frames, dense or sparse), ``check_cast`` and ``array_backend`` (the
        backend the frames are in).
    """

    def __init__(self, tiledelay, tileshape, force_need_decode=False, *args, **kwargs):
        self._frames = kwargs.pop("frames")
        self._check_cast = bool(kwargs.pop("check_cast", True))
        self._native_backend = kwargs.pop("array_backend", "numpy")
        super().__init__(*args, **kwargs)
        self._tiledelay = tiledelay
        self._tileshape = tileshape
        self._force_need_decode = bool(force_need_decode)

    def open_frames(self):
        """The partition's frames (dense; sparse frames are read by ``get_tiles``)."""
        return self._frames

    def get_io_backend(self) -> MemBackend:
        """:class:`MemBackend`: the data is in memory."""
        return MemBackend()

    def get_tiles(self, *args, **kwargs):
        """Tiles as for ``Partition.get_tiles(tiling_scheme, dest_dtype, roi, array_backend)``;
        sparse frames come out in ``array_backend`` (by default their own backend)."""
        tiles = self._tiles(*args, **kwargs)
        if not self._tiledelay:
            return tiles
        return self._delayed(tiles)

    def _delayed(self, tiles):
        for tile in tiles:
            time.sleep(self._tiledelay)
            yield tile

    def _tiles(self, tiling_scheme, dest_dtype="float32", roi=None, array_backend=None):
        if not is_sparse(self._frames):
            return super().get_tiles(tiling_scheme, dest_dtype, roi, array_backend)
        self.validate_tiling_scheme(tiling_scheme)
        return sparse_tiles(
            self._frames,
            self.start,
            self.stop,
            self.sync_offset,
            tiling_scheme,
            np.dtype(dest_dtype),
            self._roi_part(roi),
            array_backend or self._native_backend,
            self._corrections,
        )

    def _read_tiles(self, scheme, dest_dtype, roi_part):
        source = _CheckedSource(
            self._frames, self.sync_offset, self._check_cast, dest_dtype, self._force_need_decode
        )
        return iter_tiles(
            source, self.start, self.stop, scheme, dest_dtype, roi_part, self._corrections
        )

    def get_macrotile(self, *args, **kwargs) -> DataTile:
        """All (selected) frames as one tile, as ``Partition.get_macrotile`` (no tile delay)."""
        delay, self._tiledelay = self._tiledelay, None
        try:
            return super().get_macrotile(*args, **kwargs)
        finally:
            self._tiledelay = delay


#: the name used before; same class
MemoryPartition = MemPartition


class MemoryDataSet(DataSet):
    """A dataset backed by an array in memory, for tests, demos and data already loaded.

    Parameters
    ----------
    tileshape
        Natural tile shape ``(depth, *sig_block)``, used when no UDF asks otherwise.
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
        Natural signal block of the tiles (default: from ``tileshape``, else rows).
    force_need_decode
        Always copy tiles into buffers instead of handing out views.
    io_backend
        Accepted for compatibility; the data needs no I/O (see :class:`MemBackend`).
    nav_shape, sig_shape
        Reinterpret the data with these shapes (``sig_shape`` must hold as many
        pixels as a frame).
    sync_offset
        Dataset frame ``i`` is data frame ``i + sync_offset``; missing frames are zeros.
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
        if sig_dims is None:
            sig_dims = 1 if scipy_input and sig_shape is None else 2
        if sig_shape is not None:
            sig_shape = tuple(int(s) for s in sig_shape)
            frame_size = prod(sig_shape)
            if prod(data.shape) % frame_size != 0:
                raise DataSetException(
                    f"memory dataset: data of shape {data.shape} ({prod(data.shape)} elements) "
                    f"cannot be split into frames of sig_shape {sig_shape}"
                )
            native = (prod(data.shape) // frame_size, *sig_shape)
            sig_dims = len(sig_shape)
        elif not 1 <= sig_dims <= len(data.shape):
            raise DataSetException(
                f"memory dataset: sig_dims={sig_dims} does not fit data of shape {data.shape}"
            )
        else:
            native = tuple(data.shape)
        nav, sig = resolve_shapes(nav_shape, sig_shape, native, sig_dims, "memory dataset")
        needed = prod(nav) * prod(sig)
        n_frames = prod(data.shape) // prod(sig)
        if (sync_offset == 0 and needed != prod(data.shape)) or prod(nav) > max_frames(
            n_frames, sync_offset
        ):
            raise DataSetException(
                f"memory dataset: nav_shape {nav} x sig_shape {sig} needs {needed} "
                f"elements, but the data of shape {data.shape} has {prod(data.shape)}"
            )
        check_size(nav + sig, data.dtype, "memory dataset")
        self.data = data
        self._frames = as_frames(data, sig) if sparse_input else data.reshape((-1, *sig))
        self._shape = Shape(nav + sig, sig_dims=len(sig))
        self._dtype = np.dtype(data.dtype)
        check_sync_offset(sync_offset, self._frames.shape[0], "memory dataset")
        self._native_backend = native_backend
        self._array_backends = self._check_backends(array_backends, native_backend, sparse_input)
        self._check_cast = bool(check_cast)
        self._tiledelay = tiledelay
        self._force_need_decode = bool(force_need_decode)
        self._io_backend_arg = io_backend
        self._tileshape = self._check_tileshape(tileshape, sig)
        self._base_shape = None if base_shape is None else tuple(int(b) for b in base_shape)
        if self._base_shape is not None and len(self._base_shape) != len(sig):
            raise DataSetException(
                f"memory dataset: base_shape {self._base_shape} needs {len(sig)} signal axes"
            )
        self._image_count = self._frames.shape[0]
        self._meta = DataSetMeta(
            shape=self._shape,
            array_backends=self._array_backends,
            image_count=self._frames.shape[0],
            raw_dtype=self._dtype,
            sync_offset=sync_offset,
        )

    @staticmethod
    def _check_backends(array_backends, native: str, sparse_input: bool) -> tuple[str, ...]:
        if array_backends is None:
            return (native,) if sparse_input else ("numpy", "cupy")
        if isinstance(array_backends, str):
            array_backends = (array_backends,)
        backends = tuple(array_backends)
        unknown = [b for b in backends if b not in sparseconverter.BACKENDS]
        if unknown or not backends:
            raise DataSetException(
                f"memory dataset: array_backends {backends} must name array backends "
                f"(known: {sorted(sparseconverter.BACKENDS)})"
            )
        return backends

    @staticmethod
    def _check_tileshape(tileshape, sig) -> tuple[int, ...] | None:
        if tileshape is None:
            return None
        tileshape = tuple(int(t) for t in tileshape)
        if len(tileshape) != len(sig) + 1 or any(t < 1 for t in tileshape):
            raise DataSetException(
                f"memory dataset: tileshape {tileshape} must be (depth, *sig_block) "
                f"with {len(sig)} signal axes"
            )
        if any(t > s for t, s in zip(tileshape[1:], sig)):
            raise DataSetException(
                f"memory dataset: tileshape {tileshape} exceeds the signal shape {sig}"
            )
        return tileshape

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
        """The natural signal block: ``base_shape``, else from ``tileshape``, else rows."""
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
        """A fixed ``tileshape`` of the constructor wins in its signal part."""
        tileshape = tuple(int(t) for t in tileshape)
        if self._tileshape is None:
            return tileshape
        return (tileshape[0], *self._tileshape[1:])

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
        return MemPartition(
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
