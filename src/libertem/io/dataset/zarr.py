"""Zarr arrays (format 2 and 3, through ``zarr`` 3), opened read-only.

The array holds navigation axes followed by ``sig_dims`` signal axes. Partitions
are ranges of frames that start and stop at chunk boundaries along the flattened
navigation axes (see :class:`~libertem.io.dataset.base.chunked.FlatChunkGrid`), so
every chunk is read and decoded by one partition only, on the worker that runs
it: a partition carries the store path and the array path, never data. Within a
partition, frames are read in blocks of whole chunks into one reused buffer;
tiles are views of it, or converted into a second reused buffer of the
requested dtype.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from math import prod

import numpy as np

from libertem.common.exceptions import DataSetException
from libertem.common.shape import Shape
from libertem.io.dataset.base import DataSet, Partition, dataset_shape, iter_tiles
from libertem.io.dataset.base.checks import check_stored
from libertem.io.dataset.base.chunked import BlockFrameSource, FlatChunkGrid
from libertem.io.dataset.base.dataset import files_cache_key
from libertem.io.dataset.base.partition import split_frames

#: bytes read at once in a partition (rounded to whole chunk rows)
BLOCK_BYTES = 16 * 1024 * 1024
#: chunk rows larger than this are read in parts (each chunk is then decoded more than once)
MAX_BLOCK_BYTES = 512 * 1024 * 1024
#: files that mark a directory as a Zarr node
ZARR_MARKERS = ("zarr.json", ".zarray", ".zgroup")


def is_zarr_store(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a directory holding Zarr metadata (format 2 or 3)."""
    path = os.fspath(path)
    return os.path.isdir(path) and any(
        os.path.isfile(os.path.join(path, name)) for name in ZARR_MARKERS
    )


def open_node(path: str, array_path: str | None = None, zarr_format: int | None = None):
    """The Zarr array or group at ``array_path`` of the store ``path``, read-only.

    Raises
    ------
    DataSetException
        If ``path`` does not exist, is not a Zarr store, or has no node at ``array_path``.
    """
    try:
        import zarr
        from zarr.storage import LocalStore
    except ImportError as e:  # pragma: no cover - zarr is a dependency
        raise DataSetException(f"reading Zarr stores needs the zarr package: {e}") from e
    if not os.path.exists(path):
        raise DataSetException(f"{path}: no such file or directory")
    if not os.path.isdir(path):
        raise DataSetException(f"{path}: not a Zarr store (not a directory)")
    where = f"{path}:{array_path}" if array_path else path
    try:
        store = LocalStore(path, read_only=True)
        return zarr.open(store=store, mode="r", path=array_path or "", zarr_format=zarr_format)
    except (FileNotFoundError, KeyError, zarr.errors.NodeNotFoundError):
        if array_path and is_zarr_store(path):
            raise DataSetException(f"{path}: no Zarr array or group {array_path!r}") from None
        raise DataSetException(f"{where}: not a Zarr store (no Zarr metadata)") from None
    except (OSError, ValueError, TypeError, zarr.errors.BaseZarrError) as e:
        raise DataSetException(f"{where}: cannot open as Zarr: {e}") from e


def _is_array(node) -> bool:
    import zarr

    return isinstance(node, zarr.Array)


def find_arrays(group, min_ndim: int = 3) -> list[tuple[str, tuple[int, ...]]]:
    """Paths and shapes of the numeric arrays of at least ``min_ndim`` axes in a group,
    largest first."""
    found = []
    try:
        members = list(group.members(max_depth=None))
    except Exception as e:  # noqa: BLE001 - any failure of a broken store
        raise DataSetException(f"{group.store_path}: cannot list the group: {e}") from e
    for name, node in members:
        if _is_array(node) and node.ndim >= min_ndim and _numeric(node.dtype):
            found.append((name, tuple(node.shape)))
    found.sort(key=lambda item: (-prod(item[1]), item[0]))
    return found


