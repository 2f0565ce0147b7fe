"""Partitions: contiguous ranges of frames, the unit of parallel work."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import TYPE_CHECKING

import numpy as np

from libertem.common.lazy import lazy_names
from libertem.common.shape import Shape
from libertem.common.slice import Slice
from libertem.common.sparse import is_sparse, to_dense
from libertem.io.dataset.base.mapguard import guarded
from libertem.io.dataset.base.meta import DataSetMeta
from libertem.io.dataset.base.tiles import DataTile, FrameSource, iter_tiles
from libertem.io.dataset.base.tiling import TilingScheme

if TYPE_CHECKING:
    from libertem.common.udf import ArrayBackendName as ArrayBackend


def frames_slice(start: int, stop: int, sig_shape) -> Slice:
    """The flat-navigation :class:`~libertem.common.slice.Slice` of whole frames
    ``[start, stop)`` of frames of ``sig_shape``."""
    sig = tuple(int(s) for s in sig_shape)
    return Slice((int(start), *([0] * len(sig))), Shape((int(stop) - int(start), *sig), len(sig)))


def split_frames(n_frames: int, num_partitions: int) -> list[tuple[int, int]]:
    """``num_partitions`` (at most ``n_frames``) contiguous, nearly equal ranges of frames."""
    num = max(1, min(int(num_partitions), int(n_frames)))
    bounds = np.linspace(0, n_frames, num + 1).astype(np.int64)
    return [(int(a), int(b)) for a, b in zip(bounds[:-1], bounds[1:]) if b > a]


class Partition:
    """Frames ``[start, stop)`` of a dataset (flat navigation index), read as tiles.

    Partitions are shipped to workers, so they hold a description of where to
    read, never much data (except in-memory datasets, which hold their part).

    Parameters
    ----------
    meta
        The dataset's :class:`~libertem.io.dataset.base.meta.DataSetMeta`.
    partition_slice
        The partition's region in flat-navigation coordinates:
        origin ``(start, 0, ...)``, shape ``(frames, *sig_shape)``.
    io_backend
        The :class:`~libertem.io.dataset.base.backend.IOBackend` to read with, or ``None``.
    decoder
        The :class:`~libertem.io.dataset.base.decoders.Decoder` of the stored data, or ``None``.
    start, stop, dataset_shape, dtype
        Keyword shortcut instead of ``meta`` and ``partition_slice``: the frame range,
        the dataset's shape and the native dtype.
    """

    def __init__(
        self,
        meta: DataSetMeta | None = None,
        partition_slice: Slice | None = None,
        io_backend=None,
        decoder=None,
        *,
        start: int | None = None,
        stop: int | None = None,
        dataset_shape: Shape | None = None,
        dtype=None,
    ):
        if meta is None:
            if dataset_shape is None:
                raise TypeError("Partition needs meta (or dataset_shape and dtype)")
            meta = DataSetMeta(shape=dataset_shape, raw_dtype=dtype)
        if partition_slice is None:
            if start is None or stop is None:
                raise TypeError("Partition needs partition_slice (or start and stop)")
            partition_slice = frames_slice(start, stop, meta.shape.sig)
        self.meta = meta
        self.slice = partition_slice
        self.start = int(partition_slice.origin[0])
        self.stop = self.start + int(partition_slice.shape[0])
        self.dataset_shape = meta.shape
        self._dtype = np.dtype(meta.raw_dtype if dtype is None else dtype)
        self._io_backend = io_backend
        self._decoder = decoder
        self._idx = None
        self._worker_context = None
        self._ident = uuid.uuid4().hex

    # description -------------------------------------------------------------------
    @property
    def dtype(self) -> np.dtype:
        """Native dtype of the (decoded) data."""
        return self._dtype

    @property
    def shape(self) -> Shape:
        """Flat-nav shape of the partition: ``(frames, *sig_shape)``."""
        return self.slice.shape

    @classmethod
    def make_slices(cls, shape: Shape, num_partitions: int, sync_offset: int = 0):
        """Split a dataset of ``shape`` into ``num_partitions`` nearly equal ranges.

        Yields
        ------
        partition_slice, start, stop
            The flat-nav slice of each partition and its range in file frames
            (dataset frames shifted by ``sync_offset``).
        """
        for a, b in split_frames(shape.nav.size, num_partitions):
            yield frames_slice(a, b, shape.sig), a + sync_offset, b + sync_offset

    def get_frame_count(self, roi: np.ndarray | None = None) -> int:
        """Number of frames of this partition, or of those that ``roi`` selects."""
        roi_part = self._roi_part(roi)
        if roi_part is None:
            return self.stop - self.start
        return int(np.count_nonzero(roi_part))

    def get_ident(self) -> str:
        """An identifier of this partition, the same on every copy of it."""
        return self._ident

    def set_idx(self, idx: int) -> None:
        """Remember the partition's index in its dataset."""
        self._idx = int(idx)

    @property
    def idx(self) -> int | None:
        """The partition's index in its dataset, if set."""
        return self._idx

    def get_locations(self):
        """Hosts that hold the data locally, or ``None``: any worker may read it."""
        return None

    def get_io_backend(self):
        """The partition's I/O backend, or ``None``."""
        return self._io_backend

    def set_io_backend(self, backend) -> None:
        """Read with ``backend`` (an :class:`~libertem.io.dataset.base.backend.IOBackend`)."""
        self._io_backend = backend

    def set_worker_context(self, worker_context) -> None:
        """Tell the partition about the worker it runs on (e.g. for worker-local state)."""
        self._worker_context = worker_context

    #: the ``CorrectionSet`` applied to the tiles, see :meth:`set_corrections`
    _corrections = None

    def set_corrections(self, corrections) -> None:
        """Correct the tiles of :meth:`get_tiles` with ``corrections`` (a ``CorrectionSet``).

        Parameters
        ----------
        corrections
            The corrections, or ``None`` for none. Tiles then come out in a
            writable buffer of the (float) ``dest_dtype``, corrected in place.
        """
        self._corrections = corrections

    def validate_tiling_scheme(self, tiling_scheme: TilingScheme) -> None:
        """Raise ``ValueError`` if this partition cannot read tiles of ``tiling_scheme``."""
        sig = tuple(self.dataset_shape.sig)
        if tuple(tiling_scheme.sig_shape) != sig:
            raise ValueError(
                f"tiling scheme for frames of {tuple(tiling_scheme.sig_shape)} does not fit "
                f"this partition's frames of {sig}"
            )

    # reading -------------------------------------------------------------------------
    def _flat_roi(self, roi) -> np.ndarray | None:
        """``roi`` as a flat dense bool array (``None`` stays ``None``)."""
        if roi is None:
            return None
        if is_sparse(roi):
            roi = to_dense(roi)
        return np.asarray(roi).reshape(-1)

    def _roi_part(self, roi) -> np.ndarray | None:
        """The elements of ``roi`` (a selection over the whole dataset, flattened in C
        order) at this partition's frames ``[start, stop)``.

        The size is not checked beyond that: a larger array is read through its flat
        prefix. An array of exactly the partition's frames that cannot cover
        ``[start, stop)`` is taken as a selection of the partition's own frames.
        """
        flat = self._flat_roi(roi)
        if flat is None:
            return None
        n = self.stop - self.start
        if flat.size >= self.stop:
            return flat[self.start : self.stop].astype(bool, copy=False)
        if flat.size == n:
            return flat.astype(bool, copy=False)
        raise ValueError(
            f"roi of {flat.size} frames does not cover this partition's frames "
            f"[{self.start}, {self.stop}) (the dataset has {self.dataset_shape.nav.size})"
        )

    def _roi_offset(self, roi) -> int:
        """Number of frames ``roi`` selects before this partition (``tile_slice`` origins
        with a ROI count selected frames over the whole dataset)."""
        flat = self._flat_roi(roi)
        if flat is None:
            return self.start
        if flat.size < self.stop:
            return 0
        return int(np.count_nonzero(flat[: self.start]))

    def get_tiles(
        self,
        tiling_scheme: TilingScheme,
        dest_dtype="float32",
        roi=None,
        array_backend: ArrayBackend | None = None,
    ) -> Iterator[DataTile]:
        """Tiles of this partition.

        Frames without stored data (see ``sync_offset`` and ``nav_shape``) are never
        part of a tile; a partition without any yields no tiles.

        Parameters
        ----------
        tiling_scheme
            The negotiated tiling scheme.
        dest_dtype
            Dtype of the tiles handed out.
        roi
            Boolean selection of frames over the whole dataset (navigation shape or
            flat; numpy or sparse), of which the elements at this partition's frames
            count; ``None``: all.
        array_backend
            Array backend of the tiles (e.g. ``'numpy'``, ``'cupy'``, ``'sparse.COO'``);
            ``None``: the dataset's native one.

        Yields
        ------
        DataTile
            Tiles in frame order; within each block of frames, in the order of the
            scheme's signal slices. ``tile.slice`` counts frames within the partition
            (among the selected ones); ``tile.tile_slice`` over the whole dataset (with
            a ROI: the selected frames before the tile).
        """
        self.validate_tiling_scheme(tiling_scheme)
        roi_part = self._roi_part(roi)
        tiles = self._read_tiles(tiling_scheme, np.dtype(dest_dtype), roi_part)
        if array_backend is not None and array_backend != "numpy":
            tiles = _converted(tiles, array_backend)
        if roi_part is not None:
            tiles = with_offset(tiles, self._roi_offset(roi))
        return guarded(tiles)

    def _read_tiles(self, scheme: TilingScheme, dest_dtype: np.dtype, roi_part):
        """Tiles for a flat boolean ``roi_part`` of this partition's frames (or ``None``)."""
        raise NotImplementedError(f"{type(self).__name__} does not read tiles")

    def _macrotile_origin(self, roi, tiles: list[DataTile]) -> int:
        """Frame origin of :meth:`get_macrotile`'s tile: that of its first frame (with a
        ROI counted among the selected frames, see ``DataTile.tile_slice``)."""
        if tiles:
            return int(tiles[0].tile_slice.origin[0])
        return self._roi_offset(roi) if roi is not None else self.start

    def get_macrotile(
        self, dest_dtype="float32", roi=None, array_backend: ArrayBackend | None = None
    ) -> DataTile:
        """All (selected) frames of the partition that have stored data, as one tile."""
        roi_part = self._roi_part(roi)
        n = self.stop - self.start if roi_part is None else int(np.count_nonzero(roi_part))
        sig = tuple(self.dataset_shape.sig)
        scheme = TilingScheme.make_for_shape((max(1, n), *sig), self.dataset_shape, "partition")
        tiles, parts = [], []
        for tile in self.get_tiles(scheme, dest_dtype, roi, array_backend):
            tiles.append(tile)
            # tiles may be views of a buffer that the next tile reuses
            parts.append(tile.data.copy())
        origin = self._macrotile_origin(roi, tiles)
        if len(tiles) == 1 and origin == int(tiles[0].tile_slice.origin[0]):
            return tiles[0]
        if not tiles:
            data = np.zeros((0, *sig), dtype=dest_dtype)
        elif len(tiles) == 1:
            data = tiles[0].data
        else:
            data = np.concatenate([np.asarray(p) for p in parts])
        tile_slice = Slice((0, *([0] * len(sig))), Shape((len(data), *sig), sig_dims=len(sig)))
        return DataTile(data, tile_slice, 0, origin)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} [{self.start}, {self.stop})>"


