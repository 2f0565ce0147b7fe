"""Datasets from Dask arrays: partitions follow the array's chunks."""

from __future__ import annotations

import numpy as np

from libertem.common.exceptions import DataSetException
from libertem.common.shape import Shape
from libertem.io.dataset.base import ArrayPartition, DataSet
from libertem.io.dataset.base.dataset import PARTITION_TARGET_BYTES


class DaskPartition(ArrayPartition):
    """Frames of a slice of the first navigation axis, computed where the task runs."""

    def __init__(self, array, **kwargs):
        super().__init__(**kwargs)
        self._array = array

    def open_frames(self) -> np.ndarray:
        block = self._array.compute(scheduler="synchronous")
        sig = tuple(self.dataset_shape.sig)
        return np.asarray(block).reshape((-1, *sig))


class DaskDataSet(DataSet):
    """A Dask array as a dataset, read lazily chunk by chunk.

    Partitions are contiguous ranges of the first navigation axis that follow
    its chunk boundaries; small chunks are merged up to about 256 MiB. Chunks
    along other axes (trailing navigation or signal axes) are combined when a
    partition is computed. This performs well when the array's chunks come from
    lazy I/O or functions (e.g. a lazy HyperSpy signal's ``.data``).

    Parameters
    ----------
    dask_array
        The array, navigation axes first.
    sig_dims
        How many trailing axes are signal axes.
    min_size
        Target bytes per partition (default about 256 MiB).
    """

    def __init__(self, dask_array, sig_dims: int = 2, min_size: int | None = None, **kwargs):
        if kwargs.get("sync_offset"):
            raise DataSetException("dask dataset: sync_offset is not supported")
        super().__init__(num_partitions=kwargs.get("num_partitions"))
        import dask.array as da

        if not isinstance(dask_array, da.Array):
            raise DataSetException(
                f"dask dataset: expected a dask.array.Array, got {type(dask_array).__name__}"
            )
        if not 1 <= sig_dims < dask_array.ndim:
            raise DataSetException(
                f"dask dataset: sig_dims={sig_dims} does not fit an array of shape "
                f"{dask_array.shape}"
            )
        self._array = dask_array
        self._shape = Shape(dask_array.shape, sig_dims=sig_dims)
        self._min_size = PARTITION_TARGET_BYTES if min_size is None else int(min_size)

    def initialize(self, executor) -> DaskDataSet:
        return self

    @property
    def shape(self) -> Shape:
        return self._shape

    @property
    def dtype(self) -> np.dtype:
        return self._array.dtype

    @property
    def array(self):
        """The wrapped Dask array."""
        return self._array

    def _row_bounds(self) -> list[int]:
        """Boundaries along the first axis: chunk edges, merged up to the target size."""
        row_bytes = int(np.prod(self._array.shape[1:])) * self.dtype.itemsize
        edges = np.cumsum((0, *self._array.chunks[0]))
        if self._num_partitions is not None:
            wanted = np.linspace(0, edges[-1], self._num_partitions + 1)
            picked = {int(edges[np.abs(edges - w).argmin()]) for w in wanted}
            return sorted(picked | {0, int(edges[-1])})
        bounds = [0]
        for edge in edges[1:]:
            if (edge - bounds[-1]) * row_bytes >= self._min_size or edge == edges[-1]:
                bounds.append(int(edge))
        return bounds

    def get_partitions(self):
        rows_per_frame = int(np.prod(self._shape.nav[1:]))
        bounds = self._row_bounds()
        return [
            DaskPartition(
                array=self._array[a:b],
                start=a * rows_per_frame,
                stop=b * rows_per_frame,
                dataset_shape=self._shape,
                dtype=self.dtype,
                # the computed block holds only this partition's frames
                sync_offset=-a * rows_per_frame,
            )
            for a, b in zip(bounds[:-1], bounds[1:])
            if b > a
        ]

    def make_partition(self, start: int, stop: int):
        raise NotImplementedError("dask datasets partition along their chunks")