def _numeric(dtype) -> bool:
    try:
        return np.dtype(dtype).kind in "uifcb"
    except TypeError:
        return False


class ZarrFrameSource(BlockFrameSource):
    """Frames of a Zarr array, read in blocks of whole chunk rows into a reused buffer.

    Parameters
    ----------
    path, array_path, zarr_format
        Where the array is.
    nav_native, sig_shape
        Navigation shape of the stored array and the dataset's frame shape.
    dtype
        Dtype the array decodes to.
    grid
        Chunk boundaries along the flat navigation axes, or ``None`` to read
        blocks without regard to chunks.
    limit
        File frames ``[lo, hi)`` of the partition: blocks end there.
    selected
        Sorted file frames the partition reads (with a ROI), or ``None`` for all.
    sync_offset
        Dataset frame ``i`` is file frame ``i + sync_offset``.
    """

    def __init__(
        self,
        path: str,
        array_path: str,
        zarr_format: int,
        nav_native: tuple[int, ...],
        sig_shape: tuple[int, ...],
        dtype,
        grid: FlatChunkGrid | None,
        limit: tuple[int, int],
        selected: np.ndarray | None,
        sync_offset: int,
    ):
        super().__init__(nav_native, sig_shape, dtype, sync_offset)
        self.path = path
        self.array_path = array_path
        self.zarr_format = zarr_format
        self.grid = grid
        self.limit = limit
        self.selected = selected
        self._array = None
        frame_bytes = max(1, prod(sig_shape) * self._dtype.itemsize)
        self.block_frames = max(1, BLOCK_BYTES // frame_bytes)

    def _open(self):
        if self._array is None:
            self._array = open_node(self.path, self.array_path, self.zarr_format)
        return self._array

    def block_range(self, a: int, b: int) -> tuple[int, int]:
        """Chunk-aligned file frames to read so that ``[a, b)`` is covered."""
        want = max(b, min(a + self.block_frames, self.limit[1]))
        selected, grid = self.selected, self.grid
        if grid is None:
            if selected is not None:
                last = np.searchsorted(selected, want) - 1
                want = max(b, int(selected[last]) + 1) if last >= 0 else b
            return a, want
        if selected is None:
            return grid.floor(a), grid.ceil(want)
        # with a ROI, extend only over the following chunks that hold selected frames
        stop = grid.ceil(b)
        while stop < want:
            i = np.searchsorted(selected, stop)
            if i == selected.size or selected[i] >= want or grid.floor(selected[i]) != stop:
                break
            stop = grid.ceil(int(selected[i]) + 1)
        return grid.floor(a), stop

    def stored_sig_shape(self) -> tuple[int, ...]:
        return tuple(self._open().shape[len(self.nav_native) :])

    def read_selection(self, selection: tuple, dest: np.ndarray) -> None:
        read_selection(self._open(), selection[: len(self.nav_native)], dest)

    def close(self) -> None:
        self._array = None
        super().close()


def _make_reader():
    """A function that decodes a selection of a Zarr array into a given numpy array."""
    try:
        from zarr.core.buffer.cpu import NDBuffer
    except ImportError:  # pragma: no cover - other zarr layouts
        NDBuffer = None

    def read(array, selection: tuple, dest: np.ndarray) -> None:
        if NDBuffer is not None and dest.dtype == array.dtype and dest.flags.c_contiguous:
            array.get_basic_selection(selection, out=NDBuffer.from_numpy_array(dest))
        else:
            dest[...] = array[selection]

    return read


#: ``read_selection(array, selection, dest)``: decode ``array[selection]`` into ``dest``
read_selection = _make_reader()


class ZarrPartition(Partition):
    """Frames ``[start, stop)`` of a Zarr array; decodes its chunks where it runs.

    Parameters
    ----------
    path, array_path, zarr_format
        Where the array is.
    nav_native
        Navigation shape of the stored array.
    stored_dtype
        Dtype the array decodes to.
    grid
        Chunk boundaries along the flat navigation axes (``None``: ignore chunks).
    sync_offset
        Dataset frame ``i`` is file frame ``i + sync_offset``.
    **kwargs
        ``start``, ``stop``, ``dataset_shape``, ``dtype`` of :class:`Partition`.
    """

    def __init__(
        self,
        path: str,
        array_path: str,
        zarr_format: int,
        nav_native: tuple[int, ...],
        stored_dtype,
        grid: FlatChunkGrid | None,
        sync_offset: int,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.path = path
        self.array_path = array_path
        self.zarr_format = zarr_format
        self.nav_native = tuple(nav_native)
        self.stored_dtype = np.dtype(stored_dtype)
        self.grid = grid
        self.sync_offset = int(sync_offset)

    def _read_tiles(self, scheme, dest_dtype, roi_part):
        n_file = prod(self.nav_native)
        offset = self.sync_offset
        limit = (
            min(max(self.start + offset, 0), n_file),
            min(max(self.stop + offset, 0), n_file),
        )
        selected = None
        if roi_part is not None:
            selected = np.flatnonzero(roi_part) + self.start + offset
        source = ZarrFrameSource(
            self.path,
            self.array_path,
            self.zarr_format,
            self.nav_native,
            tuple(self.dataset_shape.sig),
            self.stored_dtype,
            self.grid,
            limit,
            selected,
            offset,
        )
        return iter_tiles(
            source, self.start, self.stop, scheme, dest_dtype, roi_part, self._corrections
        )


class ZarrDataSet(DataSet):
    """An array in a Zarr store (format 2 or 3), e.g. written by ``zarr`` or
    ``dask.array.to_zarr``.

    Parameters
    ----------
    path
        The store: a directory holding an array, or a group that holds one.
    array
        Path of the array inside the store (for a group); ``None`` picks the root
        array, or in a group the largest numeric array with navigation axes.
    nav_shape, sig_shape
        Reinterpret the data with these shapes (the frames keep their pixel count).
    sig_dims
        Number of trailing signal axes of the stored array (default 2).
    sync_offset
        Dataset frame ``i`` is stored frame ``i + sync_offset``; frames outside
        the array read as zeros.
    num_partitions
        Number of partitions (rounded to chunk boundaries); by default derived
        from the size and the number of workers.
    io_backend
        Not supported: Zarr reads through its own store layer.
    ds_path
        Same as ``array`` (the name the HDF5 format uses).
    """

    def __init__(
        self,
        path: str | os.PathLike,
        array: str | None = None,
        nav_shape: Sequence[int] | None = None,
        sig_shape: Sequence[int] | None = None,
        sig_dims: int = 2,
        sync_offset: int = 0,
        num_partitions: int | None = None,
        io_backend=None,
        *,
        ds_path: str | None = None,
    ):
        super().__init__(
            io_backend=io_backend, num_partitions=num_partitions, sync_offset=sync_offset
        )
        if array is not None and ds_path is not None and array != ds_path:
            raise DataSetException(f"array={array!r} and ds_path={ds_path!r} disagree")
        array = array if array is not None else ds_path
        self._path = os.fspath(path)
        self._array_path = None if array in (None, "", "auto") else str(array).strip("/")
        self._nav_shape = nav_shape
        self._sig_shape = sig_shape
        self._sig_dims = len(sig_shape) if sig_shape is not None else int(sig_dims)
        self._shape: Shape | None = None
        self._dtype: np.dtype | None = None
        self._info: dict = {}

    @classmethod
    def get_supported_extensions(cls) -> set[str]:
        return {"zarr"}

    @classmethod
    def detect_params(cls, path, executor=None):
        path = os.fspath(path)
        if not is_zarr_store(path):
            return False
        try:
            node = open_node(path)
            array = "" if _is_array(node) else find_arrays(node)[0][0]
        except (DataSetException, IndexError):
            return False
        params = {"path": path}
        if array:
            params["array"] = array
        return {"parameters": params}

    def initialize(self, executor) -> ZarrDataSet:
        node = open_node(self._path, self._array_path)
        if not _is_array(node):
            if self._array_path is not None:
                raise DataSetException(
                    f"{self._path}: {self._array_path!r} is a group, not an array"
                )
            found = find_arrays(node, min_ndim=self._sig_dims + 1)
            if not found:
                raise DataSetException(
                    f"{self._path}: the group holds no numeric array with at least "
                    f"{self._sig_dims + 1} axes"
                )
            self._array_path = found[0][0]
            node = open_node(self._path, self._array_path)
        self._init_from(node)
        return self

    def _init_from(self, array) -> None:
        where = f"{self._path}:{self._array_path}" if self._array_path else self._path
        if not _numeric(array.dtype):
            raise DataSetException(f"{where}: dtype {array.dtype} is not numeric")
        native = tuple(int(s) for s in array.shape)
        check_stored(prod(native) * np.dtype(array.dtype).itemsize, array.nbytes_stored, where)
        sig_dims = self._sig_dims
        if len(native) <= sig_dims:
            raise DataSetException(
                f"{where}: shape {native} has no navigation axes for sig_dims={sig_dims}"
            )
        self._stored = np.dtype(array.dtype)
        self._dtype = self._stored.newbyteorder("=")
        self._nav_native = native[: len(native) - sig_dims]
        n_file = prod(self._nav_native)
        self._shape = dataset_shape(
            self._nav_shape,
            self._sig_shape,
            native,
            sig_dims,
            n_file,
            self.sync_offset,
            where,
            self._stored,
        )
        self._zarr_format = int(array.metadata.zarr_format)
        stored_chunks = tuple(array.shards or array.chunks)
        frame_bytes = prod(self._shape.sig) * self._stored.itemsize
        grid = FlatChunkGrid(self._nav_native, stored_chunks[: len(self._nav_native)])
        self._grid = grid if grid.unit * frame_bytes <= MAX_BLOCK_BYTES else None
        self._info = {
            "zarr_format": self._zarr_format,
            "chunks": tuple(array.chunks),
            "shards": None if array.shards is None else tuple(array.shards),
            "compressors": ", ".join(type(c).__name__ for c in array.compressors) or "none",
        }

    @property
    def shape(self) -> Shape:
        if self._shape is None:
            raise DataSetException(f"{self._path}: dataset is not initialized")
        return self._shape

    @property
    def dtype(self) -> np.dtype:
        return self._dtype

    @property
    def array_path(self) -> str:
        """Path of the array inside the store (``''`` for a store that is one array)."""
        return self._array_path or ""

    @property
    def ds_path(self) -> str:
        """Same as :attr:`array_path`."""
        return self.array_path

    @property
    def image_count(self) -> int:
        return prod(self._nav_native)

    def get_cache_key(self) -> str:
        return files_cache_key(self, [self._path], array=self.array_path)

    def get_diagnostics(self) -> list[dict]:
        return [{"name": name, "value": str(value)} for name, value in self._info.items()]

    def get_partition_ranges(self) -> list[tuple[int, int]]:
        """Ranges of about equal size whose bounds are chunk boundaries."""
        nav_size = self.shape.nav.size
        ranges = split_frames(nav_size, self.get_num_partitions())
        if self._grid is not None:
            offset = self.sync_offset
            bounds = {0, nav_size}
            for start, _ in ranges[1:]:
                snapped = self._grid.snap(start + offset) - offset
                bounds.add(min(max(snapped, 0), nav_size))
            bounds = sorted(bounds)
            ranges = [(a, b) for a, b in zip(bounds[:-1], bounds[1:]) if b > a]
        return ranges

    def make_partition(self, start: int, stop: int) -> Partition:
        return ZarrPartition(
            self._path,
            self.array_path,
            self._zarr_format,
            self._nav_native,
            self._stored,
            self._grid,
            self.sync_offset,
            start=start,
            stop=stop,
            dataset_shape=self.shape,
            dtype=self._dtype,
        )