def with_offset(tiles, offset: int) -> Iterator[DataTile]:
    """``tiles`` with their ``tile_slice`` counted from ``offset`` selected frames."""
    for tile in tiles:
        tile._offset = offset
        yield tile


def _converted(tiles, array_backend: str) -> Iterator[DataTile]:
    from sparseconverter import for_backend

    for tile in tiles:
        yield DataTile(
            for_backend(tile.data, array_backend), tile.slice, tile.scheme_idx, tile._offset
        )


class ArrayPartition(Partition):
    """A partition whose frames come from an array-like (ndarray or memory map).

    Subclasses implement :meth:`open_frames`, returning the array of all frames
    ``(n_frames, *sig)`` the dataset reads from, before ``sync_offset`` applies.

    Parameters
    ----------
    start, stop, dataset_shape, dtype
        The frame range, the dataset's shape and the native dtype.
    sync_offset
        Dataset frame ``i`` is frame ``i + sync_offset`` of the array.
    """

    def __init__(self, start, stop, dataset_shape, dtype, sync_offset: int = 0):
        meta = DataSetMeta(shape=dataset_shape, raw_dtype=dtype, sync_offset=sync_offset)
        super().__init__(meta, start=start, stop=stop)
        self.sync_offset = int(sync_offset)

    def open_frames(self) -> np.ndarray:
        """The frames array the partition reads from."""
        raise NotImplementedError(f"{type(self).__name__} does not define open_frames")

    def _read_tiles(self, scheme, dest_dtype, roi_part):
        """Tiles from the frames array: views where the layout allows."""
        source = FrameSource(self.open_frames(), self.sync_offset)
        return iter_tiles(
            source, self.start, self.stop, scheme, dest_dtype, roi_part, self._corrections
        )


# LiberTEM 0.16 also has these names in this module; they live elsewhere here
__getattr__, __dir__ = lazy_names(
    __name__,
    {
        "BasePartition": "libertem.io.dataset.base.basepartition",
        "CorrectionSet": "libertem.io.corrections.corrset",
        "Decoder": "libertem.io.dataset.base.decoders",
        "FileSet": "libertem.io.dataset.base.fileset",
        "IOBackend": "libertem.io.dataset.base.backend",
        "WritablePartition": "libertem.io.dataset.base.structure",
        "count_nonzero": "libertem.common.math",
        "roi_for_partition": "libertem.common.roi",
    },
)
